package grpcwire_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/reflection"
	rpbalpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/mirrorline/mirrorline/grpcwire"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/testcert"
)

// serveOrders runs the demo orders server on loopback with the reflection
// service register adds; it stops with the test.
func serveOrders(t *testing.T, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	srv, err := app.New(app.V1)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return ln.Addr().String()
}

// Reflect builds a Schema from the demo server's reflection service (v1, or
// v1alpha when the server only has that): the methods' types are known.
func TestReflectDemoServer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		register func(*grpc.Server)
		prefix   string
	}{
		{"v1", func(g *grpc.Server) { reflection.Register(g) }, ""},
		{"v1alpha only", func(g *grpc.Server) {
			rpbalpha.RegisterServerReflectionServer(g, reflection.NewServer(reflection.ServerOptions{Services: g}))
		}, "http://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveOrders(t, tc.register)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := grpcwire.Reflect(ctx, tc.prefix+addr, nil)
			if err != nil {
				t.Fatalf("Reflect: %v", err)
			}
			for path, want := range map[string][2]string{
				"/mirrorline.demo.orders.v1.Orders/GetOrder":     {"GetOrderRequest", "Order"},
				"/mirrorline.demo.orders.v1.Orders/Track":        {"TrackNote", "TrackAck"},
				"/mirrorline.demo.orders.v1.Orders/UploadOrders": {"Order", "UploadSummary"},
			} {
				in, out, ok := s.Method(path)
				if !ok || string(in.Name()) != want[0] || string(out.Name()) != want[1] {
					t.Errorf("Method(%s) = %v %v %v", path, in, out, ok)
				}
			}
			if tc.name == "v1" {
				// Merged with the descriptor set on disk (the same files).
				disk, err := grpcwire.LoadSchemas("../test/demo/orders/ordersv1/orders.pb")
				if err != nil {
					t.Fatal(err)
				}
				if s, err = grpcwire.MergeSchemas(disk, nil, s); err != nil {
					t.Fatalf("MergeSchemas: %v", err)
				}
			}
			_, out, _ := s.Method("/mirrorline.demo.orders.v1.Orders/GetOrder")
			if out.Fields().ByName("shipping").Message().Fields().ByName("street") == nil {
				t.Errorf("nested Address not resolved")
			}
		})
	}
}

// Reflect fails with a clear error, in bounded time, on a server without
// reflection, a closed port and a malformed address.
func TestReflectErrors(t *testing.T) {
	addr := serveOrders(t, func(*grpc.Server) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct{ addr, want string }{
		{addr, "Unimplemented"},
		{closed, "grpc reflection"},
		{"no-port", "not host:port"},
		{"https://", "not host:port"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := grpcwire.Reflect(ctx, tc.addr, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Reflect(%q) = %v, want %q", tc.addr, err, tc.want)
		}
	}
}

// An https:// address is asked over TLS, verified: with the server's CA it
// works; with the system roots, or over h2c, it fails.
func TestReflectTLS(t *testing.T) {
	cert := testcert.New(t)
	addr := serveOrders(t, func(g *grpc.Server) { reflection.Register(g) }, grpc.Creds(credentials.NewServerTLSFromCert(&cert.TLS)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := grpcwire.Reflect(ctx, "https://"+addr, cert.Client())
	if err != nil {
		t.Fatalf("Reflect over TLS: %v", err)
	}
	if _, _, ok := s.Method("/mirrorline.demo.orders.v1.Orders/GetOrder"); !ok {
		t.Errorf("GetOrder unknown")
	}
	for _, a := range []string{"https://" + addr, addr} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := grpcwire.Reflect(ctx, a, nil)
		cancel()
		if err == nil {
			t.Errorf("Reflect(%q) without the CA: no error", a)
		}
	}
}
