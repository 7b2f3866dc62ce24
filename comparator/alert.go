package comparator

import (
	"maps"
	"slices"
	"time"
)

// alertBuckets is the resolution of an alert window.
const alertBuckets = 10

type alertBucket struct {
	slot            int64 // time slot index (unix ns / bucket width)
	differing, seen int
}

// alertWindow counts an endpoint's comparable and differing exchanges over
// a sliding window of alertBuckets slots.
type alertWindow struct {
	b      [alertBuckets]alertBucket
	firing bool
}

// AlertChange is an endpoint's alert starting or ending.
type AlertChange struct {
	// Endpoint whose alert changed; Firing is its new state.
	Endpoint string
	Firing   bool
	// Differing of Total exchanges in the window, and their Rate.
	Differing int
	Total     int
	Rate      float64
}

// alerter raises an alert for an endpoint when its difference rate over the
// window reaches the threshold with enough samples.
type alerter struct {
	cfg   AlertConfig
	width time.Duration
	win   map[string]*alertWindow
}

func newAlerter(cfg AlertConfig) *alerter {
	w := cfg.Window / alertBuckets
	if w <= 0 {
		w = time.Second
	}
	return &alerter{cfg: cfg, width: w, win: map[string]*alertWindow{}}
}

// add counts one comparable exchange of endpoint at now.
func (a *alerter) add(endpoint string, differing bool, now time.Time) {
	w := a.win[endpoint]
	if w == nil {
		w = &alertWindow{}
		a.win[endpoint] = w
	}
	slot := now.UnixNano() / int64(a.width)
	b := &w.b[slot%alertBuckets]
	if b.slot != slot {
		*b = alertBucket{slot: slot}
	}
	b.seen++
	if differing {
		b.differing++
	}
}

// counts sums the buckets of w inside the window ending at now.
func (a *alerter) counts(w *alertWindow, now time.Time) (differing, seen int) {
	slot := now.UnixNano() / int64(a.width)
	for _, b := range w.b {
		if b.slot > slot-alertBuckets && b.slot <= slot {
			differing += b.differing
			seen += b.seen
		}
	}
	return differing, seen
}

// evaluate returns the endpoints whose alert state changed at now, sorted.
func (a *alerter) evaluate(now time.Time) []AlertChange {
	var out []AlertChange
	for _, n := range slices.Sorted(maps.Keys(a.win)) {
		w := a.win[n]
		d, s := a.counts(w, now)
		rate := 0.0
		if s > 0 {
			rate = float64(d) / float64(s)
		}
		firing := s >= a.cfg.MinSamples && s > 0 && rate >= a.cfg.Rate
		if firing != w.firing {
			w.firing = firing
			out = append(out, AlertChange{Endpoint: n, Firing: firing, Differing: d, Total: s, Rate: rate})
		}
		if s == 0 && !w.firing {
			delete(a.win, n)
		}
	}
	return out
}
