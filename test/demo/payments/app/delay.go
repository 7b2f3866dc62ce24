package app

import (
	"context"
	"time"
)

// SlowTail describes the artificial latency a demo service adds to API
// requests: every request gets a uniform jitter in [0, Jitter], and a
// Fraction of requests additionally get an extra delay uniform in [Min, Max].
//
// The decision is a pure function of (seed, request sequence number), so a
// run with a fixed seed always slows down the same requests regardless of
// wall-clock timing or scheduling.
type SlowTail struct {
	// Fraction of requests (0..1) that get the extra slow-tail delay.
	Fraction float64
	// Min and Max bound the extra slow-tail delay (inclusive).
	Min, Max time.Duration
	// Jitter is the maximum base jitter every request gets.
	Jitter time.Duration
}

// DefaultSlowTail returns the latency profile of a demo release: v1 has only
// 0-2 ms of jitter; v2 (the regressed release) additionally sends about 3% of
// requests into a 40-60 ms slow tail. Unknown versions get the v1 profile.
func DefaultSlowTail(version string) SlowTail {
	t := SlowTail{Jitter: 2 * time.Millisecond}
	if version == V2 {
		t.Fraction = 0.03
		t.Min = 40 * time.Millisecond
		t.Max = 60 * time.Millisecond
	}
	return t
}

// Decision is the outcome of SlowTail.Decide for one request.
type Decision struct {
	// Slow reports whether the request was put into the slow tail.
	Slow bool
	// Jitter is the base jitter part of Delay.
	Jitter time.Duration
	// Delay is the total delay to apply (jitter plus slow-tail extra).
	Delay time.Duration
}

// Decide returns the deterministic delay decision for the request with
// sequence number seq (1-based, in arrival order) under the given seed.
func (t SlowTail) Decide(seed int64, seq uint64) Decision {
	var d Decision
	base := uint64(seed)*0x9e3779b97f4a7c15 ^ seq
	if t.Jitter > 0 {
		d.Jitter = time.Duration(mix64(base, 1) % uint64(t.Jitter+1))
	}
	d.Delay = d.Jitter
	if t.Fraction > 0 && unitFloat(mix64(base, 2)) < t.Fraction {
		d.Slow = true
		extra := t.Min
		if span := t.Max - t.Min; span > 0 {
			extra += time.Duration(mix64(base, 3) % uint64(span+1))
		}
		d.Delay += extra
	}
	return d
}

// mix64 is the splitmix64 finalizer applied to x combined with a stream id,
// giving independent, well-distributed 64-bit values per (x, stream).
func mix64(x, stream uint64) uint64 {
	z := x + stream*0xbf58476d1ce4e5b9 + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unitFloat maps a 64-bit value to [0, 1).
func unitFloat(x uint64) float64 {
	return float64(x>>11) / (1 << 53)
}

// SleepContext waits for d or until ctx is done, whichever comes first. It is
// the default Config.Sleep.
func SleepContext(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
