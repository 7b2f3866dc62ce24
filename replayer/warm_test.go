package replayer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer/route"
)

// burstServer answers a request only once want requests are in flight
// together (or after a generous timeout): a burst needs want connections.
type burstServer struct {
	*httptest.Server
	want int

	mu       sync.Mutex
	inFlight int
	all      chan struct{}
	accepted int
}

func newBurstServer(t *testing.T, want int) *burstServer {
	t.Helper()
	b := &burstServer{want: want, all: make(chan struct{})}
	b.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.inFlight++
		if b.inFlight == b.want {
			close(b.all)
		}
		b.mu.Unlock()
		select {
		case <-b.all:
		case <-time.After(10 * time.Second):
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.mu.Lock()
			b.accepted++
			b.mu.Unlock()
		}
	}
	b.Start()
	t.Cleanup(b.Close)
	return b
}

func (b *burstServer) acceptedConns() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.accepted
}

func transportDials(s *Sender) int {
	s.conns.mu.Lock()
	defer s.conns.mu.Unlock()
	return s.conns.dialed
}

// Warm opens the connections ahead; a burst of as many requests then dials
// none, and warming again dials only what is missing.
func TestSenderWarm(t *testing.T) {
	srv := newBurstServer(t, 5)
	s, err := NewSender(srv.URL, 8)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, err := s.Warm(ctx, 5); err != nil || n != 5 || s.Open() != 5 {
		t.Fatalf("Warm(5) = %d, %v; open %d; want 5 dialled and open", n, err, s.Open())
	}
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			resp, err := s.Send(ctx, &mlv1.Exchange{Id: fmt.Sprint(i), Request: &mlv1.Request{Method: "GET", Url: "/"}})
			if err != nil || resp.Status != http.StatusNoContent {
				t.Errorf("send %d: %v %+v", i, err, resp)
			}
		})
	}
	wg.Wait()
	if d := transportDials(s); d != 0 {
		t.Fatalf("the burst dialled %d connections; want 0 (all warmed)", d)
	}
	if got := srv.acceptedConns(); got != 5 {
		t.Fatalf("server accepted %d connections, want 5", got)
	}
	if n, err := s.Warm(ctx, 6); err != nil || n != 1 || s.Open() != 6 {
		t.Fatalf("Warm(6) after 5 = %d, %v; open %d; want 1 dialled, 6 open", n, err, s.Open())
	}
}

// Warm dials only the target, as the transport does.
func TestSenderWarmDialsOnlyTarget(t *testing.T) {
	s, err := NewSender("http://127.0.0.1:1", 2) // nothing listens on port 1
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Warm(context.Background(), 2)
	if err == nil || n != 0 || s.Open() != 0 {
		t.Fatalf("Warm to a closed port = %d, %v, open %d; want an error, nothing open", n, err, s.Open())
	}
}

// A window whose first burst comes after an idle wait opens the burst's
// connections before it is due: the burst (8 requests that the target holds
// until all 8 are in flight) dials none.
func TestWindowWarmsConnectionsBeforeBurst(t *testing.T) {
	const n = 8
	srv := newBurstServer(t, n)
	s, err := NewSender(srv.URL, n)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	// The window starts 5s before the burst; at 5x the burst is due 1s
	// after the job start, its records 20µs apart. The warm-up starts
	// 900ms before (a margin for a loaded machine: it is skipped when the
	// scheduler wakes after the burst is due).
	its := items(t0.Add(5*time.Second), n, 100*time.Microsecond)
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(5), t0, 1, 0), s, Concurrency(n), MaxLag(time.Minute))
	w.warmAhead = 900 * time.Millisecond
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != n || sum.Status["2xx"] != n {
		t.Fatalf("sent %d, status %v; want %d 2xx", sum.Sent, sum.Status, n)
	}
	if d := transportDials(s); d != 0 {
		t.Fatalf("the burst dialled %d connections while due; want 0 (opened before it)", d)
	}
	if got := srv.acceptedConns(); got != n {
		t.Fatalf("server accepted %d connections, want %d", got, n)
	}
}

