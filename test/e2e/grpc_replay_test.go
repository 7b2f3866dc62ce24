package e2e

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// grpcShadow is the demo orders service (real grpc-go, h2c) recording the
// messages it receives with the call's X-Mirrorline-Id.
type grpcShadow struct {
	*app.Server
	url  string
	mu   sync.Mutex
	msgs map[string][]proto.Message // by x-mirrorline-id
}

func startGRPCShadow(t *testing.T) *grpcShadow {
	t.Helper()
	srv, err := app.New(app.V2)
	if err != nil {
		t.Fatal(err)
	}
	s := &grpcShadow{Server: srv, msgs: map[string][]proto.Message{}}
	rec := func(ctx context.Context, m any) {
		md, _ := metadata.FromIncomingContext(ctx)
		id := strings.Join(md.Get(strings.ToLower(replayer.HeaderID)), ",")
		s.mu.Lock()
		s.msgs[id] = append(s.msgs[id], proto.Clone(m.(proto.Message)))
		s.mu.Unlock()
	}
	g := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			rec(ctx, req)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &recvStream{ServerStream: ss, rec: func(m any) { rec(ss.Context(), m) }})
		}),
	)
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	s.url = "http://" + ln.Addr().String()
	return s
}

type recvStream struct {
	grpc.ServerStream
	rec func(any)
}

func (s *recvStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.rec(m)
	}
	return err
}

func (s *grpcShadow) received(id string) []proto.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]proto.Message(nil), s.msgs[id]...)
}

// grpcCapture is the clean-topic record of a captured call of an Orders
// method: msgs at offsets (ms) after at.
func grpcCapture(t *testing.T, topic, id, method string, at time.Time, offsetsMs []int, msgs ...proto.Message) *kgo.Record {
	t.Helper()
	ex := &mlv1.Exchange{
		Id: id, Service: "orders", ConnectionId: "conn-" + id, CaptureTimeNs: at.UnixNano(), Source: mlv1.Source_SOURCE_PROXY,
		Protocol: mlv1.Protocol_PROTOCOL_GRPC,
		Request: &mlv1.Request{
			Method: "POST", Url: "/mirrorline.demo.orders.v1.Orders/" + method, Host: "orders.internal", Proto: "HTTP/2.0",
			Headers: []*mlv1.Header{{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}, {Name: "grpc-timeout", Value: "10S"}},
		},
		Response: &mlv1.Response{Status: 200, Trailers: []*mlv1.Header{{Name: "grpc-status", Value: "0"}}},
	}
	for i, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		ex.Request.Messages = append(ex.Request.Messages, &mlv1.Message{OffsetNs: int64(offsetsMs[i]) * 1e6, Data: b, Size: int64(len(b))})
		ex.Request.BodySize += int64(grpcwire.PrefixLen + len(b))
	}
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Partition: 0, Key: []byte(ex.ConnectionId), Value: b, Timestamp: at}
}

// grpcCalls writes a unary call, a bidi call with 3 notes at 0, 50 and
// 100 ms, and a call whose messages were truncated at capture, captured
// from t0 on; it returns what the shadow must receive, by id.
func grpcCalls(t *testing.T, topic string, t0 time.Time) map[string][]proto.Message {
	t.Helper()
	get := &ordersv1.GetOrderRequest{Id: "o-1"}
	notes := []proto.Message{
		&ordersv1.TrackNote{OrderId: "o-1", Seq: 1}, &ordersv1.TrackNote{OrderId: "o-1", Seq: 2}, &ordersv1.TrackNote{OrderId: "o-1", Seq: 3},
	}
	cut := grpcCapture(t, topic, "cut", "Track", t0.Add(2*time.Second), []int{0}, notes[0])
	ex := &mlv1.Exchange{}
	if err := proto.Unmarshal(cut.Value, ex); err != nil {
		t.Fatal(err)
	}
	ex.Request.MessagesTruncated = true
	cut.Value, _ = proto.Marshal(ex)
	produceRecords(t, []*kgo.Record{
		grpcCapture(t, topic, "unary", "GetOrder", t0, []int{0}, get),
		grpcCapture(t, topic, "bidi", "Track", t0.Add(time.Second), []int{0, 50, 100}, notes...),
		cut,
	})
	return map[string][]proto.Message{"unary": {get}, "bidi": notes}
}

