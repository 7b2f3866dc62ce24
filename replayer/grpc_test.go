package replayer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // the shadow decodes gzip messages
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector/reqtarget"
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer/breaker"
	"github.com/mirrorline/mirrorline/replayer/credential"
	"github.com/mirrorline/mirrorline/replayer/middleware"
	"github.com/mirrorline/mirrorline/replayer/route"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

const ordersPath = "/mirrorline.demo.orders.v1.Orders/"

// received is one message (or unary request) the shadow got.
type received struct {
	method string
	msg    proto.Message
	at     time.Time
	md     metadata.MD
}

// ordersShadow is the demo orders service (real grpc-go) on 127.0.0.1:0,
// recording every message it receives, in order, with its metadata.
type ordersShadow struct {
	*app.Server
	url  string
	mu   sync.Mutex
	got  []received
	recv chan struct{} // signalled on every message
}

// startOrders serves the orders service over h2c, or TLS when cert is set.
func startOrders(t *testing.T, version string, cert *tls.Certificate) *ordersShadow {
	t.Helper()
	srv, err := app.New(version)
	if err != nil {
		t.Fatal(err)
	}
	o := &ordersShadow{Server: srv, recv: make(chan struct{}, 1000)}
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			o.record(path.Base(info.FullMethod), req.(proto.Message), md)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(s any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			md, _ := metadata.FromIncomingContext(ss.Context())
			return h(s, &recordingStream{ServerStream: ss, rec: func(m proto.Message) { o.record(path.Base(info.FullMethod), m, md) }})
		}),
	}
	scheme := "http"
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}})))
		scheme = "https"
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	o.url = scheme + "://" + ln.Addr().String()
	return o
}

func (o *ordersShadow) record(method string, m proto.Message, md metadata.MD) {
	o.mu.Lock()
	o.got = append(o.got, received{method: method, msg: proto.Clone(m), at: time.Now(), md: md})
	o.mu.Unlock()
	o.recv <- struct{}{}
}

// messages returns what method received so far.
func (o *ordersShadow) messages(method string) []received {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []received
	for _, r := range o.got {
		if r.method == method {
			out = append(out, r)
		}
	}
	return out
}

// total is the number of messages received.
func (o *ordersShadow) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.got)
}

type recordingStream struct {
	grpc.ServerStream
	rec func(proto.Message)
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.rec(m.(proto.Message))
	}
	return err
}

// grpcRecord is a captured call of an Orders method: msgs at offsets (ms).
func grpcRecord(t *testing.T, id, method string, offsetsMs []int, msgs ...proto.Message) *mlv1.Exchange {
	t.Helper()
	ex := &mlv1.Exchange{
		Id: id, Service: "orders", Protocol: mlv1.Protocol_PROTOCOL_GRPC, CaptureTimeNs: time.Now().UnixNano(),
		Request: &mlv1.Request{
			Method: "POST", Url: ordersPath + method, Host: "orders.internal", Proto: "HTTP/2.0", Scheme: "http",
			Headers: []*mlv1.Header{
				{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
				{Name: "grpc-timeout", Value: "5S"}, {Name: "user-agent", Value: "grpc-go/1.85.0"},
				{Name: "x-tenant", Value: "acme"}, {Name: "content-length", Value: "999"},
				{Name: "keep-alive", Value: "timeout=5"}, {Name: ":authority", Value: "evil.example"},
			},
		},
	}
	for i, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		ex.Request.Messages = append(ex.Request.Messages, &mlv1.Message{OffsetNs: int64(offsetsMs[i]) * 1e6, Data: b, Size: int64(len(b))})
		ex.Request.BodySize += int64(grpcwire.PrefixLen + len(b))
	}
	return ex
}

// decode unmarshals the response messages of resp into new Ms.
func decode[M proto.Message](t *testing.T, resp *mlv1.Response, newM func() M) []M {
	t.Helper()
	var out []M
	for i, m := range resp.GetMessages() {
		v := newM()
		if m.GetCompressed() || m.GetTruncated() {
			t.Fatalf("response message %d: compressed %v, truncated %v", i, m.GetCompressed(), m.GetTruncated())
		}
		if err := proto.Unmarshal(m.GetData(), v); err != nil {
			t.Fatalf("response message %d: %v", i, err)
		}
		out = append(out, v)
	}
	return out
}

func header(hs []*mlv1.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) {
			return h.GetValue()
		}
	}
	return ""
}

// checkReceived asserts that the shadow got want (in order) on method, with
// the replayer's metadata and the captured one, without hop-by-hop headers.
func checkReceived(t *testing.T, o *ordersShadow, method, id string, want []proto.Message) []received {
	t.Helper()
	got := o.messages(method)
	if len(got) != len(want) {
		t.Fatalf("%s: shadow received %d messages, want %d", method, len(got), len(want))
	}
	for i, r := range got {
		if !proto.Equal(r.msg, want[i]) {
			t.Errorf("%s: message %d: got %v, want %v", method, i, r.msg, want[i])
		}
		md := r.md
		if md.Get("x-shadow-request")[0] != "true" || md.Get("x-mirrorline-id")[0] != id || md.Get("x-tenant")[0] != "acme" {
			t.Errorf("%s: metadata %v: want x-shadow-request, x-mirrorline-id %s and the captured x-tenant", method, md, id)
		}
		if len(md.Get("keep-alive")) > 0 || len(md.Get("content-length")) > 0 || md.Get(":authority")[0] == "evil.example" {
			t.Errorf("%s: hop-by-hop, content-length or captured pseudo-header forwarded: %v", method, md)
		}
	}
	return got
}

