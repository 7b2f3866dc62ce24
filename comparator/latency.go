package comparator

import (
	"fmt"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Percentiles summarize one side's latency at an endpoint, in milliseconds.
type Percentiles struct {
	// Count is the number of samples.
	Count int64 `json:"count"`
	// P50, P90, P99, Max and Mean are in milliseconds.
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// LatencyReport compares the shadow's latency with the primary's.
type LatencyReport struct {
	// Primary, Shadow and Secondary summarize each side.
	Primary   Percentiles `json:"primary"`
	Shadow    Percentiles `json:"shadow"`
	Secondary Percentiles `json:"secondary,omitzero"`
	// Judged is true when both sides have latency.min_samples samples.
	Judged bool `json:"judged"`
	// TailRegression: the shadow's p90 or p99 is worse than the primary's by
	// more than latency.relative and latency.absolute.
	TailRegression bool `json:"tail_regression"`
	// MedianRegression: the same for p50.
	MedianRegression bool `json:"median_regression"`
	// MeanImproved: the shadow's mean is lower than the primary's.
	MeanImproved bool `json:"mean_improved"`
	// Summary is one human-readable line.
	Summary string `json:"summary"`
}

func percentiles(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Percentiles{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		Max:   ms(h.Max()),
		Mean:  h.Mean() / 1000,
	}
}

// regressed reports whether shadow value s is worse than primary value p (ms)
// by more than the relative and the absolute threshold.
func regressed(p, s float64, cfg LatencyConfig) bool {
	abs := float64(cfg.Absolute) / float64(time.Millisecond)
	return s-p > abs && s > p*(1+cfg.Relative)
}

// compareLatency judges the shadow's latency against the primary's. A tail
// regression is flagged even when the mean improved: slow outliers hurt
// users whatever the average says.
func compareLatency(p, s, sec *hdrhistogram.Histogram, cfg LatencyConfig) LatencyReport {
	lr := LatencyReport{Primary: percentiles(p), Shadow: percentiles(s), Secondary: percentiles(sec)}
	min := int64(cfg.MinSamples)
	if lr.Primary.Count < min || lr.Shadow.Count < min || lr.Primary.Count == 0 || lr.Shadow.Count == 0 {
		lr.Summary = fmt.Sprintf("not judged: %d primary and %d shadow samples (need %d each)", lr.Primary.Count, lr.Shadow.Count, cfg.MinSamples)
		return lr
	}
	lr.Judged = true
	pp, sp := lr.Primary, lr.Shadow
	lr.MeanImproved = sp.Mean < pp.Mean
	lr.MedianRegression = regressed(pp.P50, sp.P50, cfg)
	var worse []string
	if regressed(pp.P90, sp.P90, cfg) {
		worse = append(worse, fmt.Sprintf("p90 %s → %s", fmtMS(pp.P90), fmtMS(sp.P90)))
	}
	if regressed(pp.P99, sp.P99, cfg) {
		worse = append(worse, fmt.Sprintf("p99 %s → %s (+%s, ×%.1f)", fmtMS(pp.P99), fmtMS(sp.P99), fmtMS(sp.P99-pp.P99), sp.P99/max(pp.P99, 0.001)))
	}
	lr.TailRegression = len(worse) > 0
	mean := fmt.Sprintf("mean %s → %s", fmtMS(pp.Mean), fmtMS(sp.Mean))
	switch {
	case lr.TailRegression && lr.MeanImproved:
		lr.Summary = "TAIL REGRESSION: " + strings.Join(worse, ", ") + " although the mean improved (" + mean + ")"
	case lr.TailRegression:
		lr.Summary = "TAIL REGRESSION: " + strings.Join(worse, ", ") + "; " + mean
	case lr.MedianRegression:
		lr.Summary = fmt.Sprintf("MEDIAN REGRESSION: p50 %s → %s; %s", fmtMS(pp.P50), fmtMS(sp.P50), mean)
	default:
		lr.Summary = "no latency regression; " + mean
	}
	return lr
}

// fmtMS formats milliseconds compactly ("0.42ms", "12.3ms", "1.20s").
func fmtMS(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.1fms", ms)
	}
	return fmt.Sprintf("%.2fms", ms)
}
