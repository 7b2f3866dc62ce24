package redactor

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// OnFailure says what happens to a record that cannot be redacted safely.
type OnFailure string

// Failure policies.
const (
	// Quarantine publishes the record's envelope, without bodies, headers or
	// query, to mirror.quarantine.<service>.
	Quarantine OnFailure = "quarantine"
	// Drop only counts it.
	Drop OnFailure = "drop"
)

// Kafka record headers of a quarantine record: why, and which raw record it
// stands for. Reasons name the failure, never payload bytes.
const (
	HeaderReason          = "mirrorline-quarantine-reason"
	HeaderSourceTopic     = "mirrorline-source-topic"
	HeaderSourcePartition = "mirrorline-source-partition"
	HeaderSourceOffset    = "mirrorline-source-offset"
)

// maxReason bounds a quarantine reason.
const maxReason = 256

// DefaultGroup is the consumer group of the redactors of service.
func DefaultGroup(service string) string { return "mirrorline-redact-" + service }

// TransactionTimeout is how long the broker lets a redactor's transaction stay
// open before aborting it (stage.TransactionTimeout): the longest a redactor
// that died mid-transaction (and is not restarted under the same
// transactional id) holds back read-committed consumers of the clean topic.
const TransactionTimeout = stage.TransactionTimeout

// SessionOpts are the kgo options of a redactor's transactional session on
// top of the broker options (stage.TxOpts): exactly-once
// consume-transform-produce from raw to clean, in a group with the default
// membership (append stage.Membership.Opts for a static instance id or
// another session timeout).
func SessionOpts(service, group, transactionalID string) []kgo.Opt {
	return stage.TxOpts(group, []string{broker.Topic(broker.Raw, service)}, transactionalID, stage.Membership{})
}

// Processor moves records from mirror.raw.<service> to mirror.clean.<service>
// through an Engine, exactly once: it is the stage.Transformer of a stage.Tx,
// which runs each poll as one Kafka transaction holding the clean (or
// quarantine) records and the consumed offsets. A record that fails to
// redact, does not fit the clean topic, or is undecodable never reaches the
// clean topic: it is set aside by the failure policy.
type Processor struct {
	tx         *stage.Tx
	engine     *Engine
	service    string
	clean      string
	quarantine string
	onFailure  OnFailure
	metrics    *Metrics
	budget     *broker.Budget
	// outcomes and rules count the records and redactions of the open
	// transaction: added to the metrics only when it commits (an aborted
	// one is processed again).
	outcomes map[string]int
	rules    tally
	// record is what the rules redacted in the record being transformed,
	// added to rules when it goes to the clean topic.
	record tally
	// grpcModes and grpcReasons count gRPC messages by mode and gRPC
	// records set aside by reason, likewise.
	grpcModes, grpcReasons map[string]int
	// values holds the buffers of clean records Kafka is done with
	// (Recycle), for the values of the next ones.
	values sync.Pool
}

// maxRecycled is the largest clean record value whose buffer is kept for
// another: a rare large one is left to the garbage collector.
const maxRecycled = 64 << 10

// NewProcessor returns a processor for service reading through sess (built
// with SessionOpts).
func NewProcessor(sess *kgo.GroupTransactSession, e *Engine, service string, opts ...Option) (*Processor, error) {
	o := options{onFailure: Quarantine}
	for _, opt := range opts {
		opt(&o)
	}
	p := &Processor{
		engine: e, service: service,
		clean:      broker.Topic(broker.Clean, service),
		quarantine: broker.Topic(broker.Quarantine, service),
		onFailure:  o.onFailure,
		metrics:    o.metrics,
		budget:     o.budget,
		outcomes:   map[string]int{},
		grpcModes:  map[string]int{}, grpcReasons: map[string]int{},
	}
	if p.onFailure != Quarantine && p.onFailure != Drop {
		return nil, fmt.Errorf("on_failure: %q is not quarantine or drop", p.onFailure)
	}
	if p.metrics == nil {
		p.metrics = NewMetrics(nil)
	}
	p.tx = stage.NewTx(sess, p, append(o.run, stage.WithMetrics(p.metrics.Stage))...)
	return p, nil
}

// Run processes records until ctx ends; it returns nil on cancellation and an
// error when the transactional producer is no longer usable.
func (p *Processor) Run(ctx context.Context) error {
	if err := p.tx.Run(ctx); err != nil {
		return fmt.Errorf("redact %s: %w", p.service, err)
	}
	return nil
}

// Close closes the processor's current Kafka session (a new one after a
// reopen). Call it after Run returns.
func (p *Processor) Close() { p.tx.Close() }

