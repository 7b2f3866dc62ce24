package comparator

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// produceRaw writes values to partition 0 of topic.
func produceRaw(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, values ...[]byte) {
	t.Helper()
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("c"), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func marshal(t *testing.T, ex *mlv1.Exchange) []byte {
	t.Helper()
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A bounded run (WithUntilDone) on the stage runtime judges every record
// written before it started, counts an undecodable record without stopping
// on it, publishes the verdicts, returns, and has committed every record it
// read: a second run of the group has nothing left to judge.
func TestRunUntilDoneCommitsWhatItPublished(t *testing.T) {
	brokers := kafkatest.Embedded(t, "svc", 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	body := resp(200, "application/json", `{"a":1}`)
	clean, shadow := broker.Topic(broker.Clean, "svc"), broker.Topic(broker.Shadow, "svc")
	produceRaw(ctx, t, cl, clean, []byte{0xff, 0xff}, marshal(t, primaryEx("x", "GET", "/a", body)), marshal(t, primaryEx("y", "GET", "/a", body)))
	produceRaw(ctx, t, cl, shadow, marshal(t, shadowEx("x", "GET", "/a", "live", body)))

	cfg := noWarmup()
	cfg.JoinWindow = 200 * time.Millisecond // y's shadow never comes
	m := NewMetrics(nil)
	r := NewRunner(mustNewSvc(t, cfg, WithMetrics(m)), WithUntilDone(true), WithFromStart(true), WithTick(100*time.Millisecond))
	rcl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, r.ClientOpts("g")...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer rcl.Close()
	if err := r.Run(ctx, rcl); err != nil || ctx.Err() != nil {
		t.Fatalf("bounded run: %v (context: %v)", err, ctx.Err())
	}

	got := map[string]mlv1.Verdict{}
	if _, err := ReadDiffs(ctx, broker.Config{Brokers: brokers}, broker.Topic(broker.Diff, "svc"), time.Time{}, 0, func(d *mlv1.Diff) { got[d.Id] = d.Verdict }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["x"] != mlv1.Verdict_VERDICT_SAME || got["y"] != mlv1.Verdict_VERDICT_MISSING {
		t.Errorf("verdicts %v, want x same and y missing", got)
	}
	if n := testutil.ToFloat64(m.Records.WithLabelValues("primary", RecordUndecodable)); n != 1 {
		t.Errorf("undecodable primary records counted %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.Stage.Undecodable); n != 1 {
		t.Errorf("runtime's undecodable records %v, want 1", n)
	}
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]int64{clean: 3, shadow: 1} {
		if o, ok := offs.Lookup(topic, 0); !ok || o.At != want {
			t.Errorf("%s: committed %v, want %d", topic, o.At, want)
		}
	}
}

// A failed offset commit is counted in
// mirrorline_comparator_errors_total{reason="commit"}, as the runtime's
// commits are the comparator's.
func TestRunnerCountsCommitErrors(t *testing.T) {
	clean, shadow, diff := broker.Topic(broker.Clean, "svc"), broker.Topic(broker.Shadow, "svc"), broker.Topic(broker.Diff, "svc")
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, clean, shadow, diff))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.ControlKey(int16(kmsg.OffsetCommit), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.OffsetMetadataTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	body := resp(200, "application/json", `{"a":1}`)
	produceRaw(ctx, t, cl, clean, marshal(t, primaryEx("x", "GET", "/a", body)))
	produceRaw(ctx, t, cl, shadow, marshal(t, shadowEx("x", "GET", "/a", "live", body)))

	m := NewMetrics(nil)
	r := NewRunner(mustNewSvc(t, noWarmup(), WithMetrics(m)), WithFromStart(true))
	rcl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, r.ClientOpts("g")...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer rcl.Close()
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx, rcl) }()
	for testutil.ToFloat64(m.Errors.WithLabelValues("commit")) == 0 && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if n := testutil.ToFloat64(m.Errors.WithLabelValues("commit")); n == 0 || testutil.ToFloat64(m.Exchanges.WithLabelValues("same", "GET /a")) != 1 {
		t.Fatalf("commit errors %v after the exchange was judged, want at least 1", n)
	}
}

// A revoked partition's undecided exchanges are dropped and their records
// given up (the runtime then hands the partition over at once, and the new
// owner judges them); the exchanges of the partitions kept go on.
func TestRevokeGivesUpThePartitionsRecords(t *testing.T) {
	for _, job := range []string{LiveJob, "window-1"} {
		t.Run(job, func(t *testing.T) {
			cfg := noWarmup()
			cfg.ShadowJob = job
			r := NewRunner(mustNew(t, cfg))
			r.assign(map[string][]int32{r.clean: {0, 1}, r.shadow: {0, 1}})
			f := newFeeder(r)
			body := resp(200, "application/json", `{"a":1}`)
			side, topic := primaryEx, r.clean
			if job != LiveJob {
				side, topic = func(id, method, url string, rp *mlv1.Response) *mlv1.Exchange {
					return shadowEx(id, method, url, job, rp)
				}, r.shadow
			}
			f.feed(topic, 0, 0, side("x", "GET", "/a", body), t0)
			f.feed(topic, 1, 0, side("y", "GET", "/a", body), t0)
			if f.tr.Open() != 2 {
				t.Fatalf("%d records in flight, want 2 (both held)", f.tr.Open())
			}
			r.Revoke(map[string][]int32{r.clean: {0}, r.shadow: {0}})
			if f.tr.Open() != 1 || len(r.held) != 1 {
				t.Fatalf("after revoking partition 0: %d records in flight, %d held; want 1 (partition 1's)", f.tr.Open(), len(r.held))
			}
			if _, ok := r.assigned[r.clean][0]; ok {
				t.Errorf("revoked partition still assigned: %v", r.assigned)
			}
			if job == LiveJob {
				if r.cmp.Pending() != 1 {
					t.Fatalf("%d exchanges waiting, want 1 (y)", r.cmp.Pending())
				}
				out := f.feed(r.shadow, 1, 0, shadowEx("y", "GET", "/a", "live", body), t0)
				if d := decided(out); len(d) != 1 || d["y"].GetVerdict() != mlv1.Verdict_VERDICT_SAME {
					t.Fatalf("kept partition's exchange: %v", d)
				}
				r.release(out)
			} else {
				if len(r.await) != 1 || r.await[0].ex.GetId() != "y" {
					t.Fatalf("awaiting %d records, want y only", len(r.await))
				}
				r.release(r.resolve(context.Background(), t0)) // no lookup: missing
			}
			if f.tr.Open() != 0 || f.committed(r.shadow, 1) != 1 {
				t.Errorf("kept partition: %d in flight, shadow offset %d to commit; want 0 and 1", f.tr.Open(), f.committed(r.shadow, 1))
			}
		})
	}
}

func mustNewSvc(t *testing.T, cfg Config, opts ...Option) *Comparator {
	t.Helper()
	c, err := New("svc", cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
