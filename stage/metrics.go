package stage

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the runtime's metrics of one stage, mirrorline_stage_*, with a
// constant label stage (redactor, replayer, comparator, ...). Several stages
// register theirs on one registry (`mirrorline up`): the stage label tells
// them apart.
type Metrics struct {
	// Polled counts records received from Kafka.
	Polled prometheus.Counter
	// Undecodable counts records that are not a protobuf of the stage's
	// type; they are skipped (or set aside) and never stop a partition.
	Undecodable prometheus.Counter
	// FetchErrors counts fetch errors by topic (retried by the client).
	FetchErrors *prometheus.CounterVec
	// Commits counts offset commits by result (ok, error).
	Commits *prometheus.CounterVec
	// InFlight is the number of records handed to the handler and not yet
	// done or given up.
	InFlight prometheus.Gauge
	// HandedOver counts partitions this member gave up in a rebalance
	// (revoked: committed first; lost: not).
	HandedOver *prometheus.CounterVec
	// SetAside counts records a transactional stage could not transform (or
	// Kafka refused as too large) and set aside, by kind (undecodable,
	// failed, too_large).
	SetAside *prometheus.CounterVec
	// Transactions counts transactions ended, by result (committed, aborted).
	Transactions *prometheus.CounterVec
}

// NewMetrics creates the runtime metrics of stage and registers them on reg
// (when not nil).
func NewMetrics(reg prometheus.Registerer, stage string) *Metrics {
	cl := prometheus.Labels{"stage": stage}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: cl})
	}
	vec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: cl}, []string{label})
	}
	m := &Metrics{
		Polled:       counter("mirrorline_stage_polled_records_total", "Records received from Kafka, by stage."),
		Undecodable:  counter("mirrorline_stage_undecodable_records_total", "Records that could not be decoded; skipped or set aside, never halting a partition."),
		FetchErrors:  vec("mirrorline_stage_fetch_errors_total", "Fetch errors by topic (the client retries).", "topic"),
		Commits:      vec("mirrorline_stage_commits_total", "Offset commits by result (ok, error).", "result"),
		InFlight:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "mirrorline_stage_inflight_records", Help: "Records handed to the stage and not yet done or given up.", ConstLabels: cl}),
		HandedOver:   vec("mirrorline_stage_handed_over_partitions_total", "Partitions given up in a rebalance: revoked (committed first) or lost.", "how"),
		SetAside:     vec("mirrorline_stage_set_aside_records_total", "Records a transactional stage set aside instead of transforming, by kind (undecodable, failed, too_large).", "kind"),
		Transactions: vec("mirrorline_stage_transactions_total", "Kafka transactions ended, by result (committed, aborted).", "result"),
	}
	for _, r := range []string{"ok", "error"} {
		m.Commits.WithLabelValues(r)
	}
	for _, h := range []string{"revoked", "lost"} {
		m.HandedOver.WithLabelValues(h)
	}
	for _, k := range []string{SetAsideUndecodable, SetAsideFailed, SetAsideTooLarge} {
		m.SetAside.WithLabelValues(k)
	}
	for _, r := range []string{"committed", "aborted"} {
		m.Transactions.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Polled, m.Undecodable, m.FetchErrors, m.Commits, m.InFlight, m.HandedOver, m.SetAside, m.Transactions)
	}
	return m
}

// Kinds of records set aside, counted in
// mirrorline_stage_set_aside_records_total{kind}.
const (
	SetAsideUndecodable = "undecodable"
	SetAsideFailed      = "failed"
	SetAsideTooLarge    = "too_large"
)
