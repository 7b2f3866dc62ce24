package stage

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Handler is a stage consuming in a consumer group (live replayer,
// comparator). The runtime calls Handle from one goroutine, in each
// partition's offset order, with the record decoded; the handler calls
// m.Done or m.Abandon when it is finished with the record, from any
// goroutine and in any order. Handle may block (backpressure): polling
// waits. An error from Handle stops the stage.
type Handler interface {
	Handle(ctx context.Context, m *Msg, ex *mlv1.Exchange) error
}

// Handlers may also implement these; the runtime calls each from its polling
// goroutine (Revoke from the client's rebalance callback, while polling
// waits for it).
type (
	// Ticker is told after each poll's records were handled (Polling.Tick
	// bounds the wait between two calls); an error stops the stage.
	Ticker interface {
		Tick(ctx context.Context, now time.Time) error
	}
	// Revoker is told which partitions are leaving this member before the
	// runtime waits for their in-flight records: it finishes or abandons
	// the records it holds of them (e.g. exchanges waiting for their other
	// side), so that the hand-over does not wait for them.
	Revoker interface {
		Revoke(parts map[string][]int32)
	}
	// Drainer is told once polling stopped: it finishes or abandons every
	// record it holds, before the runtime flushes and commits.
	Drainer interface {
		Drain()
	}
	// UndecodableCounter counts undecodable records in the stage's own
	// metric too (they are counted in mirrorline_stage_undecodable_records_total
	// and done either way).
	UndecodableCounter interface {
		Undecodable(r *kgo.Record)
	}
)

// Group runs a Handler as a member of a consumer group: it polls, decodes
// each record into an Exchange (an undecodable one is counted and done: it
// never halts its partition), hands the records to the handler, commits each
// partition up to its first record not done, hands revoked partitions over
// only after their in-flight records finished and their offsets were
// committed, and on stop flushes what the handler produced before the final
// commit.
type Group struct {
	config
	h       Handler
	tracker *Tracker
	cl      *kgo.Client
}

// NewGroup returns a group runtime for h.
func NewGroup(h Handler, opts ...Option) *Group {
	g := &Group{h: h, config: newConfig(opts)}
	g.tracker = NewTracker(func(r *kgo.Record) { g.cl.MarkCommitRecords(r) }, func(d int) { g.metrics.InFlight.Add(float64(d)) })
	return g
}

// ClientOpts are the kgo options of the group's client on top of the broker
// options: the group and its topics, read committed, the balancer,
// rebalances only between polls, commits of the marked offsets every
// CommitEvery, and the hand-over of revoked partitions. Append
// Membership.Opts for a static instance id or another session timeout.
func (g *Group) ClientOpts(group string, topics ...string) []kgo.Opt {
	start := kgo.NewOffset().AtEnd()
	if g.fromStart {
		start = kgo.NewOffset().AtStart()
	}
	return append(GroupOpts(group, topics, Membership{}),
		kgo.ConsumeResetOffset(start),
		kgo.Balancers(g.balancer),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(g.commitEvery),
		kgo.AutoCommitCallback(func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			g.countCommit(resp, err)
		}),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, got map[string][]int32) {
			if g.onAssigned != nil {
				g.onAssigned(got)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			g.handOver(ctx, cl, revoked, true)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, lost map[string][]int32) {
			g.handOver(ctx, cl, lost, false)
		}),
	)
}

// handOver gives partitions up: the handler lets go of what it holds of
// them, then (revoked) the runtime waits for their in-flight records and
// commits their offsets, or (lost) forgets them at once.
func (g *Group) handOver(ctx context.Context, cl *kgo.Client, parts map[string][]int32, revoked bool) {
	if len(parts) == 0 {
		return
	}
	if rv, ok := g.h.(Revoker); ok {
		rv.Revoke(parts)
	}
	n := 0
	for _, ps := range parts {
		n += len(ps)
	}
	if !revoked {
		g.tracker.Forget(parts)
		g.metrics.HandedOver.WithLabelValues("lost").Add(float64(n))
		return
	}
	g.tracker.HandOver(ctx, parts)
	g.countCommit(nil, cl.CommitMarkedOffsets(ctx))
	g.metrics.HandedOver.WithLabelValues("revoked").Add(float64(n))
}

// countCommit counts (and logs) one commit's result.
func (g *Group) countCommit(resp *kmsg.OffsetCommitResponse, err error) {
	if err == nil && resp != nil {
		err = commitError(resp)
	}
	if err != nil {
		g.metrics.Commits.WithLabelValues("error").Inc()
		g.log.Warn("commit offsets", "error", err)
		if g.onCommitErr != nil {
			g.onCommitErr(err)
		}
		return
	}
	g.metrics.Commits.WithLabelValues("ok").Inc()
}

// commitError is the first partition error of a commit response.
func commitError(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("commit %s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}

// Run consumes through cl (built with ClientOpts) until ctx ends (nil) or
// the handler fails (its error).
func (g *Group) Run(ctx context.Context, cl *kgo.Client) error {
	g.cl = cl
	// With BlockRebalanceOnPoll a poll blocks rebalances (and leaving the
	// group on close) until AllowRebalance; never return holding that block.
	defer cl.AllowRebalance()
	ticker, _ := g.h.(Ticker)
	counter, _ := g.h.(UndecodableCounter)
	err := Poll(ctx, cl, g.polling, func(fs kgo.Fetches) error {
		var herr error
		polled := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			if herr != nil {
				return
			}
			m := g.tracker.Track(r)
			m.Polled = polled
			ex := &mlv1.Exchange{}
			if err := mlv1.UnmarshalExchange(r.Value, ex); err != nil {
				g.metrics.Undecodable.Inc()
				g.log.Warn("undecodable record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
				if counter != nil {
					counter.Undecodable(r)
				}
				m.Done()
				return
			}
			if herr = g.h.Handle(ctx, m, ex); herr != nil {
				m.Abandon()
			}
		})
		if herr == nil && ticker != nil {
			herr = ticker.Tick(ctx, time.Now())
		}
		if herr != nil {
			if ctx.Err() != nil {
				return ErrDone
			}
			return herr
		}
		// Every polled record is handed over: a revoke may run now; it
		// waits for the in-flight records of the partitions it takes.
		cl.AllowRebalance()
		return nil
	})
	g.stop()
	return err
}

// stop lets the handler finish or abandon what it holds, publishes what it
// produced, and commits every partition up to its first record not done.
func (g *Group) stop() {
	if d, ok := g.h.(Drainer); ok {
		d.Drain()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.cl.Flush(ctx); err != nil {
		g.log.Warn("flush produced records", "error", err)
	}
	g.countCommit(nil, g.cl.CommitMarkedOffsets(ctx))
}

// Open returns how many records are in flight (handed to the handler, not
// done or abandoned).
func (g *Group) Open() int { return g.tracker.Open() }
