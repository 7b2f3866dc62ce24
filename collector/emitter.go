package collector

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
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
)

// Metrics are the collector metrics of the SPEC.
type Metrics struct {
	Captured       prometheus.Counter
	Dropped        *prometheus.CounterVec
	Skipped        *prometheus.CounterVec
	PublishLatency prometheus.Histogram
	Published      prometheus.Counter
	// OpenConns and ShedConns are the client connections of the HTTP
	// collectors (proxy, sink): open now, and shed at the connection cap.
	OpenConns prometheus.Gauge
	ShedConns *prometheus.CounterVec
}

// NewMetrics creates the collector metrics and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Captured: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirrorline_collector_captured_total",
			Help: "Exchanges captured and handed to the publisher.",
		}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_collector_dropped_total",
			Help: "Captured exchanges that were not published, by reason.",
		}, []string{"reason"}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_collector_skipped_total",
			Help: "Requests not captured on purpose (sampling, route filters), by reason.",
		}, []string{"reason"}),
		PublishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mirrorline_collector_publish_latency_seconds",
			Help:    "Time from hand-off to the publisher to the broker's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirrorline_collector_published_total",
			Help: "Exchanges acknowledged by Kafka.",
		}),
		OpenConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mirrorline_collector_open_connections",
			Help: "Client connections open on the proxy and sink listeners.",
		}),
		ShedConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_collector_connections_shed_total",
			Help: "Client connections closed at the connection cap (--max-conns), by reason: idle_closed (oldest idle one closed for a new one), rejected (all busy: answered 503).",
		}, []string{"reason"}),
	}
	for _, r := range []string{DropQueueFull, DropPublishError, DropEncodeError, DropClosed, DropIncompleteBody, DropBodyTimeout, DropBadFraming, DropUnsupported} {
		m.Dropped.WithLabelValues(r)
	}
	for _, r := range []string{ShedIdle, ShedRejected} {
		m.ShedConns.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Captured, m.Dropped, m.Skipped, m.PublishLatency, m.Published, m.OpenConns, m.ShedConns)
	}
	return m
}

// Emitter publishes captured exchanges to mirror.raw.<service>, asynchronously
// and without blocking: when the producer's bounded buffer is full the exchange is
// dropped and counted, never waited for.
type Emitter struct {
	prod    Producer
	topic   string
	service string
	metrics *Metrics
	log     hclog.Logger
	now     func() time.Time
}

// NewEmitter returns an Emitter for service publishing through prod.
func NewEmitter(prod Producer, service string, m *Metrics, log hclog.Logger) *Emitter {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Emitter{prod: prod, topic: broker.Topic(broker.Raw, service), service: service, metrics: m, log: log, now: time.Now}
}

// Metrics returns the emitter's metrics.
func (e *Emitter) Metrics() *Metrics { return e.metrics }

// Service returns the service this emitter publishes for.
func (e *Emitter) Service() string { return e.service }

// Emit publishes ex. It fills in the id, service and capture time when unset and
// returns at once. Only an encoding failure is returned; a full queue or a failed
// delivery is counted in mirrorline_collector_dropped_total{reason} when it happens.
func (e *Emitter) Emit(ex *mlv1.Exchange) error {
	e.metrics.Captured.Inc()
	if ex.Id == "" {
		ex.Id = NewID()
	}
	if ex.Service == "" {
		ex.Service = e.service
	}
	if ex.CaptureTimeNs == 0 {
		ex.CaptureTimeNs = e.now().UnixNano()
	}
	val, err := proto.Marshal(ex)
	if err != nil {
		e.metrics.Dropped.WithLabelValues(DropEncodeError).Inc()
		return err
	}
	key := ex.ConnectionId
	if key == "" {
		key = ex.Id
	}
	rec := &kgo.Record{
		Topic:     e.topic,
		Key:       []byte(key),
		Value:     val,
		Timestamp: time.Unix(0, ex.CaptureTimeNs),
	}
	start := e.now()
	e.prod.TryProduce(context.Background(), rec, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			e.metrics.Published.Inc()
			e.metrics.PublishLatency.Observe(e.now().Sub(start).Seconds())
		case errors.Is(err, kgo.ErrMaxBuffered):
			e.metrics.Dropped.WithLabelValues(DropQueueFull).Inc()
		case errors.Is(err, kgo.ErrClientClosed):
			e.metrics.Dropped.WithLabelValues(DropClosed).Inc()
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
