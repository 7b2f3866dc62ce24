package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// runComparator runs a comparator of service in group until stop is called.
func runComparator(t *testing.T, kcfg broker.Config, service, group string, cfg comparator.Config) (stop func(), m *comparator.Metrics) {
	t.Helper()
	m = comparator.NewMetrics(prometheus.NewRegistry())
	cmp, err := comparator.New(service, cfg, comparator.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	r := comparator.NewRunner(cmp, comparator.WithTick(100*time.Millisecond), comparator.WithFromStart(true))
	cl, err := broker.NewClient(kcfg, r.ClientOpts(group)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, cl) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("comparator stopped with error: %v", err)
		}
		cl.Close()
	}
	t.Cleanup(stop)
	return stop, m
}

// produceExchange publishes an exchange to topic, keyed by its connection.
func cmpProduce(t *testing.T, cl *kgo.Client, topic string, ex *mlv1.Exchange) {
	t.Helper()
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(ex.ConnectionId), Value: b}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func cmpExchange(id string, status int32, body string, job string) *mlv1.Exchange {
	ex := &mlv1.Exchange{
		Id: id, ConnectionId: "conn-" + id, CaptureTimeNs: time.Now().UnixNano(),
		Request:  &mlv1.Request{Method: "GET", Url: "/payments/" + id},
		Response: &mlv1.Response{Status: status, Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}}, Body: []byte(body), LatencyNs: int64(time.Millisecond)},
	}
	if job != "" {
		ex.Source = mlv1.Source_SOURCE_REPLAYER
		ex.Replay = &mlv1.Replay{Job: job, Instance: "test"}
	}
	return ex
}

// readDiffs reads every diff record of service's diff topic, by exchange id.
func cmpReadDiffs(t *testing.T, kcfg broker.Config, service string) map[string][]*mlv1.Diff {
	t.Helper()
	out := map[string][]*mlv1.Diff{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := comparator.ReadDiffs(ctx, kcfg, broker.Topic(broker.Diff, service), time.Time{}, 0, func(d *mlv1.Diff) {
		out[d.Id] = append(out[d.Id], d)
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// The join through a real Kafka: shadow records that arrive before their
// primary, primaries whose shadow never comes (missing after the window),
// and a comparator that stops while an exchange waits: its offset is not
// committed, so the next comparator of the group decides it (exactly one
// diff record per exchange).
func TestCompareJoinThroughKafka(t *testing.T) {
	kcfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 2)
	cl := kafkatest.Client(t)
	clean, shadow := broker.Topic(broker.Clean, svc), broker.Topic(broker.Shadow, svc)
	group := "compare-" + svc
	cfg := comparator.Config{JoinWindow: 30 * time.Second, Noise: comparator.NoiseConfig{MinSamples: 3}}

	// Shadow first for s0..s4, then their primaries; p0..p2 have no shadow.
	for i := range 5 {
		cmpProduce(t, cl, shadow, cmpExchange(fmt.Sprintf("s%d", i), 200, fmt.Sprintf(`{"n":%d}`, i), "live"))
	}
	for i := range 5 {
		cmpProduce(t, cl, clean, cmpExchange(fmt.Sprintf("s%d", i), 200, fmt.Sprintf(`{"n":%d}`, i), ""))
	}
	for i := range 3 {
		cmpProduce(t, cl, clean, cmpExchange(fmt.Sprintf("p%d", i), 200, `{}`, ""))
	}

	stop, m := runComparator(t, kcfg, svc, group, cfg)
	adm := kadm.NewClient(cl)
	testproc.Eventually(t, 60*time.Second, "5 same exchanges published, 3 waiting", func() bool {
		return cmpEndOffsets(adm, broker.Topic(broker.Diff, svc)) == 5 && testutil.ToFloat64(m.Pending) == 3
	})
	// Stop while p0..p2 wait (window 30 s): their offsets must not be committed.
	stop()

	cfg.JoinWindow = time.Second
	_, m2 := runComparator(t, kcfg, svc, group, cfg)
	testproc.Eventually(t, 60*time.Second, "the waiting exchanges decided as missing by the next comparator", func() bool {
		// Decisions are counted when made and published right after: wait
		// for both, then read what was published.
		return testutil.ToFloat64(m2.Exchanges.WithLabelValues("missing", "GET /payments/{id}")) == 3 &&
			cmpEndOffsets(adm, broker.Topic(broker.Diff, svc)) >= 8
	})
	diffs := cmpReadDiffs(t, kcfg, svc)
	if len(diffs) != 8 {
		t.Fatalf("%d exchanges in %s, want 8", len(diffs), broker.Topic(broker.Diff, svc))
	}
	for id, ds := range diffs {
		if len(ds) != 1 {
			t.Errorf("%s: %d diff records, want 1", id, len(ds))
		}
		want := mlv1.Verdict_VERDICT_SAME
		if id[0] == 'p' {
			want = mlv1.Verdict_VERDICT_MISSING
		}
		if d := ds[0]; d.Verdict != want || d.Endpoint != "GET /payments/{id}" {
			t.Errorf("%s: %s %s, want %s", id, comparator.VerdictLabel(d.Verdict), d.Endpoint, comparator.VerdictLabel(want))
		}
	}
	if ds := diffs["p0"]; len(ds) == 1 && ds[0].Reason != "no shadow response within 1s" {
		t.Errorf("missing reason %q", ds[0].Reason)
	}
	// The second comparator re-read only what was not committed: the five
	// joined exchanges were not decided again.
	if n := testutil.ToFloat64(m.Exchanges.WithLabelValues("same", "GET /payments/{id}")); n != 5 {
		t.Errorf("first comparator decided %v exchanges as same, want 5", n)
	}
	if n := testutil.ToFloat64(m2.Exchanges.WithLabelValues("same", "GET /payments/{id}")); n != 0 {
		t.Errorf("second comparator decided %v committed exchanges again", n)
	}
}
