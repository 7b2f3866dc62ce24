package stage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Transformer is a consume-transform-produce stage (the redactor). The
// runtime calls it from one goroutine, once per record of a transaction
// (again when an aborted transaction is retried). The exchange it is given
// is decoded into again for the next record (mlv1.UnmarshalExchangeRecycled):
// neither it nor any message reached from it (request, response, header) may
// be kept once Transform or SetAside returns; its strings and bodies may.
// Its strings, bodies and message data are parts of the record's value (no
// copy is made): replace a body, never write into it.
type Transformer interface {
	// Transform returns the records that stand for r downstream (none: r is
	// consumed without output). An error sets r aside.
	Transform(r *kgo.Record, ex *mlv1.Exchange) ([]*kgo.Record, error)
	// SetAside returns the record that takes r's place in the transaction
	// when r cannot be transformed: kind is SetAsideUndecodable (ex is nil),
	// SetAsideFailed (Transform's error is the reason) or SetAsideTooLarge
	// (Kafka refused r's output as too large). nil drops r. The reason never
	// holds payload bytes; a set-aside record must fit its topic.
	SetAside(r *kgo.Record, ex *mlv1.Exchange, kind, reason string) *kgo.Record
}

// TxObserver, when a Transformer implements it, is told how each
// transaction ended: what it counted for the records of a transaction
// counts only when committed (an aborted one is processed again).
type TxObserver interface {
	Ended(committed bool)
}

// Recycler, when a Transformer implements it, is handed back each record
// Transform or SetAside returned once Kafka is done with it (produced or
// failed): nothing reads the record or its value after that, so its buffers
// can serve a later record. It is called from the producer's goroutines.
type Recycler interface {
	Recycle(out *kgo.Record)
}

// maxRejected bounds how many records Kafka may refuse as too large before
// the stage gives up (each costs an aborted transaction).
const maxRejected = 1000

// TransactionTimeout is how long the broker lets a transaction stay open
// before aborting it: the longest a member that died mid-transaction (and is
// not restarted under the same transactional id) holds back read-committed
// consumers of its output.
const TransactionTimeout = 60 * time.Second

// TxOpts are the kgo options of a transactional session on top of the
// broker options: exactly-once consume-transform-produce in group, from the
// start of topics for a new group.
func TxOpts(group string, topics []string, transactionalID string, m Membership) []kgo.Opt {
	return append(GroupOpts(group, topics, m),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Stable per instance: a restarted member fences its predecessor
		// and aborts the transaction it left open at once, instead of
		// read-committed consumers waiting for it to time out.
		kgo.TransactionalID(transactionalID),
		kgo.TransactionTimeout(TransactionTimeout),
		kgo.ConcurrentTransactionsBackoff(ConcurrentTransactionsBackoff),
	)
}

// ConcurrentTransactionsBackoff is how long the session waits before asking
// again when Kafka answers CONCURRENT_TRANSACTIONS: the previous
// transaction's commit markers are still being written, which takes a few
// milliseconds after EndTxn returned, and each transaction starts right after
// the previous one. franz-go's default (20 ms) made every transaction wait
// 20 ms for markers written in 3–5. On brokers with transaction protocol v2
// (Kafka 4.0 and later) the broker retries for the client: its
// add.partitions.to.txn.retry.backoff.ms (default 20) is the same wait, set
// to 1 in the brokers this repository starts (docs/operations.md).
const ConcurrentTransactionsBackoff = time.Millisecond

// Tx runs a Transformer exactly once: each poll is one Kafka transaction
// holding the output records and the consumed offsets; a crash or rebalance
// aborts it and the records are processed again by whoever owns them next.
// A record that cannot be transformed, or whose output Kafka refuses as too
// large, is set aside in the same transaction: its partition moves on.
type Tx struct {
	config
	sess *kgo.GroupTransactSession
	t    Transformer
	// rejected holds the records whose output Kafka refused as too large:
	// processed again, they are set aside.
	rejected map[srcPos]string
	// ex is the exchange each record is decoded into in turn (its request,
	// response and headers are reused; see Transformer).
	ex *mlv1.Exchange
}

// srcPos is a consumed record's position.
type srcPos struct {
	topic     string
	partition int32
	offset    int64
}

