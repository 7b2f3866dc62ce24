package replayer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// fakeClient plays the stage runtime and the Kafka client for a Live: it
// hands the polls pushed on its channel to the Live's handler through a
// stage.Tracker whose marks it records, and its Produce succeeds at once.
type fakeClient struct {
	polls   chan []*kgo.Record
	tracker *stage.Tracker

	mu       sync.Mutex
	produced []*kgo.Record
	marked   map[int32]int64 // partition -> next offset to consume
	changed  chan struct{}   // closed and replaced on every produce or mark
}

func newFakeClient() *fakeClient {
	f := &fakeClient{polls: make(chan []*kgo.Record, 16), marked: map[int32]int64{}, changed: make(chan struct{})}
	f.tracker = stage.NewTracker(func(r *kgo.Record) { f.MarkCommitRecords(r) }, nil)
	return f
}

// runLive starts l's workers and runs it on f until ctx ends; the channel
// gets the run's error.
func (f *fakeClient) runLive(ctx context.Context, l *Live) <-chan error {
	l.start(ctx, f)
	done := make(chan error, 1)
	go func() { done <- f.run(ctx, liveHandler{l}) }()
	return done
}

// run hands each poll's records to h in order, as the stage runtime does
// (stamped with the poll's end; undecodable ones are counted and done),
// until ctx ends; then it drains h.
func (f *fakeClient) run(ctx context.Context, h liveHandler) error {
	defer h.Drain()
	for {
		select {
		case recs := <-f.polls:
			polled := time.Now()
			for _, r := range recs {
				m := f.tracker.Track(r)
				m.Polled = polled
				ex := &mlv1.Exchange{}
				if err := proto.Unmarshal(r.Value, ex); err != nil {
					h.Undecodable(r)
					m.Done()
					continue
				}
				if err := h.Handle(ctx, m, ex); err != nil {
					m.Abandon()
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		case <-ctx.Done():
			return nil
		}
	}
}

func (f *fakeClient) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	f.mu.Lock()
	f.produced = append(f.produced, r)
	f.notifyLocked()
	f.mu.Unlock()
	promise(r, nil)
}

func (f *fakeClient) MarkCommitRecords(rs ...*kgo.Record) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range rs {
		if r.Offset+1 > f.marked[r.Partition] {
			f.marked[r.Partition] = r.Offset + 1
		}
	}
	f.notifyLocked()
}

func (f *fakeClient) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeClient) Flush(context.Context) error { return nil }

// waitFor blocks until cond holds (checked on every produce and mark), or
// fails the test after 10 s.
func (f *fakeClient) waitFor(t *testing.T, what string, cond func(f *fakeClient) bool) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		ok, ch := cond(f), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (f *fakeClient) mark(p int32) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.marked[p]
}

// rec is an exchange record at partition p, offset off, on connection key,
// for GET /<path>.
func rec(p int32, off int64, key, path string) *kgo.Record {
	v, _ := proto.Marshal(&mlv1.Exchange{Id: path, Request: &mlv1.Request{Method: "GET", Url: "/" + path}})
	return &kgo.Record{Topic: "mirror.clean.svc", Partition: p, Offset: off, Key: []byte(key), Value: v}
}

// gateServer is a target where requests whose path starts with "/slow" wait
// until released (or the request ends); it records the order requests arrive
// and how many were in flight at most.
type gateServer struct {
	*httptest.Server
	release chan struct{}

	busy, maxBusy atomic.Int64
	mu            sync.Mutex
	order         []string
	arrived       chan string
}

