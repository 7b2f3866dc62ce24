package comparator

import (
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// hist records n latencies: fast ones at base, every slowEvery-th at slow.
func hist(n int, base, slow time.Duration, slowEvery int) *hdrhistogram.Histogram {
	h := hdrhistogram.New(1, latencyMaxMicros, 2)
	for i := range n {
		d := base
		if slowEvery > 0 && i%slowEvery == 0 {
			d = slow
		}
		recordLatency(h, d.Nanoseconds())
	}
	return h
}

func TestCompareLatency(t *testing.T) {
	cfg := Config{}.WithDefaults().Latency
	tests := []struct {
		name                 string
		p, s                 *hdrhistogram.Histogram
		judged, tail, median bool
		meanImproved         bool
		summary              string
	}{
		{name: "tail regression although the mean improved",
			p: hist(200, 4*time.Millisecond, 0, 0), s: hist(200, 500*time.Microsecond, 40*time.Millisecond, 20),
			judged: true, tail: true, meanImproved: true, summary: "although the mean improved"},
		{name: "tail regression and worse mean",
			p: hist(200, 1*time.Millisecond, 0, 0), s: hist(200, 1*time.Millisecond, 60*time.Millisecond, 5),
			judged: true, tail: true, summary: "TAIL REGRESSION: p90"},
		{name: "median regression",
			p: hist(200, 1*time.Millisecond, 0, 0), s: hist(200, 20*time.Millisecond, 0, 0),
			judged: true, tail: true, median: true},
		{name: "small absolute change is no regression",
			p: hist(200, 1*time.Millisecond, 0, 0), s: hist(200, 3*time.Millisecond, 0, 0),
			judged: true, summary: "no latency regression"},
		{name: "improvement",
			p: hist(200, 30*time.Millisecond, 0, 0), s: hist(200, 10*time.Millisecond, 0, 0),
			judged: true, meanImproved: true},
		{name: "too few samples",
			p: hist(5, 1*time.Millisecond, 0, 0), s: hist(5, 90*time.Millisecond, 0, 0),
			summary: "not judged"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lr := compareLatency(tc.p, tc.s, nil, cfg)
			if lr.Judged != tc.judged || lr.TailRegression != tc.tail || lr.MedianRegression != tc.median || lr.MeanImproved != tc.meanImproved {
				t.Errorf("judged %v tail %v median %v meanImproved %v; want %v %v %v %v (%s)", lr.Judged, lr.TailRegression, lr.MedianRegression, lr.MeanImproved, tc.judged, tc.tail, tc.median, tc.meanImproved, lr.Summary)
			}
			if !strings.Contains(lr.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", lr.Summary, tc.summary)
			}
		})
	}
}