// NewTx returns a transactional runtime of t reading through sess (built
// with TxOpts).
func NewTx(sess *kgo.GroupTransactSession, t Transformer, opts ...Option) *Tx {
	return &Tx{config: newConfig(opts), sess: sess, t: t, rejected: map[srcPos]string{}, ex: &mlv1.Exchange{}}
}

// Close closes the current session (a new one after a reopen). Call it after
// Run returns.
func (x *Tx) Close() { x.sess.Close() }

// batch is what one transaction produced.
type batch struct {
	mu  sync.Mutex
	err error
	// tooLarge: consumed records whose output Kafka refused as too large.
	tooLarge map[srcPos]refused
}

// refused is the size and topic of an output Kafka refused as too large.
type refused struct {
	size  int
	topic string
}

// Run processes records until ctx ends; it returns nil on cancellation and an
// error when the transactional producer is no longer usable.
func (x *Tx) Run(ctx context.Context) error {
	obs, _ := x.t.(TxObserver)
	ended := func(committed bool) {
		result := "aborted"
		if committed {
			result = "committed"
		}
		x.metrics.Transactions.WithLabelValues(result).Inc()
		if obs != nil {
			obs.Ended(committed)
		}
	}
	var began time.Time // the last transaction's
	for {
		if err := x.waitInterval(ctx, began); err != nil {
			return nil
		}
		// One poll per transaction, on the current session (a reopen
		// replaces it).
		var fs kgo.Fetches
		err := Poll(ctx, x.sess, x.polling, func(f kgo.Fetches) error {
			if f.NumRecords() == 0 {
				return nil
			}
			fs = f
			return ErrDone
		})
		if err != nil || fs == nil {
			return err
		}
		began = time.Now()
		if err := x.sess.Begin(); err != nil {
			if x.reopen == nil {
				return fmt.Errorf("begin transaction: %w", err)
			}
			x.log.Warn("begin transaction failed; reopening the Kafka session", "error", err)
			x.reopenSession(ctx)
			continue
		}
		b := x.produce(ctx, fs)
		if err := x.sess.Client().Flush(ctx); err != nil {
			// Only a cancelled context fails a flush: shutting down.
			x.abort()
			return nil
		}
		commit := kgo.TryCommit
		if b.err != nil || len(b.tooLarge) > 0 {
			commit = kgo.TryAbort
		}
		committed, err := x.sess.End(ctx, commit)
		switch {
		case err != nil && ctx.Err() != nil:
			x.abort()
			return nil
		case err != nil:
			if x.reopen == nil {
				return fmt.Errorf("end transaction: %w", err)
			}
			// The outcome is unknown (the commit may or may not have been
			// applied): a new session finds out from Kafka itself.
			ended(false)
			x.log.Warn("end transaction failed; reopening the Kafka session, uncommitted records will be processed again", "error", err)
			x.reopenSession(ctx)
		case b.err != nil:
			ended(false)
			return fmt.Errorf("produce in transaction (aborted): %w", b.err)
		case len(b.tooLarge) > 0:
			ended(false)
			if err := x.blameTooLarge(b.tooLarge); err != nil {
				return err
			}
			x.log.Warn("Kafka rejected records as too large; transaction aborted, they are set aside when processed again", "records", len(b.tooLarge))
		case !committed:
			ended(false)
			x.log.Info("transaction aborted (rebalance); records will be processed again", "records", fs.NumRecords())
		default:
			ended(true)
			if len(x.rejected) > 0 {
				fs.EachRecord(func(r *kgo.Record) { delete(x.rejected, srcPos{r.Topic, r.Partition, r.Offset}) })
			}
		}
	}
}

