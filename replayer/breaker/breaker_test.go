package breaker

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a test clock moved by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTest returns a breaker of target "t" on clk, its metrics and its log.
func newTest(t *testing.T, c Config, clk *clock) (*Breaker, *Metrics, *syncBuffer) {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	log := &syncBuffer{}
	b := New("t", c, WithClock(clk.now), WithMetrics(m),
		WithLogger(hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Info})))
	return b, m, log
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// send lets one request go through b and reports its outcome at once.
func send(t *testing.T, b *Breaker, failed bool, latency time.Duration) {
	t.Helper()
	done, err := b.Allow()
	if err != nil {
		t.Fatalf("Allow in state %s: %v", b.State(), err)
	}
	done(failed, latency)
}

func wantState(t *testing.T, b *Breaker, want State) {
	t.Helper()
	if got := b.State(); got != want {
		t.Fatalf("state %s, want %s", got, want)
	}
}

// The breaker opens on the window's error rate or p99, exactly at the
// threshold, and never before the window holds MinRequests requests.
func TestTrips(t *testing.T) {
	const fast, slow = 10 * time.Millisecond, 300 * time.Millisecond
	for _, tc := range []struct {
		name          string
		cfg           Config
		ok, fail, lag int // requests: fast successes, fast failures, slow successes
		want          State
	}{
		{"error rate at the threshold", Config{ErrorRate: 0.5, MinRequests: 10}, 5, 5, 0, Open},
		{"error rate below", Config{ErrorRate: 0.5, MinRequests: 10}, 6, 4, 0, Closed},
		{"all failed but fewer than min_requests", Config{ErrorRate: 0.5, MinRequests: 10}, 0, 9, 0, Closed},
		{"error rate not watched", Config{P99: time.Second, MinRequests: 10}, 0, 20, 0, Closed},
		{"p99 above: 2 of 100 slower", Config{P99: 100 * time.Millisecond, MinRequests: 100}, 98, 0, 2, Open},
		{"p99 at most: 1 of 100 slower", Config{P99: 100 * time.Millisecond, MinRequests: 100}, 99, 0, 1, Closed},
		{"p99 above but fewer than min_requests", Config{P99: 100 * time.Millisecond, MinRequests: 20}, 0, 0, 19, Closed},
		{"p99 not watched", Config{ErrorRate: 0.9, MinRequests: 10}, 0, 0, 20, Closed},
		{"default min_requests", Config{ErrorRate: 0.1}, 0, DefaultMinRequests - 1, 0, Closed},
		{"default min_requests reached", Config{ErrorRate: 0.1}, 0, DefaultMinRequests, 0, Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _, _ := newTest(t, tc.cfg, newClock())
			for range tc.ok {
				send(t, b, false, fast)
			}
			for range tc.lag {
				send(t, b, false, slow)
			}
			for range tc.fail {
				wantState(t, b, Closed)
				send(t, b, true, fast)
			}
			wantState(t, b, tc.want)
			if _, err := b.Allow(); (err != nil) != (tc.want == Open) || err != nil && !errors.Is(err, ErrOpen) {
				t.Fatalf("Allow in state %s: %v", tc.want, err)
			}
		})
	}
}

// Open, the breaker refuses every request for OpenFor, then lets Probes go
// at a time; Probes successes in a row close it with an empty window.
func TestOpenHalfOpenClosed(t *testing.T) {
	clk := newClock()
	b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 4, OpenFor: 5 * time.Second, Probes: 3}, clk)
	for range 4 {
		send(t, b, true, time.Millisecond)
	}
	wantState(t, b, Open)
	clk.advance(5*time.Second - time.Nanosecond)
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("Allow 1ns before open_for ends: %v, want ErrOpen", err)
	}
	wantState(t, b, Open)
	clk.advance(time.Nanosecond)
	wantState(t, b, HalfOpen)

	var probes []func(bool, time.Duration)
	for range 3 {
		done, err := b.Allow()
		if err != nil {
			t.Fatalf("probe %d: %v", len(probes)+1, err)
		}
		probes = append(probes, done)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("a 4th request with 3 probes in flight: %v, want ErrOpen", err)
	}
	probes[0](false, time.Millisecond)
	wantState(t, b, HalfOpen)
	done, err := b.Allow() // the slot it freed
	if err != nil {
		t.Fatalf("probe after one succeeded: %v", err)
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatalf("a request with 3 probes in flight: %v, want ErrOpen", err)
	}
	probes[1](false, time.Millisecond)
	probes[2](false, time.Millisecond)
	wantState(t, b, Closed)
	done(true, time.Millisecond) // a probe of the half-open state: not counted now
	// The window was cleared: 3 failures of 4 would trip it, these do not.
	for range 3 {
		send(t, b, true, time.Millisecond)
	}
	wantState(t, b, Closed)
	send(t, b, true, time.Millisecond)
	wantState(t, b, Open)
}

