package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/orderstest"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// The whole pipeline on gRPC, every stage a mirrorline process on the real
// broker: a grpc-go client's unary and bidirectional calls to the demo
// orders service v1 go through `mirrorline proxy`; `redact` scrubs the
// email field; `replay --live` sends them to v2, which changes one field;
// `compare` reports exactly that field, by its name with the descriptor
// set, by its number without.
func TestGRPCPipelineProxyToCompare(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	descriptors, err := filepath.Abs("../demo/orders/ordersv1/orders.pb")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		schema []string
		field  string
	}{
		{"by name", []string{"--descriptor-set", descriptors}, "body.*.status"},
		{"by number", nil, "body.*.5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := kafkatest.Service(t, 1)
			_, primaryAddr := orderstest.Serve(t, app.V1)
			shadow := startGRPCShadow(t)
			p := startProxyProc(t, brokers, svc, "http://"+primaryAddr)
			startML(t, env, append([]string{"redact", "--service", svc, "--metrics-addr", ""}, tc.schema...)...)
			startML(t, env, "replay", "--live", "--service", svc, "--target", shadow.url, "--group", "live-"+svc,
				"--start", "earliest", "--metrics-addr", testproc.FreeAddr(t))

			cc, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			cl := ordersv1.NewOrdersClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			const n = 12 // an endpoint is significant from 10 (compare.alert.min_samples below)
			for i := range n {
				id := fmt.Sprintf("o-%d", i)
				if o, err := cl.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: id, CustomerEmail: "ann.buyer@example.com"}); err != nil || o.GetStatus() != "shipped" {
					t.Fatalf("GetOrder %s through the proxy: %v, %v", id, o, err)
				}
				tr, err := cl.Track(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for seq := range int32(2) {
					if err := tr.Send(&ordersv1.TrackNote{OrderId: id, Note: "step", Seq: seq}); err != nil {
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
					t.Fatalf("Track %s end: %v", id, err)
				}
			}
			// Every call replayed to v2, the shadow answers recorded.
			shadowRecs := kafkatest.ReadExchanges(t, brokers, broker.Topic(broker.Shadow, svc), 2*n, 90*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			if len(shadowRecs) != 2*n {
				t.Fatalf("%d shadow records, want %d", len(shadowRecs), 2*n)
			}
			// The email was scrubbed before it left the raw topic: v2 never saw it.
			shadow.mu.Lock()
			var gets int
			for _, msgs := range shadow.msgs {
				for _, m := range msgs {
					if r, ok := m.(*ordersv1.GetOrderRequest); ok {
						gets++
						if strings.Contains(r.GetCustomerEmail(), "@") || r.GetCustomerEmail() == "" || !strings.HasPrefix(r.GetId(), "o-") {
							t.Errorf("the shadow got GetOrder %q for %q", r.GetId(), r.GetCustomerEmail())
						}
					}
				}
			}
			shadow.mu.Unlock()
			if gets != n {
				t.Fatalf("the shadow got %d GetOrder calls, want %d", gets, n)
			}

			cfgFile := filepath.Join(t.TempDir(), "mirrorline.yaml")
			cmpWriteFile(t, cfgFile, "compare:\n  alert:\n    min_samples: 10\n")
			args := append([]string{"compare", "-c", cfgFile, "--service", svc, "--start", "earliest", "--join-window", "10s",
				"--until-done", "--metrics-addr", ""}, tc.schema...)
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
			get, track := eps[ordersv1.Orders_GetOrder_FullMethodName], eps[ordersv1.Orders_Track_FullMethodName]
			if len(eps) != 2 || get.Verdicts["different"] != n || track.Verdicts["same"] != n {
				t.Fatalf("endpoints %+v", rep.Endpoints)
			}
			var fields []string
			for _, f := range get.Fields {
				fields = append(fields, f.Field+" "+f.Kind)
			}
			if want := []string{tc.field + " changed"}; !slices.Equal(fields, want) {
				t.Fatalf("GetOrder differs in %q, want exactly %q", fields, want)
			}
			if f := get.Fields[0]; f.Primary != `"shipped"` || f.Shadow != `"dispatched"` {
				t.Errorf("GetOrder example %s → %s", f.Primary, f.Shadow)
			}
		})
	}
}