// Each kind of gRPC call is replayed over h2c to a real grpc-go server: the
// server gets the captured messages in order with the captured metadata
// (less hop-by-hop) and the replayer's, and the shadow response holds the
// answer's messages, grpc-status and custom trailers.
func TestGRPCReplayCallKinds(t *testing.T) {
	shadow := startOrders(t, app.V1, nil)
	s, err := NewSender(shadow.url, 4)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("unary", func(t *testing.T) {
		req := &ordersv1.GetOrderRequest{Id: "o-1", CustomerEmail: "[email]"}
		out, err := s.Replay(ctx, grpcRecord(t, "u1", "GetOrder", []int{0}, req))
		if err != nil {
			t.Fatal(err)
		}
		resp := out.Response
		if resp.Error != "" || out.Failure != "" || resp.Status != 200 || resp.Proto != "HTTP/2.0" {
			t.Fatalf("response: status %d proto %q error %q failure %q", resp.Status, resp.Proto, resp.Error, out.Failure)
		}
		checkReceived(t, shadow, "GetOrder", "u1", []proto.Message{req})
		orders := decode(t, resp, func() *ordersv1.Order { return &ordersv1.Order{} })
		if len(orders) != 1 || orders[0].GetId() != "o-1" || orders[0].GetStatus() != "shipped" {
			t.Fatalf("response messages: %v", orders)
		}
		if code, ok := GRPCStatus(resp); !ok || code != 0 || header(resp.Trailers, "grpc-status") != "0" {
			t.Errorf("grpc-status %d (%v), trailers %v: want 0 in the trailers", code, ok, resp.Trailers)
		}
		if header(resp.Trailers, "x-orders-version") != "v1" {
			t.Errorf("custom trailer missing: %v", resp.Trailers)
		}
		if resp.LatencyNs <= 0 || resp.Messages[0].OffsetNs <= 0 || resp.Messages[0].OffsetNs > resp.LatencyNs {
			t.Errorf("latency %d, first message at %d: want 0 < first byte <= end", resp.LatencyNs, resp.Messages[0].OffsetNs)
		}
		if resp.BodySize != int64(grpcwire.PrefixLen+len(resp.Messages[0].Data)) {
			t.Errorf("body_size %d: want the framed bytes", resp.BodySize)
		}
	})

	t.Run("server streaming", func(t *testing.T) {
		req := &ordersv1.ListOrdersRequest{CustomerEmail: "[email]", Limit: 3}
		out, err := s.Replay(ctx, grpcRecord(t, "s1", "ListOrders", []int{0}, req))
		if err != nil {
			t.Fatal(err)
		}
		checkReceived(t, shadow, "ListOrders", "s1", []proto.Message{req})
		orders := decode(t, out.Response, func() *ordersv1.Order { return &ordersv1.Order{} })
		if len(orders) != 3 || orders[0].GetId() != "list-1" || orders[2].GetId() != "list-3" {
			t.Fatalf("response messages: %v", orders)
		}
		if prev := out.Response.Messages; prev[0].OffsetNs > prev[1].OffsetNs || prev[1].OffsetNs > prev[2].OffsetNs {
			t.Errorf("message offsets out of order: %v", prev)
		}
		if header(out.Response.Trailers, "grpc-status") != "0" {
			t.Errorf("trailers %v", out.Response.Trailers)
		}
	})

	t.Run("client streaming", func(t *testing.T) {
		in := []proto.Message{
			&ordersv1.Order{Id: "a", AmountCents: 100}, &ordersv1.Order{Id: "b", AmountCents: 250}, &ordersv1.Order{Id: "c", AmountCents: 7},
		}
		out, err := s.Replay(ctx, grpcRecord(t, "c1", "UploadOrders", []int{0, 5, 10}, in...))
		if err != nil {
			t.Fatal(err)
		}
		checkReceived(t, shadow, "UploadOrders", "c1", in)
		sums := decode(t, out.Response, func() *ordersv1.UploadSummary { return &ordersv1.UploadSummary{} })
		if len(sums) != 1 || sums[0].GetCount() != 3 || sums[0].GetTotalCents() != 357 {
			t.Fatalf("summary: %v", sums)
		}
	})

	t.Run("bidi", func(t *testing.T) {
		in := []proto.Message{
			&ordersv1.TrackNote{OrderId: "o-9", Note: "packed", Seq: 1},
			&ordersv1.TrackNote{OrderId: "o-9", Note: "loaded", Seq: 2},
			&ordersv1.TrackNote{OrderId: "o-9", Note: "left", Seq: 3},
		}
		out, err := s.Replay(ctx, grpcRecord(t, "b1", "Track", []int{0, 50, 100}, in...))
		if err != nil {
			t.Fatal(err)
		}
		got := checkReceived(t, shadow, "Track", "b1", in)
		acks := decode(t, out.Response, func() *ordersv1.TrackAck { return &ordersv1.TrackAck{} })
		if len(acks) != 3 || acks[0].GetSeq() != 1 || acks[2].GetSeq() != 3 || acks[1].GetState() != "noted" {
			t.Fatalf("acks: %v", acks)
		}
		// Paced as captured (no window: speed 1): the last note cannot
		// arrive before 100 ms after the first was due.
		if d := got[2].at.Sub(got[0].at); d < 0 {
			t.Errorf("notes out of order")
		}
		if last := time.Duration(out.Response.Messages[2].OffsetNs); last < 90*time.Millisecond {
			t.Errorf("third ack %v after the call's start: want >= 100ms (the third note's offset)", last)
		}
	})

	t.Run("compressed message", func(t *testing.T) {
		req := &ordersv1.GetOrderRequest{Id: "o-gz"}
		ex := grpcRecord(t, "z1", "GetOrder", []int{0}, req)
		ex.Request.Headers = append(ex.Request.Headers, &mlv1.Header{Name: "grpc-encoding", Value: "gzip"})
		gz, err := grpcwire.Compress("gzip", ex.Request.Messages[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		ex.Request.Messages[0] = &mlv1.Message{Compressed: true, Data: gz, Size: int64(len(gz))}
		out, err := s.Replay(ctx, ex)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := GRPCStatus(out.Response); code != 0 {
			t.Fatalf("grpc-status %d: the shadow did not take the gzip message", code)
		}
		got := shadow.messages("GetOrder")
		if !proto.Equal(got[len(got)-1].msg, req) {
			t.Fatalf("shadow got %v", got[len(got)-1].msg)
		}
	})

	t.Run("framed body without messages", func(t *testing.T) {
		req := &ordersv1.GetOrderRequest{Id: "o-body"}
		ex := grpcRecord(t, "f1", "GetOrder", []int{0}, req)
		body, err := grpcwire.Frames(ex.Request.Messages)
		if err != nil {
			t.Fatal(err)
		}
		ex.Request.Messages, ex.Request.Body = nil, body
		out, err := s.Replay(ctx, ex)
		if err != nil {
			t.Fatal(err)
		}
		if code, _ := GRPCStatus(out.Response); code != 0 || len(out.Response.Messages) != 1 {
			t.Fatalf("grpc-status %d, %d messages", code, len(out.Response.Messages))
		}
		got := shadow.messages("GetOrder")
		if !proto.Equal(got[len(got)-1].msg, req) {
			t.Fatalf("shadow got %v", got[len(got)-1].msg)
		}
	})

	t.Run("error status", func(t *testing.T) {
		out, err := s.Replay(ctx, grpcRecord(t, "e1", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		// A trailers-only answer: its trailers come as the headers.
		code, ok := GRPCStatus(out.Response)
		if !ok || code != 3 || header(out.Response.Headers, "grpc-message") != "order id is required" {
			t.Fatalf("status %d (%v), headers %v, trailers %v: want INVALID_ARGUMENT", code, ok, out.Response.Headers, out.Response.Trailers)
		}
		if out.Failure != "" || len(out.Response.Messages) != 0 {
			t.Errorf("failure %q, %d messages: an error status is an answer, not a failure", out.Failure, len(out.Response.Messages))
		}
	})
	if n := shadow.ShadowCalls(); n != 7 {
		t.Errorf("%d calls carried x-shadow-request, want 7", n)
	}
}

// A gRPC call whose request messages were cut at capture is never sent and
// is counted under its own reason; a call that is not a POST is refused.
func TestGRPCReplayNotReplayable(t *testing.T) {
	shadow := startOrders(t, app.V1, nil)
	s, err := NewSender(shadow.url, 1)
	if err != nil {
		t.Fatal(err)
	}
	notes := []proto.Message{&ordersv1.TrackNote{Seq: 1}, &ordersv1.TrackNote{Seq: 2}}
	cut := grpcRecord(t, "t1", "Track", []int{0, 1}, notes...)
	cut.Request.MessagesTruncated = true
	short := grpcRecord(t, "t2", "Track", []int{0, 1}, notes...)
	short.Request.Messages[1].Truncated = true
	size := grpcRecord(t, "t3", "Track", []int{0, 1}, notes...)
	size.Request.Messages[0].Size += 10
	get := grpcRecord(t, "t4", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{Id: "x"})
	get.Request.Method = "GET"
	unframed := grpcRecord(t, "t5", "GetOrder", nil)
	unframed.Request.Body = []byte{0, 0, 0, 0, 9, 1, 2} // declares 9 bytes, has 2
	badFlag := grpcRecord(t, "t6", "GetOrder", nil)
	badFlag.Request.Body = []byte{7, 0, 0, 0, 0}
	for _, tc := range []struct {
		ex     *mlv1.Exchange
		reason string
	}{{cut, ReasonMessagesTruncated}, {short, ReasonMessagesTruncated}, {size, ReasonMessagesTruncated}, {get, ReasonBuild}, {unframed, ReasonBuild}, {badFlag, ReasonBuild}} {
		_, err := s.Replay(context.Background(), tc.ex)
		if err == nil {
			t.Fatalf("%s: replayed", tc.ex.Id)
		}
		if got := SkipReason(err); got != tc.reason {
			t.Errorf("%s: reason %q (%v), want %q", tc.ex.Id, got, err, tc.reason)
		}
	}
	if tc := checkRecord(cut); !errors.Is(tc, ErrMessagesTruncated) {
		t.Errorf("checkRecord: %v", tc)
	}
	// The same records in a window replay: counted, nothing sent.
	m := NewMetrics(nil)
	t0 := time.Now()
	var its []Item
	for i, ex := range []*mlv1.Exchange{cut, short} {
		its = append(its, Item{Topic: "mirror.clean.orders", Offset: int64(i), Capture: t0, Exchange: ex})
	}
	sum, err := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), s, WithMetrics(m)).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.ToFloat64(m.Errors.WithLabelValues(ReasonMessagesTruncated)); n != 2 {
		t.Errorf("errors_total{reason=messages_truncated} = %v, want 2 (summary %+v)", n, sum)
	}
	if shadow.total() != 0 {
		t.Fatalf("the shadow received %d messages of calls that must not be sent", shadow.total())
	}
}

// A gRPC record whose request-target could leave the target is never sent
// (counted as unsafe_target); an absolute-form one goes to the target, its
// authority ignored.
func TestGRPCReplayHostileURL(t *testing.T) {
	shadow := startOrders(t, app.V1, nil)
	s, err := NewSender(shadow.url, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"//evil.example/x", "evil.example:443", "/../x", "https://user@evil.example/x"} {
		ex := grpcRecord(t, "h", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{Id: "x"})
		ex.Request.Url = u
		_, err := s.Replay(context.Background(), ex)
		if !errors.Is(err, reqtarget.ErrUnsafe) {
			t.Errorf("%q: got %v, want reqtarget.ErrUnsafe", u, err)
		}
		if err != nil && strings.Contains(err.Error(), "evil") {
			t.Errorf("%q: the error quotes the request-target: %v", u, err)
		}
	}
	if shadow.total() != 0 {
		t.Fatal("a hostile record reached the shadow")
	}
	ex := grpcRecord(t, "abs", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{Id: "abs"})
	ex.Request.Url = "http://evil.example" + ordersPath + "GetOrder"
	out, err := s.Replay(context.Background(), ex)
	if err != nil || header(out.Response.Trailers, "grpc-status") != "0" {
		t.Fatalf("absolute-form: %v %v", err, out.Response)
	}
	got := shadow.messages("GetOrder")
	if len(got) != 1 || got[0].md.Get(":authority")[0] != strings.TrimPrefix(shadow.url, "http://") {
		t.Fatalf("absolute-form call: %d received, authority %v: want the target's", len(got), got[0].md.Get(":authority"))
	}
}

// testTLS returns a certificate for 127.0.0.1 and the pool trusting it.
func testTLS(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	cert := ts.TLS.Certificates[0]
	return &cert, pool
}

func withTLSRoots(pool *x509.CertPool) Option {
	return func(o *options) { o.tlsConfig = &tls.Config{RootCAs: pool} }
}

// gRPC to an https target goes over h2 (TLS, ALPN h2); an HTTP/2 REST
// exchange to an https target offering h2 goes over HTTP/2, an HTTP/1.x
// one over HTTP/1.1 as before.
func TestGRPCReplayTLSAndHTTP2(t *testing.T) {
	cert, pool := testTLS(t)
	shadow := startOrders(t, app.V1, cert)
	s, err := NewSender(shadow.url, 1, withTLSRoots(pool))
	if err != nil {
		t.Fatal(err)
	}
	req := &ordersv1.GetOrderRequest{Id: "tls-1"}
	out, err := s.Replay(context.Background(), grpcRecord(t, "g1", "GetOrder", []int{0}, req))
	if err != nil {
		t.Fatal(err)
	}
	if out.Response.Error != "" || header(out.Response.Trailers, "grpc-status") != "0" {
		t.Fatalf("gRPC over TLS: error %q trailers %v", out.Response.Error, out.Response.Trailers)
	}
	checkReceived(t, shadow, "GetOrder", "g1", []proto.Message{req})

	protos := make(chan string, 4)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos <- r.Proto
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	rp := x509.NewCertPool()
	rp.AddCert(ts.Certificate())
	rest, err := NewSender(ts.URL, 1, withTLSRoots(rp))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    mlv1.Protocol
		want string
	}{{mlv1.Protocol_PROTOCOL_HTTP2, "HTTP/2.0"}, {mlv1.Protocol_PROTOCOL_UNSPECIFIED, "HTTP/1.1"}} {
		ex := &mlv1.Exchange{Id: "r", Protocol: tc.p, Request: &mlv1.Request{Method: "GET", Url: "/v1/items"}}
		out, err := rest.Replay(context.Background(), ex)
		if err != nil || out.Response.Status != 200 || string(out.Response.Body) != `{"ok":true}` {
			t.Fatalf("%v: %v %+v", tc.p, err, out.Response)
		}
		if got := <-protos; got != tc.want || out.Response.Proto != tc.want {
			t.Errorf("%v: server saw %s, response %s, want %s", tc.p, got, out.Response.Proto, tc.want)
		}
	}
}

// The pace of a call's messages follows the window's timing: scaled by a
// speed (a ramp's speed in force at each message), none with a rate.
func TestMessagePace(t *testing.T) {
	from := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ramp, err := ParseRamp("1x..2x/20s:2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		sched   *Schedule
		capture time.Time
		off     time.Duration
		want    time.Duration
	}{
		{"speed 1", NewSchedule(Speed(1), from, 1, 0), from.Add(time.Second), 100 * time.Millisecond, 100 * time.Millisecond},
		{"speed 10", NewSchedule(Speed(10), from, 1, 0), from.Add(time.Second), 100 * time.Millisecond, 10 * time.Millisecond},
		{"speed 0.5", NewSchedule(Speed(0.5), from, 1, 0), from, time.Second, 2 * time.Second},
		{"rate", NewSchedule(Rate(5), from, 1, 0), from.Add(time.Second), time.Second, 0},
		// 1x for the first 10 s of wall time (10 s of capture), then 2x.
		{"ramp first step", NewSchedule(ramp, from, 1, 0), from, 4 * time.Second, 4 * time.Second},
		{"ramp second step", NewSchedule(ramp, from, 1, 0), from.Add(20 * time.Second), 4 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sched.messagePace(tc.capture)(tc.off); got != tc.want {
				t.Fatalf("offset %v paced to %v, want %v", tc.off, got, tc.want)
			}
		})
	}
}

