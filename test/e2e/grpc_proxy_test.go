package e2e

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// A grpc-go client's unary and bidirectional calls through `mirrorline
// proxy` (h2c, and TLS with --tls-cert/--tls-key) reach the demo orders
// service unchanged and arrive on mirror.raw.S as GRPC exchanges with their
// messages per direction, in order, and the trailers.
func TestGRPCThroughProxyToRawTopic(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	certFile, keyFile, pool := collectortest.SelfSigned(t)
	for _, tc := range []struct {
		name  string
		extra []string
		creds credentials.TransportCredentials
	}{
		{"h2c", nil, insecure.NewCredentials()},
		{"tls", []string{"--tls-cert", certFile, "--tls-key", keyFile}, credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := kafkatest.Service(t, 1)
			orders, err := app.New(app.V1)
			if err != nil {
				t.Fatal(err)
			}
			g := grpc.NewServer()
			orders.Register(g)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = g.Serve(ln) }()
			t.Cleanup(g.Stop)
			p := startProxyProc(t, brokers, svc, "http://"+ln.Addr().String(), tc.extra...)

			cc, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(tc.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			cl := ordersv1.NewOrdersClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var trailer metadata.MD
			o, err := cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "o-7", CustomerEmail: "eve@example.com"}, grpc.Trailer(&trailer))
			if err != nil || o.GetId() != "o-7" || o.GetStatus() != "shipped" || len(trailer.Get("x-orders-version")) != 1 {
				t.Fatalf("GetOrder through the proxy: %v, %v, trailer %v", o, err, trailer)
			}
			tr, err := cl.Track(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range int32(3) {
				if err := tr.Send(&ordersv1.TrackNote{OrderId: "o-7", Note: "note", Seq: i}); err != nil {
					t.Fatal(err)
				}
				if ack, err := tr.Recv(); err != nil || ack.GetSeq() != i {
					t.Fatalf("Track ack %d: %v, %v", i, ack, err)
				}
			}
			if err := tr.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := tr.Recv(); !errors.Is(err, io.EOF) {
				t.Fatalf("Track end: %v", err)
			}

			got := kafkatest.ReadExchanges(t, brokers, "mirror.raw."+svc, 2, 60*time.Second)
			if len(got) != 2 {
				t.Fatalf("%d exchanges on the raw topic, want 2", len(got))
			}
			byURL := map[string]*mlv1.Exchange{}
			for _, ex := range got {
				if ex.Protocol != mlv1.Protocol_PROTOCOL_GRPC || ex.Request.Proto != "HTTP/2.0" || ex.Source != mlv1.Source_SOURCE_PROXY {
					t.Fatalf("%s: protocol %v proto %q source %v", ex.Request.Url, ex.Protocol, ex.Request.Proto, ex.Source)
				}
				byURL[ex.Request.Url] = ex
			}
			get, track := byURL[ordersv1.Orders_GetOrder_FullMethodName], byURL[ordersv1.Orders_Track_FullMethodName]
			if get == nil || track == nil {
				t.Fatalf("raw topic holds %v", got)
			}
			var req ordersv1.GetOrderRequest
			var resp ordersv1.Order
			if len(get.Request.Messages) != 1 || len(get.Response.Messages) != 1 ||
				proto.Unmarshal(get.Request.Messages[0].Data, &req) != nil || proto.Unmarshal(get.Response.Messages[0].Data, &resp) != nil ||
				req.GetCustomerEmail() != "eve@example.com" || resp.GetStatus() != "shipped" {
				t.Fatalf("GetOrder exchange messages: %v / %v", get.Request.Messages, get.Response.Messages)
			}
			status := ""
			for _, h := range get.Response.Trailers {
				if h.Name == "Grpc-Status" {
					status = h.Value
				}
			}
			if status != "0" {
				t.Fatalf("GetOrder trailers %v, want grpc-status 0", get.Response.Trailers)
			}
			if len(track.Request.Messages) != 3 || len(track.Response.Messages) != 3 {
				t.Fatalf("Track exchange: %d notes, %d acks; want 3 and 3", len(track.Request.Messages), len(track.Response.Messages))
			}
			for i := range 3 {
				var n ordersv1.TrackNote
				var a ordersv1.TrackAck
				if proto.Unmarshal(track.Request.Messages[i].Data, &n) != nil || proto.Unmarshal(track.Response.Messages[i].Data, &a) != nil ||
					n.GetSeq() != int32(i) || a.GetSeq() != int32(i) || track.Request.Messages[i].OffsetNs > track.Response.Messages[i].OffsetNs {
					t.Fatalf("Track message %d: note %v at %d ns, ack %v at %d ns", i, &n, track.Request.Messages[i].OffsetNs, &a, track.Response.Messages[i].OffsetNs)
				}
			}
		})
	}
}
