package redactor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/stage"
)

// Outcomes counted in mirrorline_redactor_records_total{outcome}.
const (
	OutcomeClean       = "clean"
	OutcomeQuarantined = "quarantined"
	OutcomeDropped     = "dropped"
	OutcomeInvalid     = "invalid"
)

// Metrics are the redactor metrics: records by outcome, redactions by rule,
// transactions by outcome and the processing latency; and the runtime's
// metrics of the stage, mirrorline_stage_*{stage="redactor"}.
type Metrics struct {
	Records      *prometheus.CounterVec
	Redactions   *prometheus.CounterVec
	Transactions *prometheus.CounterVec
	Latency      prometheus.Histogram
	Stage        *stage.Metrics
}

// NewMetrics creates the redactor metrics, and the stage runtime's, and
// registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_redactor_records_total",
			Help: "Records processed, by outcome (clean, quarantined, dropped, invalid).",
		}, []string{"outcome"}),
		Redactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_redactor_redactions_total",
			Help: "Values redacted, by rule name.",
		}, []string{"rule"}),
		Transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_redactor_transactions_total",
			Help: "Kafka transactions ended, by result (committed, aborted).",
		}, []string{"result"}),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mirrorline_redactor_record_seconds",
			Help:    "Time to redact one record (CPU work only, no Kafka).",
			Buckets: prometheus.ExponentialBuckets(0.000005, 2, 16),
		}),
		Stage: stage.NewMetrics(reg, "redactor"),
	}
	for _, o := range []string{OutcomeClean, OutcomeQuarantined, OutcomeDropped, OutcomeInvalid} {
		m.Records.WithLabelValues(o)
	}
	m.Transactions.WithLabelValues("committed")
	m.Transactions.WithLabelValues("aborted")
	if reg != nil {
		reg.MustRegister(m.Records, m.Redactions, m.Transactions, m.Latency)
	}
	return m
}
