package comparator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
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

// RunOpt configures a Runner.
type RunOpt func(*Runner)

// RunLogger sets the runner's logger.
func RunLogger(l hclog.Logger) RunOpt { return func(r *Runner) { r.log = l } }

// RunMetrics sets the metrics the runner counts errors in (use the
// comparator's).
func RunMetrics(m *Metrics) RunOpt { return func(r *Runner) { r.metrics = m } }

// RunBudget sets mirror.diff.S's record budget (default: a budget of
// broker.DefaultMaxMessageBytes); larger diff records are cut to fit.
func RunBudget(b *broker.Budget) RunOpt { return func(r *Runner) { r.budget = b } }

// LookupWith sets how a comparator judging a window job (shadow_job other
// than "live") finds each shadow record's primary (default: none, every
// such record is decided missing; the command uses KafkaLookup).
func LookupWith(l PrimaryLookup) RunOpt { return func(r *Runner) { r.lookup = l } }

// UntilDone makes Run return once every record written to the runner's
// topics before it started is decided (or ignored) and its diff record
// published: a bounded run, e.g. to judge a window job that has ended.
func UntilDone() RunOpt { return func(r *Runner) { r.untilDone = true } }

// TickEvery sets how often, at most, windows are expired and offsets
// committed while no records arrive (default 500 ms).
func TickEvery(d time.Duration) RunOpt { return func(r *Runner) { r.tick = d } }

// partState tracks one partition: the next offset to read and the offsets
// of records still held by undecided exchanges.
type partState struct {
	next      int64
	pending   map[int64]int
	committed int64
}

// awaiting is a window job's shadow record whose primary is to be looked up.
type awaiting struct {
	ex  *mlv1.Exchange
	ref Ref
	src Source
}

// Runner drives a Comparator from Kafka: it consumes mirror.clean.S
// (primary) and mirror.shadow.S (shadow; secondary too when selected by job
// or target), or a separate secondary topic, in a consumer group; publishes
// each decision to mirror.diff.S; and commits an offset only once every
// exchange before it is decided and its diff record published (at least
// once: after a crash, exchanges may be decided again; a Diff's id is the
// exchange id). Partitions are assigned with the range balancer so partition
// p of every topic goes to the same comparator: clean and shadow records of
// one connection share the record key, so the same partition number.
//
// A Runner judges one replay job, the comparator's shadow_job: shadow
// records of other jobs are ignored. The live job is joined with the clean
// topic as both are written. A window job replays records captured earlier,
// whose primaries went by long ago: its runner consumes only mirror.shadow.S
// and reads each record's primary at the clean-topic offset the record names
// (Replay.source_*), with LookupWith.
type Runner struct {
	cmp       *Comparator
	service   string
	clean     string
	shadow    string
	secTopic  string
	secJob    string
	secTarget string
	shadowJob string
	diff      string
	tick      time.Duration
	// commitEvery is how often safe offsets are committed (and at shutdown
	// and on revocation).
	commitEvery time.Duration
	log         hclog.Logger
	metrics     *Metrics
	budget      *broker.Budget
	lookup      PrimaryLookup
	untilDone   bool

	mu       sync.Mutex
	parts    map[string]map[int32]*partState
	await    []awaiting
	assigned map[string]map[int32]bool
}

// NewRunner returns a runner of c.
func NewRunner(c *Comparator, opts ...RunOpt) *Runner {
	sc := c.cfg.Secondary
	r := &Runner{
		cmp: c, service: c.service,
		clean:    broker.Topic(broker.Clean, c.service),
		shadow:   broker.Topic(broker.Shadow, c.service),
		diff:     broker.Topic(broker.Diff, c.service),
		secTopic: sc.Topic, secJob: sc.Job, secTarget: sc.Target, shadowJob: c.cfg.ShadowJob,
		tick:        500 * time.Millisecond,
		commitEvery: time.Second,
		log:         hclog.NewNullLogger(),
		parts:       map[string]map[int32]*partState{},
		assigned:    map[string]map[int32]bool{},
	}
	for _, o := range opts {
		o(r)
	}
	if r.metrics == nil {
		r.metrics = c.metrics
	}
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
	if r.secTopic != "" && r.secTopic != r.shadow && r.secTopic != r.clean {
		ts = append(ts, r.secTopic)
	}
	return ts
}

// ClientOpts are the kgo options of the runner's client on top of the broker
// options: group, topics, read committed, range balancer, manual commits, rebalances only
// between polls, and state handover on revocation. A new group starts at the
// end of the topics unless fromStart.
func (r *Runner) ClientOpts(group string, fromStart bool) []kgo.Opt {
	start := kgo.NewOffset().AtEnd()
	if fromStart {
		start = kgo.NewOffset().AtStart()
	}
	// Read committed (broker.GroupConsumeOpts): the clean and shadow topics
	// are written in transactions; never compare aborted records.
	opts := broker.GroupConsumeOpts(group, r.Topics(), broker.Membership{})
	return append(opts,
		kgo.ConsumeResetOffset(start),
		// Range, not cooperative: partition p of every topic goes to the
		// same member, so both sides of an exchange meet.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, got map[string][]int32) {
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
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
			r.handOver(ctx, cl, lost, true)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
			r.handOver(ctx, cl, lost, false)
		}),
	)
}

