package comparator

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
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
	ps := r.part(r.clean, 0)
	ps.next, ps.pending[4] = 5, 1
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before the decision is published
	d := Decision{Diff: &mlv1.Diff{Id: "x", ConnectionId: "c"}, Refs: []Ref{{Topic: r.clean, Partition: 0, Offset: 4}}}
	if err := r.publish(ctx, cl, []Decision{d}); err != nil {
		t.Fatalf("publish after stop: %v", err)
	}
	offs := r.commitOffsets(nil)
	if got := offs[r.clean][0].Offset; got != 5 {
		t.Fatalf("safe offset %d after publishing, want 5 (record 4 released)", got)
	}
}
