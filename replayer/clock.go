package replayer

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Clock is the time source of a window replay's scheduler. Tests inject a
// manual clock; dry runs use a virtual one that jumps to every planned time.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Timer returns a channel that receives once the clock reaches t, and a
	// function that releases the timer early.
	Timer(t time.Time) (<-chan time.Time, func())
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// Timer returns a time.Timer firing at t.
func (RealClock) Timer(t time.Time) (<-chan time.Time, func()) {
	tm := time.NewTimer(time.Until(t))
	return tm.C, func() { tm.Stop() }
}

// VirtualClock is a clock that never waits: a timer for a time ahead moves the
// clock there and fires at once, so a dry run does not take the plan's time.
type VirtualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewVirtualClock returns a virtual clock reading start.
func NewVirtualClock(start time.Time) *VirtualClock { return &VirtualClock{now: start} }

// Now returns the virtual time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Timer advances the clock to t (when ahead) and returns a fired channel.
func (c *VirtualClock) Timer(t time.Time) (<-chan time.Time, func()) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	now := c.now
	c.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- now
	return ch, func() {}
}

// Spinning: Go's timers wake up to about a millisecond late (the poller
// sleeps in whole milliseconds), a lot against the 100µs between the records
// of a burst at 10x. On the wall clock the scheduler sets its timer SpinFor
// early and spins (yielding) for the rest, while the process has spun less
// than SpinShare of the wall time lately; beyond that it sleeps on the timer.
const (
	// SpinFor is the end of a wait the scheduler may spin instead of sleep.
	SpinFor = time.Millisecond
	// SpinShare is the share of one core the spinning may take (5%).
	SpinShare = 0.05
	// spinBurst is the most spinning saved up for a burst.
	spinBurst = 50 * time.Millisecond
)

// spinBudget is a token bucket of spinning time, refilled at SpinShare of
// the wall time: one per process, as the CPU it guards.
type spinBudget struct {
	mu     sync.Mutex
	tokens time.Duration
	last   time.Time
}

var spinning = &spinBudget{tokens: spinBurst}

// take reports whether d of spinning fits the budget at now, and takes it.
func (b *spinBudget) take(now time.Time, d time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.tokens+time.Duration(float64(now.Sub(b.last))*SpinShare), spinBurst)
	}
	b.last = now
	if d > b.tokens {
		return false
	}
	b.tokens -= d
	return true
}

// sleepUntil waits on c until t or until ctx ends (on the wall clock, see
// SpinFor).
func sleepUntil(ctx context.Context, c Clock, t time.Time) error {
	if !c.Now().Before(t) {
		return ctx.Err()
	}
	if _, ok := c.(RealClock); ok {
		if early := t.Add(-SpinFor); time.Now().Before(early) {
			if err := wait(ctx, c, early); err != nil {
				return err
			}
		}
		if now := time.Now(); spinning.take(now, t.Sub(now)) {
			for time.Now().Before(t) {
				if err := ctx.Err(); err != nil {
					return err
				}
				runtime.Gosched()
			}
			return nil
		}
	}
	return wait(ctx, c, t)
}

// wait blocks on a timer of c until t or until ctx ends.
func wait(ctx context.Context, c Clock, t time.Time) error {
	ch, stop := c.Timer(t)
	defer stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
