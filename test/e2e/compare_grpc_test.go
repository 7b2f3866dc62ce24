package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// `mirrorline compare` judges gRPC exchanges on a real broker: the demo
// orders service's v1 answers (mirror.clean) against v2's (mirror.shadow).
// With --descriptor-set the report names the one differing protobuf field
// (body.*.status), without it its number (body.*.5); the identical Track
// streams are the same; the report shows the gRPC status per method.
func TestCompareGRPC(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	descriptors, err := filepath.Abs("../demo/orders/ordersv1/orders.pb")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		field string
	}{
		{"by name", []string{"--descriptor-set", descriptors}, "body.*.status"},
		{"by number", nil, "body.*.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := kafkatest.Service(t, 1)
			writeGRPCPairs(t, svc, 12)
			// 12 exchanges make an endpoint significant (default 50).
			cfgFile := filepath.Join(t.TempDir(), "mirrorline.yaml")
			cmpWriteFile(t, cfgFile, "compare:\n  alert:\n    min_samples: 10\n")
			args := append([]string{"compare", "-c", cfgFile, "--service", svc, "--start", "earliest", "--join-window", "10s",
				"--until-done", "--metrics-addr", ""}, tc.args...)
			if out, code := runML(t, env, args...); code != 0 {
				t.Fatalf("compare --until-done: exit %d\n%s", code, out)
			}
			out, code := runML(t, env, "compare", "report", "-c", cfgFile, "--service", svc, "--json")
			if code != 0 {
				t.Fatalf("compare report --json: exit %d\n%s", code, out)
			}
			var rep comparator.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("report JSON: %v\n%s", err, out)
			}
			eps := map[string]comparator.EndpointReport{}
			for _, e := range rep.Endpoints {
				eps[e.Endpoint] = e
			}
			get, track := eps["/mirrorline.demo.orders.v1.Orders/GetOrder"], eps["/mirrorline.demo.orders.v1.Orders/Track"]
			if len(eps) != 2 || get.Verdicts["different"] != 12 || track.Verdicts["same"] != 12 || !get.Significant || track.Significant {
				t.Fatalf("endpoints %+v", rep.Endpoints)
			}
			var fields []string
			for _, f := range get.Fields {
				fields = append(fields, f.Field+" "+f.Kind)
			}
			if want := []string{tc.field + " changed"}; !slices.Equal(fields, want) {
				t.Errorf("GetOrder differs in %q, want %q", fields, want)
			}
			if f := get.Fields[0]; f.Primary != `"shipped"` || f.Shadow != `"dispatched"` {
				t.Errorf("GetOrder example %s → %s", f.Primary, f.Shadow)
			}
			if get.GRPCStatuses["OK → OK"] != 12 || get.Example == nil || get.Example.ShadowGRPCStatus != "OK" {
				t.Errorf("GetOrder gRPC status: %v, example %+v", get.GRPCStatuses, get.Example)
			}
			if get.Latency.Primary.Count != 12 || get.Latency.Shadow.Max <= get.Latency.Primary.Max {
				t.Errorf("GetOrder latency %+v", get.Latency)
			}
			text, code := runML(t, env, "compare", "report", "-c", cfgFile, "--service", svc)
			if code != 0 || !strings.Contains(text, "grpc-status (primary → shadow): OK → OK 12") || !strings.Contains(text, tc.field) {
				t.Errorf("text report: exit %d\n%s", code, text)
			}
		})
	}
}

// writeGRPCPairs writes n GetOrder and n Track exchanges of the demo orders
// service: v1's answers to the clean topic of svc, v2's (replayed, job
// live) to its shadow topic.
func writeGRPCPairs(t *testing.T, svc string, n int) {
	t.Helper()
	cl := kafkatest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	now := time.Now()
	msg := func(m proto.Message) *mlv1.Message {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return &mlv1.Message{Data: b, Size: int64(len(b))}
	}
	answer := func(latency time.Duration, msgs ...*mlv1.Message) *mlv1.Response {
		return &mlv1.Response{Status: 200, Proto: "HTTP/2.0", LatencyNs: int64(latency), Messages: msgs,
			Headers:  []*mlv1.Header{{Name: "content-type", Value: "application/grpc"}},
			Trailers: []*mlv1.Header{{Name: "grpc-status", Value: "0"}}}
	}
	write := func(topic string, ex *mlv1.Exchange) {
		b, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(ex.ConnectionId), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprintf("o-%d", i)
		v1 := &ordersv1.Order{Id: id, AmountCents: 1000 + int64(i), Currency: "EUR", Status: "shipped",
			Shipping: &ordersv1.Address{Street: "1 Demo Street", City: "Lyon", Country: "FR"}, Tags: []string{"demo"}}
		v2 := proto.Clone(v1).(*ordersv1.Order)
		v2.Status = "dispatched"
		acks := []*mlv1.Message{msg(&ordersv1.TrackAck{OrderId: id, Seq: 1, State: "seen"}), msg(&ordersv1.TrackAck{OrderId: id, Seq: 2, State: "seen"})}
		for _, call := range []struct {
			method string
			p, s   *mlv1.Response
			req    proto.Message
		}{
			{"GetOrder", answer(2*time.Millisecond, msg(v1)), answer(4*time.Millisecond, msg(v2)), &ordersv1.GetOrderRequest{Id: id}},
			{"Track", answer(3*time.Millisecond, acks...), answer(3*time.Millisecond, acks...), &ordersv1.TrackNote{OrderId: id, Seq: 1}},
		} {
			ex := &mlv1.Exchange{
				Id: fmt.Sprintf("%s-%s", call.method, id), Service: svc, ConnectionId: "conn-" + id, Source: mlv1.Source_SOURCE_PROXY,
				CaptureTimeNs: now.Add(time.Duration(i) * time.Millisecond).UnixNano(), Protocol: mlv1.Protocol_PROTOCOL_GRPC,
				Request: &mlv1.Request{Method: "POST", Url: "/mirrorline.demo.orders.v1.Orders/" + call.method, Proto: "HTTP/2.0", Scheme: "http",
					Headers: []*mlv1.Header{{Name: "content-type", Value: "application/grpc"}}, Messages: []*mlv1.Message{msg(call.req)}},
				Response: call.p,
			}
			write(broker.Topic(broker.Clean, svc), ex)
			sh := proto.Clone(ex).(*mlv1.Exchange)
			sh.Source, sh.Response = mlv1.Source_SOURCE_REPLAYER, call.s
			sh.Replay = &mlv1.Replay{Job: "live", Instance: "r1", Target: "http://127.0.0.1:1"}
			write(broker.Topic(broker.Shadow, svc), sh)
		}
	}
}
