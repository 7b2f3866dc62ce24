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
	// GRPCMessages counts gRPC messages scrubbed, by mode (schema, wire,
	// json, truncated); GRPCSetAside the gRPC records set aside, by reason
	// (the Reason* constants).
	GRPCMessages *prometheus.CounterVec
	GRPCSetAside *prometheus.CounterVec
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
		GRPCMessages: telemetry.CounterVec("mirrorline_redactor_grpc_messages_total", "gRPC messages scrubbed, by mode (schema, wire, json, truncated).", "mode", ModeSchema, ModeWire, ModeJSON, ModeTruncated),
		GRPCSetAside: telemetry.CounterVec("mirrorline_redactor_grpc_set_aside_total", "gRPC records set aside because a message could not be scrubbed, by reason.", "reason", ReasonEncoding, ReasonDecompress, ReasonSchemaMismatch, ReasonMalformed, ReasonSurvived),
	}
	telemetry.Register(reg, m.Records, m.Redactions, m.Transactions, m.Latency, m.GRPCMessages, m.GRPCSetAside)
	return m
}
