package pcapimport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/orderstest"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

// grpcTraffic is what a real grpc-go client sent and received through a
// recording relay: one unary and one bidirectional-streaming call on one
// h2c connection.
type grpcTraffic struct {
	relay *packettest.Relay
	// Unary call.
	getReq     *ordersv1.GetOrderRequest
	getResp    *ordersv1.Order
	getTrailer metadata.MD
	// Bidirectional call.
	notes []*ordersv1.TrackNote
	acks  []*ordersv1.TrackAck
}

// runGRPC serves the demo orders service (v1) on loopback, calls it through a
// relay and returns what the client saw; the relay's connections have ended.
func runGRPC(t *testing.T) *grpcTraffic {
	t.Helper()
	_, srvAddr := orderstest.Serve(t, app.V1)
	tr := &grpcTraffic{relay: packettest.NewRelay(t, srvAddr)}
	cc, err := grpc.NewClient("passthrough:///"+tr.relay.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := ordersv1.NewOrdersClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant", "acme", "x-request-id", "r-1")

	tr.getReq = &ordersv1.GetOrderRequest{Id: "o-42", CustomerEmail: "ann@example.com"}
	if tr.getResp, err = client.GetOrder(ctx, tr.getReq, grpc.Trailer(&tr.getTrailer)); err != nil {
		t.Fatal(err)
	}

	stream, err := client.Track(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		n := &ordersv1.TrackNote{OrderId: "o-42", Note: strings.Repeat("n", 10*i), Seq: int32(i + 1)}
		if err := stream.Send(n); err != nil {
			t.Fatal(err)
		}
		ack, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		tr.notes, tr.acks = append(tr.notes, n), append(tr.acks, ack)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of Track: %v", err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	tr.relay.Close() // waits for both sides of the connection to close
	return tr
}

// writePcap writes the relay's connections as a capture: connection i from
// 192.0.2.10:(50000+i) to server, packets at the times the relay read them.
func writePcap(t *testing.T, path, server string, conns [][]packettest.Chunk) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, chunks := range conns {
		pkts, err := packettest.Packets(fmt.Sprintf("192.0.2.10:%d", 50000+i), server, chunks, 1400)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			ci := gopacket.CaptureInfo{Timestamp: p.At, CaptureLength: len(p.Frame), Length: len(p.Frame)}
			if err := w.WritePacket(ci, p.Frame); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// importFile imports path and returns the published exchanges.
func importFile(t *testing.T, path string, opts ...Option) ([]*mlv1.Exchange, *Importer) {
	t.Helper()
	pub := &packettest.Collect{}
	im := New(pub, append([]Option{WithCollectorID("test")}, opts...)...)
	if err := im.ImportFile(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	im.Close()
	return pub.Got(), im
}

func header(hs []*mlv1.Header, name string) []string {
	var out []string
	for _, h := range hs {
		if h.Name == name {
			out = append(out, h.Value)
		}
	}
	return out
}

// checkMessages checks that msgs are exactly want, in order, with offsets
// that do not go back in time.
func checkMessages[M proto.Message](t *testing.T, what string, msgs []*mlv1.Message, truncated bool, want []M, fresh func() M) {
	t.Helper()
	if truncated || len(msgs) != len(want) {
		t.Fatalf("%s: %d messages (truncated %v), want %d", what, len(msgs), truncated, len(want))
	}
	var last int64
	for i, m := range msgs {
		if m.Compressed || m.Truncated || m.Size != int64(len(m.Data)) || m.OffsetNs < last {
			t.Errorf("%s %d: compressed %v truncated %v size %d/%d offset %d after %d", what, i, m.Compressed, m.Truncated, m.Size, len(m.Data), m.OffsetNs, last)
		}
		last = m.OffsetNs
		got := fresh()
		if err := proto.Unmarshal(m.Data, got); err != nil {
			t.Fatalf("%s %d: %v", what, i, err)
		}
		if !proto.Equal(got, want[i]) {
			t.Errorf("%s %d: got %v, want %v", what, i, got, want[i])
		}
	}
}

// TestImportCapturedGRPC: a grpc-go client calls the demo orders service over
// h2c through a relay that records the connection; the recording, written as
// a pcap, imports to exactly the calls the client made.
func TestImportCapturedGRPC(t *testing.T) {
	tr := runGRPC(t)
	conns := tr.relay.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d connections relayed, want 1", len(conns))
	}
	path := filepath.Join(t.TempDir(), "grpc.pcap")
	writePcap(t, path, "192.0.2.20:50051", conns)
	got, im := importFile(t, path, WithPorts(50051))
	if len(got) != 2 {
		t.Fatalf("%d exchanges, want 2", len(got))
	}
	if s := im.Summary(); s.Exchanges.Load() != 2 || s.Unanswered.Load() != 0 || s.Gaps.Load() != 0 {
		t.Errorf("summary: %d exchanges, %d unanswered, %d gaps", s.Exchanges.Load(), s.Unanswered.Load(), s.Gaps.Load())
	}
	for i, ex := range got {
		r := ex.Request
		if ex.Protocol != mlv1.Protocol_PROTOCOL_GRPC || ex.Sequence != uint64(i+1) || ex.Source != mlv1.Source_SOURCE_PCAP ||
			ex.ConnectionId != got[0].ConnectionId || r.Method != "POST" || r.Proto != "HTTP/2.0" || r.Scheme != "http" ||
			r.RemoteAddr != "192.0.2.10:50000" || len(r.Body) != 0 || r.BodyTruncated || ex.Response == nil {
			t.Fatalf("exchange %d: %v", i, ex)
		}
		if h := header(r.Headers, "x-tenant"); len(h) != 1 || h[0] != "acme" {
			t.Errorf("exchange %d: x-tenant %q", i, h)
		}
		if h := header(r.Headers, "content-type"); len(h) != 1 || h[0] != "application/grpc" {
			t.Errorf("exchange %d: content-type %q", i, h)
		}
		if resp := ex.Response; resp.Status != 200 || resp.Error != "" || len(resp.Body) != 0 || resp.BodyTruncated || resp.LatencyNs <= 0 {
			t.Errorf("exchange %d: response %v", i, resp)
		}
		if h := header(ex.Response.Trailers, "grpc-status"); len(h) != 1 || h[0] != "0" {
			t.Errorf("exchange %d: grpc-status trailer %q", i, h)
		}
	}

	unary, bidi := got[0], got[1]
	if unary.Request.Url != ordersv1.Orders_GetOrder_FullMethodName || unary.Request.Host != tr.relay.Addr {
		t.Errorf("unary: %s %s", unary.Request.Host, unary.Request.Url)
	}
	checkMessages(t, "unary request", unary.Request.Messages, unary.Request.MessagesTruncated, []*ordersv1.GetOrderRequest{tr.getReq}, func() *ordersv1.GetOrderRequest { return &ordersv1.GetOrderRequest{} })
	checkMessages(t, "unary response", unary.Response.Messages, unary.Response.MessagesTruncated, []*ordersv1.Order{tr.getResp}, func() *ordersv1.Order { return &ordersv1.Order{} })
	if h, want := header(unary.Response.Trailers, "x-orders-version"), tr.getTrailer.Get("x-orders-version"); len(want) != 1 || strings.Join(h, ",") != strings.Join(want, ",") {
		t.Errorf("unary: x-orders-version trailer %q, client got %q", h, want)
	}

	if bidi.Request.Url != ordersv1.Orders_Track_FullMethodName {
		t.Errorf("bidi: %s", bidi.Request.Url)
	}
	checkMessages(t, "bidi request", bidi.Request.Messages, bidi.Request.MessagesTruncated, tr.notes, func() *ordersv1.TrackNote { return &ordersv1.TrackNote{} })
	checkMessages(t, "bidi response", bidi.Response.Messages, bidi.Response.MessagesTruncated, tr.acks, func() *ordersv1.TrackAck { return &ordersv1.TrackAck{} })
	// Each ack came after its note.
	for i := range tr.acks {
		if bidi.Response.Messages[i].OffsetNs < bidi.Request.Messages[i].OffsetNs {
			t.Errorf("ack %d at %d before its note at %d", i, bidi.Response.Messages[i].OffsetNs, bidi.Request.Messages[i].OffsetNs)
		}
	}
}

// TestImportCapturedHTTP2REST: a net/http client speaks HTTP/2 without TLS
// (prior knowledge) to a net/http server through the relay; the capture
// imports to its requests and responses.
func TestImportCapturedHTTP2REST(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Trailer", "X-Checksum")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q,"got":%d}`, r.PathValue("id"), len(body))
		w.Header().Set("X-Checksum", "c0ffee")
	})
	hs := &http.Server{Handler: mux, Protocols: &http.Protocols{}}
	hs.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	relay := packettest.NewRelay(t, ln.Addr().String())
	tp := &http.Transport{Protocols: &http.Protocols{}}
	tp.Protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: tp, Timeout: time.Minute}
	var want []string
	for _, id := range []string{"1", "2"} {
		req, err := http.NewRequest(http.MethodPost, "http://"+relay.Addr+"/orders/"+id+"?full=1", strings.NewReader(`{"qty":`+id+`}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Tenant", "acme")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.ProtoMajor != 2 {
			t.Fatalf("response %s: %v", resp.Proto, err)
		}
		want = append(want, fmt.Sprintf("POST /orders/%s?full=1 {\"qty\":%s} -> %d %s trailer %s", id, id, resp.StatusCode, body, resp.Trailer.Get("X-Checksum")))
	}
	tp.CloseIdleConnections()
	relay.Close()
	path := filepath.Join(t.TempDir(), "rest.pcap")
	writePcap(t, path, "192.0.2.20:8080", relay.Conns())
	got, _ := importFile(t, path)
	var sums []string
	for _, ex := range got {
		if ex.Protocol != mlv1.Protocol_PROTOCOL_HTTP2 || ex.Request.Proto != "HTTP/2.0" || ex.Request.Host != relay.Addr ||
			strings.Join(header(ex.Request.Headers, "x-tenant"), ",") != "acme" {
			t.Errorf("exchange %d: %v", ex.Sequence, ex)
		}
		trailer := strings.Join(header(ex.GetResponse().GetTrailers(), "x-checksum"), ",")
		sums = append(sums, packettest.Summary(ex)+" trailer "+trailer)
	}
	if strings.Join(sums, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(sums, "\n"), strings.Join(want, "\n"))
	}
}

// TestImportH2Midstream: an HTTP/2 connection whose start is not in the
// capture is counted and skipped; a full one beside it is imported.
func TestImportH2Midstream(t *testing.T) {
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	var chunks [2][]packettest.Chunk
	for i := range chunks {
		h := packettest.NewH2()
		add := func(toServer bool, data []byte) {
			at = at.Add(time.Millisecond)
			chunks[i] = append(chunks[i], packettest.Chunk{ToServer: toServer, Data: data, At: at})
		}
		start, settings := h.ClientStart(), h.ServerStart()
		if i == 1 { // the full one
			add(true, start)
			add(false, settings)
		}
		add(true, h.Request(1, "GET", "svc", fmt.Sprintf("/conn%d", i)))
		add(false, h.Response(1, "200", "ok"))
	}
	path := filepath.Join(t.TempDir(), "midway.pcap")
	writePcap(t, path, "192.0.2.20:8080", chunks[:])
	got, im := importFile(t, path)
	if len(got) != 1 || got[0].Request.Url != "/conn1" || got[0].GetResponse().GetStatus() != 200 {
		t.Fatalf("got %d exchanges: %v", len(got), got)
	}
	if n := im.Summary().H2Dropped.Load(); n != 1 {
		t.Fatalf("H2Dropped %d, want 1", n)
	}
}

// TestImportCapturedGRPCStreams: server-streaming (100 messages) and
// client-streaming calls with a message of 100 KB (many DATA frames, TCP
// segments and flow-control updates) import to what the client sent and
// received.
func TestImportCapturedGRPCStreams(t *testing.T) {
	_, srvAddr := orderstest.Serve(t, app.V1)
	relay := packettest.NewRelay(t, srvAddr)
	cc, err := grpc.NewClient("passthrough:///"+relay.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := ordersv1.NewOrdersClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	listReq := &ordersv1.ListOrdersRequest{CustomerEmail: "ann@example.com", Limit: 100}
	list, err := client.ListOrders(ctx, listReq)
	if err != nil {
		t.Fatal(err)
	}
	var listed []*ordersv1.Order
	for {
		o, err := list.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, o)
	}
	up, err := client.UploadOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uploaded := []*ordersv1.Order{
		{Id: "u-1", AmountCents: 100},
		{Id: "u-2", AmountCents: 200, Shipping: &ordersv1.Address{Street: strings.Repeat("long street ", 100<<10/12)}},
		{Id: "u-3", AmountCents: 300},
	}
	for _, o := range uploaded {
		if err := up.Send(o); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := up.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Close(); err != nil {
		t.Fatal(err)
	}
	relay.Close()

	path := filepath.Join(t.TempDir(), "streams.pcap")
	writePcap(t, path, "192.0.2.20:50051", relay.Conns())
	got, _ := importFile(t, path, WithPorts(50051))
	if len(got) != 2 || got[0].Request.Url != ordersv1.Orders_ListOrders_FullMethodName || got[1].Request.Url != ordersv1.Orders_UploadOrders_FullMethodName {
		t.Fatalf("got %d exchanges", len(got))
	}
	for _, ex := range got {
		if h := header(ex.GetResponse().GetTrailers(), "grpc-status"); len(h) != 1 || h[0] != "0" {
			t.Errorf("%s: grpc-status %q", ex.Request.Url, h)
		}
	}
	checkMessages(t, "list request", got[0].Request.Messages, got[0].Request.MessagesTruncated, []*ordersv1.ListOrdersRequest{listReq}, func() *ordersv1.ListOrdersRequest { return &ordersv1.ListOrdersRequest{} })
	checkMessages(t, "list response", got[0].Response.Messages, got[0].Response.MessagesTruncated, listed, func() *ordersv1.Order { return &ordersv1.Order{} })
	checkMessages(t, "upload request", got[1].Request.Messages, got[1].Request.MessagesTruncated, uploaded, func() *ordersv1.Order { return &ordersv1.Order{} })
	checkMessages(t, "upload response", got[1].Response.Messages, got[1].Response.MessagesTruncated, []*ordersv1.UploadSummary{sum}, func() *ordersv1.UploadSummary { return &ordersv1.UploadSummary{} })
	if len(listed) != 100 {
		t.Errorf("client got %d orders", len(listed))
	}
}

// TestImportCapturedGRPCCancel: a bidirectional call the client cancels
// after one answer (RST_STREAM CANCEL) is published cut: the messages seen,
// both directions flagged, the reset as the response's error.
func TestImportCapturedGRPCCancel(t *testing.T) {
	_, srvAddr := orderstest.Serve(t, app.V1)
	relay := packettest.NewRelay(t, srvAddr)
	cc, err := grpc.NewClient("passthrough:///"+relay.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	callCtx, cancelCall := context.WithCancel(ctx)
	stream, err := ordersv1.NewOrdersClient(cc).Track(callCtx)
	if err != nil {
		t.Fatal(err)
	}
	note := &ordersv1.TrackNote{OrderId: "o-1", Seq: 1}
	if err := stream.Send(note); err != nil {
		t.Fatal(err)
	}
	ack, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	cancelCall()
	if _, err := stream.Recv(); err == nil {
		t.Fatal("Recv after cancel succeeded")
	}
	// The reset must have reached the server before the connection closes:
	// a unary call on the same connection after it is ordered behind it.
	if _, err := ordersv1.NewOrdersClient(cc).GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "after"}); err != nil {
		t.Fatal(err)
	}
	_ = cc.Close()
	relay.Close()

	path := filepath.Join(t.TempDir(), "cancel.pcap")
	writePcap(t, path, "192.0.2.20:50051", relay.Conns())
	got, _ := importFile(t, path, WithPorts(50051))
	var track *mlv1.Exchange
	for _, ex := range got {
		if ex.Request.Url == ordersv1.Orders_Track_FullMethodName {
			track = ex
		}
	}
	if len(got) != 2 || track == nil {
		t.Fatalf("got %d exchanges", len(got))
	}
	r, resp := track.Request, track.Response
	if resp == nil || resp.Error != "stream reset: CANCEL" || resp.Status != 200 || !resp.MessagesTruncated || !r.MessagesTruncated || !r.BodyIncomplete {
		t.Fatalf("cancelled call: %v", track)
	}
	if len(r.Messages) != 1 || len(resp.Messages) != 1 {
		t.Fatalf("%d/%d messages", len(r.Messages), len(resp.Messages))
	}
	for _, c := range []struct {
		data []byte
		want proto.Message
		got  proto.Message
	}{{r.Messages[0].Data, note, &ordersv1.TrackNote{}}, {resp.Messages[0].Data, ack, &ordersv1.TrackAck{}}} {
		if err := proto.Unmarshal(c.data, c.got); err != nil || !proto.Equal(c.got, c.want) {
			t.Errorf("message %v, want %v (%v)", c.got, c.want, err)
		}
	}
}
