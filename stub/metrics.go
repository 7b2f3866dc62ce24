package stub

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/telemetry"
)

// Outcomes of a call, the values of mirrorline_stub_calls_total{outcome}
// and of StubAnswer.outcome (error only in the metric: the answer then is
// a 502 of the stub's own).
const (
	Hit         = "hit"
	Miss        = "miss"
	Passthrough = "passthrough"
	Error       = "error"
)

// Reasons an index record is skipped, mirrorline_stub_index_skipped_total{reason}.
const (
	SkipDecode  = "decode"
	SkipInbound = "inbound"
	SkipNoKey   = "no_key"
	// SkipNoResponse: the primary's call got no response to give.
	SkipNoResponse = "no_response"
)

// Metrics are the stub's metrics (mirrorline_stub_*).
type Metrics struct {
	Calls        *prometheus.CounterVec
	Indexed      prometheus.Counter
	Evicted      prometheus.Counter
	Skipped      *prometheus.CounterVec
	IndexRecords prometheus.Gauge
	IndexBytes   prometheus.Gauge
	Wait         prometheus.Histogram
	Published    prometheus.Counter
	Dropped      *prometheus.CounterVec
}

// NewMetrics creates the stub's metrics and registers them on reg (when
// not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Calls:        telemetry.CounterVec("mirrorline_stub_calls_total", "Outbound calls of the shadow answered, by outcome.", "outcome", Hit, Miss, Passthrough, Error),
		Indexed:      telemetry.Counter("mirrorline_stub_indexed_total", "Recorded egress calls of the primary added to the index."),
		Evicted:      telemetry.Counter("mirrorline_stub_evicted_total", "Recorded egress calls evicted from the index (oldest first) to stay within its bounds."),
		Skipped:      telemetry.CounterVec("mirrorline_stub_index_skipped_total", "Records of the clean topic not indexed, by reason.", "reason", SkipDecode, SkipInbound, SkipNoKey, SkipNoResponse),
		IndexRecords: telemetry.Gauge("mirrorline_stub_index_records", "Recorded egress calls in the index."),
		IndexBytes:   telemetry.Gauge("mirrorline_stub_index_bytes", "Estimated bytes of the recorded egress calls in the index."),
		Wait:         telemetry.Histogram("mirrorline_stub_index_wait_seconds", "Time a call waited for the index to catch up with the clean topic before it was decided.", 0.001, 14),
		Published:    telemetry.Counter("mirrorline_stub_published_total", "Shadow egress records acknowledged by Kafka."),
		Dropped:      telemetry.CounterVec("mirrorline_stub_publish_dropped_total", "Shadow egress records not published, by reason.", "reason", "queue_full", "encode_error", "too_large", "publish_error", "closed"),
	}
	telemetry.Register(reg, m.Calls, m.Indexed, m.Evicted, m.Skipped, m.IndexRecords, m.IndexBytes, m.Wait, m.Published, m.Dropped)
	return m
}
