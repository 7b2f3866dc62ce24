package replayer

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer/breaker"
	"github.com/mirrorline/mirrorline/replayer/middleware"
	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/telemetry"
)

// Metrics are the replayer metrics (mirrorline_replayer_*); each field's
// Help says what it counts.
type Metrics struct {
	Sent            *prometheus.CounterVec
	Errors          *prometheus.CounterVec
	ScheduleLag     prometheus.Histogram
	ResponseLatency prometheus.Histogram
	CaptureDelay    prometheus.Histogram
	// Dropped counts records not sent, by reason: DropMaxLag, DropTooOld or
	// DropUnsafeTarget.
	Dropped   *prometheus.CounterVec
	Late      prometheus.Counter
	Throttled prometheus.Counter
	Truncated prometheus.Counter
	// RequestErrors counts requests that failed at the target, by reason
	// (RequestErrorReasons).
	RequestErrors *prometheus.CounterVec
	// Credentials counts the credentials a Router set, by header and
	// outcome: set (a credentials header), resigned (a JWT), no_token (the
	// jwt header held none), error (the record was not sent).
	Credentials *prometheus.CounterVec
	// Breakers are the circuit breakers' metrics.
	Breakers *breaker.Metrics
	// Middleware are the middleware program's metrics.
	Middleware *middleware.Metrics
	// Stage are the stage runtime's metrics of the replayer's Kafka
	// consumption, mirrorline_stage_*{stage="replayer"}.
	Stage *stage.Metrics
}

// NewMetrics creates the replayer metrics, and the stage runtime's of the
// replayer, and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Sent:            telemetry.CounterVec("mirrorline_replayer_sent_total", "Requests sent to the target, by response status class (2xx..5xx, or error).", "status_class", "2xx", "3xx", "4xx", "5xx", "error"),
		Errors:          telemetry.CounterVec("mirrorline_replayer_errors_total", "Records not replayed or responses not recorded, by reason.", "reason"),
		RequestErrors:   telemetry.CounterVec("mirrorline_replayer_request_errors_total", "Requests that failed at the target, by reason: refused, timeout, dns, tls, reset, 5xx (a response with status 500..599) or other.", "reason", RequestErrorReasons...),
		ScheduleLag:     telemetry.Histogram("mirrorline_replayer_schedule_lag_seconds", "How late each request was sent against its schedule (live: since it was fetched).", 0.0001, 18),
		ResponseLatency: telemetry.Histogram("mirrorline_replayer_response_latency_seconds", "Latency of the target's responses.", 0.0005, 16),
		CaptureDelay:    telemetry.Histogram("mirrorline_replayer_capture_delay_seconds", "Live mode: time from capture to the request reaching the target.", 0.001, 16),
		Dropped:         telemetry.CounterVec("mirrorline_replayer_dropped_total", "Records not sent, by reason: max_lag (window replay more than --max-lag behind schedule), too_old (live: captured longer ago than --skip-older-than), unsafe_target (request-target that could leave the target: never sent), filtered (not selected, or a skip route), middleware (dropped by the middleware), breaker_open (the target's circuit breaker was open), egress (a call the primary made to a dependency: never replayed).", "reason", DropMaxLag, DropTooOld, DropUnsafeTarget, DropFiltered, DropMiddleware, DropBreakerOpen, DropEgress),
		Late:            telemetry.Counter("mirrorline_replayer_late_total", "Window replay: requests sent more than the late threshold (10ms) after their planned time."),
		Throttled:       telemetry.Counter("mirrorline_replayer_throttled_seconds_total", "Live mode: time requests waited for the --max-rate cap (summed over workers)."),
		Truncated:       telemetry.Counter("mirrorline_replayer_truncated_total", "Shadow responses whose body (or headers) was cut to fit the shadow topic's record budget; they are flagged truncated and keep their sizes."),
		Credentials:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mirrorline_replayer_credentials_total", Help: "Credentials set on replayed requests, by header and outcome: set, resigned (a JWT signed again with the test key), no_token (no JWT to re-sign), error (the record was not sent)."}, []string{"header", "outcome"}),
		Breakers:        breaker.NewMetrics(reg),
		Middleware:      middleware.NewMetrics(reg),
		Stage:           stage.NewMetrics(reg, "replayer"),
	}
	telemetry.Register(reg, m.Sent, m.Errors, m.RequestErrors, m.ScheduleLag, m.ResponseLatency, m.CaptureDelay, m.Dropped, m.Late, m.Throttled, m.Truncated, m.Credentials)
	return m
}

// StatusClass maps a status code to its label value ("2xx", ...); 0 is "error".
func StatusClass(code int) string {
	if code < 100 || code >= 600 {
		return "error"
	}
	return strconv.Itoa(code/100) + "xx"
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
