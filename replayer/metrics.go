package replayer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// Metrics are the replayer metrics (mirrorline_replayer_*).
type Metrics struct {
	Sent            *prometheus.CounterVec
	Errors          *prometheus.CounterVec
	ScheduleLag     prometheus.Histogram
	ResponseLatency prometheus.Histogram
	CaptureDelay    prometheus.Histogram
	// Dropped counts records not sent, by reason: "max_lag" (window replay
	// behind schedule), "too_old" (live, older than SkipOlderThan) or
	// "unsafe_target" (request-target rejected by BuildRequest).
	Dropped *prometheus.CounterVec
	// Late counts window-replay sends more than the late threshold behind
	// their planned time (they were still sent).
	Late prometheus.Counter
	// Throttled is the time live workers waited for the --max-rate cap.
	Throttled prometheus.Counter
	// Truncated counts shadow responses cut to fit the shadow topic's
	// record budget (flagged truncated, sizes kept).
	Truncated prometheus.Counter
	// RequestErrors counts requests that failed at the target, by reason
	// (RequestErrorReasons: refused, timeout, dns, tls, reset, 5xx, other).
	RequestErrors *prometheus.CounterVec
	// Stage are the stage runtime's metrics of the replayer's Kafka
	// consumption, mirrorline_stage_*{stage="replayer"}.
	Stage *stage.Metrics
}

// NewMetrics creates the replayer metrics, and the stage runtime's of the
// replayer, and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_replayer_sent_total",
			Help: "Requests sent to the target, by response status class (2xx..5xx, or error).",
		}, []string{"status_class"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_replayer_errors_total",
			Help: "Records not replayed or responses not recorded, by reason.",
		}, []string{"reason"}),
		RequestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_replayer_request_errors_total",
			Help: "Requests that failed at the target, by reason: refused, timeout, dns, tls, reset, 5xx (a response with status 500..599) or other.",
		}, []string{"reason"}),
		ScheduleLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mirrorline_replayer_schedule_lag_seconds",
			Help:    "How late each request was sent against its schedule (live: since it was fetched).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		}),
		ResponseLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mirrorline_replayer_response_latency_seconds",
			Help:    "Latency of the target's responses.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		CaptureDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mirrorline_replayer_capture_delay_seconds",
			Help:    "Live mode: time from capture to the request reaching the target.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_replayer_dropped_total",
			Help: "Records not sent, by reason: max_lag (window replay more than --max-lag behind schedule), too_old (live: captured longer ago than --skip-older-than), unsafe_target (request-target that could leave the target: never sent).",
		}, []string{"reason"}),
		Late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirrorline_replayer_late_total",
			Help: "Window replay: requests sent more than the late threshold (10ms) after their planned time.",
		}),
		Throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirrorline_replayer_throttled_seconds_total",
			Help: "Live mode: time requests waited for the --max-rate cap (summed over workers).",
		}),
		Truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirrorline_replayer_truncated_total",
			Help: "Shadow responses whose body (or headers) was cut to fit the shadow topic's record budget; they are flagged truncated and keep their sizes.",
		}),
		Stage: stage.NewMetrics(reg, "replayer"),
	}
	for _, c := range []string{"2xx", "3xx", "4xx", "5xx", "error"} {
		m.Sent.WithLabelValues(c)
	}
	for _, r := range RequestErrorReasons {
		m.RequestErrors.WithLabelValues(r)
	}
	m.Dropped.WithLabelValues(DropMaxLag)
	m.Dropped.WithLabelValues(DropTooOld)
	m.Dropped.WithLabelValues(DropUnsafeTarget)
	if reg != nil {
		reg.MustRegister(m.Sent, m.Errors, m.RequestErrors, m.ScheduleLag, m.ResponseLatency, m.CaptureDelay, m.Dropped, m.Late, m.Throttled, m.Truncated)
	}
	return m
}

// StatusClass maps a status code to its label value ("2xx", ...); 0 is "error".
func StatusClass(code int) string {
	switch {
	case code >= 100 && code < 200:
		return "1xx"
	case code >= 200 && code < 300:
		return "2xx"
	case code >= 300 && code < 400:
		return "3xx"
	case code >= 400 && code < 500:
		return "4xx"
	case code >= 500 && code < 600:
		return "5xx"
	}
	return "error"
}

// countResponse counts a request that reached the target or failed there:
// sent_total by status class and, when it failed (reason not ""),
// request_errors_total by reason. It returns the status class.
func (m *Metrics) countResponse(resp *mlv1.Response, reason string) string {
	class := "error"
	if resp.GetError() == "" {
		class = StatusClass(int(resp.GetStatus()))
		m.ResponseLatency.Observe(time.Duration(resp.GetLatencyNs()).Seconds())
	}
	m.Sent.WithLabelValues(class).Inc()
	if reason != "" {
		m.RequestErrors.WithLabelValues(reason).Inc()
	}
	return class
}
