package replayer

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// manualClock is a Clock that moves only when the test says so.
type manualClock struct {
	mu     sync.Mutex
	cond   *sync.Cond
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at time.Time
	ch chan time.Time
}

func newManualClock(t0 time.Time) *manualClock {
	c := &manualClock{now: t0}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Timer(t time.Time) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	tm := &manualTimer{at: t, ch: make(chan time.Time, 1)}
	if !t.After(c.now) {
		tm.ch <- c.now
		return tm.ch, func() {}
	}
	c.timers = append(c.timers, tm)
	c.cond.Broadcast()
	return tm.ch, func() { c.stop(tm) }
}

func (c *manualClock) stop(tm *manualTimer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.timers {
		if x == tm {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return
		}
	}
}

// fireNext waits until a timer is pending, moves the clock to the earliest
// one and fires it. It returns the new time.
func (c *manualClock) fireNext() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.timers) == 0 {
		c.cond.Wait()
	}
	sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
	tm := c.timers[0]
	c.timers = c.timers[1:]
	if tm.at.After(c.now) {
		c.now = tm.at
	}
	tm.ch <- c.now
	return c.now
}

// send is one request as the fake target got it.
type send struct {
	id string
	at time.Time
}

// fakeTarget records sends at the clock's time; requests whose id is in hold
// block until released.
type fakeTarget struct {
	clock Clock
	sends chan send
	mu    sync.Mutex
	hold  map[string]chan struct{}
}

func newFakeTarget(c Clock, hold ...string) *fakeTarget {
	f := &fakeTarget{clock: c, sends: make(chan send, 1000), hold: map[string]chan struct{}{}}
	for _, id := range hold {
		f.hold[id] = make(chan struct{})
	}
	return f
}

func (f *fakeTarget) Send(ctx context.Context, ex *mlv1.Exchange) (*mlv1.Response, error) {
	f.sends <- send{id: ex.GetId(), at: f.clock.Now()}
	f.mu.Lock()
	h := f.hold[ex.GetId()]
	f.mu.Unlock()
	if h != nil {
		select {
		case <-h:
		case <-ctx.Done():
			return &mlv1.Response{Error: ctx.Err().Error()}, nil
		}
	}
	return &mlv1.Response{Status: 200, LatencyNs: int64(time.Millisecond)}, nil
}

func (f *fakeTarget) Replay(ctx context.Context, ex *mlv1.Exchange) (Outcome, error) {
	resp, err := f.Send(ctx, ex)
	failure := ""
	if resp != nil && resp.Error != "" {
		failure = ReasonOther
	}
	return Outcome{Target: f.Target().String(), Response: resp, Failure: failure}, err
}

func (f *fakeTarget) release(id string) { close(f.hold[id]) }

func (f *fakeTarget) Target() *url.URL { return &url.URL{Scheme: "http", Host: "shadow.test"} }

// items returns n records of one partition captured every gap from t0.
func items(t0 time.Time, n int, gap time.Duration) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{Topic: "t", Partition: 0, Offset: int64(i), Capture: t0.Add(time.Duration(i) * gap),
			Exchange: &mlv1.Exchange{Id: fmt.Sprint(i), Request: &mlv1.Request{Method: "GET", Url: "/"}}}
	}
	return out
}

func runWindow(t *testing.T, w *Window) (<-chan *Summary, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Summary, 1)
	go func() {
		sum, err := w.Run(ctx)
		if err != nil && ctx.Err() == nil {
			t.Errorf("Run: %v", err)
		}
		done <- sum
	}()
	return done, cancel
}

func recv(t *testing.T, f *fakeTarget) send {
	t.Helper()
	select {
	case s := <-f.sends:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no send")
		return send{}
	}
}

// Records keep their captured spacing, compressed by the speed, on the
// injected clock: the scheduler math end to end without real time.
func TestWindowKeepsCapturedTimingAtSpeed(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	captured := []time.Duration{0, 1 * time.Second, 1500 * time.Millisecond, 4 * time.Second, 10 * time.Second}
	var its []Item
	for i, d := range captured {
		its = append(its, Item{Partition: 0, Offset: int64(i), Capture: t0.Add(d), Exchange: &mlv1.Exchange{Id: fmt.Sprint(i), Request: &mlv1.Request{Method: "GET", Url: "/"}}})
	}
	clk := newManualClock(t0.Add(time.Hour))
	start := clk.Now()
	target := newFakeTarget(clk)
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(2), t0, 1, 0), target, WithClock(clk), StartAt(start), Concurrency(4))
	done, cancel := runWindow(t, w)
	defer cancel()

	if s := recv(t, target); s.id != "0" || !s.at.Equal(start) {
		t.Fatalf("first send %+v, want id 0 at the job start %s", s, start)
	}
	for i := 1; i < len(captured); i++ {
		clk.fireNext()
		s := recv(t, target)
		want := start.Add(captured[i] / 2)
		if s.id != fmt.Sprint(i) || !s.at.Equal(want) {
			t.Fatalf("send %d: %+v, want at %s", i, s, want)
		}
	}
	sum := <-done
	if sum.Sent != 5 || sum.Dropped != 0 || sum.Late != 0 || sum.ScheduleLag.Max > 0 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.PlannedSpan != 5 || sum.SendSpan != 5 || sum.AskedRate != 0.8 || sum.AchievedRate != 0.8 {
		t.Fatalf("spans/rates: planned %v sent %v asked %v achieved %v; want 5s and 0.8/s", sum.PlannedSpan, sum.SendSpan, sum.AskedRate, sum.AchievedRate)
	}
}