// Half-open, one failed probe, or one slower than P99, opens the breaker
// again for OpenFor, whatever the other probes do.
func TestProbeFailureReopens(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failed  bool
		latency time.Duration
	}{
		{"failed", true, time.Millisecond},
		{"slower than p99", false, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			b, _, log := newTest(t, Config{ErrorRate: 0.5, P99: time.Second, MinRequests: 2, OpenFor: time.Second, Probes: 2}, clk)
			send(t, b, true, time.Millisecond)
			send(t, b, true, time.Millisecond)
			clk.advance(time.Second)
			wantState(t, b, HalfOpen)
			first, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			second, err := b.Allow()
			if err != nil {
				t.Fatal(err)
			}
			first(tc.failed, tc.latency)
			wantState(t, b, Open)
			second(false, time.Millisecond) // too late: counted for nothing
			wantState(t, b, Open)
			clk.advance(time.Second - time.Nanosecond)
			wantState(t, b, Open)
			clk.advance(time.Nanosecond)
			wantState(t, b, HalfOpen)
			if !strings.Contains(log.String(), "reason=\"probe") {
				t.Fatalf("no log line of the probe that reopened it:\n%s", log)
			}
		})
	}
}

// The window slides: failures older than Window are forgotten, younger
// ones still count.
func TestWindowSlides(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  State
	}{
		{"old failures forgotten", 10 * time.Second, Closed},
		{"recent failures kept", 5 * time.Second, Open},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 10, Window: 10 * time.Second}, clk)
			for range 9 {
				send(t, b, true, time.Millisecond)
			}
			clk.advance(tc.after)
			for range 10 {
				if b.State() == Open {
					break
				}
				send(t, b, false, time.Millisecond)
			}
			wantState(t, b, tc.want)
		})
	}
	t.Run("a clock far ahead empties the window", func(t *testing.T) {
		clk := newClock()
		b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 2}, clk)
		send(t, b, true, time.Millisecond)
		clk.advance(24 * time.Hour)
		send(t, b, true, time.Millisecond)
		wantState(t, b, Closed)
		send(t, b, true, time.Millisecond)
		wantState(t, b, Open)
	})
}

// A request let go while closed that ends after the breaker opened counts
// neither in the window nor as a probe.
func TestStaleOutcomeIgnored(t *testing.T) {
	clk := newClock()
	b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 2, OpenFor: time.Second, Probes: 1}, clk)
	late, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	send(t, b, true, time.Millisecond)
	send(t, b, true, time.Millisecond)
	wantState(t, b, Open)
	clk.advance(time.Second)
	wantState(t, b, HalfOpen)
	late(true, time.Millisecond)
	wantState(t, b, HalfOpen)
	send(t, b, false, time.Millisecond) // the one probe
	wantState(t, b, Closed)
}

