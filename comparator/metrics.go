package comparator

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/telemetry"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Record outcomes counted in mirrorline_comparator_records_total{outcome}.
const (
	RecordJoined      = "joined"      // completed an exchange
	RecordWaiting     = "waiting"     // kept until the other side arrives
	RecordDuplicate   = "duplicate"   // that side of the exchange was already there
	RecordLate        = "late"        // arrived after its exchange was decided
	RecordInvalid     = "invalid"     // no exchange id
	RecordUndecodable = "undecodable" // not a protobuf Exchange
	RecordIgnored     = "ignored"     // a shadow record of another replay job (shadow_job)
	RecordUnmatched   = "unmatched"   // a window job's shadow record whose primary is not found
)

// Metrics are the comparator metrics (mirrorline_comparator_exchanges_total,
// comparator_latency_seconds). Endpoint labels are templates (TemplatePath),
// capped by max_endpoints; no label carries payload data.
type Metrics struct {
	// Exchanges counts decided exchanges by verdict and endpoint.
	Exchanges *prometheus.CounterVec
	// Latency is the response latency per side (primary, shadow, secondary).
	Latency *prometheus.HistogramVec
	// Alert is 1 while an endpoint's difference rate is over the alert threshold.
	Alert *prometheus.GaugeVec
	// LatencyRegression is 1 while an endpoint's shadow has a tail (p90/p99) regression.
	LatencyRegression *prometheus.GaugeVec
	// Pending is the number of exchanges waiting for a side or for noise warm-up.
	Pending prometheus.Gauge
	// Records counts consumed records by outcome.
	Records *prometheus.CounterVec
	// Errors counts failures by reason (redact, fetch, publish, commit, lookup).
	Errors *prometheus.CounterVec
	// Truncated counts diff records cut to fit mirror.diff.S's record
	// budget (first differences kept, the note says how many).
	Truncated prometheus.Counter
	// Egress counts egress records (outbound calls) by side and outcome
	// (attached, no_parent, late, orphan, ignored).
	Egress *prometheus.CounterVec
	// Downstream counts the downstream differences that are not noise, by
	// endpoint and kind (extra, missing, body).
	Downstream *prometheus.CounterVec
	// Stage are the runtime's metrics of the Runner,
	// mirrorline_stage_*{stage="comparator"}.
	Stage *stage.Metrics
}

// VerdictLabel is the label value of a verdict: same, different,
// shadow-error, primary-error, missing.
func VerdictLabel(v mlv1.Verdict) string {
	return labelOf(verdictLabels, v)
}

var verdictLabels = map[mlv1.Verdict]string{
	mlv1.Verdict_VERDICT_SAME: "same", mlv1.Verdict_VERDICT_DIFFERENT: "different",
	mlv1.Verdict_VERDICT_SHADOW_ERROR: "shadow-error", mlv1.Verdict_VERDICT_PRIMARY_ERROR: "primary-error",
	mlv1.Verdict_VERDICT_MISSING: "missing",
}

// labelOf is the label of k in labels, "unspecified" when it has none.
func labelOf[K comparable](labels map[K]string, k K) string {
	if l, ok := labels[k]; ok {
		return l
	}
	return "unspecified"
}

// Verdicts lists the verdicts in report order.
var Verdicts = []mlv1.Verdict{
	mlv1.Verdict_VERDICT_SAME, mlv1.Verdict_VERDICT_DIFFERENT, mlv1.Verdict_VERDICT_SHADOW_ERROR,
	mlv1.Verdict_VERDICT_PRIMARY_ERROR, mlv1.Verdict_VERDICT_MISSING,
}

// NewMetrics creates the comparator metrics, and the stage runtime's of the
// comparator, and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_comparator_exchanges_total",
			Help: "Exchanges decided, by verdict (same, different, shadow-error, primary-error, missing) and endpoint (method and path template).",
		}, []string{"verdict", "endpoint"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mirrorline_comparator_latency_seconds",
			Help:    "Response latency of the compared exchanges, by side (primary, shadow, secondary).",
			Buckets: prometheus.ExponentialBuckets(0.00025, 2, 17),
		}, []string{"side"}),
		Alert: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mirrorline_comparator_alert",
			Help: "1 while an endpoint's difference rate over alert.window is at least alert.rate with at least alert.min_samples exchanges.",
		}, []string{"endpoint"}),
		LatencyRegression: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mirrorline_comparator_latency_regression",
			Help: "1 while an endpoint's shadow p90 or p99 latency is worse than the primary's beyond latency.relative and latency.absolute.",
		}, []string{"endpoint"}),
		Pending: telemetry.Gauge("mirrorline_comparator_pending", "Exchanges waiting for their other side or for noise warm-up."),
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_comparator_records_total",
			Help: "Records consumed, by side and outcome (joined, waiting, duplicate, late, invalid, undecodable, ignored).",
		}, []string{"side", "outcome"}),
		Errors:    telemetry.CounterVec("mirrorline_comparator_errors_total", "Comparator failures, by reason (redact, fetch, publish, commit, lookup).", "reason", "redact", "fetch", "publish", "commit"),
		Truncated: telemetry.Counter("mirrorline_comparator_truncated_total", "Diff records whose differences were cut to fit the diff topic's record budget."),
		Egress: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_comparator_egress_records_total",
			Help: "Egress records (a service's outbound calls) consumed, by side and outcome (attached, no_parent, late, orphan, ignored).",
		}, []string{"side", "outcome"}),
		Downstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_comparator_downstream_differences_total",
			Help: "Downstream differences that are not noise, by endpoint and kind (extra: the shadow made more calls to a dependency endpoint, missing: fewer, body: a request body field differs).",
		}, []string{"endpoint", "kind"}),
		Stage: stage.NewMetrics(reg, "comparator"),
	}
	for _, s := range []Side{Primary, Shadow, Secondary} {
		m.Latency.WithLabelValues(s.String())
	}
	telemetry.Register(reg, m.Exchanges, m.Latency, m.Alert, m.LatencyRegression, m.Pending, m.Records, m.Errors, m.Truncated, m.Egress, m.Downstream)
	return m
}
