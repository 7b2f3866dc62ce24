// Package orderstest runs the bundled gRPC demo service (test/demo/orders)
// inside a test: a real grpc-go server on loopback, stopped when the test
// ends.
package orderstest

import (
	"net"
	"testing"

	"google.golang.org/grpc"

	"github.com/mirrorline/mirrorline/test/demo/orders/app"
)

// Serve runs the orders service of version (app.V1 or app.V2) on a free
// port of 127.0.0.1 with the server options opts, until tb ends. It returns
// the service (its call counts) and its address (host:port).
func Serve(tb testing.TB, version string, opts ...grpc.ServerOption) (*app.Server, string) {
	tb.Helper()
	srv, err := app.New(version)
	if err != nil {
		tb.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	tb.Cleanup(g.Stop)
	return srv, ln.Addr().String()
}