// sideOf says which side a record of topic carries; false for a shadow
// record of another job than shadow_job (a record without a job is live's).
func (r *Runner) sideOf(topic string, ex *mlv1.Exchange) (Side, bool) {
	switch {
	case topic == r.clean:
		return Primary, true
	case r.secTopic != "" && topic == r.secTopic:
		return Secondary, true
	case r.secJob != "" && ex.GetReplay().GetJob() == r.secJob:
		return Secondary, true
	case r.secTarget != "" && strings.HasPrefix(ex.GetReplay().GetTarget(), r.secTarget):
		return Secondary, true
	case ShadowJobOf(ex) != r.shadowJob:
		return Shadow, false
	}
	return Shadow, true
}

// Run compares until ctx ends; it returns nil on cancellation and an error
// when decisions cannot be published.
func (r *Runner) Run(ctx context.Context, cl *kgo.Client) error {
	defer cl.AllowRebalance()
	lastCommit := time.Now()
	var done *doneCheck
	if r.untilDone {
		var err error
		if done, err = r.newDoneCheck(ctx, cl); err != nil {
			return err
		}
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, r.tick)
		fs := cl.PollRecords(pctx, 1000)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			r.shutdown(cl)
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			r.log.Warn("fetch error", "topic", t, "partition", p, "error", err)
			r.metrics.Errors.WithLabelValues("fetch").Inc()
		})
		r.mu.Lock()
		now := time.Now()
		var out []Decision
		fs.EachRecord(func(rec *kgo.Record) {
			out = append(out, r.handle(rec, now)...)
		})
		out = append(out, r.resolve(ctx, now)...)
		out = append(out, r.cmp.Tick(now)...)
		r.mu.Unlock()
		if err := r.publish(ctx, cl, out); err != nil {
			if ctx.Err() != nil {
				r.shutdown(cl)
				return nil
			}
			return err
		}
		if time.Since(lastCommit) >= r.commitEvery {
			r.commit(ctx, cl, nil)
			lastCommit = time.Now()
		}
		if done != nil && done.check(ctx, cl, fs.NumRecords()) {
			r.log.Info("done: every record written before the start is judged", "job", r.shadowJob)
			r.shutdown(cl)
			return nil
		}
		cl.AllowRebalance()
	}
}

// doneCheck tells when a bounded run (UntilDone) is over.
type doneCheck struct {
	r     *Runner
	start map[string]map[int32]int64 // first offset retained at start
	ends  map[string]map[int32]int64 // last stable offset at start
	idle  int
}

func (r *Runner) newDoneCheck(ctx context.Context, cl *kgo.Client) (*doneCheck, error) {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListCommittedOffsets(ctx, r.Topics()...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("compare %s: list last stable offsets: %w", r.service, err)
	}
	starts, err := adm.ListStartOffsets(ctx, r.Topics()...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("compare %s: list start offsets: %w", r.service, err)
	}
	d := &doneCheck{r: r, start: map[string]map[int32]int64{}, ends: map[string]map[int32]int64{}}
	ends.Each(func(o kadm.ListedOffset) {
		if d.ends[o.Topic] == nil {
			d.ends[o.Topic] = map[int32]int64{}
		}
		d.ends[o.Topic][o.Partition] = o.Offset
	})
	starts.Each(func(o kadm.ListedOffset) {
		if d.start[o.Topic] == nil {
			d.start[o.Topic] = map[int32]int64{}
		}
		d.start[o.Topic][o.Partition] = o.Offset
	})
	return d, nil
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
			end := d.ends[t][p]
			if end <= d.start[t][p] {
				continue // empty at start
			}
			pos := int64(-1)
			if st := r.parts[t][p]; st != nil {
				pos = st.next
			}
			if pos < 0 {
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
			if pos < end-1 {
				return false
			}
		}
	}
	return true
}

// handle feeds one record to the comparator.
func (r *Runner) handle(rec *kgo.Record, now time.Time) []Decision {
	ps := r.part(rec.Topic, rec.Partition)
	ps.next = rec.Offset + 1
	ex := &mlv1.Exchange{}
	if err := proto.Unmarshal(rec.Value, ex); err != nil {
		side := Shadow
		if rec.Topic == r.clean {
			side = Primary
		}
		r.metrics.Records.WithLabelValues(side.String(), RecordUndecodable).Inc()
		r.log.Warn("undecodable record skipped", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
		return nil
	}
	ref := Ref{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	side, ok := r.sideOf(rec.Topic, ex)
	if !ok {
		r.metrics.Records.WithLabelValues(side.String(), RecordIgnored).Inc()
		return nil
	}
	if side == Shadow && r.windowJob() {
		// Held until its primary is looked up (resolve).
		ps.pending[rec.Offset]++
		rp := ex.GetReplay()
		r.await = append(r.await, awaiting{ex: ex, ref: ref, src: Source{Topic: rp.GetSourceTopic(), Partition: rp.GetSourcePartition(), Offset: rp.GetSourceOffset()}})
		return nil
	}
	out, kept := r.cmp.Add(side, ex, ref, now)
	if kept {
		ps.pending[rec.Offset]++
	}
	return out
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
			r.release(a.ref)
		}
	}
	r.await = nil
	return out
}

