package replayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// fakePoller hands out prepared fetches, one per poll, then blocks.
type fakePoller struct {
	fetches chan kgo.Fetches
	mu      sync.Mutex
	paused  map[int32]int
	resumed map[int32]int
}

func (f *fakePoller) PollRecords(ctx context.Context, _ int) kgo.Fetches {
	select {
	case fs := <-f.fetches:
		return fs
	case <-ctx.Done():
		return kgo.NewErrFetch(ctx.Err())
	}
}

func (f *fakePoller) PauseFetchPartitions(tp map[string][]int32) map[string][]int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ps := range tp {
		for _, p := range ps {
			f.paused[p]++
		}
	}
	return nil
}

func (f *fakePoller) ResumeFetchPartitions(tp map[string][]int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ps := range tp {
		for _, p := range ps {
			f.resumed[p]++
		}
	}
}

func fetchOf(topic string, parts map[int32][]*kgo.Record) kgo.Fetches {
	ft := kgo.FetchTopic{Topic: topic}
	for p, rs := range parts {
		ft.Partitions = append(ft.Partitions, kgo.FetchPartition{Partition: p, Records: rs})
	}
	return kgo.Fetches{{Topics: []kgo.FetchTopic{ft}}}
}

func TestKafkaSourceMergesPartitionsWithinWindow(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	from, to := t0.Add(10*time.Second), t0.Add(20*time.Second)
	rec := func(p int32, off int64, at time.Duration, value []byte) *kgo.Record {
		if value == nil {
			value, _ = proto.Marshal(&mlv1.Exchange{Id: fmt.Sprintf("%d@%d", p, off), CaptureTimeNs: t0.Add(at).UnixNano() + 123, Request: &mlv1.Request{Method: "GET", Url: "/"}})
		}
		return &kgo.Record{Topic: "t", Partition: p, Offset: off, Timestamp: t0.Add(at), Value: value}
	}
	// Partition 0 ends at its first record stamped 10s (WindowEndGrace) past
	// the window end; partition 1 at its limit; partition 2 has nothing.
	ranges := []Range{{Partition: 0, Start: 0, End: 7, Limit: 100}, {Partition: 1, Start: 0, End: 5, Limit: 5}, {Partition: 2, Start: 7, End: 7, Limit: 7}}
	poller := &fakePoller{fetches: make(chan kgo.Fetches, 4), paused: map[int32]int{}, resumed: map[int32]int{}}
	poller.fetches <- fetchOf("t", map[int32][]*kgo.Record{0: {
		rec(0, 0, 10*time.Second, nil),
		rec(0, 1, 9*time.Second, nil), // stamped before the window: skipped
		rec(0, 2, 12*time.Second, nil),
	}})
	poller.fetches <- fetchOf("t", map[int32][]*kgo.Record{
		0: {
			rec(0, 3, 15*time.Second, []byte{0xff, 0xff}), // in the window, does not decode
			rec(0, 4, 25*time.Second, nil),                // stamped after the window end: skipped
			rec(0, 5, 13*time.Second, nil),                // written late, captured in the window
			rec(0, 7, 30*time.Second, nil),                // past the end and its grace: partition 0 ends
			rec(0, 8, 14*time.Second, nil),                // after the end: never replayed
		},
		1: {
			rec(1, 0, 11*time.Second, nil),
			rec(1, 1, 14*time.Second, nil),
			// offsets 2 and 3 are gone (compaction, markers): the range still ends
			rec(1, 4, 19*time.Second, nil),
		},
	})
	src := NewKafkaSource(poller, "t", from, to, ranges, Buffer(2))
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type got struct {
		id  string
		at  time.Duration
		off int64
	}
	var out []got
	for {
		it, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		g := got{at: it.Capture.Sub(from), off: it.Offset}
		if it.Exchange != nil {
			g.id = it.Exchange.Id
			if want := it.Exchange.CaptureTimeNs; it.Capture.UnixNano() != want {
				t.Errorf("%s: capture %v, want the exchange's ns capture time", g.id, it.Capture)
			}
		}
		out = append(out, g)
	}
	want := []got{
		{"0@0", 0, 0},
		{"1@0", time.Second, 0},
		{"0@2", 2 * time.Second, 2},
		{"0@5", 3 * time.Second, 5},
		{"1@1", 4 * time.Second, 1},
		{"", 5 * time.Second, 3}, // undecodable: handed out without an exchange
		{"1@4", 9 * time.Second, 4},
	}
	if len(out) != len(want) {
		t.Fatalf("got %+v\nwant %+v", out, want)
	}
	for i := range want {
		w, g := want[i], out[i]
		if g.id != w.id || g.off != w.off || g.at < w.at || g.at > w.at+time.Microsecond {
			t.Fatalf("item %d = %+v, want %+v (all: %+v)", i, g, w, out)
		}
	}
	if done, total := src.Progress(); done != 12 || total != 12 {
		t.Fatalf("progress %d of %d, want 12 of 12", done, total)
	}
	poller.mu.Lock()
	defer poller.mu.Unlock()
	if poller.paused[0] == 0 || poller.paused[1] == 0 {
		t.Fatalf("partitions not paused when full or done: %v", poller.paused)
	}
}

