package comparator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// minDiffBudget is the size a diff record is cut to when Kafka refuses it as
// too large for the budget: far below any topic's limit.
const minDiffBudget = 64 << 10

// DefaultGroup is the consumer group of the comparators of service.
func DefaultGroup(service string) string { return "mirrorline-compare-" + service }

// JobGroup is the consumer group of the comparators judging replay job job
// of service: DefaultGroup for the live job.
func JobGroup(service, job string) string {
	if job == "" || job == LiveJob {
		return DefaultGroup(service)
	}
	return DefaultGroup(service) + "-job-" + job
}

// awaiting is a window job's shadow record whose primary is to be looked up.
type awaiting struct {
	ex  *mlv1.Exchange
	ref Ref
	src Source
}

// Runner drives a Comparator from Kafka on the stage runtime (stage.Group):
// it consumes mirror.clean.S (primary) and mirror.shadow.S (shadow;
// secondary too when selected by job or target), or a separate secondary
// topic, in a consumer group; publishes each decision to mirror.diff.S; and
// holds each record an undecided exchange keeps until its decision is
// published, so an offset is committed only once every exchange before it
// is decided and published (at least once: after a crash, exchanges may be
// decided again; a Diff's id is the exchange id). Partitions are assigned
// with the range balancer so partition p of every topic goes to the same
// comparator: clean and shadow records of one connection share the record
// key, so the same partition number.
//
// A Runner judges one replay job, the comparator's shadow_job: shadow
// records of other jobs are ignored. The live job is joined with the clean
// topic as both are written. A window job replays records captured earlier,
// whose primaries went by long ago: its runner consumes only mirror.shadow.S
// and reads each record's primary at the clean-topic offset the record names
// (Replay.source_*), with WithLookup.
type Runner struct {
	cmp       *Comparator
	service   string
	clean     string
	shadow    string
	sec       SecondaryConfig
	shadowJob string
	diff      string
	options
	group *stage.Group
	cl    *kgo.Client
	done  *doneCheck

	mu sync.Mutex
	// held are the records kept by undecided exchanges (or by a window
	// job's records awaiting their primary), done once their decision is
	// published.
	held map[Ref]*stage.Msg
	// out are the decisions made since the last tick, to publish.
	out      []Decision
	await    []awaiting
	assigned map[string]map[int32]bool
	// next is the next offset to read of each partition read from, and
	// polled the records read since the last tick (UntilDone).
	next   map[string]map[int32]int64
	polled int
}

// NewRunner returns a runner of c, with c's options (logger, metrics) and
// opts.
func NewRunner(c *Comparator, opts ...Option) *Runner {
	r := &Runner{
		cmp: c, service: c.service,
		clean:  broker.Topic(broker.Clean, c.service),
		shadow: broker.Topic(broker.Shadow, c.service),
		diff:   broker.Topic(broker.Diff, c.service),
		sec:    c.cfg.Secondary, shadowJob: c.cfg.ShadowJob,
		options:  c.options.apply(opts),
		held:     map[Ref]*stage.Msg{},
		assigned: map[string]map[int32]bool{},
		next:     map[string]map[int32]int64{},
	}
	r.group = stage.NewGroup(r, stage.WithLogger(r.log), stage.WithMetrics(r.metrics.Stage),
		stage.WithPolling(stage.Polling{Tick: r.tick, OnFetchError: func(string, int32, error) {
			r.metrics.Errors.WithLabelValues("fetch").Inc()
		}}),
		stage.OnCommitError(func(error) { r.metrics.Errors.WithLabelValues("commit").Inc() }),
		// Range, not cooperative: partition p of every topic goes to the
		// same member, so both sides of an exchange meet.
		stage.Balancer(kgo.RangeBalancer()),
		stage.FromStart(r.fromStart),
		stage.OnAssigned(r.assign))
	return r
}

// windowJob reports whether the runner judges a window job (primaries
// looked up, not consumed).
func (r *Runner) windowJob() bool { return r.shadowJob != LiveJob }

// Topics returns the topics the runner consumes.
func (r *Runner) Topics() []string {
	if r.windowJob() {
		return []string{r.shadow}
	}
	ts := []string{r.clean, r.shadow}
	if r.sec.Topic != "" && r.sec.Topic != r.shadow && r.sec.Topic != r.clean {
		ts = append(ts, r.sec.Topic)
	}
	return ts
}

