package replayer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// Against a real broker: a window whose records were deleted after it was
// planned (retention: a window near its topic's retention.ms, a capture
// stamped long ago) ends. Partition 0 lost all its range, partition 1 the
// first 12 of its 20 records; the 8 left are replayed, in order, and the
// source ends instead of waiting for offsets the log will never have again.
func TestKafkaSourceRecordsDeletedByRetention(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topic := fmt.Sprintf("replay-gone-%d", time.Now().UnixNano())
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(dctx, topic)
	})
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for p := range int32(2) {
		for i := range 20 {
			v, err := proto.Marshal(&mlv1.Exchange{Id: fmt.Sprintf("%d@%d", p, i), Request: &mlv1.Request{Method: "GET", Url: "/"}})
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Timestamp: t0.Add(time.Duration(i) * time.Millisecond), Value: v})
		}
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The window was planned over both partitions' 20 records; then the
	// records went.
	ranges := []Range{{Partition: 0, Start: 0, End: 20, Limit: 20}, {Partition: 1, Start: 0, End: 20, Limit: 20}}
	del := kadm.Offsets{}
	del.AddOffset(topic, 0, 20, -1)
	del.AddOffset(topic, 1, 12, -1)
	res, err := adm.DeleteRecords(ctx, del)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatal(err)
	}

	cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, WindowConsumeOpts(topic, ranges)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	m := NewMetrics(nil)
	src := NewKafkaSource(cons, topic, t0, t0.Add(time.Hour), ranges, WithMetrics(m))
	defer src.Close()
	ids := drainIDs(ctx, t, src)
	if got, want := fmt.Sprint(ids), "[1@12 1@13 1@14 1@15 1@16 1@17 1@18 1@19]"; got != want {
		t.Fatalf("replayed %s, want %s", got, want)
	}
	if got := src.Gone(); got != 32 {
		t.Fatalf("Gone() = %d, want 32", got)
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues(ReasonGone)); got != 32 {
		t.Fatalf("errors{reason=gone} = %v, want 32", got)
	}
	if done, total := src.Progress(); done != total {
		t.Fatalf("progress %d of %d", done, total)
	}
}
