package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultMaxMessageBytes is the largest record batch mirrorline's producers
// send (kgo.ProducerBatchMaxBytes) and the max.message.bytes its topics are
// created with, unless max_message_bytes says otherwise: 4 MiB, room for a
// request and a response body at the collectors' 1 MiB body limit, their
// headers, and what redaction adds.
const DefaultMaxMessageBytes = 4 << 20

// minMaxMessageBytes and maxMaxMessageBytes bound max_message_bytes (the
// range franz-go accepts for a batch).
const (
	minMaxMessageBytes = 64 << 10
	maxMaxMessageBytes = 1 << 30
)

// recordOverhead is kept free in every budget for what Kafka counts against
// max.message.bytes besides the key, value and headers: the record batch
// header (61 bytes), the record's length, attribute, delta and size varints,
// and the produce request's framing.
const recordOverhead = 512

// headerOverhead is the framing of one record header (two length varints).
const headerOverhead = 10

// Budget is how large one record may be on a topic: the lower of the
// producer's batch limit and the topic's max.message.bytes. It starts at
// the producer's limit and is lowered once the topic's setting is known
// (Lookup, Watch); it is safe for concurrent use. A nil *Budget is the
// default budget (DefaultMaxMessageBytes).
type Budget struct {
	max atomic.Int64
}

// NewBudget returns a budget of maxMessageBytes per record batch (<= 0:
// DefaultMaxMessageBytes).
func NewBudget(maxMessageBytes int) *Budget {
	if maxMessageBytes <= 0 {
		maxMessageBytes = DefaultMaxMessageBytes
	}
	b := &Budget{}
	b.max.Store(int64(maxMessageBytes))
	return b
}

// MaxMessageBytes is the largest record batch the budget allows.
func (b *Budget) MaxMessageBytes() int {
	if b == nil {
		return DefaultMaxMessageBytes
	}
	return int(b.max.Load())
}

// Lower lowers the budget to n bytes per record batch; a larger n is ignored.
func (b *Budget) Lower(n int) {
	for {
		cur := b.max.Load()
		if int64(n) >= cur || n <= 0 || b.max.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

// MaxValue is the most value bytes a record with key and headers may carry
// within the budget (0 when the key and headers alone do not fit).
func (b *Budget) MaxValue(key []byte, headers []kgo.RecordHeader) int {
	n := b.MaxMessageBytes() - recordOverhead - len(key)
	for _, h := range headers {
		n -= len(h.Key) + len(h.Value) + headerOverhead
	}
	return max(n, 0)
}

// Fits reports whether r is within the budget.
func (b *Budget) Fits(r *kgo.Record) bool {
	return len(r.Value) <= b.MaxValue(r.Key, r.Headers)
}

// Lookup asks Kafka for topic's max.message.bytes (the topic's own setting,
// or the broker's message.max.bytes it defaults to) and lowers the budget to
// it.
func (b *Budget) Lookup(ctx context.Context, adm *kadm.Client, topic string) error {
	n, err := TopicMaxMessageBytes(ctx, adm, topic)
	if err != nil {
		return err
	}
	b.Lower(n)
	return nil
}

// Watch runs Lookup until it succeeds, ctx ends or the client is closed,
// retrying with backoff (Kafka may not be reachable yet): until then the
// producer's limit applies.
func (b *Budget) Watch(ctx context.Context, adm *kadm.Client, topic string, log hclog.Logger) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	backoff := 500 * time.Millisecond
	for {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := b.Lookup(lctx, adm, topic)
		cancel()
		if err == nil {
			log.Debug("record budget", "topic", topic, "max_message_bytes", b.MaxMessageBytes())
			return
		}
		if ctx.Err() != nil || errors.Is(err, kgo.ErrClientClosed) {
			return
		}
		log.Warn("look up the topic's max.message.bytes; the producer's limit applies meanwhile", "topic", topic, "error", Explain(err, nil), "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// TopicMaxMessageBytes returns topic's effective max.message.bytes.
func TopicMaxMessageBytes(ctx context.Context, adm *kadm.Client, topic string) (int, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	var rc kadm.ResourceConfig
	if err == nil {
		rc, err = rcs.On(topic, nil)
	}
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return 0, fmt.Errorf("describe config of topic %s: %w", topic, err)
	}
	for _, c := range rc.Configs {
		if c.Key != "max.message.bytes" || c.Value == nil {
			continue
		}
		n, err := strconv.Atoi(*c.Value)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("topic %s: max.message.bytes %q is not a positive integer", topic, *c.Value)
		}
		return n, nil
	}
	return 0, fmt.Errorf("topic %s: max.message.bytes not reported", topic)
}

// batchLimit is the kgo.ProducerBatchMaxBytesFn of clients made with opts:
// producerMax, lowered to a topic's max.message.bytes, which it asks Kafka
// for (with a client of its own, once per topic) when the client first
// produces to the topic. A batch of small records larger than the topic
// accepts would be rejected whole; a topic whose setting cannot be read gets
// producerMax.
func batchLimit(opts []kgo.Opt, producerMax int) func(string) int32 {
	opts = append([]kgo.Opt(nil), opts...)
	var mu sync.Mutex
	known := map[string]int32{}
	return func(topic string) int32 {
		if topic == "" {
			return int32(producerMax)
		}
		mu.Lock()
		n, ok := known[topic]
		mu.Unlock()
		if ok {
			return n
		}
		// Asked once per topic, success or not: kgo keeps the answer per
		// partition anyway, and a failing lookup must not hold up the
		// discovery of every partition.
		n = int32(producerMax)
		if cl, err := kgo.NewClient(opts...); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if m, err := TopicMaxMessageBytes(ctx, kadm.NewClient(cl), topic); err == nil {
				n = int32(max(min(m, producerMax), 512))
			}
			cancel()
			cl.Close()
		}
		mu.Lock()
		known[topic] = n
		mu.Unlock()
		return n
	}
}