// checkGRPCShadow asserts the shadow got each call's messages in order,
// nothing of the truncated one, and that the shadow topic holds the answers.
func checkGRPCShadow(t *testing.T, s *grpcShadow, svc string, want map[string][]proto.Message, out string) {
	t.Helper()
	for id, msgs := range want {
		got := s.received(id)
		if len(got) != len(msgs) {
			t.Fatalf("call %s: shadow received %d messages, want %d\n%s", id, len(got), len(msgs), out)
		}
		for i := range msgs {
			if !proto.Equal(got[i], msgs[i]) {
				t.Fatalf("call %s: message %d is %v, want %v", id, i, got[i], msgs[i])
			}
		}
	}
	if n := len(s.received("cut")); n != 0 || s.ShadowCalls() != 2 {
		t.Fatalf("truncated call sent (%d messages) or shadow calls %d != 2\n%s", n, s.ShadowCalls(), out)
	}
	for _, ex := range kafkatest.ReadExchanges(t, kafkaBrokers, broker.Topic(broker.Shadow, svc), 2, 30*time.Second) {
		resp := ex.GetResponse()
		status := ""
		for _, h := range resp.GetTrailers() {
			if strings.EqualFold(h.Name, "grpc-status") {
				status = h.Value
			}
		}
		if ex.GetProtocol() != mlv1.Protocol_PROTOCOL_GRPC || status != "0" || resp.GetError() != "" {
			t.Fatalf("shadow record %s: protocol %v, grpc-status %q, error %q", ex.Id, ex.GetProtocol(), status, resp.GetError())
		}
		wantMsgs := map[string]int{"unary": 1, "bidi": 3}[ex.Id]
		if len(resp.GetMessages()) != wantMsgs {
			t.Fatalf("shadow record %s: %d response messages, want %d", ex.Id, len(resp.GetMessages()), wantMsgs)
		}
		if ex.Id == "unary" {
			o := &ordersv1.Order{}
			if err := proto.Unmarshal(resp.Messages[0].Data, o); err != nil || o.GetStatus() != "dispatched" || o.GetId() != "o-1" {
				t.Fatalf("shadow answer %v (%v): want the v2 order o-1", o, err)
			}
		}
	}
}

// A window replay of captured gRPC calls by the mirrorline binary against
// a real grpc-go server: the calls arrive with their messages in order,
// the truncated one is counted and not sent, the answers are on the shadow
// topic.
func TestGRPCReplayWindow(t *testing.T) {
	svc, topic := replaySetup(t, 1)
	t0 := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	want := grpcCalls(t, topic, t0)
	shadow := startGRPCShadow(t)
	out, code, sum := runReplay(t, "--service", svc, "--from", stamp(t0), "--to", stamp(t0.Add(10*time.Second)), "--speed", "10x",
		"--target", shadow.url, "--job", "grpc-"+svc)
	if code != 0 || sum == nil {
		t.Fatalf("replay: exit %d\n%s", code, out)
	}
	if sum.Sent != 2 || sum.Errors["messages_truncated"] != 1 || sum.Status["2xx"] != 2 {
		t.Fatalf("report %+v\n%s", sum, out)
	}
	checkGRPCShadow(t, shadow, svc, want, out)
}

// `mirrorline replay --live` replays gRPC records as they come.
func TestGRPCReplayLive(t *testing.T) {
	svc, topic := replaySetup(t, 1)
	want := grpcCalls(t, topic, time.Now())
	shadow := startGRPCShadow(t)
	out := startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}, "replay", "--live", "--service", svc,
		"--target", shadow.url, "--group", "live-"+svc, "--start", "earliest", "--metrics-addr", testproc.FreeAddr(t))
	testproc.Eventually(t, 60*time.Second, "both calls at the shadow", func() bool {
		return len(shadow.received("unary")) == 1 && len(shadow.received("bidi")) == 3
	})
	checkGRPCShadow(t, shadow, svc, want, out.String())
}
