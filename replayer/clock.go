package replayer

import (
	"context"
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

// MaxTimerWait is the longest single timer a window replay sets on the wall
// clock. Linux lets a timed wait end late by 0.1% of its timeout, up to 100
// ms (the timer slack of epoll_wait, where Go's timers sleep): a window that
// starts an hour before its first record at 10x waits 6 minutes and would
// send its first burst up to 100 ms late. Longer waits are cut in halves
// until less than MaxTimerWait is left (slack 0.1 ms at most).
const MaxTimerWait = 100 * time.Millisecond

// slackClock is a Clock whose timers may fire late in proportion to their
// length (RealClock).
type slackClock interface{ slack() bool }

func (RealClock) slack() bool { return true }

// sleepUntil waits on c until t or until ctx ends.
func sleepUntil(ctx context.Context, c Clock, t time.Time) error {
	if !c.Now().Before(t) {
		return ctx.Err()
	}
	if sc, ok := c.(slackClock); ok && sc.slack() {
		for {
			now := c.Now()
			d := t.Sub(now)
			if d <= MaxTimerWait {
				break
			}
			if err := wait(ctx, c, now.Add(d/2)); err != nil {
				return err
			}
		}
	}
	if fc, ok := c.(fineClock); ok && fc.fine() {
		if d := t.Sub(c.Now()); d >= FineMin {
			// Go's timers wake in whole milliseconds (up to 1 ms late
			// even when idle): the last FineWait before t is waited on a
			// timer that wakes on time.
			if d > FineWait {
				if err := wait(ctx, c, t.Add(-FineWait)); err != nil {
					return err
				}
			}
			sleepFine(t)
			return ctx.Err()
		}
	}
	return wait(ctx, c, t)
}

// FineMin is the shortest wait a window replay makes on time (FineWait).
// Shorter waits, between the records of a dense schedule or of a burst, stay
// on Go's timers: they wake together for the records due within the same
// millisecond, where waking on time for each would cost a wake-up of the
// process per record (measured: about 40 % more CPU at 5,000 records/s).
const FineMin = 500 * time.Microsecond

// FineWait is the last stretch of a wait on the wall clock that a window
// replay waits on a timer that wakes on time (Linux: a timerfd, about 0.05
// ms late) instead of on a Go timer alone (which the runtime's poller, when
// idle, rounds up to whole milliseconds): a record after a pause, such as
// the first of a burst, goes out within a tenth of a millisecond of its time
// instead of up to a millisecond late. The end of a context is noticed
// after this stretch at the latest.
const FineWait = 2 * time.Millisecond

// fineClock is a Clock whose last FineWait before a time is slept precisely
// (RealClock, where the system offers it).
type fineClock interface{ fine() bool }

func (RealClock) fine() bool { return fineSleep }

// wait blocks on one timer of c until t or until ctx ends.
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