// A window replay sends a bidi call's notes at their captured offsets
// scaled by its speed: in order, the last not before its scaled offset; at
// 10x the call takes far less than its captured length; with a rate the
// notes go at once. The shadow records hold protocol, response messages and
// grpc-status.
func TestGRPCReplayWindowTiming(t *testing.T) {
	shadow := startOrders(t, app.V1, nil)
	s, err := NewSender(shadow.url, 2)
	if err != nil {
		t.Fatal(err)
	}
	notes := func(run string) []proto.Message {
		return []proto.Message{
			&ordersv1.TrackNote{OrderId: run, Seq: 1}, &ordersv1.TrackNote{OrderId: run, Seq: 2}, &ordersv1.TrackNote{OrderId: run, Seq: 3},
		}
	}
	for _, tc := range []struct {
		name     string
		profile  Profile
		offsets  []int
		min, max time.Duration // from the send to the last note's arrival
	}{
		{"speed 1", Speed(1), []int{0, 50, 100}, 95 * time.Millisecond, time.Minute},
		{"speed 10", Speed(10), []int{0, 500, 1000}, 95 * time.Millisecond, time.Second},
		{"rate", Rate(10), []int{0, 1000, 2000}, 0, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			ex := grpcRecord(t, "w-"+tc.name, "Track", tc.offsets, notes(tc.name)...)
			fc := newFakeClient()
			its := []Item{{Topic: "mirror.clean.orders", Offset: 7, Key: []byte("c1"), Capture: t0, Exchange: ex}}
			sum, err := NewWindow(NewSliceSource(its), NewSchedule(tc.profile, t0, 1, 0), s, PublishTo(fc, "mirror.shadow.orders")).Run(context.Background())
			if err != nil || sum.Sent != 1 {
				t.Fatalf("window: %v, summary %+v", err, sum)
			}
			var got []received
			for _, r := range shadow.messages("Track") {
				if r.msg.(*ordersv1.TrackNote).GetOrderId() == tc.name {
					got = append(got, r)
				}
			}
			if len(got) != 3 {
				t.Fatalf("shadow got %d notes", len(got))
			}
			for i, r := range got {
				if r.msg.(*ordersv1.TrackNote).GetSeq() != int32(i+1) {
					t.Fatalf("note %d arrived as %v: out of order", i, r.msg)
				}
			}
			if len(fc.produced) != 1 {
				t.Fatalf("%d shadow records", len(fc.produced))
			}
			rec := &mlv1.Exchange{}
			if err := proto.Unmarshal(fc.produced[0].Value, rec); err != nil {
				t.Fatal(err)
			}
			if rec.Protocol != mlv1.Protocol_PROTOCOL_GRPC || len(rec.Response.Messages) != 3 || header(rec.Response.Trailers, "grpc-status") != "0" ||
				rec.Request.GetUrl() != ordersPath+"Track" || rec.Replay.SourceOffset != 7 {
				t.Fatalf("shadow record: %v", rec)
			}
			sent := time.Unix(0, rec.Replay.SentTimeNs)
			if d := got[2].at.Sub(sent); d < tc.min || d > tc.max {
				t.Errorf("last note arrived %v after the send, want within [%v, %v]", d, tc.min, tc.max)
			}
		})
	}
}