// A window that starts at its first record (the job start as the command
// sets it: no --start-at) still opens the first burst's connections: the
// job starts WarmAhead after the first record is read.
func TestWindowWarmsFirstBurstAtWindowStart(t *testing.T) {
	const n = 8
	srv := newBurstServer(t, n)
	s, err := NewSender(srv.URL, n)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	its := items(t0, n, 100*time.Microsecond)
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(10), t0, 1, 0), s, Concurrency(n), MaxLag(time.Minute))
	w.warmAhead = 900 * time.Millisecond // a margin for a loaded machine
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != n || sum.Status["2xx"] != n {
		t.Fatalf("sent %d, status %v; want %d 2xx", sum.Sent, sum.Status, n)
	}
	if d := transportDials(s); d != 0 {
		t.Fatalf("the first burst dialled %d connections while due; want 0", d)
	}
	if sum.StartWait < 0.8 || sum.IdleStart != 0 {
		t.Fatalf("start wait %vs, idle start %vs; want the warm-up as start wait, no idle start", sum.StartWait, sum.IdleStart)
	}
}

// A Router warms its default target and each route target of its own.
func TestRouterWarm(t *testing.T) {
	a, b := newBurstServer(t, 1), newBurstServer(t, 1)
	rt := newTestRouter(t, a.URL, Routing{Routes: []RouteConfig{
		{Name: "admin", Match: route.Match{Paths: []string{"/admin/**"}}, Action: ActionSkip},
		{Name: "v2", Match: route.Match{Paths: []string{"/v2/**"}}, Target: b.URL},
		{Name: "v3", Match: route.Match{Paths: []string{"/v3/**"}}, Target: b.URL},
	}})
	n, err := rt.Warm(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	// a: 2; b: 2 per route sender (routes may share a target, not a Sender).
	for _, e := range append([]*routeEntry{rt.def}, rt.routes...) {
		if e.to != nil && e.to.sender != nil && e.to.sender.Open() != 2 {
			t.Fatalf("route %q: %d connections open, want 2", e.name, e.to.sender.Open())
		}
	}
	opened := a.waitAccepted(t, 2) + b.waitAccepted(t, n-2)
	if n < 4 || opened != n {
		t.Fatalf("Warm dialled %d, servers accepted %d; want every target warmed", n, opened)
	}
}

// waitAccepted waits (bounded) until the server accepted want connections
// and returns how many it accepted.
func (b *burstServer) waitAccepted(t *testing.T, want int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for b.acceptedConns() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return b.acceptedConns()
}

// slackTestClock is a clock with slack whose timers fire at once, moving the
// clock to their time; it records the length of every timer.
type slackTestClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []time.Duration
}

func (c *slackTestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *slackTestClock) Timer(t time.Time) (<-chan time.Time, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, t.Sub(c.now))
	c.now = t
	ch := make(chan time.Time, 1)
	ch <- t
	return ch, func() {}
}

func (c *slackTestClock) slack() bool { return true }

// A long wait (a window starting an hour before its first record, at 10x:
// 6 minutes) is never one long timer, whose wake-up the kernel may delay by
// 0.1% of its length (up to 100ms): each timer is at most half of what is
// left, and the last one, ending at the due time, at most MaxTimerWait.
func TestSleepUntilCutsLongWaits(t *testing.T) {
	for _, wait := range []time.Duration{6 * time.Minute, 3 * time.Second, 150 * time.Millisecond, MaxTimerWait, 300 * time.Microsecond} {
		t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
		c := &slackTestClock{now: t0}
		if err := sleepUntil(context.Background(), c, t0.Add(wait)); err != nil {
			t.Fatal(err)
		}
		if !c.Now().Equal(t0.Add(wait)) {
			t.Fatalf("wait %s ended at +%s", wait, c.Now().Sub(t0))
		}
		left := wait
		for i, d := range c.timers {
			last := i == len(c.timers)-1
			if (last && d > MaxTimerWait) || (!last && d > left/2+1) {
				t.Fatalf("wait %s: timer %d of %s with %s left (timers %v); want at most half of what is left, the last at most %s", wait, i, d, left, c.timers, MaxTimerWait)
			}
			left -= d
		}
		if wait >= time.Second && len(c.timers) > 20 {
			t.Fatalf("wait %s took %d timers", wait, len(c.timers))
		}
	}
}
