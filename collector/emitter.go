package collector

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/telemetry"
)

// Producer is what the Emitter needs from Kafka: a produce call that fails at once
// instead of blocking when its bounded buffer is full. *kgo.Client satisfies it
// (configure its buffer with kgo.MaxBufferedRecords / kgo.MaxBufferedBytes).
type Producer interface {
	TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Drop reasons counted in mirrorline_collector_dropped_total{reason}.
const (
	DropQueueFull    = "queue_full"
	DropPublishError = "publish_error"
	DropEncodeError  = "encode_error"
	DropClosed       = "closed"
	// DropTooLarge: the record does not fit the raw topic even with empty
	// bodies and no headers (a URL as large as the budget), or Kafka
	// rejected it as too large (the topic's limit not known yet).
	DropTooLarge = "too_large"
)

// Metrics are the collector metrics (mirrorline_collector_*), shared by every collector.
type Metrics struct {
	Captured       prometheus.Counter
	Dropped        *prometheus.CounterVec
	Skipped        *prometheus.CounterVec
	PublishLatency prometheus.Histogram
	Published      prometheus.Counter
	// Queued counts the exchanges handed to the producer and neither
	// acknowledged by Kafka nor dropped yet: what a crash (kill -9) of the
	// process would lose.
	Queued prometheus.Gauge
	// Truncated counts exchanges whose bodies (or headers) were cut to fit
	// the raw topic's record budget.
	Truncated prometheus.Counter
	// OpenConns and ShedConns are the client connections of the HTTP
	// collectors (proxy, sink): open now, and shed at the connection cap.
	OpenConns prometheus.Gauge
	ShedConns *prometheus.CounterVec
	// SampleRatio is the fraction of requests captured per collector (proxy,
	// sink) and configured route (its name, never a captured path), as
	// currently in force; it follows configuration reloads.
	SampleRatio *prometheus.GaugeVec
}

// NewMetrics creates the collector metrics and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Captured:       telemetry.Counter("mirrorline_collector_captured_total", "Exchanges captured and handed to the publisher."),
		Dropped:        telemetry.CounterVec("mirrorline_collector_dropped_total", "Captured exchanges that were not published, by reason.", "reason", DropQueueFull, DropPublishError, DropEncodeError, DropClosed, DropTooLarge, DropUnsafeTarget, DropIncompleteBody, DropBodyTimeout, DropBadFraming, DropUnsupported),
		Skipped:        telemetry.CounterVec("mirrorline_collector_skipped_total", "Requests not captured on purpose (sampling, route filters), by reason.", "reason"),
		PublishLatency: telemetry.Histogram("mirrorline_collector_publish_latency_seconds", "Time from hand-off to the publisher to the broker's acknowledgement.", 0.0005, 16),
		Published:      telemetry.Counter("mirrorline_collector_published_total", "Exchanges acknowledged by Kafka."),
		Queued:         telemetry.Gauge("mirrorline_collector_queue_records", "Exchanges handed to the Kafka producer and not yet acknowledged or dropped (lost if the process is killed)."),
		Truncated:      telemetry.Counter("mirrorline_collector_truncated_total", "Exchanges whose bodies (or headers) were cut to fit the raw topic's record budget; they are flagged truncated and keep their sizes."),
		OpenConns:      telemetry.Gauge("mirrorline_collector_open_connections", "Client connections open on the proxy and sink listeners."),
		ShedConns:      telemetry.CounterVec("mirrorline_collector_connections_shed_total", "Client connections closed at the connection cap (--max-conns), by reason: idle_closed (oldest idle one closed for a new one), rejected (all busy: answered 503).", "reason", ShedIdle, ShedRejected),
		SampleRatio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mirrorline_collector_sample_ratio",
			Help: "Fraction of matching requests captured, per HTTP collector and configured route (route=\"default\" without routes); follows configuration reloads.",
		}, []string{"collector", "route"}),
	}
	telemetry.Register(reg, m.Captured, m.Dropped, m.Skipped, m.PublishLatency, m.Published, m.Queued, m.Truncated, m.OpenConns, m.ShedConns, m.SampleRatio)
	return m
}

// Emitter publishes captured exchanges to mirror.raw.<service>, asynchronously
// and without blocking: when the producer's bounded buffer is full the exchange is
// dropped and counted, never waited for. An exchange larger than the raw
// topic's record budget is cut to fit (Exchange.Fit: bodies first, flagged
// truncated, sizes kept) rather than lost.
type Emitter struct {
	prod    Producer
	topic   string
	service string
	metrics *Metrics
	log     hclog.Logger
	now     func() time.Time
	budget  *broker.Budget
}

