package sink

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

// A gRPC copy, sent as a mirror sends it (h2c with prior knowledge, the
// "-shadow" host), is answered as a gRPC server ends a call (status OK,
// no message) and published as a GRPC exchange with its messages.
func TestSinkTakesGRPCCopies(t *testing.T) {
	rec := &collectortest.Recorder{}
	em := collector.NewEmitter(rec, "orders", nil, nil)
	s, err := New(em)
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, s.Serve)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("orders.shop-shadow:50051"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cl := ordersv1.NewOrdersClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", "r-1")

	// Bidirectional: the copy's notes, then the sink's clean end.
	tr, err := cl.Track(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int32(3) {
		if err := tr.Send(&ordersv1.TrackNote{OrderId: "o-1", Note: "n", Seq: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("Track through the sink ended with %v, want a clean end (status OK)", err)
	}
	// Unary: no answer message, so the client calls it an error, but not
	// one of the transport: the sink answered as a gRPC server.
	_, err = cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "o-9", CustomerEmail: "bob@example.com"})
	if c := status.Code(err); c == codes.Unavailable || c == codes.Unknown || c == codes.DeadlineExceeded {
		t.Fatalf("unary copy: %v", err)
	}

	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 2 {
		t.Fatalf("%d exchanges published, want 2", len(exs))
	}
	track, get := exs[0], exs[1]
	for _, ex := range exs {
		if ex.Protocol != mlv1.Protocol_PROTOCOL_GRPC || ex.Source != mlv1.Source_SOURCE_SINK || ex.Response != nil ||
			ex.Request.Host != "orders.shop:50051" || ex.Request.Proto != "HTTP/2.0" || len(ex.Request.Body) != 0 || ex.Request.MessagesTruncated {
			t.Fatalf("copy %s: protocol %v source %v host %q proto %q body %d response %v", ex.Request.Url, ex.Protocol, ex.Source,
				ex.Request.Host, ex.Request.Proto, len(ex.Request.Body), ex.Response)
		}
	}
	if track.Request.Url != ordersv1.Orders_Track_FullMethodName || len(track.Request.Messages) != 3 {
		t.Fatalf("Track copy: %s with %d messages", track.Request.Url, len(track.Request.Messages))
	}
	var last int64
	for i, m := range track.Request.Messages {
		var n ordersv1.TrackNote
		if err := proto.Unmarshal(m.Data, &n); err != nil || n.GetSeq() != int32(i) || m.OffsetNs < last {
			t.Fatalf("Track message %d: %v %v at %d ns (after %d)", i, &n, err, m.OffsetNs, last)
		}
		last = m.OffsetNs
	}
	var req ordersv1.GetOrderRequest
	if get.Request.Url != ordersv1.Orders_GetOrder_FullMethodName || len(get.Request.Messages) != 1 ||
		proto.Unmarshal(get.Request.Messages[0].Data, &req) != nil || req.GetCustomerEmail() != "bob@example.com" {
		t.Fatalf("GetOrder copy: %s %v", get.Request.Url, get.Request.Messages)
	}
	if get.Request.BodySize != int64(5+len(get.Request.Messages[0].Data)) {
		t.Fatalf("GetOrder copy body_size %d, want the framed bytes", get.Request.BodySize)
	}
	found := false
	for _, h := range get.Request.Headers {
		found = found || h.Name == "X-Request-Id" && h.Value == "r-1"
	}
	if !found {
		t.Fatalf("metadata not recorded: %v", get.Request.Headers)
	}
}

// An h2c REST copy is answered 200 over HTTP/2 and published as HTTP/2 with
// its body.
func TestSinkTakesH2CCopies(t *testing.T) {
	rec := &collectortest.Recorder{}
	em := collector.NewEmitter(rec, "orders", nil, nil)
	s, err := New(em)
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, s.Serve)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	req, _ := http.NewRequest("POST", "http://"+addr+"/orders?x=1", strings.NewReader(`{"id":1}`))
	req.Host = "orders-shadow"
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 1 || exs[0].Protocol != mlv1.Protocol_PROTOCOL_HTTP2 || string(exs[0].Request.Body) != `{"id":1}` ||
		exs[0].Request.Host != "orders" || exs[0].Request.Url != "/orders?x=1" {
		t.Fatalf("published %v", exs)
	}
}