// ClientOpts are the kgo options of the runner's client on top of the broker
// options (stage.Group.ClientOpts): group, topics, read committed (the clean
// and shadow topics are written in transactions; aborted records are never
// compared), range balancer, commits of what is published, and the hand-over
// of revoked partitions. A new group starts at the end of the topics unless
// WithFromStart.
func (r *Runner) ClientOpts(group string) []kgo.Opt { return r.group.ClientOpts(group, r.Topics()...) }

// assign notes the partitions assigned to this member (UntilDone).
func (r *Runner) assign(got map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t, ps := range got {
		if r.assigned[t] == nil {
			r.assigned[t] = map[int32]bool{}
		}
		for _, p := range ps {
			r.assigned[t][p] = true
		}
	}
}

// sideOf says which side a record of topic carries; false for a shadow
// record of another job than shadow_job (a record without a job is live's).
func (r *Runner) sideOf(topic string, ex *mlv1.Exchange) (Side, bool) {
	switch {
	case topic == r.clean:
		return Primary, true
	case r.sec.Topic != "" && topic == r.sec.Topic:
		return Secondary, true
	case r.sec.Job != "" && ex.GetReplay().GetJob() == r.sec.Job:
		return Secondary, true
	case r.sec.Target != "" && strings.HasPrefix(ex.GetReplay().GetTarget(), r.sec.Target):
		return Secondary, true
	case ShadowJobOf(ex) != r.shadowJob:
		return Shadow, false
	}
	return Shadow, true
}

// Run compares until ctx ends; it returns nil on cancellation (or, with
// WithUntilDone, once done) and an error when decisions cannot be published.
func (r *Runner) Run(ctx context.Context, cl *kgo.Client) error {
	r.cl = cl
	if r.untilDone {
		d, err := r.newDoneCheck(ctx, cl)
		if err != nil {
			return err
		}
		r.done = d
	}
	return r.group.Run(ctx, cl)
}

// Handle feeds one record to the comparator (stage.Handler). A record an
// undecided exchange keeps is held until its decision is published; the
// others are done at once.
func (r *Runner) Handle(_ context.Context, m *stage.Msg, ex *mlv1.Exchange) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.out = append(r.out, r.handle(m, ex, time.Now())...)
	return nil
}

// Undecodable counts a record that is not an Exchange
// (stage.UndecodableCounter); the runtime skips it.
func (r *Runner) Undecodable(rec *kgo.Record) {
	side := Shadow
	if rec.Topic == r.clean {
		side = Primary
	}
	r.metrics.Records.WithLabelValues(side.String(), RecordUndecodable).Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read(rec)
}

// Tick (stage.Ticker) looks up the window job's primaries, expires windows,
// publishes the decisions made since the last tick, and ends a bounded run
// (stage.ErrDone) once it is done.
func (r *Runner) Tick(ctx context.Context, now time.Time) error {
	r.mu.Lock()
	out := append(r.out, r.resolve(ctx, now)...)
	out = append(out, r.cmp.Tick(now)...)
	polled := r.polled
	r.out, r.polled = nil, 0
	r.mu.Unlock()
	if err := r.publish(ctx, r.cl, out); err != nil {
		return err
	}
	if r.done != nil && r.done.check(ctx, r.cl, polled) {
		r.log.Info("done: every record written before the start is judged", "job", r.shadowJob)
		return stage.ErrDone
	}
	return nil
}

// Revoke (stage.Revoker) drops the undecided exchanges holding records of
// the partitions leaving this member and gives those records up: the new
// owner reads them again.
func (r *Runner) Revoke(parts map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.drop(func(ref Ref) bool { return slices.Contains(parts[ref.Topic], ref.Partition) })
	for t, ps := range parts {
		for _, p := range ps {
			delete(r.next[t], p)
			delete(r.assigned[t], p)
		}
	}
	if n > 0 {
		r.log.Info("partitions moved; undecided exchanges handed over", "exchanges", n)
	}
}

// Drain (stage.Drainer) gives up, at stop, every record still held:
// undecided exchanges are decided by whoever reads their records next.
func (r *Runner) Drain() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drop(func(Ref) bool { return true })
}

