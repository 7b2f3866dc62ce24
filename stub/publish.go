package stub

import (
	"cmp"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// DefaultQueueRecords bounds the records waiting to be published.
const DefaultQueueRecords = 4096

// Producer is what the Publisher needs from Kafka: a produce call that
// fails at once when its bounded buffer is full (*kgo.Client).
type Producer interface {
	TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Publisher publishes the shadow's answered calls to the shadow topic off
// the answer's path: Submit never blocks; what does not fit its queue, the
// record budget or Kafka is dropped and counted.
type Publisher struct {
	prod    Producer
	topic   string
	budget  *broker.Budget
	metrics *Metrics
	log     hclog.Logger
	queue   chan *mlv1.Exchange
	mu      sync.RWMutex
	closed  bool
	done    chan struct{}
}

// NewPublisher returns a Publisher to topic with a queue of records
// entries (non-positive: DefaultQueueRecords); budget may be nil (the
// default record budget). Start it with Run.
func NewPublisher(prod Producer, topic string, records int, budget *broker.Budget, m *Metrics, log hclog.Logger) *Publisher {
	if records <= 0 {
		records = DefaultQueueRecords
	}
	if budget == nil {
		budget = broker.NewBudget(0)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Publisher{prod: prod, topic: topic, budget: budget, metrics: m, log: cmp.Or(log, hclog.NewNullLogger()),
		queue: make(chan *mlv1.Exchange, records), done: make(chan struct{})}
}

// Submit queues ex, or drops and counts it when the queue is full or the
// Publisher stopped.
func (p *Publisher) Submit(ex *mlv1.Exchange) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.metrics.Dropped.WithLabelValues("closed").Inc()
		return
	}
	select {
	case p.queue <- ex:
	default:
		p.metrics.Dropped.WithLabelValues("queue_full").Inc()
	}
}

// Run publishes what is submitted until ctx ends, then what is still
// queued (Submit drops from then on).
func (p *Publisher) Run(ctx context.Context) error {
	defer close(p.done)
	for {
		select {
		case ex := <-p.queue:
			p.publish(ex)
		case <-ctx.Done():
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			for {
				select {
				case ex := <-p.queue:
					p.publish(ex)
				default:
					return nil
				}
			}
		}
	}
}

// Done is closed when Run has handed everything queued to the producer.
func (p *Publisher) Done() <-chan struct{} { return p.done }

func (p *Publisher) publish(ex *mlv1.Exchange) {
	key := []byte(cmp.Or(ex.GetParentId(), ex.GetTraceId(), ex.GetId()))
	val, _, fits, err := mlv1.MarshalWithin(ex, p.budget.MaxValue(key, nil))
	switch {
	case err != nil:
		p.metrics.Dropped.WithLabelValues("encode_error").Inc()
		return
	case !fits:
		p.metrics.Dropped.WithLabelValues("too_large").Inc()
		return
	}
	rec := &kgo.Record{Topic: p.topic, Key: key, Value: val, Timestamp: time.Unix(0, ex.GetCaptureTimeNs())}
	p.prod.TryProduce(context.Background(), rec, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
			p.metrics.Published.Inc()
		case errors.Is(err, kgo.ErrMaxBuffered):
			p.metrics.Dropped.WithLabelValues("queue_full").Inc()
		case errors.Is(err, kgo.ErrClientClosed):
			p.metrics.Dropped.WithLabelValues("closed").Inc()
		case errors.Is(err, kerr.MessageTooLarge):
			p.metrics.Dropped.WithLabelValues("too_large").Inc()
		default:
			p.metrics.Dropped.WithLabelValues("publish_error").Inc()
			p.log.Warn("publish shadow egress record", "topic", p.topic, "error", err)
		}
	})
}
