package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/orderstest"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/testcert"
)

// seen is what the primary's interceptors observed of each call.
type seen struct {
	mu       sync.Mutex
	canceled map[string]bool // method: its context ended canceled
	deadline map[string]bool // method: a deadline arrived with the call
}

func (s *seen) note(ctx context.Context, method string, after bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := ctx.Deadline(); ok {
		s.deadline[method] = true
	}
	if after && errors.Is(ctx.Err(), context.Canceled) {
		s.canceled[method] = true
	}
}

func (s *seen) get(m map[string]bool, method string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return m[method]
}

// startOrders serves the demo orders service (version v1) on loopback,
// with interceptors noting deadlines and cancellations.
func startOrders(t *testing.T) (*app.Server, string, *seen) {
	t.Helper()
	srv, err := app.New(app.V1)
	if err != nil {
		t.Fatal(err)
	}
	sn := &seen{canceled: map[string]bool{}, deadline: map[string]bool{}}
	g := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			sn.note(ctx, info.FullMethod, false)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			sn.note(ss.Context(), info.FullMethod, false)
			err := h(s, ss)
			sn.note(ss.Context(), info.FullMethod, true)
			return err
		}),
	)
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	return srv, ln.Addr().String(), sn
}

// grpcProxy serves a proxy to primary (an http:// URL) capturing into a
// Recorder, over TLS when tlsCfg is set.
func grpcProxy(t *testing.T, primary string, tlsCfg *tls.Config, opts ...Option) (string, *collector.Emitter, *collectortest.Recorder) {
	t.Helper()
	rec := &collectortest.Recorder{}
	em := collector.NewEmitter(rec, "orders", nil, nil)
	if tlsCfg != nil {
		opts = append(opts, WithTLS(tlsCfg))
	}
	p, err := New(primary, em, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return collectortest.Serve(t, p.Serve), em, rec
}

func dialOrders(t *testing.T, addr string, creds credentials.TransportCredentials) ordersv1.OrdersClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return ordersv1.NewOrdersClient(cc)
}