// A live replayer replays gRPC records as they come: the shadow gets the
// call, the shadow record its answer.
func TestGRPCReplayLive(t *testing.T) {
	shadow := startOrders(t, app.V1, nil)
	s, err := NewSender(shadow.url, 2)
	if err != nil {
		t.Fatal(err)
	}
	ex := grpcRecord(t, "live-1", "Track", []int{0, 20, 40},
		&ordersv1.TrackNote{OrderId: "l", Seq: 1}, &ordersv1.TrackNote{OrderId: "l", Seq: 2}, &ordersv1.TrackNote{OrderId: "l", Seq: 3})
	val, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc := newFakeClient()
	l := NewLive(s, "orders")
	done := fc.runLive(ctx, l)
	fc.polls <- []*kgo.Record{{Topic: "mirror.clean.orders", Partition: 0, Offset: 3, Key: []byte("c"), Value: val, Timestamp: time.Now()}}
	fc.waitFor(t, "the shadow record", func(f *fakeClient) bool { return len(f.produced) == 1 })
	cancel()
	<-done
	checkReceived(t, shadow, "Track", "live-1", []proto.Message{
		&ordersv1.TrackNote{OrderId: "l", Seq: 1}, &ordersv1.TrackNote{OrderId: "l", Seq: 2}, &ordersv1.TrackNote{OrderId: "l", Seq: 3},
	})
	rec := &mlv1.Exchange{}
	if err := proto.Unmarshal(fc.produced[0].Value, rec); err != nil {
		t.Fatal(err)
	}
	acks := decode(t, rec.Response, func() *ordersv1.TrackAck { return &ordersv1.TrackAck{} })
	if rec.Protocol != mlv1.Protocol_PROTOCOL_GRPC || len(acks) != 3 || acks[2].GetSeq() != 3 || header(rec.Response.Trailers, "grpc-status") != "0" {
		t.Fatalf("shadow record: %v", rec)
	}
}