// waitInterval waits until the transaction interval has passed since began
// (no wait without an interval or before the first transaction); it fails
// only when ctx ends.
func (x *Tx) waitInterval(ctx context.Context, began time.Time) error {
	if x.txInterval <= 0 || began.IsZero() {
		return nil
	}
	d := time.Until(began.Add(x.txInterval))
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// produce transforms the records of fs and produces their outputs in the
// open transaction.
func (x *Tx) produce(ctx context.Context, fs kgo.Fetches) *batch {
	b := &batch{tooLarge: map[srcPos]refused{}}
	rc, _ := x.t.(Recycler)
	fs.EachRecord(func(r *kgo.Record) {
		pos := srcPos{r.Topic, r.Partition, r.Offset}
		outs, setAside := x.transform(r, pos)
		for _, out := range outs {
			x.sess.Produce(ctx, out, func(out *kgo.Record, err error) {
				b.mu.Lock()
				defer b.mu.Unlock()
				switch {
				case err == nil:
				case errors.Is(err, kerr.MessageTooLarge) && !setAside:
					// The topic's limit is below what the stage fits
					// records to: set r aside when the transaction is
					// retried.
					if len(out.Value) >= b.tooLarge[pos].size {
						b.tooLarge[pos] = refused{len(out.Value), out.Topic}
					}
				case b.err == nil:
					b.err = err
				}
				if rc != nil {
					rc.Recycle(out)
				}
			})
		}
	})
	return b
}

// transform returns r's outputs, and whether they are a set-aside record.
func (x *Tx) transform(r *kgo.Record, pos srcPos) ([]*kgo.Record, bool) {
	ex := x.ex
	aside := func(kind, reason string) ([]*kgo.Record, bool) {
		x.metrics.SetAside.WithLabelValues(kind).Inc()
		x.log.Warn("record set aside", "kind", kind, "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason)
		if out := x.t.SetAside(r, ex, kind, reason); out != nil {
			return []*kgo.Record{out}, true
		}
		return nil, true
	}
	if err := mlv1.UnmarshalExchangeRecycled(r.Value, ex); err != nil {
		x.metrics.Undecodable.Inc()
		ex = nil
		return aside(SetAsideUndecodable, "undecodable record")
	}
	if reason, ok := x.rejected[pos]; ok {
		return aside(SetAsideTooLarge, reason)
	}
	outs, err := x.t.Transform(r, ex)
	if err != nil {
		return aside(SetAsideFailed, err.Error())
	}
	return outs, false
}

// blameTooLarge marks, for each partition, the record whose output was the
// largest Kafka refused as too large, so it is set aside when the aborted
// transaction is retried (a batch is refused whole: the others are simply
// processed again). It fails when too many records have been refused: the
// output topic's limit is then wrong, not the records.
func (x *Tx) blameTooLarge(tooLarge map[srcPos]refused) error {
	if len(x.rejected)+len(tooLarge) > maxRejected {
		topic := ""
		for _, out := range tooLarge {
			topic = out.topic
		}
		return fmt.Errorf("more than %d records rejected as too large by Kafka; set the max.message.bytes of %s to the producers' max_message_bytes", maxRejected, topic)
	}
	blamed := map[string]srcPos{}
	for pos, out := range tooLarge {
		k := pos.topic + "/" + strconv.Itoa(int(pos.partition))
		if b, ok := blamed[k]; !ok || out.size > tooLarge[b].size {
			blamed[k] = pos
		}
	}
	for _, pos := range blamed {
		x.rejected[pos] = fmt.Sprintf("output record of %d bytes rejected as too large for %s (MESSAGE_TOO_LARGE)", tooLarge[pos].size, tooLarge[pos].topic)
	}
	return nil
}

// reopenSession closes the session and opens a new one, retrying with backoff
// until it succeeds or ctx ends.
func (x *Tx) reopenSession(ctx context.Context) {
	// Wait for Kafka first: closing leaves the consumer group, and a member
	// that could not leave holds up the new session's join until its own
	// session times out.
	backoff := 250 * time.Millisecond
	wait := func() {
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := x.sess.Client().Ping(pctx)
		cancel()
		if err == nil {
			break
		}
		wait()
	}
	x.sess.Close()
	backoff = 250 * time.Millisecond
	for ctx.Err() == nil {
		s, err := x.reopen()
		if err == nil {
			x.sess = s
			return
		}
		x.log.Warn("reopen the Kafka session", "error", err, "retry_in", backoff)
		wait()
	}
}

// abort ends an open transaction on shutdown so read-committed consumers of
// the output are not held up until the transaction times out.
func (x *Tx) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := x.sess.End(ctx, kgo.TryAbort); err != nil {
		x.log.Warn("abort transaction on shutdown", "error", err)
	}
}