// EmitterOpt configures an Emitter.
type EmitterOpt func(*Emitter)

// WithBudget sets the raw topic's record budget (default: a budget of
// broker.DefaultMaxMessageBytes). Share it with a broker.Budget.Watch so it
// follows the topic's max.message.bytes.
func WithBudget(b *broker.Budget) EmitterOpt { return func(e *Emitter) { e.budget = b } }

// NewEmitter returns an Emitter for service publishing through prod.
func NewEmitter(prod Producer, service string, m *Metrics, log hclog.Logger, opts ...EmitterOpt) *Emitter {
	log = cmp.Or(log, hclog.NewNullLogger())
	if m == nil {
		m = NewMetrics(nil)
	}
	e := &Emitter{prod: prod, topic: broker.Topic(broker.Raw, service), service: service, metrics: m, log: log, now: time.Now}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Topic returns the topic the emitter publishes to.
func (e *Emitter) Topic() string { return e.topic }

// Metrics returns the emitter's metrics.
func (e *Emitter) Metrics() *Metrics { return e.metrics }

// Service returns the service this emitter publishes for.
func (e *Emitter) Service() string { return e.service }

// Emit publishes ex. It fills in the id, service and capture time when unset,
// rewrites the request-target to origin-form (an unsafe one is dropped and
// counted with reason unsafe_target, see reqtarget.Parse) and returns at once;
// ex is cut to the record budget when larger (so it is the emitter's
// afterwards). Only an encoding failure is returned; a full queue or a failed
// delivery is counted in mirrorline_collector_dropped_total{reason} when it happens.
func (e *Emitter) Emit(ex *mlv1.Exchange) error {
	e.metrics.Captured.Inc()
	if ex.Id == "" {
		ex.Id = NewID()
	}
	if err := normalizeTarget(ex); err != nil {
		// Counted, like a full queue: never published, so never replayed.
		e.metrics.Dropped.WithLabelValues(DropUnsafeTarget).Inc()
		e.log.Debug("capture dropped", "reason", DropUnsafeTarget, "error", err)
		return nil
	}
	ex.Service = cmp.Or(ex.Service, e.service)
	if ex.CaptureTimeNs == 0 {
		ex.CaptureTimeNs = e.now().UnixNano()
	}
	key := cmp.Or(ex.ConnectionId, ex.Id)
	rec := &kgo.Record{
		Topic:     e.topic,
		Key:       []byte(key),
		Timestamp: time.Unix(0, ex.CaptureTimeNs),
	}
	val, cut, fits, err := mlv1.MarshalWithin(ex, e.budget.MaxValue(rec.Key, nil))
	switch {
	case err != nil:
		e.metrics.Dropped.WithLabelValues(DropEncodeError).Inc()
		return err
	case !fits:
		e.metrics.Dropped.WithLabelValues(DropTooLarge).Inc()
		e.log.Warn("exchange does not fit the record budget even without bodies and headers; dropped", "budget_bytes", e.budget.MaxMessageBytes())
		return nil
	case cut:
		e.metrics.Truncated.Inc()
	}
	rec.Value = val
	start := e.now()
	e.metrics.Queued.Inc()
	e.prod.TryProduce(context.Background(), rec, func(_ *kgo.Record, err error) {
		e.metrics.Queued.Dec()
		switch {
		case err == nil:
			e.metrics.Published.Inc()
			e.metrics.PublishLatency.Observe(e.now().Sub(start).Seconds())
		case errors.Is(err, kgo.ErrMaxBuffered):
			e.metrics.Dropped.WithLabelValues(DropQueueFull).Inc()
		case errors.Is(err, kgo.ErrClientClosed):
			e.metrics.Dropped.WithLabelValues(DropClosed).Inc()
		case errors.Is(err, kerr.MessageTooLarge):
			e.metrics.Dropped.WithLabelValues(DropTooLarge).Inc()
			e.log.Warn("publish failed: record larger than the topic accepts", "topic", e.topic, "bytes", len(rec.Value), "budget_bytes", e.budget.MaxMessageBytes(), "error", err)
		default:
			e.metrics.Dropped.WithLabelValues(DropPublishError).Inc()
			e.log.Warn("publish failed", "topic", e.topic, "error", err)
		}
	})
	return nil
}

// NewID returns a new time-ordered exchange id (UUIDv7).
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