func newGateServer(t *testing.T) *gateServer {
	g := &gateServer{release: make(chan struct{}), arrived: make(chan string, 1000)}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := g.busy.Add(1)
		defer g.busy.Add(-1)
		for m := g.maxBusy.Load(); n > m && !g.maxBusy.CompareAndSwap(m, n); m = g.maxBusy.Load() {
		}
		g.mu.Lock()
		g.order = append(g.order, r.URL.Path)
		g.mu.Unlock()
		g.arrived <- r.URL.Path
		if strings.HasPrefix(r.URL.Path, "/slow") {
			select {
			case <-g.release:
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(g.Close)
	return g
}

// await returns once n requests arrived.
func (g *gateServer) await(t *testing.T, n int) []string {
	t.Helper()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case p := <-g.arrived:
			got = append(got, p)
		case <-timeout:
			t.Fatalf("%d of %d requests arrived: %v", len(got), n, got)
		}
	}
	return got
}

// startLive runs a live replayer of fc against target until the test ends (or
// stop is called); stop returns the run's error.
func startLive(t *testing.T, fc *fakeClient, target string, opts ...Option) (l *Live, stop func() error) {
	t.Helper()
	s, err := NewSender(target, 8)
	if err != nil {
		t.Fatal(err)
	}
	l = NewLive(s, "svc", opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := fc.runLive(ctx, l)
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return l, stop
}

func TestLiveOrder(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ordered     bool
		wantMaxBusy int64
	}{
		{"by connection: one at a time", true, 1},
		{"unordered: all slots", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateServer(t)
			fc := newFakeClient()
			startLive(t, fc, g.URL, Concurrency(4), Order(tc.ordered))
			var recs []*kgo.Record
			for i := range 4 {
				recs = append(recs, rec(0, int64(i), "one-connection", fmt.Sprintf("slow%d", i)))
			}
			fc.polls <- recs
			if tc.ordered {
				// One at a time: each arrives only after the previous is released.
				for i := range 4 {
					if got := g.await(t, 1); got[0] != fmt.Sprintf("/slow%d", i) {
						t.Fatalf("request %d is %s: the connection's order changed", i, got[0])
					}
					g.release <- struct{}{}
				}
			} else {
				g.await(t, 4) // all four in flight together
				close(g.release)
			}
			fc.waitFor(t, "4 shadow records and the offsets marked", func(f *fakeClient) bool { return len(f.produced) == 4 && f.marked[0] == 4 })
			if got := g.maxBusy.Load(); got != tc.wantMaxBusy {
				t.Fatalf("max requests in flight = %d, want %d", got, tc.wantMaxBusy)
			}
		})
	}
}

// A request that hangs holds back neither the other connections of its poll
// nor the next polls; the offsets of its partition are marked up to it and,
// once it is answered, through the end.
func TestLivePipelined(t *testing.T) {
	g := newGateServer(t)
	fc := newFakeClient()
	startLive(t, fc, g.URL, Concurrency(4))

	fc.polls <- []*kgo.Record{rec(0, 0, "a", "a0"), rec(0, 1, "b", "b0"), rec(0, 2, "c", "slow-c1"), rec(0, 3, "d", "d0"), rec(1, 0, "c", "c2")}
	fc.polls <- []*kgo.Record{rec(0, 4, "a", "a1"), rec(1, 1, "e", "e0"), rec(1, 2, "f", "f0")}
	got := g.await(t, 7)
	fc.waitFor(t, "the six quick requests published", func(f *fakeClient) bool { return len(f.produced) == 6 })
	if strings.Contains(fmt.Sprint(got), "/c2") {
		t.Fatalf("c2 was sent while c1 of the same connection was in flight: %v", got)
	}
	if m := fc.mark(0); m != 2 {
		t.Fatalf("partition 0 marked through offset %d, want 2 (c1 at offset 2 is in flight)", m)
	}
	if m := fc.mark(1); m != 0 {
		t.Fatalf("partition 1 marked through offset %d, want 0 (c2 at offset 0 waits for c1)", m)
	}

	close(g.release)
	if got := g.await(t, 1); got[0] != "/c2" {
		t.Fatalf("after c1: %v, want /c2", got)
	}
	fc.waitFor(t, "every offset marked", func(f *fakeClient) bool { return f.marked[0] == 5 && f.marked[1] == 3 })
}

