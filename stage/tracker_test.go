package stage

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The tracker marks a partition only up to its first record not finished,
// whatever order records finish in; an abandoned record stops the marks of
// its partition for good; partitions are independent.
func TestTrackerMarksUpToLowestInFlight(t *testing.T) {
	type step struct {
		part   int32
		offset int64
		done   bool // false: abandon
	}
	for _, tc := range []struct {
		name    string
		tracked map[int32]int // partition -> records 0..n-1
		steps   []step
		want    map[int32]int64 // partition -> last offset marked (absent: none)
		open    int
	}{
		{"in order", map[int32]int{0: 3}, []step{{0, 0, true}, {0, 1, true}, {0, 2, true}}, map[int32]int64{0: 2}, 0},
		{"out of order waits for the lowest", map[int32]int{0: 3}, []step{{0, 2, true}, {0, 1, true}}, map[int32]int64{}, 1},
		{"lowest finishing releases the run", map[int32]int{0: 4}, []step{{0, 2, true}, {0, 1, true}, {0, 0, true}}, map[int32]int64{0: 2}, 1},
		{"abandoned stops the partition", map[int32]int{0: 3}, []step{{0, 0, true}, {0, 1, false}, {0, 2, true}}, map[int32]int64{0: 0}, 0},
		{"partitions are independent", map[int32]int{0: 2, 1: 2}, []step{{1, 0, true}, {1, 1, true}, {0, 1, true}}, map[int32]int64{1: 1}, 1},
		{"second finish is ignored", map[int32]int{0: 2}, []step{{0, 0, false}, {0, 0, true}, {0, 1, true}}, map[int32]int64{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marked := map[int32]int64{}
			delta := 0
			tr := NewTracker(func(r *kgo.Record) {
				if prev, ok := marked[r.Partition]; ok && r.Offset <= prev {
					t.Errorf("partition %d marked backwards: %d after %d", r.Partition, r.Offset, prev)
				}
				marked[r.Partition] = r.Offset
			}, func(d int) { delta += d })
			msgs := map[int32][]*Msg{}
			for p := int32(0); p < 2; p++ {
				for o := 0; o < tc.tracked[p]; o++ {
					msgs[p] = append(msgs[p], tr.Track(&kgo.Record{Topic: "t", Partition: p, Offset: int64(o)}))
				}
			}
			for _, s := range tc.steps {
				if s.done {
					msgs[s.part][s.offset].Done()
				} else {
					msgs[s.part][s.offset].Abandon()
				}
			}
			if len(marked) != len(tc.want) {
				t.Fatalf("marked %v, want %v", marked, tc.want)
			}
			for p, o := range tc.want {
				if marked[p] != o {
					t.Fatalf("marked %v, want %v", marked, tc.want)
				}
			}
			if got := tr.Open(); got != tc.open || delta != tc.open {
				t.Fatalf("open %d (gauge delta %d), want %d", got, delta, tc.open)
			}
		})
	}
}

// A hand-over waits for the in-flight records of the partitions leaving, so
// their marks are made before the caller commits; a record finishing after
// its partition is gone marks nothing.
func TestTrackerHandOver(t *testing.T) {
	var marked []int64
	tr := NewTracker(func(r *kgo.Record) { marked = append(marked, r.Offset) }, nil)
	a := tr.Track(&kgo.Record{Topic: "t", Partition: 0, Offset: 0})
	other := tr.Track(&kgo.Record{Topic: "t", Partition: 1, Offset: 0})
	handed := make(chan struct{})
	go func() {
		tr.HandOver(context.Background(), map[string][]int32{"t": {0}})
		close(handed)
	}()
	select {
	case <-handed:
		t.Fatal("hand-over returned with a record of the partition in flight")
	case <-time.After(50 * time.Millisecond): // it must still be waiting
	}
	a.Done()
	<-handed
	if len(marked) != 1 || marked[0] != 0 {
		t.Fatalf("marked %v before the hand-over returned, want [0]", marked)
	}
	// Partition 1 was not handed over: unaffected. A partition lost is
	// forgotten at once and later finishes mark nothing.
	late := tr.Track(&kgo.Record{Topic: "t", Partition: 2, Offset: 5})
	tr.Forget(map[string][]int32{"t": {2}})
	late.Done()
	other.Done()
	if len(marked) != 2 || marked[1] != 0 {
		t.Fatalf("marked %v, want partition 1's offset 0 only after the hand-over", marked)
	}
	// A hand-over gives up when its context ends.
	stuck := tr.Track(&kgo.Record{Topic: "t", Partition: 3, Offset: 0})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tr.HandOver(ctx, map[string][]int32{"t": {3}})
	stuck.Done()
	if len(marked) != 2 {
		t.Fatalf("a partition handed over marked %v after it was gone", marked)
	}
}
