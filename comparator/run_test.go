package comparator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// A comparator stopping while its decisions are being published still
// confirms them and releases their records, so the final commit covers them
// and the next owner of the partitions does not decide them again.
func TestPublishReleasesAfterStop(t *testing.T) {
	brokers := kafkatest.Embedded(t, "svc", 1)
	cmp, err := New("svc", Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(cmp)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	f := newFeeder(r)
	f.hold(r.clean, 0, 4)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before the decision is published
	d := Decision{Diff: &mlv1.Diff{Id: "x", ConnectionId: "c"}, Refs: []Ref{{Topic: r.clean, Partition: 0, Offset: 4}}}
	if err := r.publish(ctx, cl, []Decision{d}); err != nil {
		t.Fatalf("publish after stop: %v", err)
	}
	if got := f.committed(r.clean, 0); got != 5 {
		t.Fatalf("safe offset %d after publishing, want 5 (record 4 released)", got)
	}
}

// A verdict with more differences than mirror.diff.S accepts is published
// with the first differences that fit and a note saying how many were left
// out, and its records are released: the comparator neither stops nor
// stalls. When the budget does not know the topic's lower limit, Kafka's
// refusal is met by publishing it cut further.
func TestPublishCutsDiffToBudget(t *testing.T) {
	const topicMax = 1_000_000
	cases := []struct {
		name   string
		budget *broker.Budget
	}{
		{"budget knows the topic's limit", broker.NewBudget(topicMax)},
		{"Kafka refuses the record", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := broker.StartEmbedded()
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.ProducerBatchMaxBytes(broker.DefaultMaxMessageBytes),
				kgo.ProducerBatchCompression(kgo.NoCompression()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if _, err := broker.CreateTopics(ctx, kadm.NewClient(cl), "svc", broker.TopicSpec{Partitions: 1, MaxMessageBytes: topicMax}); err != nil {
				t.Fatal(err)
			}
			cmp, err := New("svc", Config{})
			if err != nil {
				t.Fatal(err)
			}
			r := NewRunner(cmp, WithBudget(tc.budget))
			f := newFeeder(r)
			f.hold(r.clean, 0, 4)
			d := &mlv1.Diff{Id: "big", ConnectionId: "c", Verdict: mlv1.Verdict_VERDICT_DIFFERENT}
			for i := range 40_000 {
				d.Differences = append(d.Differences, &mlv1.Difference{Field: fmt.Sprintf("body.items.%d.price", i), Key: "body.items.*.price",
					Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Primary: fmt.Sprintf("%d.%02d", i, i%97), Shadow: fmt.Sprintf("%d.%02d", i+1, i%89)})
			}
			if err := r.publish(ctx, cl, []Decision{{Diff: d, Refs: []Ref{{Topic: r.clean, Partition: 0, Offset: 4}}}}); err != nil {
				t.Fatalf("publish: %v", err)
			}
			if got := f.committed(r.clean, 0); got != 5 {
				t.Fatalf("safe offset %d, want 5 (record 4 released)", got)
			}
			rd, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.ConsumeTopics(broker.Topic(broker.Diff, "svc")), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			fs := rd.PollFetches(ctx)
			if ctx.Err() != nil || len(fs.Records()) != 1 {
				t.Fatalf("diff topic: %d records, want 1", len(fs.Records()))
			}
			got := &mlv1.Diff{}
			if err := proto.Unmarshal(fs.Records()[0].Value, got); err != nil {
				t.Fatal(err)
			}
			if got.Id != "big" || got.Verdict != mlv1.Verdict_VERDICT_DIFFERENT || len(got.Differences) == 0 || len(got.Differences) >= 40_000 ||
				!strings.Contains(got.Note, "of 40000 kept") {
				t.Fatalf("diff %q verdict %v with %d differences, note %q", got.Id, got.Verdict, len(got.Differences), got.Note)
			}
		})
	}
}

// feeder hands records to a Runner as the stage runtime does, each tracked
// by a stage.Tracker whose marks are the offsets the runtime would commit.
type feeder struct {
	r  *Runner
	tr *stage.Tracker
	at map[Ref]int64 // by topic and partition: the offset to commit
}

func newFeeder(r *Runner) *feeder {
	f := &feeder{r: r, at: map[Ref]int64{}}
	f.tr = stage.NewTracker(func(rec *kgo.Record) { f.at[Ref{Topic: rec.Topic, Partition: rec.Partition}] = rec.Offset + 1 }, nil)
	return f
}

// feed hands ex, the record at topic/p/off, to the runner.
func (f *feeder) feed(topic string, p int32, off int64, ex *mlv1.Exchange, now time.Time) []Decision {
	m := f.tr.Track(&kgo.Record{Topic: topic, Partition: p, Offset: off})
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	return f.r.handle(m, ex, now)
}

// hold makes the record at topic/p/off one the runner holds for an
// undecided exchange.
func (f *feeder) hold(topic string, p int32, off int64) {
	rec := &kgo.Record{Topic: topic, Partition: p, Offset: off}
	f.r.held[Ref{Topic: topic, Partition: p, Offset: off}] = f.tr.Track(rec)
}

// committed is the offset of topic/p the runtime would commit (0: none).
func (f *feeder) committed(topic string, p int32) int64 { return f.at[Ref{Topic: topic, Partition: p}] }