// A partition taken away in a rebalance is handed over only after its request
// in flight finished and its offsets are marked.
func TestLiveHandOver(t *testing.T) {
	g := newGateServer(t)
	fc := newFakeClient()
	startLive(t, fc, g.URL, Concurrency(2))
	fc.polls <- []*kgo.Record{rec(0, 0, "a", "a0"), rec(0, 1, "b", "slow-b0"), rec(1, 0, "c", "c0")}
	g.await(t, 3)
	fc.waitFor(t, "a0 and c0 published", func(f *fakeClient) bool { return len(f.produced) == 2 })

	handedOver := make(chan struct{})
	go func() {
		fc.tracker.HandOver(context.Background(), map[string][]int32{"mirror.clean.svc": {0}})
		close(handedOver)
	}()
	// Partition 1 is done; partition 0 waits for b0.
	fc.tracker.HandOver(context.Background(), map[string][]int32{"mirror.clean.svc": {1}})
	select {
	case <-handedOver:
		t.Fatal("partition 0 handed over with slow-b0 in flight")
	default:
	}
	close(g.release)
	select {
	case <-handedOver:
	case <-time.After(10 * time.Second):
		t.Fatal("partition 0 never handed over")
	}
	if m := fc.mark(0); m != 2 {
		t.Fatalf("partition 0 handed over marked through %d, want 2", m)
	}
}

// Stopping mid-request leaves that record and every later one of its partition
// unmarked, so the group's next replayer sends them.
func TestLiveStopAbandons(t *testing.T) {
	g := newGateServer(t)
	fc := newFakeClient()
	_, stop := startLive(t, fc, g.URL, Concurrency(2))
	fc.polls <- []*kgo.Record{rec(0, 0, "a", "a0"), rec(0, 1, "b", "slow-b0"), rec(0, 2, "c", "c0")}
	g.await(t, 3)
	fc.waitFor(t, "a0 and c0 published", func(f *fakeClient) bool { return len(f.produced) == 2 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if m := fc.mark(0); m != 1 {
		t.Fatalf("marked through %d after the stop, want 1 (b0 was cut short)", m)
	}
	if n := fc.tracker.Open(); n != 0 {
		t.Fatalf("%d records still in flight after Run returned", n)
	}
}

// With SkipOlderThan, records captured longer ago are skipped (counted as
// dropped, too_old) and their offsets committed; recent ones are replayed.
func TestLiveSkipOlderThan(t *testing.T) {
	g := newGateServer(t)
	fc := newFakeClient()
	m := NewMetrics(nil)
	startLive(t, fc, g.URL, Concurrency(2), WithMetrics(m), SkipOlderThan(time.Minute))
	at := func(off int64, path string, age time.Duration) *kgo.Record {
		v, _ := proto.Marshal(&mlv1.Exchange{Id: path, CaptureTimeNs: time.Now().Add(-age).UnixNano(), Request: &mlv1.Request{Method: "GET", Url: "/" + path}})
		return &kgo.Record{Topic: "mirror.clean.svc", Partition: 0, Offset: off, Key: []byte(path), Value: v}
	}
	fc.polls <- []*kgo.Record{at(0, "old0", time.Hour), at(1, "new1", time.Second), at(2, "old2", 2*time.Minute), at(3, "new3", 0)}
	fc.waitFor(t, "every offset marked", func(f *fakeClient) bool { return f.marked[0] == 4 })
	if got := fmt.Sprint(g.await(t, 2)); got != "[/new1 /new3]" && got != "[/new3 /new1]" {
		t.Fatalf("sent %s, want the two recent records", got)
	}
	if n := testutil.ToFloat64(m.Dropped.WithLabelValues(DropTooOld)); n != 2 {
		t.Fatalf("dropped{too_old} = %v, want 2", n)
	}
	select {
	case p := <-g.arrived:
		t.Fatalf("an old record was sent: %s", p)
	default:
	}
}