// A slow target does not move the schedule: sends go out at their planned
// times while earlier requests are still running (open model); only when all
// request slots are taken does a record wait, and it is dropped once --max-lag
// late. The records after it keep their own planned times.
func TestWindowSlowTargetDoesNotShiftSchedule(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clk := newManualClock(t0)
	// 100ms apart; requests 0 and 1 hang until released; 2 slots in flight.
	target := newFakeTarget(clk, "0", "1")
	src := NewSliceSource(items(t0, 8, 100*time.Millisecond))
	w := NewWindow(src, NewSchedule(Speed(1), t0, 1, 0), target, WithClock(clk), StartAt(t0), Concurrency(2), MaxLag(150*time.Millisecond), MaxRate(0))
	done, cancel := runWindow(t, w)
	defer cancel()

	expect := func(id string, at time.Duration) {
		t.Helper()
		s := recv(t, target)
		if s.id != id || !s.at.Equal(t0.Add(at)) {
			t.Fatalf("got send %s at +%s, want %s at +%s", s.id, s.at.Sub(t0), id, at)
		}
	}
	expect("0", 0)
	clk.fireNext()
	expect("1", 100*time.Millisecond) // not held back by the hanging request 0
	// Record 2 is due at +200ms, but both slots are taken: it waits until
	// +350ms (max lag) and is dropped.
	if now := clk.fireNext(); !now.Equal(t0.Add(200 * time.Millisecond)) {
		t.Fatalf("clock %s", now.Sub(t0))
	}
	if now := clk.fireNext(); !now.Equal(t0.Add(350 * time.Millisecond)) {
		t.Fatalf("drop deadline of record 2 at +%s, want +350ms", now.Sub(t0))
	}
	// Record 3 (+300ms) is already 50ms late and still has no slot: once
	// request 0 completes it goes out at once, 50ms late, not later.
	target.release("0")
	expect("3", 350*time.Millisecond)
	target.release("1")
	// The rest keep their planned times.
	for i := 4; i < 8; i++ {
		clk.fireNext()
		expect(fmt.Sprint(i), time.Duration(i)*100*time.Millisecond)
	}
	sum := <-done
	if sum.Sent != 7 || sum.Dropped != 1 || sum.Late != 1 || sum.Status["2xx"] != 7 {
		t.Fatalf("summary: sent %d dropped %d late %d status %v; want 7, 1, 1", sum.Sent, sum.Dropped, sum.Late, sum.Status)
	}
	if sum.ScheduleLag.Max < 0.049 || sum.ScheduleLag.Max > 0.051 || sum.ScheduleLag.P50 != 0 {
		t.Fatalf("schedule lag %+v; want max 50ms, median 0", sum.ScheduleLag)
	}
}

// --max-rate spaces sends whatever the profile asks; the delay is lag.
func TestWindowMaxRateCap(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clk := newManualClock(t0)
	target := newFakeTarget(clk)
	// 5 records captured at the same instant: the speed cannot spread them.
	its := items(t0, 5, 0)
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), target, WithClock(clk), StartAt(t0), MaxRate(100), MaxLag(time.Second))
	done, cancel := runWindow(t, w)
	defer cancel()
	for i := 0; i < 5; i++ {
		if i > 0 {
			clk.fireNext()
		}
		s := recv(t, target)
		if want := t0.Add(time.Duration(i) * 10 * time.Millisecond); !s.at.Equal(want) {
			t.Fatalf("send %d at +%s, want +%s", i, s.at.Sub(t0), want.Sub(t0))
		}
	}
	sum := <-done
	if sum.ScheduleLag.Max < 0.039 || sum.ScheduleLag.Max > 0.041 || sum.Dropped != 0 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestWindowDryRunUsesVirtualTime(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	its := items(t0, 1000, time.Second) // 999s of capture
	clk := NewVirtualClock(t0)
	w := NewWindow(NewSliceSource(its), NewSchedule(Rate(100), t0, 1, 0), nil, WithClock(clk), DryRun(true))
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !sum.DryRun || sum.Sent != 1000 || sum.Scheduled != 1000 || sum.Offsets != 1000 {
		t.Fatalf("summary %+v", sum)
	}
	if sum.PlannedSpan != 9.99 || sum.AskedRate < 99.999 || sum.AskedRate > 100.001 || sum.ScheduleLag.Max > 0 {
		t.Fatalf("planned span %v asked %v lag %+v", sum.PlannedSpan, sum.AskedRate, sum.ScheduleLag)
	}
	if got := clk.Now().Sub(t0); got != 9990*time.Millisecond {
		t.Fatalf("virtual clock moved %s, want 9.99s", got)
	}
}

