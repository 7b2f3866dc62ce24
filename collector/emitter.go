package collector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"sync"
	"sync/atomic"
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
	// DropEgressTunnel: a CONNECT tunnel through the egress forward proxy
	// (HTTPS through HTTP_PROXY): its bytes are TLS, not captured.
	DropEgressTunnel = "egress_tunnel"
	// DropEgressDenied: a call to a host the egress forward proxy is not
	// allowed to reach (--egress-allow), refused 403.
	DropEgressDenied = "egress_denied"
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

	// skipped holds Skipped's children by Decision, so a skipped request
	// does not look its label up (Skip).
	skipped [len(skipReasons)]prometheus.Counter
}

// NewMetrics creates the collector metrics and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Captured:       telemetry.Counter("mirrorline_collector_captured_total", "Exchanges captured and handed to the publisher."),
		Dropped:        telemetry.CounterVec("mirrorline_collector_dropped_total", "Captured exchanges that were not published, by reason.", "reason", DropQueueFull, DropPublishError, DropEncodeError, DropClosed, DropTooLarge, DropUnsafeTarget, DropIncompleteBody, DropBodyTimeout, DropBadFraming, DropUnsupported, DropEgressTunnel, DropEgressDenied),
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
	for d, reason := range skipReasons {
		if reason != "" {
			m.skipped[d] = m.Skipped.WithLabelValues(reason)
		}
	}
	telemetry.Register(reg, m.Captured, m.Dropped, m.Skipped, m.PublishLatency, m.Published, m.Queued, m.Truncated, m.OpenConns, m.ShedConns, m.SampleRatio)
	return m
}

// Emitter publishes captured exchanges to mirror.raw.<service>, asynchronously
// and without blocking: when the producer's bounded buffer is full the exchange is
// dropped and counted, never waited for. An exchange larger than the raw
// topic's record budget is cut to fit (Exchange.Fit: bodies first, flagged
// truncated, sizes kept) rather than lost.
//
// Submit hands an exchange to the emitter's own workers, which encode and
// produce it off the caller's goroutine (the HTTP collectors use it so a
// client never waits for the encoding); Emit does the same work on the
// caller's goroutine. Close drains what Submit accepted.
type Emitter struct {
	prod    Producer
	topic   string
	service string
	metrics *Metrics
	log     hclog.Logger
	now     func() time.Time
	budget  *broker.Budget

	// The hand-off queue of Submit: per worker, bounded in records and bytes.
	queueRecords int
	queueBytes   int64
	workers      int
	start        sync.Once
	work         []chan handoff
	seed         maphash.Seed
	held         atomic.Int64  // bytes in the hand-off queue
	mu           sync.RWMutex  // closed; held for reading while Submit enqueues
	closed       bool          // guarded by mu
	stopped      chan struct{} // closed when every worker has returned
	running      sync.WaitGroup
}

// handoff is one item of a worker's queue: an exchange and its estimated
// size, or (ex nil) a marker the worker closes when it reaches it.
type handoff struct {
	ex   *mlv1.Exchange
	size int64
	mark chan struct{}
	stop bool
}

// EmitterOpt configures an Emitter.
type EmitterOpt func(*Emitter)

// WithBudget sets the raw topic's record budget (default: a budget of
// broker.DefaultMaxMessageBytes). Share it with a broker.Budget.Watch so it
// follows the topic's max.message.bytes.
func WithBudget(b *broker.Budget) EmitterOpt { return func(e *Emitter) { e.budget = b } }

// Default bounds of the hand-off queue of Submit (WithHandoff).
const (
	DefaultHandoffRecords = 4096
	DefaultHandoffBytes   = 64 << 20
)

// WithHandoff bounds the queue between Submit and the emitter's workers to
// records exchanges and bytes bytes (estimated from bodies, headers and URL);
// beyond either, Submit drops the exchange and counts it as queue_full.
// Non-positive values keep the defaults.
func WithHandoff(records int, bytes int64) EmitterOpt {
	return func(e *Emitter) {
		if records > 0 {
			e.queueRecords = records
		}
		if bytes > 0 {
			e.queueBytes = bytes
		}
	}
}

// WithWorkers sets how many goroutines encode and produce what Submit hands
// over (default: one per four CPUs, at least one). Exchanges of one
// connection always go to the same worker, so they keep their order.
func WithWorkers(n int) EmitterOpt {
	return func(e *Emitter) {
		if n > 0 {
			e.workers = n
		}
	}
}

// NewEmitter returns an Emitter for service publishing through prod.
func NewEmitter(prod Producer, service string, m *Metrics, log hclog.Logger, opts ...EmitterOpt) *Emitter {
	log = cmp.Or(log, hclog.NewNullLogger())
	if m == nil {
		m = NewMetrics(nil)
	}
	e := &Emitter{prod: prod, topic: broker.Topic(broker.Raw, service), service: service, metrics: m, log: log, now: time.Now,
		queueRecords: DefaultHandoffRecords, queueBytes: DefaultHandoffBytes, workers: max(1, runtime.GOMAXPROCS(0)/4),
		seed: maphash.MakeSeed(), stopped: make(chan struct{})}
	for _, o := range opts {
		o(e)
	}
	return e
}