// Transform implements stage.Transformer: it redacts ex (decoded from r) into
// its clean record. An error (a rule failing closed, a record too large for
// the clean topic once redacted) sets r aside; the error never holds payload
// bytes.
func (p *Processor) Transform(r *kgo.Record, ex *mlv1.Exchange) ([]*kgo.Record, error) {
	start := time.Now()
	p.record = p.record[:0]
	rules, modes, err := p.engine.redact(ex, &p.record)
	p.metrics.Latency.Observe(time.Since(start).Seconds())
	if err != nil {
		var ge *GRPCError
		if errors.As(err, &ge) {
			p.grpcReasons[ge.Reason]++
		}
		return nil, err
	}
	if len(rules) > 0 {
		ex.Redactions = rules
	}
	var buf []byte
	if v, ok := p.values.Get().(*[]byte); ok {
		buf = *v
	}
	val, err := mlv1.AppendExchange(buf, ex)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	// The record and the one-element slice holding it: one allocation.
	o := &cleanOut{rec: kgo.Record{Topic: p.clean, Key: r.Key, Value: val, Timestamp: r.Timestamp}}
	out := &o.rec
	if !p.budget.Fits(out) {
		return nil, fmt.Errorf("redacted record of %d bytes exceeds the record budget of %s (%d bytes)", len(val), p.clean, p.budget.MaxValue(out.Key, nil))
	}
	p.outcomes[OutcomeClean]++
	p.rules.addAll(p.record)
	for mode, n := range modes {
		p.grpcModes[mode] += n
	}
	o.outs[0] = out
	return o.outs[:], nil
}

// Recycle implements stage.Recycler: the value of a clean record Kafka is
// done with serves a later record.
func (p *Processor) Recycle(out *kgo.Record) {
	if out.Topic != p.clean || cap(out.Value) > maxRecycled {
		return
	}
	v := out.Value[:0]
	out.Value = nil
	p.values.Put(&v)
}

// cleanOut is the output of Transform: a clean record and the slice of it.
type cleanOut struct {
	rec  kgo.Record
	outs [1]*kgo.Record
}

// SetAside implements stage.Transformer: a record that cannot be redacted
// or published (undecodable, a rule failing closed, too large once redacted,
// refused by Kafka) is, by the failure policy, dropped, or replaced by its
// quarantine record in the transaction that commits its offset.
func (p *Processor) SetAside(r *kgo.Record, ex *mlv1.Exchange, kind, reason string) *kgo.Record {
	if p.onFailure == Drop {
		p.outcomes[OutcomeDropped]++
		return nil
	}
	outcome := OutcomeQuarantined
	if kind == stage.SetAsideUndecodable {
		outcome = OutcomeInvalid
		ex = &mlv1.Exchange{CaptureTimeNs: r.Timestamp.UnixNano()}
	}
	p.outcomes[outcome]++
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	return p.quarantineRecord(r, ex, reason)
}

// Ended implements stage.TxObserver: the counts of a transaction are added
// to the metrics only when it committed.
func (p *Processor) Ended(committed bool) {
	result := "aborted"
	if committed {
		result = "committed"
		for o, n := range p.outcomes {
			p.metrics.Records.WithLabelValues(o).Add(float64(n))
		}
		for _, c := range p.rules {
			p.metrics.Redactions.WithLabelValues(c.name).Add(float64(c.n))
		}
		for mode, n := range p.grpcModes {
			p.metrics.GRPCMessages.WithLabelValues(mode).Add(float64(n))
		}
		for reason, n := range p.grpcReasons {
			p.metrics.GRPCSetAside.WithLabelValues(reason).Add(float64(n))
		}
	}
	p.metrics.Transactions.WithLabelValues(result).Inc()
	clear(p.outcomes)
	p.rules = p.rules[:0]
	clear(p.grpcModes)
	clear(p.grpcReasons)
}

// quarantineRecord keeps only what cannot hold personal data: ids, times, source,
// method, the URL path without query, the response status, and the body
// sizes; the raw record's position and the reason go in record headers.
func (p *Processor) quarantineRecord(r *kgo.Record, ex *mlv1.Exchange, reason string) *kgo.Record {
	q := &mlv1.Exchange{
		Id:            ex.GetId(),
		Service:       p.service,
		ConnectionId:  ex.GetConnectionId(),
		Sequence:      ex.GetSequence(),
		Source:        ex.GetSource(),
		Collector:     ex.GetCollector(),
		CaptureTimeNs: ex.GetCaptureTimeNs(),
	}
	if in := ex.GetRequest(); in != nil {
		path := in.Url
		if u, err := url.Parse(in.Url); err == nil {
			path = u.Path
		} else if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		q.Request = &mlv1.Request{Method: in.Method, Url: path, BodySize: in.BodySize, BodyTruncated: in.BodyTruncated, BodyIncomplete: in.BodyIncomplete, HeadersTruncated: in.HeadersTruncated}
	}
	if resp := ex.GetResponse(); resp != nil {
		q.Response = &mlv1.Response{Status: resp.Status, BodySize: resp.BodySize, BodyTruncated: resp.BodyTruncated, HeadersTruncated: resp.HeadersTruncated, LatencyNs: resp.LatencyNs}
	}
	rec := &kgo.Record{
		Topic:     p.quarantine,
		Key:       r.Key,
		Timestamp: r.Timestamp,
		Headers: []kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(reason)},
			{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
			{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
			{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
		},
	}
	rec.Value, _ = proto.Marshal(q)
	if !p.budget.Fits(rec) && q.Request != nil {
		// A path as large as the budget: keep the ids and sizes.
		q.Request.Url = ""
		rec.Value, _ = proto.Marshal(q)
	}
	return rec
}