// drop forgets, undecided, the exchanges and awaiting records holding a
// record gone accepts, and abandons the held records gone accepts.
func (r *Runner) drop(gone func(Ref) bool) int {
	n := r.cmp.Drop(gone) + len(r.await)
	r.await = slices.DeleteFunc(r.await, func(a awaiting) bool { return gone(a.ref) })
	n -= len(r.await)
	for ref, m := range r.held {
		if gone(ref) {
			m.Abandon()
			delete(r.held, ref)
		}
	}
	return n
}

// doneCheck tells when a bounded run (UntilDone) is over.
type doneCheck struct {
	r     *Runner
	start kadm.ListedOffsets // first offset retained at start
	ends  kadm.ListedOffsets // last stable offset at start
	idle  int
}

func (r *Runner) newDoneCheck(ctx context.Context, cl *kgo.Client) (*doneCheck, error) {
	starts, ends, err := stage.Bounds(ctx, kadm.NewClient(cl), r.Topics()...)
	if err != nil {
		return nil, fmt.Errorf("compare %s: %w", r.service, err)
	}
	return &doneCheck{r: r, start: starts, ends: ends}, nil
}

// check reports whether the run is done: two polls in a row without records,
// nothing waiting, and every assigned partition read up to its last stable
// offset at start (one offset short allowed: a transaction's commit marker,
// which is never returned as a record, may end the partition).
func (d *doneCheck) check(ctx context.Context, cl *kgo.Client, polled int) bool {
	if polled > 0 {
		d.idle = 0
		return false
	}
	if d.idle++; d.idle < 2 {
		return false
	}
	r := d.r
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ps := range r.assigned {
		n += len(ps)
	}
	if n == 0 || len(r.await) > 0 || r.cmp.Pending() > 0 {
		return false // not (yet) in the group, or exchanges still waiting
	}
	var committed kadm.OffsetResponses
	for t, ps := range r.assigned {
		for p := range ps {
			end, _ := d.ends.Lookup(t, p)
			start, _ := d.start.Lookup(t, p)
			if end.Offset <= start.Offset {
				continue // empty at start
			}
			pos, read := r.next[t][p]
			if !read { // not read since assigned: from the group's commit
				pos = -1
				if committed == nil {
					group, _ := cl.GroupMetadata()
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					var err error
					committed, err = kadm.NewClient(cl).FetchOffsets(cctx, group)
					cancel()
					if err != nil {
						return false
					}
				}
				if o, ok := committed.Lookup(t, p); ok && o.Err == nil {
					pos = o.At
				}
			}
			if pos < end.Offset-1 {
				return false
			}
		}
	}
	return true
}

// handle feeds m's record, ex, to the comparator and returns the decisions
// made.
func (r *Runner) handle(m *stage.Msg, ex *mlv1.Exchange, now time.Time) []Decision {
	rec := m.Record
	r.read(rec)
	ref := Ref{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	side, ok := r.sideOf(rec.Topic, ex)
	if !ok {
		r.metrics.Records.WithLabelValues(side.String(), RecordIgnored).Inc()
		m.Done()
		return nil
	}
	if isEgress(ex) && r.windowJob() {
		// Downstream calls are compared for the live job only.
		r.metrics.Egress.WithLabelValues(side.String(), EgressIgnored).Inc()
		m.Done()
		return nil
	}
	if side == Shadow && r.windowJob() {
		// Held until its primary is looked up (resolve).
		r.held[ref] = m
		rp := ex.GetReplay()
		r.await = append(r.await, awaiting{ex: ex, ref: ref, src: Source{Topic: rp.GetSourceTopic(), Partition: rp.GetSourcePartition(), Offset: rp.GetSourceOffset()}})
		return nil
	}
	out, kept := r.cmp.Add(side, ex, ref, now)
	if kept {
		r.held[ref] = m
	} else {
		m.Done()
	}
	return out
}

// read notes that rec was read: its partition's next offset, and one more
// record since the last tick.
func (r *Runner) read(rec *kgo.Record) {
	if r.next[rec.Topic] == nil {
		r.next[rec.Topic] = map[int32]int64{}
	}
	r.next[rec.Topic][rec.Partition] = rec.Offset + 1
	r.polled++
}

// resolve looks up the primaries of the window job's shadow records read
// and feeds both sides to the comparator. A record whose primary is not on
// the clean topic at the offset it names is decided missing at once (only
// the clean topic is read: a replay of another topic may hold unredacted
// data). When the lookup fails, the records wait for the next round.
func (r *Runner) resolve(ctx context.Context, now time.Time) []Decision {
	if len(r.await) == 0 {
		return nil
	}
	var srcs []Source
	for _, a := range r.await {
		if a.src.Topic == r.clean {
			srcs = append(srcs, a.src)
		}
	}
	found := map[Source]*mlv1.Exchange{}
	if len(srcs) > 0 && r.lookup != nil {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		f, err := r.lookup(lctx, srcs)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.metrics.Errors.WithLabelValues("lookup").Inc()
				r.log.Warn("look up primaries of window job records; retrying", "job", r.shadowJob, "records", len(srcs), "error", err)
			}
			return nil
		}
		found = f
	}
	var out []Decision
	for _, a := range r.await {
		prim := found[a.src]
		if a.src.Topic != r.clean || prim == nil || prim.GetId() != a.ex.GetId() {
			out = append(out, r.cmp.Unmatched(Shadow, a.ex, a.ref, "primary record not found at its source offset", now))
			continue
		}
		// The primary is not a consumed record: its Ref names no topic, so
		// nothing is held for it.
		d, _ := r.cmp.Add(Primary, prim, Ref{}, now)
		out = append(out, d...)
		d, kept := r.cmp.Add(Shadow, a.ex, a.ref, now)
		out = append(out, d...)
		if !kept {
			r.finish(a.ref)
		}
	}
	r.await = nil
	return out
}

