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

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
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

// maxRejected bounds how many records Kafka may reject as too large before
// the redactor gives up (each costs an aborted transaction).
const maxRejected = 1000

// DefaultGroup is the consumer group of the redactors of service.
func DefaultGroup(service string) string { return "mirrorline-redact-" + service }

// TransactionTimeout is how long the broker lets a redactor's transaction stay
// open before aborting it: the longest a redactor that died mid-transaction
// (and is not restarted under the same transactional id) holds back
// read-committed consumers of the clean topic.
const TransactionTimeout = 60 * time.Second

// SessionOpts are the kgo options of a redactor's transactional session on top of
// the broker options: exactly-once consume-transform-produce from raw to clean,
// in a group with the default membership (broker.GroupConsumeOpts; append
// broker.Membership.Opts for a static instance id or another session
// timeout).
func SessionOpts(service, group, transactionalID string) []kgo.Opt {
	opts := broker.GroupConsumeOpts(group, []string{broker.Topic(broker.Raw, service)}, broker.Membership{})
	return append(opts,
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Stable per instance: a restarted redactor fences its predecessor
		// and aborts the transaction it left open at once, instead of
		// read-committed consumers of the clean topic waiting for it to time
		// out.
		kgo.TransactionalID(transactionalID),
		kgo.TransactionTimeout(TransactionTimeout),
		// Offset fetches wait for pending transactional commits: kgo always
		// asks for stable offsets now (RequireStableFetchOffsets is a no-op).
	)
}

// Processor moves records from mirror.raw.<service> to mirror.clean.<service>
// through an Engine, exactly once: each poll is one Kafka transaction holding the
// clean (or quarantine) records and the consumed offsets; a crash or rebalance
// aborts it and the records are processed again by whoever owns them next.
// A record that fails to redact never reaches the clean topic.
type Processor struct {
	sess       *kgo.GroupTransactSession
	engine     *Engine
	service    string
	clean      string
	quarantine string
	onFailure  OnFailure
	metrics    *Metrics
	log        hclog.Logger
	batch      int
	reopen     func() (*kgo.GroupTransactSession, error)
	budget     *broker.Budget
	// rejected holds the raw records whose clean record Kafka refused as
	// too large: processed again, they are quarantined.
	rejected map[srcPos]string
}

// srcPos is a raw record's position.
type srcPos struct {
	topic     string
	partition int32
	offset    int64
}

// ProcOpt configures a Processor.
type ProcOpt func(*Processor)

// WithOnFailure sets the failure policy (default Quarantine).
func WithOnFailure(f OnFailure) ProcOpt { return func(p *Processor) { p.onFailure = f } }

// WithMetrics sets the metrics (default: unregistered).
func WithMetrics(m *Metrics) ProcOpt { return func(p *Processor) { p.metrics = m } }

// WithLogger sets the logger. Payloads are never logged.
func WithLogger(l hclog.Logger) ProcOpt { return func(p *Processor) { p.log = l } }

// WithReopen lets the processor ride out a transaction that fails to begin or
// end (Kafka unreachable mid-commit, e.g. a broker restart; a fenced
// producer): it closes its session and opens a new one with open, which
// fences the old producer, aborts what it left open and resumes from the
// committed offsets. Without it, Run returns the error.
func WithReopen(open func() (*kgo.GroupTransactSession, error)) ProcOpt {
	return func(p *Processor) { p.reopen = open }
}

// WithBatch caps the records per transaction (default 1000).
func WithBatch(n int) ProcOpt { return func(p *Processor) { p.batch = n } }

// WithBudget sets the clean topic's record budget (default: a budget of
// broker.DefaultMaxMessageBytes): a record larger once redacted is
// quarantined instead of failing the transaction.
func WithBudget(b *broker.Budget) ProcOpt { return func(p *Processor) { p.budget = b } }

// NewProcessor returns a processor for service reading through sess.
func NewProcessor(sess *kgo.GroupTransactSession, e *Engine, service string, opts ...ProcOpt) (*Processor, error) {
	p := &Processor{
		sess: sess, engine: e, service: service,
		clean:      broker.Topic(broker.Clean, service),
		quarantine: broker.Topic(broker.Quarantine, service),
		onFailure:  Quarantine,
		log:        hclog.NewNullLogger(),
		batch:      1000,
		rejected:   map[srcPos]string{},
	}
	for _, o := range opts {
		o(p)
	}
	if p.onFailure != Quarantine && p.onFailure != Drop {
		return nil, fmt.Errorf("on_failure: %q is not quarantine or drop", p.onFailure)
	}
	if p.metrics == nil {
		p.metrics = NewMetrics(nil)
	}
	return p, nil
}