// release lets ref's offset be committed.
func (r *Runner) release(ref Ref) {
	ps := r.parts[ref.Topic][ref.Partition]
	if ps == nil {
		return // revoked meanwhile
	}
	if n := ps.pending[ref.Offset]; n <= 1 {
		delete(ps.pending, ref.Offset)
	} else {
		ps.pending[ref.Offset] = n - 1
	}
}

func (r *Runner) part(topic string, p int32) *partState {
	m := r.parts[topic]
	if m == nil {
		m = map[int32]*partState{}
		r.parts[topic] = m
	}
	ps := m[p]
	if ps == nil {
		ps = &partState{next: -1, committed: -1, pending: map[int64]int{}}
		m[p] = ps
	}
	return ps
}

// publish produces the decisions to mirror.diff.S, waits for them, then
// releases their records for committing.
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
	for _, d := range out {
		if err := produce(d.Diff, 0); err != nil {
			return err
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("compare %s: flush diff records: %w", r.service, err)
	}
	mu.Lock()
	retry := tooLarge
	tooLarge = nil
	mu.Unlock()
	if len(retry) > 0 {
		// The topic accepts less than the budget (its limit not known):
		// publish these cut to a size any topic accepts.
		for _, d := range retry {
			if err := produce(d, minDiffBudget); err != nil {
				return err
			}
		}
		if err := cl.Flush(ctx); err != nil {
			return fmt.Errorf("compare %s: flush diff records: %w", r.service, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if perr != nil {
		r.metrics.Errors.WithLabelValues("publish").Inc()
		return fmt.Errorf("compare %s: publish diff records to %s: %w", r.service, r.diff, perr)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range out {
		for _, ref := range d.Refs {
			r.release(ref)
		}
	}
	return nil
}

// commitOffsets computes, for the partitions only accepts (all when nil),
// the offsets safe to commit: the lowest offset still held, else the next one.
func (r *Runner) commitOffsets(only map[string][]int32) map[string]map[int32]kgo.EpochOffset {
	out := map[string]map[int32]kgo.EpochOffset{}
	for t, m := range r.parts {
		for p, ps := range m {
			if only != nil && !containsPart(only[t], p) {
				continue
			}
			off := ps.next
			for o := range ps.pending {
				if o < off {
					off = o
				}
			}
			if off < 0 || off <= ps.committed {
				continue
			}
			if out[t] == nil {
				out[t] = map[int32]kgo.EpochOffset{}
			}
			out[t][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
		}
	}
	return out
}

func containsPart(ps []int32, p int32) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

// commit commits the safe offsets (of only, or all partitions).
func (r *Runner) commit(ctx context.Context, cl *kgo.Client, only map[string][]int32) {
	r.mu.Lock()
	offs := r.commitOffsets(only)
	r.mu.Unlock()
	if len(offs) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var cerr error
	cl.CommitOffsetsSync(cctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		if ctx.Err() == nil {
			r.metrics.Errors.WithLabelValues("commit").Inc()
			r.log.Warn("commit offsets", "error", cerr)
		}
		return
	}
	r.mu.Lock()
	for t, m := range offs {
		for p, eo := range m {
			if ps := r.parts[t][p]; ps != nil {
				ps.committed = eo.Offset
			}
		}
	}
	r.mu.Unlock()
}

// handOver commits what is safe of the partitions leaving this member and
// drops their undecided state: the new owner reads those records again.
func (r *Runner) handOver(ctx context.Context, cl *kgo.Client, gone map[string][]int32, commit bool) {
	if commit {
		r.commit(ctx, cl, gone)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.cmp.Drop(func(ref Ref) bool { return containsPart(gone[ref.Topic], ref.Partition) })
	kept := r.await[:0]
	for _, a := range r.await {
		if containsPart(gone[a.ref.Topic], a.ref.Partition) {
			n++
		} else {
			kept = append(kept, a)
		}
	}
	r.await = kept
	for t, ps := range gone {
		for _, p := range ps {
			delete(r.parts[t], p)
			delete(r.assigned[t], p)
		}
	}
	if n > 0 {
		r.log.Info("partitions moved; undecided exchanges handed over", "exchanges", n)
	}
}

// shutdown commits what is safe; undecided exchanges are decided by whoever
// reads their records next.
func (r *Runner) shutdown(cl *kgo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.commit(ctx, cl, nil)
}
