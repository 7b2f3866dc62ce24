package testproc

import (
	"testing"
	"time"
)

// Wait polls cond, with a short backoff (1 ms doubling to 50 ms), until it
// holds or timeout passes, and reports whether it held. cond runs once more
// at the deadline, so a condition met just in time is not a failure. Use it
// when the failure message needs state that only the caller has; otherwise
// use Eventually.
func Wait(timeout time.Duration, cond func() bool) bool {
	return WaitEvery(timeout, 50*time.Millisecond, cond)
}

// WaitEvery is Wait with the backoff capped at every instead of 50 ms, for a
// condition too costly to check often (a query to Kafka or Prometheus).
func WaitEvery(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	pause := min(time.Millisecond, every)
	for !cond() {
		if !time.Now().Before(deadline) {
			return cond()
		}
		time.Sleep(max(0, min(pause, time.Until(deadline)))) // polling a condition, not a synchronisation
		pause = min(2*pause, every)
	}
	return true
}

// Eventually polls cond as Wait does and fails the test, naming what and
// the timeout, if cond does not hold within timeout. On a loaded machine a
// timeout is a bound against hanging, not a measurement: give anything that
// involves Kafka or a subprocess 30 to 60 seconds.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !Wait(timeout, cond) {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// EventuallyEvery is Eventually with the backoff capped at every, as
// WaitEvery.
func EventuallyEvery(tb testing.TB, timeout, every time.Duration, what string, cond func() bool) {
	tb.Helper()
	if !WaitEvery(timeout, every, cond) {
		tb.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}