func TestWindowCountsUnreplayableRecords(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	its := items(t0, 4, 0)
	its[1].Exchange = nil
	its[2].Exchange.Request.BodyTruncated = true
	its[3].Exchange.Request = nil
	clk := NewVirtualClock(t0)
	target := newFakeTarget(clk)
	var progress [][2]int64
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), &buildingTarget{target}, WithClock(clk), OnProgress(func(d, n int64) { progress = append(progress, [2]int64{d, n}) }))
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 1 || sum.Status["2xx"] != 1 || sum.Errors["decode"] != 1 || sum.Errors["truncated"] != 1 || sum.Errors["build"] != 1 {
		t.Fatalf("summary: sent %d status %v errors %v", sum.Sent, sum.Status, sum.Errors)
	}
	if last := progress[len(progress)-1]; last != [2]int64{4, 4} {
		t.Fatalf("progress ends at %v, want 4 of 4", last)
	}
}

// buildingTarget fails like Sender for a record without a request.
type buildingTarget struct{ *fakeTarget }

func (b *buildingTarget) Replay(ctx context.Context, ex *mlv1.Exchange) (Outcome, error) {
	if ex.GetRequest() == nil {
		return Outcome{}, fmt.Errorf("exchange %s: no request", ex.GetId())
	}
	return b.fakeTarget.Replay(ctx, ex)
}

// --max-rate spaces the slots from the job start, not from the previous
// send: a record sent late (here the first, 25ms after its time) does not
// make every record after it as late; the burst catches up and the next
// records go out at their planned times.
func TestWindowMaxRateDoesNotCarryLateness(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clk := newManualClock(t0.Add(25 * time.Millisecond))
	target := newFakeTarget(clk)
	// 6 records 10ms apart at exactly the cap (100/s).
	its := items(t0, 6, 10*time.Millisecond)
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), target, WithClock(clk), StartAt(t0), MaxRate(100), MaxLag(time.Second))
	done, cancel := runWindow(t, w)
	defer cancel()
	// Records 0..2 (due +0, +10, +20ms) are due when the replay starts at
	// +25ms: they go out at once (in any order); 3..5 at their own times.
	got := map[string]time.Duration{}
	for range 3 {
		s := recv(t, target)
		got[s.id] = s.at.Sub(t0)
	}
	for i := 3; i < 6; i++ {
		clk.fireNext()
		s := recv(t, target)
		got[s.id] = s.at.Sub(t0)
	}
	for i, ms := range []time.Duration{25, 25, 25, 30, 40, 50} {
		if at, ok := got[fmt.Sprint(i)]; !ok || at != ms*time.Millisecond {
			t.Fatalf("sends %v: record %d at +%s, want +%dms", got, i, at, ms)
		}
	}
	sum := <-done
	if sum.ScheduleLag.Max < 0.024 || sum.ScheduleLag.Max > 0.026 || sum.ScheduleLag.P50 > 0.006 || sum.Dropped != 0 {
		t.Fatalf("schedule lag %+v dropped %d; want max 25ms and the later records on time", sum.ScheduleLag, sum.Dropped)
	}
}

// goneSource is a SliceSource whose share lost some records to retention.
type goneSource struct {
	*SliceSource
	gone int64
}

func (g goneSource) Gone() int64 { return g.gone }

// Records Kafka no longer had (KafkaSource.Gone) are in the summary's errors
// as "gone": not replayed, and not failing the job (they never reached the
// target).
func TestWindowSummaryCountsGoneRecords(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clk := NewVirtualClock(t0)
	w := NewWindow(goneSource{NewSliceSource(items(t0, 3, time.Second)), 7}, NewSchedule(Rate(100), t0, 1, 0), nil, WithClock(clk), DryRun(true))
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Errors[ReasonGone] != 7 || sum.Sent != 3 || sum.Failed {
		t.Fatalf("summary errors %v sent %d failed %v (%s); want gone 7, 3 sent, not failed", sum.Errors, sum.Sent, sum.Failed, sum.Failure)
	}
}