// Routes apply to gRPC calls: header transforms and credentials do; a
// route that edits JSON bodies is refused for a gRPC call (counted as
// transform) rather than sending it unchanged.
func TestGRPCReplayRoutes(t *testing.T) {
	shadow := startOrders(t, app.V1, nil)
	def, err := NewSender(shadow.url, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("GRPC_TEST_TOKEN", "s3cret")
	rt, err := NewRouter(def, Routing{Routes: []RouteConfig{
		{Name: "json", Match: route.Match{Paths: []string{ordersPath + "ListOrders"}}, Transform: route.Transform{JSONDelete: []string{"customer_email"}}},
		{Name: "headers", Match: route.Match{Paths: []string{ordersPath + "*"}}, Transform: route.Transform{SetHeaders: map[string]string{"x-env": "shadow"}, RemoveHeaders: []string{"x-tenant"}},
			Credentials: []credential.Header{{Name: "authorization", Env: "GRPC_TEST_TOKEN", Prefix: "Bearer "}}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := rt.Replay(context.Background(), grpcRecord(t, "r1", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{Id: "r"}))
	if err != nil || header(out.Response.Trailers, "grpc-status") != "0" {
		t.Fatalf("routed call: %v %v", err, out.Response)
	}
	got := shadow.messages("GetOrder")
	md := got[0].md
	if md.Get("x-env")[0] != "shadow" || len(md.Get("x-tenant")) != 0 || md.Get("authorization")[0] != "Bearer s3cret" || md.Get("x-mirrorline-id")[0] != "r1" {
		t.Errorf("metadata %v: want the route's headers and credentials", md)
	}
	if out.Sent == nil || header(out.Sent.Headers, "Authorization") != MaskedCredential || out.Sent.BodySize == 0 {
		t.Errorf("sent request: %v", out.Sent)
	}
	_, err = rt.Replay(context.Background(), grpcRecord(t, "r2", "ListOrders", []int{0}, &ordersv1.ListOrdersRequest{Limit: 1}))
	if !errors.Is(err, ErrBodyTransformGRPC) || SkipReason(err) != ReasonTransform {
		t.Fatalf("json route on a gRPC call: %v", err)
	}
	if len(shadow.messages("ListOrders")) != 0 {
		t.Fatal("the call was sent despite the json route")
	}
}

// A shadow gRPC response with more messages than the shadow topic's record
// budget holds is published with its first messages, flagged
// messages_truncated and counted, instead of being lost as too large.
func TestShadowValueGRPCMessages(t *testing.T) {
	resp := func(n int) *mlv1.Exchange {
		ex := &mlv1.Exchange{Id: "x", Protocol: mlv1.Protocol_PROTOCOL_GRPC, Request: &mlv1.Request{Method: "POST", Url: ordersPath + "ListOrders"},
			Response: &mlv1.Response{Status: 200, Trailers: []*mlv1.Header{{Name: "grpc-status", Value: "0"}}}}
		for i := range n {
			d := []byte(strings.Repeat(string(rune('a'+i%26)), 200))
			ex.Response.Messages = append(ex.Response.Messages, &mlv1.Message{OffsetNs: int64(i), Data: d, Size: 200})
		}
		return ex
	}
	for _, tc := range []struct {
		name     string
		msgs     int
		budget   int
		kept     int // -1: all
		cutCount float64
	}{
		{"fits", 5, 100_000, -1, 0},
		{"over the budget", 50, 4000, 0, 1},
		{"far over", 2000, 8000, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := resp(tc.msgs)
			m := NewMetrics(nil)
			val, err := shadowValue(ex, []byte("k"), broker.NewBudget(tc.budget), m)
			if err != nil {
				t.Fatalf("shadowValue: %v", err)
			}
			b := broker.NewBudget(tc.budget)
			if len(val) > b.MaxValue([]byte("k"), nil) {
				t.Fatalf("%d bytes over the budget's %d", len(val), b.MaxValue([]byte("k"), nil))
			}
			got := &mlv1.Exchange{}
			if err := proto.Unmarshal(val, got); err != nil {
				t.Fatal(err)
			}
			msgs := got.Response.Messages
			if tc.kept == -1 {
				if len(msgs) != tc.msgs || got.Response.MessagesTruncated {
					t.Fatalf("%d of %d messages kept, truncated %v", len(msgs), tc.msgs, got.Response.MessagesTruncated)
				}
			} else if len(msgs) == 0 || len(msgs) >= tc.msgs || !got.Response.MessagesTruncated {
				t.Fatalf("%d of %d messages kept, truncated %v: want a flagged prefix", len(msgs), tc.msgs, got.Response.MessagesTruncated)
			}
			for i, msg := range msgs {
				if msg.OffsetNs != int64(i) {
					t.Fatalf("message %d is the captured %d: want the first ones in order", i, msg.OffsetNs)
				}
			}
			if n := testutil.ToFloat64(m.Truncated); n != tc.cutCount {
				t.Errorf("truncated_total %v, want %v", n, tc.cutCount)
			}
		})
	}
}

// A gRPC answer is a failure only when its status says the server failed.
func TestGRPCFailure(t *testing.T) {
	for _, tc := range []struct {
		trailers, headers []*mlv1.Header
		want              string
	}{
		{[]*mlv1.Header{{Name: "grpc-status", Value: "0"}}, nil, ""},
		{nil, []*mlv1.Header{{Name: "Grpc-Status", Value: "3"}}, ""},
		{[]*mlv1.Header{{Name: "grpc-status", Value: "5"}}, nil, ""},
		{[]*mlv1.Header{{Name: "grpc-status", Value: "14"}}, nil, Reason5xx},
		{nil, []*mlv1.Header{{Name: "grpc-status", Value: "13"}}, Reason5xx},
		{[]*mlv1.Header{{Name: "grpc-status", Value: "2"}}, nil, Reason5xx},
		{[]*mlv1.Header{{Name: "grpc-status", Value: "15"}}, nil, Reason5xx},
		{[]*mlv1.Header{{Name: "grpc-status", Value: "4"}}, nil, ReasonTimeout},
		{nil, nil, ReasonReset},
		{[]*mlv1.Header{{Name: "grpc-status", Value: "x"}}, nil, ReasonReset},
	} {
		if got := grpcFailure(&mlv1.Response{Trailers: tc.trailers, Headers: tc.headers}); got != tc.want {
			t.Errorf("trailers %v headers %v: %q, want %q", tc.trailers, tc.headers, got, tc.want)
		}
	}
}

// A live replayer does not hold a connection's later gRPC calls behind a
// long stream of the same connection: HTTP/2 streams run concurrently.
func TestGRPCReplayLiveStreamsConcurrent(t *testing.T) {
	shadow := startOrders(t, app.V1, nil)
	s, err := NewSender(shadow.url, 2)
	if err != nil {
		t.Fatal(err)
	}
	long := grpcRecord(t, "long", "Track", []int{0, 1500}, &ordersv1.TrackNote{Seq: 1}, &ordersv1.TrackNote{Seq: 2})
	short := grpcRecord(t, "short", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{Id: "s"})
	var recs []*kgo.Record
	for i, ex := range []*mlv1.Exchange{long, short} {
		v, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "mirror.clean.orders", Offset: int64(i), Key: []byte("same-connection"), Value: v, Timestamp: time.Now()})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc := newFakeClient()
	done := fc.runLive(ctx, NewLive(s, "orders", Concurrency(4)))
	fc.polls <- recs
	fc.waitFor(t, "both shadow records", func(f *fakeClient) bool { return len(f.produced) == 2 })
	cancel()
	<-done
	unary, notes := shadow.messages("GetOrder"), shadow.messages("Track")
	if len(unary) != 1 || len(notes) != 2 {
		t.Fatalf("%d unary, %d notes received", len(unary), len(notes))
	}
	if !unary[0].at.Before(notes[1].at) {
		t.Fatalf("the unary call waited for the stream before it on its connection to end")
	}
}

// A call the shadow answers before the client's last message is due ends
// with the answer: the replayer does not wait to send the rest, and the
// body's writer is released.
func TestGRPCReplayAnswerBeforeLastMessage(t *testing.T) {
	answer, err := proto.Marshal(&ordersv1.Order{Id: "early"})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answers at once, without reading the request's messages.
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write(grpcwire.AppendFrame(nil, &mlv1.Message{Data: answer}))
		w.Header().Set("Grpc-Status", "0")
	}))
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	defer ts.Close()
	s, err := NewSender(ts.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	ex := grpcRecord(t, "early", "UploadOrders", []int{0, 5000}, &ordersv1.Order{Id: "a"}, &ordersv1.Order{Id: "b"})
	start := time.Now()
	out, err := s.Replay(context.Background(), ex)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("the call took %v: it waited for a message due after the answer", d)
	}
	if len(out.Response.Messages) != 1 || out.Response.Error != "" || header(out.Response.Trailers, "grpc-status") != "0" || out.Response.Proto != "HTTP/2.0" {
		t.Fatalf("response: %d messages, error %q, trailers %v, %s", len(out.Response.Messages), out.Response.Error, out.Response.Trailers, out.Response.Proto)
	}
}