// Every gRPC call kind passes through the proxy unchanged, on h2c and on
// TLS: values, trailers, an error status, a deadline, a cancellation; and
// each is captured as a GRPC exchange with its messages per direction.
func TestProxyGRPCCallKinds(t *testing.T) {
	cert := testcert.New(t)
	for _, tc := range []struct {
		name  string
		tls   *tls.Config
		creds credentials.TransportCredentials
	}{
		{"h2c", nil, insecure.NewCredentials()},
		{"tls", cert.Server(), credentials.NewTLS(cert.Client())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orders, primary, sn := startOrders(t)
			addr, em, rec := grpcProxy(t, "http://"+primary, tc.tls)
			cl := dialOrders(t, addr, tc.creds)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			// Unary, with a trailer and a deadline.
			var trailer metadata.MD
			o, err := cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "o-1", CustomerEmail: "ann@example.com"}, grpc.Trailer(&trailer))
			if err != nil || o.GetId() != "o-1" || o.GetStatus() != "shipped" {
				t.Fatalf("GetOrder: %v, %v", o, err)
			}
			if got := trailer.Get("x-orders-version"); len(got) != 1 || got[0] != "v1" {
				t.Fatalf("trailer x-orders-version = %q, want v1", got)
			}
			if !sn.get(sn.deadline, ordersv1.Orders_GetOrder_FullMethodName) {
				t.Fatal("the call's deadline (grpc-timeout) did not reach the primary")
			}
			// An error status.
			_, err = cl.GetOrder(ctx, &ordersv1.GetOrderRequest{})
			if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != "order id is required" {
				t.Fatalf("GetOrder without id: %v, want InvalidArgument", err)
			}
			// Server streaming.
			ls, err := cl.ListOrders(ctx, &ordersv1.ListOrdersRequest{CustomerEmail: "ann@example.com", Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				o, err := ls.Recv()
				if err != nil || o.GetId() != "list-"+string(rune('1'+i)) {
					t.Fatalf("ListOrders message %d: %v, %v", i, o, err)
				}
			}
			if _, err := ls.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("ListOrders end: %v", err)
			}
			// Client streaming.
			us, err := cl.UploadOrders(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"u-1", "u-2"} {
				if err := us.Send(&ordersv1.Order{Id: id, AmountCents: 250}); err != nil {
					t.Fatal(err)
				}
			}
			sum, err := us.CloseAndRecv()
			if err != nil || sum.GetCount() != 2 || sum.GetTotalCents() != 500 {
				t.Fatalf("UploadOrders: %v, %v", sum, err)
			}
			// Bidirectional, waiting for each answer before the next note: it
			// deadlocks if anything reads the request body ahead.
			tr, err := cl.Track(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range int32(3) {
				if err := tr.Send(&ordersv1.TrackNote{OrderId: "o-1", Note: "n", Seq: i}); err != nil {
					t.Fatal(err)
				}
				ack, err := tr.Recv()
				if err != nil || ack.GetSeq() != i || ack.GetState() != "noted" {
					t.Fatalf("Track ack %d: %v, %v", i, ack, err)
				}
			}
			if err := tr.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("Track end: %v", err)
			}
			// A client that cancels cancels the primary's stream.
			cctx, ccancel := context.WithCancel(ctx)
			tc2, err := cl.Track(cctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc2.Send(&ordersv1.TrackNote{OrderId: "o-2", Seq: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := tc2.Recv(); err != nil {
				t.Fatal(err)
			}
			ccancel()
			waitFor(t, "the primary's Track stream canceled", func() bool { return sn.get(sn.canceled, ordersv1.Orders_Track_FullMethodName) })
			// Not published, counted as a body that did not arrive whole.
			waitFor(t, "the canceled call counted", func() bool {
				return testutil.ToFloat64(em.Metrics().Dropped.WithLabelValues(collector.DropIncompleteBody)) == 1
			})
			if orders.Calls("Track") != 2 || orders.Calls("GetOrder") != 2 {
				t.Fatalf("primary calls: Track %d GetOrder %d", orders.Calls("Track"), orders.Calls("GetOrder"))
			}

			collectortest.Flush(t, em)
			byPath := map[string][]*mlv1.Exchange{}
			for _, ex := range rec.Exchanges(t) {
				byPath[ex.GetRequest().GetUrl()] = append(byPath[ex.GetRequest().GetUrl()], ex)
			}
			unary := byPath[ordersv1.Orders_GetOrder_FullMethodName]
			if len(unary) != 2 {
				t.Fatalf("%d GetOrder exchanges, want 2", len(unary))
			}
			ok := unary[0]
			checkGRPC(t, ok, 1, 1)
			var req ordersv1.GetOrderRequest
			mustUnmarshal(t, ok.Request.Messages[0], &req)
			var got ordersv1.Order
			mustUnmarshal(t, ok.Response.Messages[0], &got)
			if req.GetCustomerEmail() != "ann@example.com" || got.GetId() != "o-1" {
				t.Fatalf("GetOrder messages: %v / %v", &req, &got)
			}
			if header(ok.Response.Trailers, "Grpc-Status") != "0" || header(ok.Response.Trailers, "X-Orders-Version") != "v1" {
				t.Fatalf("GetOrder trailers: %v", ok.Response.Trailers)
			}
			if ok.Request.Proto != "HTTP/2.0" || header(ok.Request.Headers, "Grpc-Timeout") == "" {
				t.Fatalf("GetOrder request: proto %q headers %v", ok.Request.Proto, ok.Request.Headers)
			}
			bad := unary[1]
			checkGRPC(t, bad, 1, 0)
			if st := header(bad.Response.Trailers, "Grpc-Status") + header(bad.Response.Headers, "Grpc-Status"); st != "3" {
				t.Fatalf("error call: grpc-status %q, want 3 (headers %v, trailers %v)", st, bad.Response.Headers, bad.Response.Trailers)
			}
			list := byPath[ordersv1.Orders_ListOrders_FullMethodName]
			if len(list) != 1 {
				t.Fatalf("%d ListOrders exchanges", len(list))
			}
			checkGRPC(t, list[0], 1, 3)
			for i, m := range list[0].Response.Messages {
				var o ordersv1.Order
				mustUnmarshal(t, m, &o)
				if o.GetId() != "list-"+string(rune('1'+i)) {
					t.Fatalf("ListOrders captured message %d: %v", i, &o)
				}
			}
			up := byPath[ordersv1.Orders_UploadOrders_FullMethodName]
			if len(up) != 1 {
				t.Fatalf("%d UploadOrders exchanges", len(up))
			}
			checkGRPC(t, up[0], 2, 1)
			track := byPath[ordersv1.Orders_Track_FullMethodName]
			if len(track) != 1 {
				// The canceled one is not published: its body did not end.
				t.Fatalf("%d Track exchanges, want 1", len(track))
			}
			checkGRPC(t, track[0], 3, 3)
			for i := range 3 {
				var n ordersv1.TrackNote
				var a ordersv1.TrackAck
				mustUnmarshal(t, track[0].Request.Messages[i], &n)
				mustUnmarshal(t, track[0].Response.Messages[i], &a)
				if n.GetSeq() != int32(i) || a.GetSeq() != int32(i) {
					t.Fatalf("Track message %d: note %v ack %v", i, &n, &a)
				}
				// Each note went out before its answer came back.
				if track[0].Request.Messages[i].OffsetNs > track[0].Response.Messages[i].OffsetNs {
					t.Fatalf("Track note %d at %d ns, after its ack at %d ns", i, track[0].Request.Messages[i].OffsetNs, track[0].Response.Messages[i].OffsetNs)
				}
			}
		})
	}
}