// Run processes records until ctx ends; it returns nil on cancellation and an
// error when the transactional producer is no longer usable.
func (p *Processor) Run(ctx context.Context) error {
	for {
		fs := p.sess.PollRecords(ctx, p.batch)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("fetch error", "topic", t, "partition", part, "error", err)
			}
		})
		if fs.NumRecords() == 0 {
			continue
		}
		if err := p.sess.Begin(); err != nil {
			if p.reopen == nil {
				return fmt.Errorf("redact %s: begin transaction: %w", p.service, err)
			}
			p.log.Warn("begin transaction failed; reopening the Kafka session", "error", err)
			p.reopenSession(ctx)
			continue
		}
		var mu sync.Mutex
		var produceErr error
		// Raw records whose clean record Kafka refused as too large, by
		// size. A batch is refused whole, so only the largest of each
		// partition is blamed; the others are simply processed again.
		tooLarge := map[srcPos]int{}
		counts := map[string]int{}
		fs.EachRecord(func(r *kgo.Record) {
			out, outcome, rules := p.process(r)
			counts[outcome]++
			for rule, n := range rules {
				counts["rule:"+rule] += n
			}
			if out == nil {
				return
			}
			p.sess.Produce(ctx, out, func(out *kgo.Record, err error) {
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
				case errors.Is(err, kerr.MessageTooLarge) && out.Topic == p.clean:
					// The topic's limit is below the budget: quarantine
					// this record when the transaction is retried.
					tooLarge[srcPos{r.Topic, r.Partition, r.Offset}] = len(out.Value)
				case produceErr == nil:
					produceErr = err
				}
			})
		})
		if err := p.sess.Client().Flush(ctx); err != nil {
			// Only a cancelled context fails a flush: shutting down.
			p.abort()
			return nil
		}
		mu.Lock()
		perr := produceErr
		mu.Unlock()
		commit := kgo.TryCommit
		if perr != nil || len(tooLarge) > 0 {
			commit = kgo.TryAbort
		}
		committed, err := p.sess.End(ctx, commit)
		if err != nil {
			if ctx.Err() != nil {
				p.abort()
				return nil
			}
			if p.reopen == nil {
				return fmt.Errorf("redact %s: end transaction: %w", p.service, err)
			}
			// The outcome is unknown (the commit may or may not have been
			// applied): a new session finds out from Kafka itself.
			p.metrics.Transactions.WithLabelValues("aborted").Inc()
			p.log.Warn("end transaction failed; reopening the Kafka session, uncommitted records will be processed again", "error", err)
			p.reopenSession(ctx)
			continue
		}
		if perr != nil {
			p.metrics.Transactions.WithLabelValues("aborted").Inc()
			return fmt.Errorf("redact %s: produce in transaction (aborted): %w", p.service, perr)
		}
		if len(tooLarge) > 0 {
			p.metrics.Transactions.WithLabelValues("aborted").Inc()
			if err := p.blameTooLarge(tooLarge); err != nil {
				return err
			}
			p.log.Warn("Kafka rejected redacted records as too large; transaction aborted, they are quarantined when processed again", "records", len(tooLarge), "topic", p.clean)
			continue
		}
		if !committed {
			p.metrics.Transactions.WithLabelValues("aborted").Inc()
			p.log.Info("transaction aborted (rebalance); records will be processed again", "records", fs.NumRecords())
			continue
		}
		p.metrics.Transactions.WithLabelValues("committed").Inc()
		if len(p.rejected) > 0 {
			fs.EachRecord(func(r *kgo.Record) { delete(p.rejected, srcPos{r.Topic, r.Partition, r.Offset}) })
		}
		p.addCounts(counts)
	}
}