// finish says the record ref is done with: its offset may be committed.
func (r *Runner) finish(ref Ref) {
	if m := r.held[ref]; m != nil {
		m.Done()
		delete(r.held, ref)
	}
}

// publish produces the decisions to mirror.diff.S, waits for them, then
// says their records are done.
func (r *Runner) publish(ctx context.Context, cl *kgo.Client, out []Decision) error {
	if len(out) == 0 {
		return nil
	}
	// Decisions made are published and confirmed even when ctx ends meanwhile
	// (bounded): their records are then released for the final commit, so the
	// next owner of the partitions does not decide them a second time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var perr error
	var tooLarge []*mlv1.Diff
	produce := func(d *mlv1.Diff, limit int) error {
		rec := &kgo.Record{Topic: r.diff, Key: []byte(d.GetConnectionId())}
		if t := d.GetCaptureTimeNs(); t > 0 {
			rec.Timestamp = time.Unix(0, t)
		}
		if limit == 0 {
			limit = r.budget.MaxValue(rec.Key, nil)
		}
		// A diff that cannot fit even cut is sent all the same: Kafka's
		// MESSAGE_TOO_LARGE brings it back below at minDiffBudget.
		val, cut, _, err := mlv1.MarshalWithin(d, limit)
		if err != nil {
			return fmt.Errorf("compare %s: encode diff: %w", r.service, err)
		}
		if cut {
			r.metrics.Truncated.Inc()
		}
		rec.Value = val
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
			case errors.Is(err, kerr.MessageTooLarge) && limit > minDiffBudget:
				tooLarge = append(tooLarge, d)
			case perr == nil:
				perr = err
			}
		})
		return nil
	}
	batch := make([]*mlv1.Diff, 0, len(out))
	for _, d := range out {
		if d.Diff != nil { // nil: only releases records (orphan egress records)
			batch = append(batch, d.Diff)
		}
	}
	// Two rounds at most: the records Kafka refused as too large (the topic
	// accepts less than the budget, its limit not known) are published
	// again, cut to a size any topic accepts.
	for limit := 0; len(batch) > 0; limit = minDiffBudget {
		for _, d := range batch {
			if err := produce(d, limit); err != nil {
				return err
			}
		}
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("compare %s: flush diff records: %w", r.service, err)
		}
		mu.Lock()
		batch, tooLarge = tooLarge, nil
		mu.Unlock()
	}
	mu.Lock()
	defer mu.Unlock()
	if perr != nil {
		r.metrics.Errors.WithLabelValues("publish").Inc()
		return fmt.Errorf("compare %s: publish diff records to %s: %w", r.service, r.diff, perr)
	}
	r.release(out)
	return nil
}

// release says the records of published decisions are done with.
func (r *Runner) release(out []Decision) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range out {
		for _, ref := range d.Refs {
			r.finish(ref)
		}
	}
}
