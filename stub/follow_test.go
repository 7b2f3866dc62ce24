package stub

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// TestFollowerIndexesTheCleanTopicFromItsLookback runs on the in-process
// broker: records older than the lookback, inbound records are not
// indexed; the egress records since are, live ones too, and
// the Follower reports when it has read up to the topic's end.
func TestFollowerIndexesTheCleanTopicFromItsLookback(t *testing.T) {
	const svc = "payments"
	brokers := kafkatest.Embedded(t, svc, 2)
	topic := broker.Topic(broker.Clean, svc)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Now()
	produce := func(p int32, ts time.Time, ex *mlv1.Exchange) {
		t.Helper()
		v, err := ex.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: p, Timestamp: ts, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	old := recorded("old", "gw", "GET", "/old", "", 200, "old")
	produce(0, now.Add(-3*time.Hour), old)
	produce(0, now.Add(-time.Minute), recorded("e1", "gw", "GET", "/a", "", 200, "a"))
	inbound := recorded("in", "gw", "GET", "/in", "", 200, "")
	inbound.Kind = mlv1.Kind_KIND_INBOUND
	produce(1, now.Add(-time.Minute), inbound)

	ix := NewIndex()
	f := NewFollower([]kgo.Opt{kgo.SeedBrokers(brokers...)}, topic, now.Add(-time.Hour), ix, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("follower: %v", err)
		}
	}()
	testproc.Eventually(t, time.Minute, "the follower reads to the topic's end", func() bool { return f.Ready(ctx) == nil })
	if ix.Len() != 1 {
		t.Fatalf("indexed %d records, want 1 (the egress record since the lookback)", ix.Len())
	}
	// Live: a record written now is indexed and matched.
	produce(1, now, recorded("e2", "gw", "GET", "/b", "", 200, "b"))
	var rec *Recorded
	testproc.Eventually(t, time.Minute, "the live record is indexed", func() bool {
		rec, _ = ix.Match(ctx, Call{Parent: parentID, Host: "gw", Method: "GET", Target: "/b"}, 0)
		return rec != nil
	})
	if rec.Ex.GetId() != "e2" {
		t.Errorf("matched %s, want e2", rec.Ex.GetId())
	}
	if rec, _ := ix.Match(ctx, Call{Parent: parentID, Host: "gw", Method: "GET", Target: "/old"}, 0); rec != nil {
		t.Error("a record older than the lookback was indexed")
	}
	if got := testutil.ToFloat64(ix.metrics.Skipped.WithLabelValues(SkipInbound)); got != 1 {
		t.Errorf("inbound records skipped %v, want 1", got)
	}
}

// The Follower is behind while a partition's last stable offset is past
// what it read; an open transaction's records do not count until committed.
func TestFollowerBehindUntilItReadsToTheLastStableOffset(t *testing.T) {
	const svc = "orders"
	brokers := kafkatest.Embedded(t, svc, 2)
	topic := broker.Topic(broker.Clean, svc)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.TransactionalID("stub-follow-test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	f := NewFollower(nil, topic, time.Now(), NewIndex(), nil)
	f.adm, f.pos = kadm.NewClient(admCl), map[int32]int64{0: 0, 1: 0}
	ctx := context.Background()
	behind := func() bool {
		target, err := f.Target(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return !f.Reached(target)
	}
	if behind() {
		t.Fatal("behind an empty topic")
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if behind() {
		t.Error("behind an open transaction's record (a read-committed reader cannot read it yet)")
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if !behind() {
		t.Fatal("not behind a committed record it has not read")
	}
	f.mu.Lock()
	f.pos[1] = 2 // the record and the commit marker
	f.mu.Unlock()
	if behind() {
		t.Error("behind after reading the record and its commit marker")
	}
}