// blameTooLarge marks, for each partition, the raw record whose clean record
// was the largest Kafka refused as too large, so it is quarantined when the
// aborted transaction is retried. It fails when too many records have been
// rejected: the clean topic's limit is then wrong, not the records.
func (p *Processor) blameTooLarge(tooLarge map[srcPos]int) error {
	if len(p.rejected)+len(tooLarge) > maxRejected {
		return fmt.Errorf("redact %s: Kafka rejected more than %d records as too large for %s; set its max.message.bytes to the producers' max_message_bytes", p.service, maxRejected, p.clean)
	}
	blamed := map[string]srcPos{}
	for pos, size := range tooLarge {
		k := pos.topic + "/" + strconv.Itoa(int(pos.partition))
		if b, ok := blamed[k]; !ok || size > tooLarge[b] {
			blamed[k] = pos
		}
	}
	for _, pos := range blamed {
		p.rejected[pos] = fmt.Sprintf("redacted record of %d bytes rejected as too large for %s (MESSAGE_TOO_LARGE)", tooLarge[pos], p.clean)
	}
	return nil
}

// addCounts adds the outcome and rule counts of a committed batch to the
// metrics (rule counts are keyed "rule:" and the rule name).
func (p *Processor) addCounts(counts map[string]int) {
	for k, n := range counts {
		if len(k) > 5 && k[:5] == "rule:" {
			p.metrics.Redactions.WithLabelValues(k[5:]).Add(float64(n))
		} else {
			p.metrics.Records.WithLabelValues(k).Add(float64(n))
		}
	}
}

// reopenSession closes the session and opens a new one, retrying with backoff
// until it succeeds or ctx ends.
func (p *Processor) reopenSession(ctx context.Context) {
	// Wait for Kafka first: closing leaves the consumer group, and a member
	// that could not leave holds up the new session's join until its own
	// session times out (45 s by default).
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.sess.Client().Ping(pctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	p.sess.Close()
	backoff = 250 * time.Millisecond
	for ctx.Err() == nil {
		s, err := p.reopen()
		if err == nil {
			p.sess = s
			return
		}
		p.log.Warn("reopen the Kafka session", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Close closes the processor's current Kafka session (a new one after a
// reopen). Call it after Run returns.
func (p *Processor) Close() { p.sess.Close() }

// abort ends an open transaction on shutdown so read-committed consumers of the
// clean topic are not held up until the transaction times out.
func (p *Processor) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.sess.End(ctx, kgo.TryAbort); err != nil {
		p.log.Warn("abort transaction on shutdown", "error", err)
	}
}

// process turns one raw record into its clean (or quarantine) record; nil means
// nothing is published.
func (p *Processor) process(r *kgo.Record) (out *kgo.Record, outcome string, rules map[string]int) {
	ex := &mlv1.Exchange{}
	if err := proto.Unmarshal(r.Value, ex); err != nil {
		q := &mlv1.Exchange{Service: p.service, CaptureTimeNs: r.Timestamp.UnixNano()}
		return p.setAside(r, q, "undecodable record", OutcomeInvalid)
	}
	if reason, ok := p.rejected[srcPos{r.Topic, r.Partition, r.Offset}]; ok {
		return p.setAside(r, ex, reason, OutcomeQuarantined)
	}
	start := time.Now()
	res, err := p.engine.Redact(ex)
	p.metrics.Latency.Observe(time.Since(start).Seconds())
	if err != nil {
		return p.setAside(r, ex, err.Error(), OutcomeQuarantined)
	}
	if len(res.Rules) > 0 {
		ex.Redactions = res.Rules
	}
	val, err := proto.Marshal(ex)
	if err != nil {
		return p.setAside(r, ex, "encode: "+err.Error(), OutcomeQuarantined)
	}
	out = &kgo.Record{Topic: p.clean, Key: r.Key, Value: val, Timestamp: r.Timestamp}
	if !p.budget.Fits(out) {
		reason := fmt.Sprintf("redacted record of %d bytes exceeds the record budget of %s (%d bytes)", len(val), p.clean, p.budget.MaxValue(out.Key, nil))
		return p.setAside(r, ex, reason, OutcomeQuarantined)
	}
	return out, OutcomeClean, res.Redactions
}

// setAside is the one place where a record that cannot be redacted or
// published (undecodable, a rule failing closed, too large once redacted,
// rejected by Kafka) is set aside: by the failure policy, it is dropped, or
// its quarantine record takes its place in the transaction, so its offset is
// committed with it, exactly once, and the partition moves on. reason must
// not hold payload bytes.
func (p *Processor) setAside(r *kgo.Record, ex *mlv1.Exchange, reason, outcome string) (*kgo.Record, string, map[string]int) {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	p.log.Warn("record not redacted", "policy", string(p.onFailure), "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason)
	if p.onFailure == Drop {
		return nil, OutcomeDropped, nil
	}
	return p.quarantineRecord(r, ex, reason), outcome, nil
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