func TestKafkaSourceEmptyWindow(t *testing.T) {
	poller := &fakePoller{fetches: make(chan kgo.Fetches), paused: map[int32]int{}, resumed: map[int32]int{}}
	src := NewKafkaSource(poller, "t", time.Unix(0, 0), time.Unix(10, 0), []Range{{Partition: 0, Start: 5, End: 5, Limit: 5}})
	defer src.Close()
	if _, err := src.Next(context.Background()); !errors.Is(err, io.EOF) {
		t.Fatalf("Next = %v, want io.EOF", err)
	}
}

// A range whose records Kafka no longer has (retention deleted them, or
// they were deleted) ends instead of waiting for ever: a fetch says the
// partition's log now starts past the offsets the source still expects.
// The records skipped are counted in errors{reason="gone"}; the records
// still there are replayed.
func TestKafkaSourceRangeDeletedUnderIt(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	rec := func(p int32, off int64) *kgo.Record {
		v, _ := proto.Marshal(&mlv1.Exchange{Id: fmt.Sprintf("%d@%d", p, off), Request: &mlv1.Request{Method: "GET", Url: "/"}})
		return &kgo.Record{Topic: "t", Partition: p, Offset: off, Timestamp: t0.Add(time.Duration(off) * time.Second), Value: v}
	}
	logStart := func(p int32, start int64, rs ...*kgo.Record) kgo.FetchPartition {
		return kgo.FetchPartition{Partition: p, LogStartOffset: start, HighWatermark: 10, Records: rs}
	}
	poller := &fakePoller{fetches: make(chan kgo.Fetches, 4), paused: map[int32]int{}, resumed: map[int32]int{}}
	// Partition 0: two records read, then the rest of its range is gone.
	// Partition 1: its first 6 records are gone before it is read.
	// Partition 2: a fetch without a log start (-1) and one before it: no change.
	poller.fetches <- kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{
		logStart(0, 0, rec(0, 0), rec(0, 1)),
		logStart(2, -1),
	}}}}}
	poller.fetches <- kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{
		logStart(0, 10),
		logStart(1, 6, rec(1, 6), rec(1, 7)),
		logStart(2, 0, rec(2, 0)),
	}}}}}
	ranges := []Range{{Partition: 0, Start: 0, End: 8, Limit: 8}, {Partition: 1, Start: 0, End: 8, Limit: 8}, {Partition: 2, Start: 0, End: 1, Limit: 1}}
	m := NewMetrics(nil)
	src := NewKafkaSource(poller, "t", t0, t0.Add(time.Hour), ranges, WithMetrics(m))
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids := drainIDs(ctx, t, src)
	if got, want := fmt.Sprint(ids), "[0@0 2@0 0@1 1@6 1@7]"; got != want {
		t.Fatalf("replayed %s, want %s", got, want)
	}
	if done, total := src.Progress(); done != total || total != 17 {
		t.Fatalf("progress %d of %d, want 17 of 17", done, total)
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues(ReasonGone)); got != 12 {
		t.Fatalf("errors{reason=gone} = %v, want 12 (6 of partition 0, 6 of partition 1)", got)
	}
}

// drainIDs reads src to its end and returns the ids of its exchanges in order.
func drainIDs(ctx context.Context, t *testing.T, src Source) []string {
	t.Helper()
	var ids []string
	for {
		it, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return ids
		}
		if err != nil {
			t.Fatalf("after %v: %v (a range whose records are gone must end)", ids, err)
		}
		ids = append(ids, it.Exchange.GetId())
	}
}
