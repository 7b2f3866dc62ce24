package redactor

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/telemetry"
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
		Records:      telemetry.CounterVec("mirrorline_redactor_records_total", "Records processed, by outcome (clean, quarantined, dropped, invalid).", "outcome", OutcomeClean, OutcomeQuarantined, OutcomeDropped, OutcomeInvalid),
		Redactions:   telemetry.CounterVec("mirrorline_redactor_redactions_total", "Values redacted, by rule name.", "rule"),
		Transactions: telemetry.CounterVec("mirrorline_redactor_transactions_total", "Kafka transactions ended, by result (committed, aborted).", "result", "committed", "aborted"),
		Latency:      telemetry.Histogram("mirrorline_redactor_record_seconds", "Time to redact one record (CPU work only, no Kafka).", 0.000005, 16),
		Stage:        stage.NewMetrics(reg, "redactor"),
	}
	telemetry.Register(reg, m.Records, m.Redactions, m.Transactions, m.Latency)
	return m
}