// startWorkers starts the goroutines that drain the hand-off queue; they run
// until Close.
func (e *Emitter) startWorkers() {
	per := max(1, e.queueRecords/e.workers)
	e.work = make([]chan handoff, e.workers)
	for i := range e.work {
		ch := make(chan handoff, per)
		e.work[i] = ch
		e.running.Add(1)
		go func() {
			defer e.running.Done()
			for h := range ch {
				switch {
				case h.stop:
					return
				case h.mark != nil:
					close(h.mark)
				default:
					e.held.Add(-h.size)
					e.publish(h.ex, true)
				}
			}
		}()
	}
	go func() { e.running.Wait(); close(e.stopped) }()
}

// Submit hands ex to the emitter's workers and returns at once, without
// encoding it: the worker does what Emit does. When the hand-off queue is
// full (WithHandoff) or the emitter is closed, ex is dropped and counted
// (queue_full, closed). ex belongs to the emitter afterwards.
func (e *Emitter) Submit(ex *mlv1.Exchange) {
	e.metrics.Captured.Inc()
	e.start.Do(e.startWorkers)
	size := handoffSize(ex)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		e.metrics.Dropped.WithLabelValues(DropClosed).Inc()
		return
	}
	if e.held.Add(size) > e.queueBytes {
		e.held.Add(-size)
		e.metrics.Dropped.WithLabelValues(DropQueueFull).Inc()
		return
	}
	ch := e.work[0]
	if len(e.work) > 1 {
		ch = e.work[maphash.String(e.seed, cmp.Or(ex.ConnectionId, ex.Id))%uint64(len(e.work))]
	}
	// Counted as queued from here: a crash now loses it.
	e.metrics.Queued.Inc()
	select {
	case ch <- handoff{ex: ex, size: size}:
	default:
		e.metrics.Queued.Dec()
		e.held.Add(-size)
		e.metrics.Dropped.WithLabelValues(DropQueueFull).Inc()
	}
}

// handoffSize estimates the memory ex holds: bodies, URL and headers.
func handoffSize(ex *mlv1.Exchange) int64 {
	n := 256
	if r := ex.GetRequest(); r != nil {
		n += len(r.Body) + len(r.Url)
		for _, h := range r.Headers {
			n += len(h.Name) + len(h.Value) + 32
		}
		n += messagesSize(r.Messages, r.Trailers)
	}
	if r := ex.GetResponse(); r != nil {
		n += len(r.Body)
		for _, h := range r.Headers {
			n += len(h.Name) + len(h.Value) + 32
		}
		n += messagesSize(r.Messages, r.Trailers)
	}
	return int64(n)
}

// messagesSize estimates the memory of a gRPC direction's messages and
// trailers.
func messagesSize(msgs []*mlv1.Message, trailers []*mlv1.Header) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Data) + 64
	}
	for _, h := range trailers {
		n += len(h.Name) + len(h.Value) + 32
	}
	return n
}

// RecordBudget returns the most bytes one record may take on the raw topic
// (WithBudget): what a collector may keep of one exchange at most.
func (e *Emitter) RecordBudget() int { return e.budget.MaxMessageBytes() }

// Flush waits until every exchange Submit accepted before the call has been
// handed to the producer (not acknowledged by Kafka: flush the producer for
// that), or ctx ends.
func (e *Emitter) Flush(ctx context.Context) error {
	e.start.Do(e.startWorkers)
	marks := make([]chan struct{}, len(e.work))
	for i, ch := range e.work {
		marks[i] = make(chan struct{})
		select {
		case ch <- handoff{mark: marks[i]}:
		case <-e.stopped:
			return nil // Close drained everything
		case <-ctx.Done():
			return fmt.Errorf("flush hand-off queue: %w", ctx.Err())
		}
	}
	for _, m := range marks {
		select {
		case <-m:
		case <-e.stopped:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("flush hand-off queue: %w", ctx.Err())
		}
	}
	return nil
}

// Close stops Submit from accepting (later exchanges are dropped and counted
// as closed) and waits until the workers have handed everything accepted to
// the producer, or ctx ends. Flush and close the producer afterwards.
func (e *Emitter) Close(ctx context.Context) error {
	e.start.Do(e.startWorkers)
	e.mu.Lock()
	already := e.closed
	e.closed = true
	e.mu.Unlock()
	if !already {
		for _, ch := range e.work {
			select {
			case ch <- handoff{stop: true}:
			case <-ctx.Done():
				return fmt.Errorf("close hand-off queue: %w", ctx.Err())
			}
		}
	}
	select {
	case <-e.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close hand-off queue: %w", ctx.Err())
	}
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
	return e.publish(ex, false)
}

// publish encodes ex and hands it to the producer; queued reports that ex is
// already counted in the queue gauge (Submit counted it).
func (e *Emitter) publish(ex *mlv1.Exchange, queued bool) error {
	if !queued {
		e.metrics.Queued.Inc()
	}
	if ex.Id == "" {
		ex.Id = NewID()
	}
	if err := normalizeTarget(ex); err != nil {
		// Counted, like a full queue: never published, so never replayed.
		e.metrics.Queued.Dec()
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
		e.metrics.Queued.Dec()
		e.metrics.Dropped.WithLabelValues(DropEncodeError).Inc()
		return err
	case !fits:
		e.metrics.Queued.Dec()
		e.metrics.Dropped.WithLabelValues(DropTooLarge).Inc()
		e.log.Warn("exchange does not fit the record budget even without bodies and headers; dropped", "budget_bytes", e.budget.MaxMessageBytes())
		return nil
	case cut:
		e.metrics.Truncated.Inc()
	}
	rec.Value = val
	start := e.now()
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
