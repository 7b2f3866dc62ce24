package replayer

import (
	"sync/atomic"
	"testing"
)

func TestWorkersRunEverySendOnAtMostMaxGoroutines(t *testing.T) {
	for _, tc := range []struct {
		name      string
		max, jobs int
	}{
		{"one worker", 1, 50},
		{"fewer jobs than workers", 8, 3},
		{"many jobs", 4, 500},
		{"max below one", 0, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newWorkers(tc.max)
			limit := max(tc.max, 1)
			// As in a window replay, the caller bounds the sends in flight.
			sem := make(chan struct{}, limit)
			var ran, inFlight, peak atomic.Int64
			for range tc.jobs {
				sem <- struct{}{}
				p.run(func() {
					defer func() { <-sem }()
					n := inFlight.Add(1)
					for {
						old := peak.Load()
						if n <= old || peak.CompareAndSwap(old, n) {
							break
						}
					}
					ran.Add(1)
					inFlight.Add(-1)
				})
			}
			p.wait()
			if got := ran.Load(); got != int64(tc.jobs) {
				t.Fatalf("ran %d sends, want %d", got, tc.jobs)
			}
			if p.started > limit {
				t.Fatalf("started %d workers, want at most %d", p.started, limit)
			}
			if p.started > tc.jobs {
				t.Fatalf("started %d workers for %d sends", p.started, tc.jobs)
			}
			if limit == 1 && p.started != 1 {
				t.Fatalf("started %d workers with room for one: want every send on the same goroutine", p.started)
			}
			if peak.Load() > int64(limit) {
				t.Fatalf("%d sends ran at once, want at most %d", peak.Load(), limit)
			}
		})
	}
}