// The breaker watches gRPC calls: a shadow answering UNAVAILABLE (HTTP 200,
// trailers-only) trips it; INVALID_ARGUMENT answers do not.
func TestGRPCReplayBreaker(t *testing.T) {
	for _, tc := range []struct {
		status  string
		sent    int
		skipped int
	}{{"14", 4, 6}, {"3", 10, 0}} {
		t.Run("grpc-status "+tc.status, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				calls++
				mu.Unlock()
				w.Header().Set("Content-Type", "application/grpc")
				w.Header().Set("Grpc-Status", tc.status)
			}))
			ts.Config.Protocols = new(http.Protocols)
			ts.Config.Protocols.SetUnencryptedHTTP2(true)
			ts.Start()
			defer ts.Close()
			rt := newTestRouter(t, ts.URL, Routing{Breaker: breaker.Config{ErrorRate: 0.5, MinRequests: 4, Window: time.Minute, OpenFor: time.Hour, Probes: 1}})
			skipped := 0
			for i := range 10 {
				_, err := rt.Replay(context.Background(), grpcRecord(t, "b", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{Id: "x"}))
				var sk *Skipped
				if errors.As(err, &sk) && sk.Reason == DropBreakerOpen {
					skipped++
				} else if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if calls != tc.sent || skipped != tc.skipped {
				t.Fatalf("sent %d, skipped %d; want %d, %d", calls, skipped, tc.sent, tc.skipped)
			}
		})
	}
}