// checkGRPC checks a captured gRPC exchange: protocol, message counts per
// direction, offsets non-decreasing, nothing truncated.
func checkGRPC(t *testing.T, ex *mlv1.Exchange, reqMsgs, respMsgs int) {
	t.Helper()
	if ex.Protocol != mlv1.Protocol_PROTOCOL_GRPC {
		t.Fatalf("%s: protocol %v, want GRPC", ex.Request.Url, ex.Protocol)
	}
	if len(ex.Request.Body) != 0 || len(ex.Response.Body) != 0 {
		t.Fatalf("%s: body fields set on a gRPC exchange", ex.Request.Url)
	}
	for _, d := range []struct {
		name string
		msgs []*mlv1.Message
		cut  bool
		want int
	}{{"request", ex.Request.Messages, ex.Request.MessagesTruncated, reqMsgs}, {"response", ex.Response.Messages, ex.Response.MessagesTruncated, respMsgs}} {
		if len(d.msgs) != d.want || d.cut {
			t.Fatalf("%s: %d %s messages (truncated %v), want %d", ex.Request.Url, len(d.msgs), d.name, d.cut, d.want)
		}
		var last int64
		for i, m := range d.msgs {
			if m.OffsetNs < last || m.Truncated || m.Compressed || int64(len(m.Data)) != m.Size {
				t.Fatalf("%s: %s message %d: offset %d after %d, truncated %v, %d of %d bytes", ex.Request.Url, d.name, i, m.OffsetNs, last, m.Truncated, len(m.Data), m.Size)
			}
			last = m.OffsetNs
		}
	}
}

func mustUnmarshal(t *testing.T, m *mlv1.Message, into proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(m.Data, into); err != nil {
		t.Fatalf("captured message does not decode: %v", err)
	}
}

func header(hs []*mlv1.Header, name string) string {
	for _, h := range hs {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

// A compressed call keeps its compressed flag and grpc-encoding; a message
// over the body limit passes through whole and is captured cut, marked
// truncated with its declared size.
func TestProxyGRPCCompressionAndLimits(t *testing.T) {
	_, primary, _ := startOrders(t)
	addr, em, rec := grpcProxy(t, "http://"+primary, nil, WithBodyLimit(64))
	cl := dialOrders(t, addr, insecure.NewCredentials())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if o, err := cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "o-1"}, grpc.UseCompressor(gzip.Name)); err != nil || o.GetId() != "o-1" {
		t.Fatalf("compressed GetOrder: %v, %v", o, err)
	}
	long := strings.Repeat("x", 500)
	if o, err := cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: long}); err != nil || o.GetId() != long {
		t.Fatalf("GetOrder with a long id: %v", err)
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 2 {
		t.Fatalf("%d exchanges", len(exs))
	}
	gz := exs[0]
	if len(gz.Request.Messages) != 1 || !gz.Request.Messages[0].Compressed || header(gz.Request.Headers, "Grpc-Encoding") != "gzip" {
		t.Fatalf("compressed call: messages %v, headers %v", gz.Request.Messages, gz.Request.Headers)
	}
	big := exs[1]
	for side, m := range map[string]*mlv1.Message{"request": big.Request.Messages[0], "response": big.Response.Messages[0]} {
		if !m.Truncated || len(m.Data) != 64 || m.Size <= 500 {
			t.Fatalf("%s message over the body limit: truncated %v, %d bytes kept of %d", side, m.Truncated, len(m.Data), m.Size)
		}
	}
	if big.Request.BodySize != big.Request.Messages[0].Size+5 {
		t.Fatalf("body_size %d, want the framed bytes %d", big.Request.BodySize, big.Request.Messages[0].Size+5)
	}
}

