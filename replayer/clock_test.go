package replayer

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A wait on the wall clock never ends before its time, through the Go
// timer, the timer that wakes on time, or both.
func TestSleepUntilRealClockNeverEarly(t *testing.T) {
	for _, wait := range []time.Duration{0, 100 * time.Microsecond, FineMin, 700 * time.Microsecond, FineWait + 500*time.Microsecond} {
		for range 10 {
			at := time.Now().Add(wait)
			if err := sleepUntil(context.Background(), RealClock{}, at); err != nil {
				t.Fatal(err)
			}
			if now := time.Now(); now.Before(at) {
				t.Fatalf("wait %s ended %s early", wait, at.Sub(now))
			}
		}
	}
}

// A wait that ends, or whose context ends, reports the context's error.
func TestSleepUntilRealClockContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, wait := range []time.Duration{time.Millisecond, time.Hour} {
		if err := sleepUntil(ctx, RealClock{}, time.Now().Add(wait)); !errors.Is(err, context.Canceled) {
			t.Errorf("wait %s: err %v, want context.Canceled", wait, err)
		}
	}
}