// Wait returns as soon as a request may go: at once when closed, when
// open_for ends (by its own timer), when a probe slot frees; and with the
// context's error when it ends first.
func TestWait(t *testing.T) {
	wait := func(b *Breaker, ctx context.Context) <-chan error {
		ch := make(chan error, 1)
		go func() { ch <- b.Wait(ctx) }()
		return ch
	}
	expect := func(t *testing.T, ch <-chan error, what string) {
		t.Helper()
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("Wait %s: %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Wait did not return %s", what)
		}
	}
	blocked := func(t *testing.T, ch <-chan error, what string) {
		t.Helper()
		select {
		case err := <-ch:
			t.Fatalf("Wait returned %v %s", err, what)
		case <-time.After(50 * time.Millisecond):
		}
	}

	t.Run("closed", func(t *testing.T) {
		b, _, _ := newTest(t, Config{ErrorRate: 0.5}, newClock())
		expect(t, wait(b, t.Context()), "while closed")
	})
	t.Run("woken by the change to half-open", func(t *testing.T) {
		clk := newClock()
		b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 1, OpenFor: time.Hour, Probes: 1}, clk)
		send(t, b, true, time.Millisecond)
		ch := wait(b, t.Context())
		blocked(t, ch, "while open")
		clk.advance(time.Hour)
		wantState(t, b, HalfOpen) // the change Wait wakes on
		expect(t, ch, "once half-open")
	})
	t.Run("its own timer at the end of open_for", func(t *testing.T) {
		m := NewMetrics(nil)
		b := New("t", Config{ErrorRate: 0.5, MinRequests: 1, OpenFor: 30 * time.Millisecond}, WithMetrics(m))
		send(t, b, true, time.Millisecond)
		if b.State() != Open {
			t.Fatalf("state %s, want open", b.State())
		}
		expect(t, wait(b, t.Context()), "after open_for")
		if b.State() != HalfOpen {
			t.Fatalf("state %s after Wait, want half-open", b.State())
		}
	})
	t.Run("half-open when open_for ends, with no request", func(t *testing.T) {
		m := NewMetrics(nil)
		b := New("t", Config{ErrorRate: 0.5, MinRequests: 1, OpenFor: 30 * time.Millisecond}, WithMetrics(m))
		send(t, b, true, time.Millisecond)
		deadline := time.Now().Add(10 * time.Second)
		for testutil.ToFloat64(m.State.WithLabelValues("t")) != float64(HalfOpen) {
			if time.Now().After(deadline) {
				t.Fatalf("state metric %v 10s after open_for (30ms) ended, want 1 (half-open)", testutil.ToFloat64(m.State.WithLabelValues("t")))
			}
			time.Sleep(5 * time.Millisecond) // polling the metric, bounded
		}
	})
	t.Run("a probe slot freed", func(t *testing.T) {
		clk := newClock()
		b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 1, OpenFor: time.Second, Probes: 2}, clk)
		send(t, b, true, time.Millisecond)
		clk.advance(time.Second)
		p1, err1 := b.Allow()
		_, err2 := b.Allow()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		ch := wait(b, t.Context())
		blocked(t, ch, "with every probe in flight")
		p1(false, time.Millisecond)
		expect(t, ch, "once a probe succeeded")
	})
	t.Run("context ends", func(t *testing.T) {
		b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 1, OpenFor: time.Hour}, newClock())
		send(t, b, true, time.Millisecond)
		ctx, cancel := context.WithCancel(t.Context())
		ch := wait(b, ctx)
		cancel()
		select {
		case err := <-ch:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Wait after cancel: %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Wait did not return when its context ended")
		}
	})
}

// Acquire, what when_open pause does, holds requests back while open and
// lets exactly Probes of them go half-open.
func TestAcquire(t *testing.T) {
	clk := newClock()
	b, _, _ := newTest(t, Config{ErrorRate: 0.5, MinRequests: 1, OpenFor: time.Minute, Probes: 2, WhenOpen: WhenOpenPause}, clk)
	if !b.Pause() {
		t.Fatal("Pause() false with when_open: pause")
	}
	send(t, b, true, time.Millisecond)
	got := make(chan func(bool, time.Duration), 5)
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if done, err := b.Acquire(t.Context()); err == nil {
				got <- done
			}
		})
	}
	select {
	case <-got:
		t.Fatal("a request let go while open")
	case <-time.After(50 * time.Millisecond):
	}
	clk.advance(time.Minute)
	wantState(t, b, HalfOpen)
	probes := []func(bool, time.Duration){<-got, <-got}
	select {
	case <-got:
		t.Fatal("a 3rd request let go half-open with 2 probes in flight")
	case <-time.After(50 * time.Millisecond):
	}
	for _, p := range probes {
		p(false, time.Millisecond)
	}
	for range 3 {
		select {
		case done := <-got:
			done(false, time.Millisecond)
		case <-time.After(10 * time.Second):
			t.Fatal("requests held back after the breaker closed")
		}
	}
	wg.Wait()
	wantState(t, b, Closed)
}