// BenchmarkGRPCUnary compares a unary call to the demo service directly,
// through a plain Go reverse proxy and through the proxy (h2c both ways,
// capture on).
func BenchmarkGRPCUnary(b *testing.B) {
	_, srvAddr := orderstest.Serve(b, app.V1)
	rec := &collectortest.Recorder{}
	p, err := New("http://"+srvAddr, collector.NewEmitter(rec, "orders", nil, nil))
	if err != nil {
		b.Fatal(err)
	}
	proxied := collectortest.Serve(b, p.Serve)
	// A plain Go reverse proxy over h2c both ways: the floor for a proxy.
	target, _ := url.Parse("http://" + srvAddr)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	plain := &http.Server{Handler: &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: tr}, Protocols: new(http.Protocols)}
	plain.Protocols.SetUnencryptedHTTP2(true)
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = plain.Serve(pln) }()
	b.Cleanup(func() { plain.Close() })
	for _, tc := range []struct{ name, addr string }{{"direct", srvAddr}, {"reverseproxy", pln.Addr().String()}, {"proxied", proxied}} {
		b.Run(tc.name, func(b *testing.B) {
			cc, err := grpc.NewClient(tc.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			defer cc.Close()
			cl := ordersv1.NewOrdersClient(cc)
			ctx := context.Background()
			for b.Loop() {
				if _, err := cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "o-1", CustomerEmail: "ann@example.com"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A primary that cannot be reached gets a gRPC client UNAVAILABLE, as a
// gRPC proxy answers; the exchange records the error.
func TestProxyGRPCPrimaryUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	addr, em, rec := grpcProxy(t, "http://"+dead, nil)
	cl := dialOrders(t, addr, insecure.NewCredentials())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "o-1"})
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "primary unreachable") {
		t.Fatalf("GetOrder to a dead primary: %v, want UNAVAILABLE from the proxy", err)
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 1 || exs[0].Response.Error == "" || header(exs[0].Response.Headers, "Grpc-Status") != "14" || len(exs[0].Response.Messages) != 0 {
		t.Fatalf("captured %v", exs)
	}
}

// A gRPC call the primary answers with something else than gRPC (an error
// page) is captured with that answer as its body, not as broken messages.
// The same content type over HTTP/1.1 is not gRPC: an ordinary body.
func TestProxyGRPCCallAnsweredWithoutGRPC(t *testing.T) {
	primary, _ := seenPrimary(t)
	addr, em, rec := grpcProxy(t, primary.URL, nil, WithPrimaryProtocol(PrimaryHTTP1))
	body := grpcwire.AppendFrame(nil, &mlv1.Message{Data: []byte("\x0a\x03o-1")})
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	for _, tr := range []http.RoundTripper{h2c, http.DefaultTransport} {
		resp, err := (&http.Client{Transport: tr, Timeout: 15 * time.Second}).Post("http://"+addr+ordersv1.Orders_GetOrder_FullMethodName, "application/grpc", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	want := fmt.Sprintf("primary saw POST %s %d bytes", ordersv1.Orders_GetOrder_FullMethodName, len(body))
	if len(exs) != 2 {
		t.Fatalf("%d exchanges", len(exs))
	}
	g, h1 := exs[0], exs[1]
	if g.Protocol != mlv1.Protocol_PROTOCOL_GRPC || len(g.Request.Messages) != 1 || string(g.Response.Body) != want || len(g.Response.Messages) != 0 || g.Response.MessagesTruncated {
		t.Fatalf("gRPC call answered with text: %v", g)
	}
	if h1.Protocol != mlv1.Protocol_PROTOCOL_UNSPECIFIED || !bytes.Equal(h1.Request.Body, body) || len(h1.Request.Messages) != 0 || string(h1.Response.Body) != want {
		t.Fatalf("HTTP/1.1 request of gRPC's content type: %v", h1)
	}
}