// The middleware sees a gRPC call as a request without a body; what it
// changes of the headers is sent, and the call keeps its messages.
func TestGRPCReplayMiddleware(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	const prog = `import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("type") != "request":
        continue
    r = m["request"]
    r["headers"] = [h for h in r["headers"] if h[0].lower() != "x-tenant"] + [["x-mw", "python:" + str(len(r["body"]))]]
    print(json.dumps({"id": m["id"], "request": r}), flush=True)
`
	shadow := startOrders(t, app.V1, nil)
	def, err := NewSender(shadow.url, 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, mw, err := NewRequester(ctx, def, Routing{}, &middleware.Config{Command: []string{python, "-c", prog}, Timeout: 30 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()
	notes := []proto.Message{&ordersv1.TrackNote{OrderId: "mw", Seq: 1}, &ordersv1.TrackNote{OrderId: "mw", Seq: 2}}
	out, err := req.Replay(ctx, grpcRecord(t, "m1", "Track", []int{0, 10}, notes...))
	if err != nil || header(out.Response.Trailers, "grpc-status") != "0" || len(out.Response.Messages) != 2 {
		t.Fatalf("call through the middleware: %v %v", err, out.Response)
	}
	got := shadow.messages("Track")
	if len(got) != 2 || !proto.Equal(got[0].msg, notes[0]) || !proto.Equal(got[1].msg, notes[1]) {
		t.Fatalf("shadow got %v", got)
	}
	if md := got[0].md; md.Get("x-mw")[0] != "python:0" || len(md.Get("x-tenant")) != 0 {
		t.Fatalf("metadata %v: want the middleware's change", md)
	}
}

// A gRPC answer whose framing is broken is recorded with an error naming
// the framing, never its bytes, and counted as other; the messages before
// the broken frame are kept.
func TestGRPCReplayBrokenFraming(t *testing.T) {
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write(grpcwire.AppendFrame(nil, &mlv1.Message{Data: []byte("ok")}))
		_, _ = w.Write([]byte{9, 0, 0, 0, 6, 'S', 'E', 'C', 'R', 'E', 'T'})
		w.Header().Set("Grpc-Status", "0")
	}))
	ts.Config.Protocols = new(http.Protocols)
	ts.Config.Protocols.SetUnencryptedHTTP2(true)
	ts.Start()
	defer ts.Close()
	s, err := NewSender(ts.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Replay(context.Background(), grpcRecord(t, "bad", "GetOrder", []int{0}, &ordersv1.GetOrderRequest{Id: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	resp := out.Response
	if out.Failure != ReasonOther || !strings.Contains(resp.Error, "compressed flag") || strings.Contains(resp.Error, "SECRET") {
		t.Fatalf("failure %q, error %q", out.Failure, resp.Error)
	}
	if len(resp.Messages) != 1 || string(resp.Messages[0].Data) != "ok" {
		t.Fatalf("messages %v: want the one before the broken frame", resp.Messages)
	}
}
