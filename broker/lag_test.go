package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// Lag against a real broker: a group that consumed and committed 3 of 10
// records on one partition and none on another.
func TestLagRecordsAndSeconds(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 2)
	topic := broker.Topic(broker.Clean, svc)
	group := broker.GroupPrefix + "lagtest-" + svc
	old := time.Now().Add(-90 * time.Second)
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("x"), Timestamp: old.Add(time.Duration(i) * time.Second)})
	}
	recs = append(recs, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("y"), Timestamp: old})
	manual := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := manual.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// Commit offset 3 on partition 0 for the group, nothing on partition 1.
	cons := kafkatest.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var p0 []*kgo.Record
	for len(p0) < 3 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Partition == 0 && len(p0) < 3 {
				p0 = append(p0, r)
			}
		})
	}
	if err := cons.CommitRecords(ctx, p0...); err != nil {
		t.Fatal(err)
	}
	cons.Close()

	opts, err := cfg.Opts()
	if err != nil {
		t.Fatal(err)
	}
	r := broker.NewLagReader(kafkatest.Client(t), opts)
	lags, err := r.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	byPart := map[int32]broker.PartitionLag{}
	for _, l := range lags {
		if l.Err != nil {
			t.Fatalf("lag error: %v", l.Err)
		}
		byPart[l.Partition] = l
	}
	if l := byPart[0]; l.Committed != 3 || l.End != 10 || l.Records != 7 || l.Seconds < 85 || l.Seconds > 200 {
		t.Fatalf("partition 0 lag: %+v (want 7 records, ~87 s)", l)
	}
	if l := byPart[1]; l.Records != 1 || l.Seconds < 89 {
		t.Fatalf("partition 1 lag: %+v (want 1 record, ~90 s)", l)
	}

	c := broker.NewLagCollector(r, time.Minute, nil, group)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `mirrorline_consumer_lag_records{group="` + group + `",partition="0",topic="` + topic + `"} 7`
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "mirrorline_consumer_lag_records", "mirrorline_consumer_lag_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "mirrorline_consumer_lag_seconds{") {
		t.Fatalf("metrics lack %s:\n%s", want, out)
	}
}

// A group that consumed everything of a transactional topic sits before the
// last commit marker: that is no lag.
func TestLagIgnoresTransactionMarkers(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 1)
	topic := broker.Topic(broker.Clean, svc)
	group := broker.GroupPrefix + "markers-" + svc
	txn := kafkatest.Client(t, kgo.TransactionalID("lag-markers-"+svc))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		txn.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}, nil)
	}
	if err := txn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	cons := kafkatest.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got []*kgo.Record
	for len(got) < 5 && ctx.Err() == nil {
		got = append(got, cons.PollFetches(ctx).Records()...)
	}
	if err := cons.CommitRecords(ctx, got...); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	opts, _ := cfg.Opts()
	lags, err := broker.NewLagReader(kafkatest.Client(t), opts).Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if len(lags) != 1 || lags[0].Committed != 5 || lags[0].End != 6 || lags[0].Records != 0 || lags[0].Seconds != 0 {
		t.Fatalf("lag at the commit marker: %+v, want 0 records", lags)
	}
}

// Lag is measured to the last stable offset, as a read-committed consumer
// sees the topic: the records of a transaction still open are not lag yet,
// and aborted records (with their marker) are never lag.
func TestLagStopsAtLastStableOffset(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 1)
	topic := broker.Topic(broker.Clean, svc)
	group := broker.GroupPrefix + "stable-" + svc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := kafkatest.Client(t)
	for i := 0; i < 3; i++ {
		if err := plain.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons := kafkatest.Client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var got []*kgo.Record
	for len(got) < 3 && ctx.Err() == nil {
		got = append(got, cons.PollFetches(ctx).Records()...)
	}
	if err := cons.CommitRecords(ctx, got...); err != nil {
		t.Fatal(err)
	}
	cons.Close()

	txn := kafkatest.Client(t, kgo.TransactionalID("lag-stable-"+svc))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for i := 0; i < 4; i++ {
		txn.Produce(ctx, &kgo.Record{Topic: topic, Value: []byte("open"), Timestamp: old}, nil)
	}
	if err := txn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	opts, _ := cfg.Opts()
	r := broker.NewLagReader(kafkatest.Client(t), opts)
	check := func(when string) {
		t.Helper()
		lags, err := r.Lag(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if len(lags) != 1 || lags[0].Err != nil || lags[0].Records != 0 || lags[0].Seconds != 0 {
			t.Fatalf("lag %s: %+v, want 0 records, 0 s", when, lags)
		}
	}
	check("with a transaction open")
	if err := txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	check("after the transaction aborted")
}

// Two groups committed at different offsets of one partition: each gets the
// age of its own first unconsumed record (the partition is read once per
// offset).
func TestLagGroupsAtDifferentOffsetsOfOnePartition(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 1)
	topic := broker.Topic(broker.Clean, svc)
	ahead, behind := broker.GroupPrefix+"ahead-"+svc, broker.GroupPrefix+"behind-"+svc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	old := time.Now().Add(-time.Hour)
	var recs []*kgo.Record
	for i := 0; i < 10; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte("v"), Timestamp: old.Add(time.Duration(i) * time.Second)})
	}
	cl := kafkatest.Client(t)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	for group, at := range map[string]int64{behind: 2, ahead: 6} {
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
		if err := adm.CommitAllOffsets(ctx, group, os); err != nil {
			t.Fatal(err)
		}
	}
	opts, _ := cfg.Opts()
	lags, err := broker.NewLagReader(cl, opts).Lag(ctx, ahead, behind)
	if err != nil {
		t.Fatal(err)
	}
	byGroup := map[string]broker.PartitionLag{}
	for _, l := range lags {
		if l.Err != nil {
			t.Fatalf("lag error: %v", l.Err)
		}
		byGroup[l.Group] = l
	}
	a, b := byGroup[ahead], byGroup[behind]
	if a.Records != 4 || b.Records != 8 || a.Seconds < 3590 || a.Seconds > 3700 {
		t.Fatalf("lag: ahead %+v, behind %+v (want 4 and 8 records, about an hour)", a, b)
	}
	// Both ages are taken at one instant: they differ by the records'
	// timestamps, 4 s.
	if d := b.Seconds - a.Seconds; d < 3.999 || d > 4.001 {
		t.Fatalf("lag: behind is %.3f s older than ahead, want 4 s", d)
	}
}
