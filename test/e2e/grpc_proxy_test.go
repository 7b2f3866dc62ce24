package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	"github.com/mirrorline/mirrorline/collector/pcapimport"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/orderstest"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testcert"
)

// A grpc-go client's unary and bidirectional calls through `mirrorline
// proxy` (h2c, and TLS with --tls-cert/--tls-key) reach the demo orders
// service unchanged and arrive on mirror.raw.S as GRPC exchanges with their
// messages per direction, in order, and the trailers.
func TestGRPCThroughProxyToRawTopic(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	cert := testcert.New(t)
	for _, tc := range []struct {
		name  string
		extra []string
		creds credentials.TransportCredentials
	}{
		{"h2c", nil, insecure.NewCredentials()},
		{"tls", []string{"--tls-cert", cert.CertFile, "--tls-key", cert.KeyFile}, credentials.NewTLS(cert.Client())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := kafkatest.Service(t, 1)
			_, ordersAddr := orderstest.Serve(t, app.V1)
			p := startProxyProc(t, brokers, svc, "http://"+ordersAddr, tc.extra...)

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

// The proxy and a packet capture of the same h2c traffic agree: a grpc-go
// client talks to the proxy through a recording relay, the relay's bytes
// become a pcap, and `import` of it yields the exchanges the proxy captured
// (method, URL, host, protocol, status, metadata, trailers, each message of
// each direction); only header-name case differs (HTTP/2 sends lower case,
// the proxy records Go's canonical form).
func TestProxyAndPcapImportAgree(t *testing.T) {
	_, ordersAddr := orderstest.Serve(t, app.V1)
	rec := &collectortest.Recorder{}
	em := collector.NewEmitter(rec, "orders", nil, nil)
	p, err := proxy.New("http://"+ordersAddr, em)
	if err != nil {
		t.Fatal(err)
	}
	relay := packettest.NewRelay(t, collectortest.Serve(t, p.Serve))
	cc, err := grpc.NewClient("passthrough:///"+relay.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	cl := ordersv1.NewOrdersClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant", "acme")
	if _, err := cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "o-7", CustomerEmail: "bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	ls, err := cl.ListOrders(ctx, &ordersv1.ListOrdersRequest{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := ls.Recv(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	tr, err := cl.Track(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range int32(2) {
		if err := tr.Send(&ordersv1.TrackNote{OrderId: "o-7", Note: "step", Seq: i}); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of Track: %v", err)
	}
	_ = cc.Close()
	relay.Close()
	collectortest.Flush(t, em)

	conns := relay.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d connections relayed", len(conns))
	}
	pkts, err := packettest.Packets("192.0.2.10:50000", "192.0.2.20:50051", conns[0], 1400)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "h2c.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, pk := range pkts {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: pk.At, CaptureLength: len(pk.Frame), Length: len(pk.Frame)}, pk.Frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	imported := &packettest.Collect{}
	if err := pcapimport.New(imported, pcapimport.WithPorts(50051)).ImportFile(ctx, path); err != nil {
		t.Fatal(err)
	}

	byURL := func(exs []*mlv1.Exchange) map[string]*mlv1.Exchange {
		m := map[string]*mlv1.Exchange{}
		for _, ex := range exs {
			m[ex.GetRequest().GetUrl()] = ex
		}
		return m
	}
	proxied, fromPcap := byURL(rec.Exchanges(t)), byURL(imported.Got())
	if len(proxied) != 3 || len(fromPcap) != 3 {
		t.Fatalf("proxy captured %d calls, import %d; want 3 each", len(proxied), len(fromPcap))
	}
	for url, a := range proxied {
		b := fromPcap[url]
		if b == nil {
			t.Fatalf("%s: captured by the proxy, not in the import", url)
		}
		if a.Protocol != mlv1.Protocol_PROTOCOL_GRPC || b.Protocol != a.Protocol || a.Request.Method != b.Request.Method ||
			a.Request.Host != b.Request.Host || a.Request.Proto != b.Request.Proto || a.Response.Status != b.Response.Status {
			t.Fatalf("%s: proxy %v %s %s %s %d, import %v %s %s %s %d", url, a.Protocol, a.Request.Method, a.Request.Host, a.Request.Proto, a.Response.Status,
				b.Protocol, b.Request.Method, b.Request.Host, b.Request.Proto, b.Response.Status)
		}
		for _, name := range []string{"x-tenant", "content-type", "te", "grpc-timeout"} {
			if va, vb := headerFold(a.Request.Headers, name), headerFold(b.Request.Headers, name); va != vb {
				t.Errorf("%s: request header %s: proxy %q, import %q", url, name, va, vb)
			}
		}
		for _, name := range []string{"grpc-status", "grpc-message"} {
			if va, vb := headerFold(a.Response.Trailers, name), headerFold(b.Response.Trailers, name); va != vb {
				t.Errorf("%s: trailer %s: proxy %q, import %q", url, name, va, vb)
			}
		}
		for side, d := range [][2][]*mlv1.Message{{a.Request.Messages, b.Request.Messages}, {a.Response.Messages, b.Response.Messages}} {
			if len(d[0]) != len(d[1]) || len(d[0]) == 0 {
				t.Fatalf("%s side %d: proxy %d messages, import %d", url, side, len(d[0]), len(d[1]))
			}
			for i := range d[0] {
				ma, mb := d[0][i], d[1][i]
				if !bytes.Equal(ma.Data, mb.Data) || ma.Compressed != mb.Compressed || ma.Size != mb.Size || ma.Truncated || mb.Truncated {
					t.Errorf("%s side %d message %d differs: proxy %d bytes, import %d bytes", url, side, i, len(ma.Data), len(mb.Data))
				}
			}
		}
		if a.Request.BodySize != b.Request.BodySize || a.Response.BodySize != b.Response.BodySize {
			t.Errorf("%s: framed bytes: proxy %d/%d, import %d/%d", url, a.Request.BodySize, a.Response.BodySize, b.Request.BodySize, b.Response.BodySize)
		}
	}
}

// headerFold is the first value of header name in hs, names compared
// without case.
func headerFold(hs []*mlv1.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}