// Every state change sets the state gauge, counts a transition and logs a
// line with the target, both states and why, with the numbers.
func TestMetricsAndLog(t *testing.T) {
	clk := newClock()
	b, m, log := newTest(t, Config{ErrorRate: 0.5, P99: 100 * time.Millisecond, MinRequests: 4, OpenFor: time.Second, Probes: 1}, clk)
	state := func() float64 { return testutil.ToFloat64(m.State.WithLabelValues("t")) }
	trans := func(s State) float64 { return testutil.ToFloat64(m.Transitions.WithLabelValues("t", s.String())) }
	if state() != 0 || trans(Closed) != 0 || trans(Open) != 0 || trans(HalfOpen) != 0 {
		t.Fatalf("at start: state %v, transitions closed %v open %v half-open %v", state(), trans(Closed), trans(Open), trans(HalfOpen))
	}
	if n := testutil.CollectAndCount(m.Transitions); n != 3 {
		t.Fatalf("%d transition series at start, want 3 (one per state, at 0)", n)
	}
	for range 2 {
		send(t, b, false, time.Millisecond)
		send(t, b, true, time.Millisecond)
	}
	if state() != 2 || trans(Open) != 1 {
		t.Fatalf("tripped: state %v, transitions{open} %v", state(), trans(Open))
	}
	for _, want := range []string{"target=t", "from=closed", "to=open", `reason="error rate"`, "error_rate=0.5", "requests=4", "failures=2"} {
		if !strings.Contains(log.String(), want) {
			t.Fatalf("log of the trip without %s:\n%s", want, log)
		}
	}
	clk.advance(time.Second)
	b.State()
	if state() != 1 || trans(HalfOpen) != 1 {
		t.Fatalf("half-open: state %v, transitions{half-open} %v", state(), trans(HalfOpen))
	}
	send(t, b, false, time.Millisecond)
	if state() != 0 || trans(Closed) != 1 {
		t.Fatalf("closed: state %v, transitions{closed} %v", state(), trans(Closed))
	}
	// Now on p99: 4 requests, 1 slower than 100ms (p99 is the slowest).
	for range 3 {
		send(t, b, false, time.Millisecond)
	}
	send(t, b, false, 250*time.Millisecond)
	if state() != 2 || trans(Open) != 2 {
		t.Fatalf("tripped on p99: state %v, transitions{open} %v", state(), trans(Open))
	}
	line := log.String()[strings.LastIndex(log.String(), "to=open"):]
	for _, want := range []string{`reason="p99 latency"`, "p99=250ms", "p99_limit=100ms", "slower=1"} {
		if !strings.Contains(line, want) {
			t.Fatalf("log of the p99 trip without %s:\n%s", want, log)
		}
	}
	if n := strings.Count(log.String(), "circuit breaker state change"); n != 4 {
		t.Fatalf("%d state change lines, want 4:\n%s", n, log)
	}
}

// p99 as the log reports it: the bucket's upper bound, at most the slowest.
func TestP99Estimate(t *testing.T) {
	b, _, _ := newTest(t, Config{P99: time.Hour, MinRequests: 1000}, newClock())
	for i := range 1000 {
		send(t, b, false, time.Duration(i+1)*time.Millisecond)
	}
	b.mu.Lock()
	got := b.p99Locked()
	b.mu.Unlock()
	// The true p99 is 990ms; a bucket is 19 % wide.
	if got < 990*time.Millisecond || got > 990*time.Millisecond*119/100 {
		t.Fatalf("p99 estimate %s, want in [990ms, 1178ms]", got)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" valid
	}{
		{Config{}, ""},
		{Config{ErrorRate: 1, P99: time.Second, Window: time.Minute, MinRequests: 1, OpenFor: time.Second, Probes: 1, WhenOpen: "pause"}, ""},
		{Config{ErrorRate: -0.1}, "replay.breaker.error_rate:"},
		{Config{ErrorRate: 1.5}, "replay.breaker.error_rate:"},
		{Config{P99: -time.Second}, "replay.breaker.p99:"},
		{Config{Window: -time.Second}, "replay.breaker.window:"},
		{Config{OpenFor: -time.Second}, "replay.breaker.open_for:"},
		{Config{MinRequests: -1}, "replay.breaker.min_requests:"},
		{Config{Probes: -1}, "replay.breaker.probes:"},
		{Config{WhenOpen: "drop"}, `replay.breaker.when_open: "drop" is not one of skip, pause`},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{ErrorRate: 2, Probes: -1}).Validate(); err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("two bad keys: %v, want both, one per line", err)
	}
}

// Many goroutines at once (run with -race): every request let go is
// accounted for and the breaker ends in a state it can be in.
func TestConcurrent(t *testing.T) {
	b := New("t", Config{ErrorRate: 0.3, MinRequests: 50, OpenFor: time.Millisecond, Probes: 2})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				done, err := b.Allow()
				if err != nil {
					continue
				}
				done((i+g)%3 == 0, time.Duration(i%7)*time.Millisecond)
			}
		})
	}
	wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inflight < 0 || b.inflight > 2 || b.window.requests < 0 {
		t.Fatalf("inflight %d, window %d requests", b.inflight, b.window.requests)
	}
}

func BenchmarkAllowDone(b *testing.B) {
	br := New("t", Config{ErrorRate: 0.5, P99: time.Second})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			done, err := br.Allow()
			if err == nil {
				done(false, 10*time.Millisecond)
			}
		}
	})
}
