package replayer

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"
)

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// progressSnapshot is what a progress line reports.
type progressSnapshot struct {
	dispatched, dropped int64
	reqErrors           map[string]int64
	anchor              time.Time
}

func (s *stats) progress() progressSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return progressSnapshot{dispatched: s.dispatched, dropped: s.dropped, anchor: s.anchor, reqErrors: maps.Clone(s.reqErrors)}
}

// printProgress writes a progress line to w.lines at every tick of
// w.ticker until the returned function is called.
func (w *Window) printProgress(st *stats) (stop func()) {
	ticks, stopTicker := w.ticker(w.every)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stopTicker()
		first := w.wall()
		prevAt, prevSent := first, int64(0)
		for {
			select {
			case <-done:
				return
			case at := <-ticks:
				snap := st.progress()
				line := w.progressLine(snap, at.Sub(prevAt), snap.dispatched-prevSent, at.Sub(first))
				prevAt, prevSent = at, snap.dispatched
				_, _ = fmt.Fprintln(w.lines, line)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// progressLine renders "replay JOB: sent 1200/3000 (40%), 498/s, errors 3
// (refused 3), ETA 3.6s": sends so far of the records planned (estimated by
// offsets), the send rate over the last interval, failed requests by reason,
// and the time left.
func (w *Window) progressLine(p progressSnapshot, interval time.Duration, sentInInterval int64, elapsed time.Duration) string {
	done, total := w.src.Progress()
	var b strings.Builder
	verb := "sent"
	if w.dry {
		verb = "would send"
	}
	fmt.Fprintf(&b, "replay %s: %s %d", w.job, verb, p.dispatched)
	if total > 0 {
		fmt.Fprintf(&b, "/%d (%d%%)", total, min(done*100/total, 100))
	}
	rate := 0.0
	if interval > 0 {
		rate = float64(sentInInterval) / interval.Seconds()
	}
	fmt.Fprintf(&b, ", %s/s", strings.TrimSuffix(fmt.Sprintf("%.1f", rate), ".0"))
	if n := sumCounts(p.reqErrors); n > 0 {
		fmt.Fprintf(&b, ", errors %d (%s)", n, strings.ReplaceAll(formatCounts(p.reqErrors, RequestErrorReasons), "  ", ", "))
	} else if !w.dry {
		b.WriteString(", errors 0")
	}
	if p.dropped > 0 {
		fmt.Fprintf(&b, ", dropped %d", p.dropped)
	}
	if eta, ok := w.eta(p, done, total, elapsed); ok {
		unit := 100 * time.Millisecond
		if eta >= time.Minute {
			unit = time.Second
		}
		fmt.Fprintf(&b, ", ETA %s", eta.Round(unit))
	} else {
		b.WriteString(", ETA unknown")
	}
	return b.String()
}

// eta estimates the time left: from the planned span when known (the
// schedule, not the target, sets the pace), else from the share of offsets
// read in elapsed.
func (w *Window) eta(p progressSnapshot, done, total int64, elapsed time.Duration) (time.Duration, bool) {
	if w.span > 0 && !p.anchor.IsZero() && !w.dry {
		return max(p.anchor.Add(w.span).Sub(w.clock.Now()), 0), true
	}
	if done <= 0 || total <= 0 {
		return 0, false
	}
	left := float64(max(total-done, 0)) / float64(done)
	return time.Duration(float64(elapsed) * left), true
}
