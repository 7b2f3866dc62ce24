package replayer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Client is the slice of *kgo.Client the live replayer uses: a group consumer
// that also produces the shadow responses.
type Client interface {
	PollRecords(ctx context.Context, maxPollRecords int) kgo.Fetches
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	Flush(ctx context.Context) error
	MarkCommitRecords(rs ...*kgo.Record)
	CommitMarkedOffsets(ctx context.Context) error
	AllowRebalance()
}

// LiveOpt configures a Live replayer.
type LiveOpt func(*Live)

// Concurrency is how many requests are in flight at most (default 16).
func Concurrency(n int) LiveOpt { return func(l *Live) { l.conc = n } }

// Order says whether requests of one connection (record key) are sent in
// order, one at a time (true, the default: as the client sent them), or freely
// over all Concurrency slots (false). A connection's requests came one after
// the other at the primary's latency; against a slower shadow, keeping that
// order caps the replay rate at connections / shadow latency, so turn it off to
// keep up with a slow shadow when requests do not depend on each other.
func Order(byConnection bool) LiveOpt { return func(l *Live) { l.unordered = !byConnection } }

// SkipOlderThan makes the replayer skip (and count as dropped, reason
// "too_old") records captured longer ago than d when a worker takes them, so
// that a shadow that cannot keep up sheds load and stays close to live traffic
// instead of falling ever further behind. 0 (the default) replays everything.
// Their offsets are committed like those of replayed records.
func SkipOlderThan(d time.Duration) LiveOpt { return func(l *Live) { l.maxAge = d } }

// LiveMaxRate caps the requests sent per second (0, the default: no cap). A
// replayer catching up a backlog (after a restart, or a shadow that was down)
// sends it at most this fast instead of all at once; the time workers wait
// for the cap is counted in mirrorline_replayer_throttled_seconds_total.
// SetMaxRate changes it while the replayer runs.
func LiveMaxRate(perSecond float64) LiveOpt {
	return func(l *Live) { l.cap.Store(newRateCap(perSecond)) }
}

// WithMetrics sets the metrics (default: unregistered).
func WithMetrics(m *Metrics) LiveOpt { return func(l *Live) { l.metrics = m } }

// WithLogger sets the logger.
func WithLogger(lg hclog.Logger) LiveOpt { return func(l *Live) { l.log = lg } }

// ShadowBudget sets the shadow topic's record budget (default: a budget of
// broker.DefaultMaxMessageBytes); larger shadow responses are cut to fit.
func ShadowBudget(b *broker.Budget) LiveOpt { return func(l *Live) { l.budget = b } }

// Job names the replay job and instance in shadow records.
func Job(job, instance string) LiveOpt {
	return func(l *Live) { l.job, l.instance = job, instance }
}

// Live shadows a service's traffic as it arrives: it consumes the topic in a
// consumer group (so several replayers share the partitions), sends each request
// to the target and publishes the response to mirror.shadow.<service>.
//
// Records are pipelined: polling goes on while requests are in flight, and a
// slow request holds back only the later requests of its own connection (or
// none, unordered), never a whole poll batch. A record's offset is marked for
// commit once its shadow response is published and every earlier record of its
// partition is too; a partition handed to another replayer in a rebalance is
// handed over only after its requests in flight finished and their offsets
// were committed.
type Live struct {
	cl      Client
	sender  *Sender
	service string
	shadow  string
	conc    int
	// unordered spreads records over all slots regardless of their key.
	unordered bool
	metrics   *Metrics
	log       hclog.Logger
	job       string
	instance  string
	offsets   *offsets
	// maxAge: skip records captured longer ago (0: never).
	maxAge time.Duration
	// cap is the send rate cap in force (never nil; its limiter nil: no cap).
	cap    atomic.Pointer[rateCap]
	budget *broker.Budget
}

// rateCap is one setting of the send rate cap; changed is closed when
// SetMaxRate replaces it, so workers waiting on it wait on the new one.
type rateCap struct {
	perSecond float64
	limiter   *rate.Limiter // nil: no cap
	changed   chan struct{}
}

func newRateCap(perSecond float64) *rateCap {
	c := &rateCap{perSecond: max(perSecond, 0), changed: make(chan struct{})}
	if perSecond > 0 {
		c.limiter = rate.NewLimiter(rate.Limit(perSecond), 1)
	}
	return c
}

// SetMaxRate changes the cap on requests sent per second while the replayer
// runs (0: no cap). Workers waiting for the old cap wait for the new one
// instead, so raising or lifting it takes effect at once.
func (l *Live) SetMaxRate(perSecond float64) {
	if old := l.cap.Swap(newRateCap(perSecond)); old != nil {
		close(old.changed)
	}
}

// MaxRate returns the cap on requests sent per second in force (0: none).
func (l *Live) MaxRate() float64 { return l.cap.Load().perSecond }

// waitRate waits until the cap in force lets one more request go.
func (l *Live) waitRate(ctx context.Context) error {
	for {
		c := l.cap.Load()
		if c.limiter == nil {
			return nil
		}
		r := c.limiter.Reserve()
		d := r.Delay()
		if d == 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
			return nil
		case <-c.changed:
			t.Stop()
			r.Cancel()
		case <-ctx.Done():
			t.Stop()
			r.Cancel()
			return ctx.Err()
		}
	}
}

// queueDepth is how many polled records may wait for a free worker; polling
// pauses beyond it.
const queueDepth = 500

// liveByClient finds the Live replayer reading through a kgo client from the
// client's rebalance callbacks (set by LiveClientOpts before the replayer
// exists).
var liveByClient sync.Map // *kgo.Client -> *Live

// LiveClientOpts are the kgo options a live replayer's client needs on top of the
// broker options: the group and the topic, read committed (see
// broker.GroupConsumeOpts; a record of an aborted transaction is never
// replayed), cooperative rebalances only between polls, and the hand-over of
// revoked partitions (their requests in flight finish and their offsets are
// committed first). A new group starts at the end of the topic unless
// fromStart. Append broker.Membership.Opts for a static instance id or
// another session timeout.
func LiveClientOpts(group, topic string, fromStart bool) []kgo.Opt {
	start := kgo.NewOffset().AtEnd()
	if fromStart {
		start = kgo.NewOffset().AtStart()
	}
	opts := broker.GroupConsumeOpts(group, []string{topic}, broker.Membership{})
	return append(opts,
		kgo.ConsumeResetOffset(start),
		// Cooperative: a member joining or leaving moves only the partitions
		// that change hands; the others go on replaying.
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		// What a crash can replay twice is what was sent but not committed:
		// commit the marks every second (kgo's default is 5 s).
		kgo.AutoCommitInterval(LiveCommitInterval),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			v, running := liveByClient.Load(cl)
			if running {
				v.(*Live).offsets.HandOver(ctx, revoked)
			}
			if err := cl.CommitMarkedOffsets(ctx); err != nil && running {
				v.(*Live).log.Warn("commit offsets of revoked partitions", "error", err)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
			if v, ok := liveByClient.Load(cl); ok {
				v.(*Live).offsets.Forget(lost)
			}
		}),
	)
}

// LiveCommitInterval is how often a live replayer commits the offsets of the
// records it replayed. A replayer that crashes sends again, after its
// restart, the records it sent since its last commit (at least once).
const LiveCommitInterval = time.Second

// DefaultGroup is the consumer group of live replayers of service.
func DefaultGroup(service string) string { return "mirrorline-replay-" + service }

// NewLive returns a live replayer reading through cl (already subscribed, see
// LiveClientOpts) and sending with s.
func NewLive(cl Client, s *Sender, service string, opts ...LiveOpt) *Live {
	l := &Live{cl: cl, sender: s, service: service, shadow: broker.Topic(broker.Shadow, service), conc: 16, log: hclog.NewNullLogger(), job: "live", instance: DefaultInstance()}
	for _, o := range opts {
		o(l)
	}
	if l.cap.Load() == nil {
		l.cap.Store(newRateCap(0))
	}
	if l.metrics == nil {
		l.metrics = NewMetrics(nil)
	}
	if l.conc <= 0 {
		l.conc = 1
	}
	l.offsets = newOffsets(func(r *kgo.Record) { l.cl.MarkCommitRecords(r) })
	return l
}

// work is one polled record waiting for a worker.
type work struct {
	rec     *kgo.Record
	fetched time.Time
	track   *tracked
}

// Run replays until ctx ends. It returns nil on cancellation.
func (l *Live) Run(ctx context.Context) error {
	if kc, ok := l.cl.(*kgo.Client); ok {
		liveByClient.Store(kc, l)
		defer liveByClient.Delete(kc)
	}
	q := newKeyQueue[work](queueDepth)
	var workers sync.WaitGroup
	for range l.conc {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				w, done, ok := q.Take()
				if !ok {
					return
				}
				l.replay(ctx, w)
				done()
			}
		}()
	}
	err := l.poll(ctx, q)
	// Stop: the workers give up what is queued (ctx is done, or the run
	// failed), the responses already sent are published, and the offsets
	// of every record done with nothing in flight before it are committed.
	q.Close()
	workers.Wait()
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ferr := l.cl.Flush(fctx); ferr != nil {
		l.log.Warn("flush shadow records", "error", ferr)
	}
	l.commit()
	return err
}

// poll feeds polled records to the queue until ctx ends.
func (l *Live) poll(ctx context.Context, q *keyQueue[work]) error {
	// With BlockRebalanceOnPoll a poll blocks rebalances (and leaving the group on
	// close) until AllowRebalance; never return holding that block.
	defer l.cl.AllowRebalance()
	for {
		fs := l.cl.PollRecords(ctx, 500)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				l.log.Warn("fetch error", "topic", t, "partition", p, "error", err)
				l.metrics.Errors.WithLabelValues("fetch").Inc()
			}
		})
		fetched := time.Now()
		for _, r := range fs.Records() {
			t := l.offsets.Track(r)
			if err := q.Push(ctx, string(r.Key), !l.unordered, work{rec: r, fetched: fetched, track: t}); err != nil {
				l.offsets.Finish(t, false)
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("replay %s: %w", l.service, err)
			}
		}
		// Every polled record is queued: a revoke may now run; it waits for
		// the records of the partitions it takes away.
		l.cl.AllowRebalance()
	}
}

func (l *Live) commit() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.cl.CommitMarkedOffsets(ctx); err != nil {
		l.log.Warn("commit offsets", "error", err)
	}
}

// replay sends w's request and publishes the response; its offset is done
// when the response is published (or the record can never be replayed), and
// abandoned if ctx ended first.
func (l *Live) replay(ctx context.Context, w work) {
	r := w.rec
	if ctx.Err() != nil {
		l.offsets.Finish(w.track, false)
		return
	}
	ex := &mlv1.Exchange{}
	if err := proto.Unmarshal(r.Value, ex); err != nil {
		l.metrics.Errors.WithLabelValues("decode").Inc()
		l.log.Warn("undecodable record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "error", err)
		l.offsets.Finish(w.track, true)
		return
	}
	sent := time.Now()
	if l.maxAge > 0 {
		captured := r.Timestamp
		if ex.CaptureTimeNs > 0 {
			captured = time.Unix(0, ex.CaptureTimeNs)
		}
		if sent.Sub(captured) > l.maxAge {
			l.metrics.Dropped.WithLabelValues(DropTooOld).Inc()
			l.offsets.Finish(w.track, true)
			return
		}
	}
	if l.cap.Load().limiter != nil {
		if err := l.waitRate(ctx); err != nil {
			l.offsets.Finish(w.track, false) // stopping: not sent
			return
		}
		now := time.Now()
		l.metrics.Throttled.Add(now.Sub(sent).Seconds())
		sent = now
	}
	l.metrics.ScheduleLag.Observe(sent.Sub(w.fetched).Seconds())
	resp, failure, err := l.sender.SendReason(ctx, ex)
	if err != nil {
		reason := l.metrics.countSkip(err)
		l.log.Debug("record not replayed", "id", ex.GetId(), "reason", reason)
		l.offsets.Finish(w.track, true)
		return
	}
	if resp.Error != "" && ctx.Err() != nil {
		l.offsets.Finish(w.track, false) // cancelled mid-request: not a target error
		return
	}
	l.metrics.countResponse(resp, failure)
	if ex.CaptureTimeNs > 0 {
		l.metrics.CaptureDelay.Observe(sent.Sub(time.Unix(0, ex.CaptureTimeNs)).Seconds())
	}
	out := ShadowRecord(ex, resp, l.sender.Target().String(), l.job, l.instance, sent, sent.Sub(w.fetched))
	out.Replay.SourceTopic, out.Replay.SourcePartition, out.Replay.SourceOffset = r.Topic, r.Partition, r.Offset
	val, err := shadowValue(out, r.Key, l.budget, l.metrics)
	if err != nil {
		l.metrics.Errors.WithLabelValues(encodeErrReason(err)).Inc()
		l.offsets.Finish(w.track, true)
		return
	}
	// The produce context is not ctx: a response already received is still
	// published when the replayer stops (Run flushes before it commits).
	l.cl.Produce(context.WithoutCancel(ctx), &kgo.Record{Topic: l.shadow, Key: r.Key, Value: val, Timestamp: r.Timestamp}, func(_ *kgo.Record, err error) {
		if err != nil {
			l.metrics.Errors.WithLabelValues("publish").Inc()
			l.log.Warn("publish shadow response", "topic", l.shadow, "error", err)
		}
		// Sent either way: replaying it again would send the request twice.
		l.offsets.Finish(w.track, true)
	})
}

// DefaultInstance names this replayer process: host name and process id.
func DefaultInstance() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// ShadowRecord is the mirror.shadow.<service> record for a replay of ex: the
// request line without its body, the target's response, and how it was sent.
func ShadowRecord(ex *mlv1.Exchange, resp *mlv1.Response, target, job, instance string, sent time.Time, lag time.Duration) *mlv1.Exchange {
	var req *mlv1.Request
	if in := ex.GetRequest(); in != nil {
		req = &mlv1.Request{Method: in.Method, Url: in.Url, Host: in.Host, BodySize: in.BodySize}
	}
	return &mlv1.Exchange{
		Id:            ex.GetId(),
		Service:       ex.GetService(),
		ConnectionId:  ex.GetConnectionId(),
		Sequence:      ex.GetSequence(),
		Source:        mlv1.Source_SOURCE_REPLAYER,
		Collector:     ex.GetCollector(),
		CaptureTimeNs: ex.GetCaptureTimeNs(),
		Request:       req,
		Response:      resp,
		Replay: &mlv1.Replay{
			Target:        target,
			Job:           job,
			Instance:      instance,
			SentTimeNs:    sent.UnixNano(),
			ScheduleLagNs: lag.Nanoseconds(),
		},
		Labels: ex.GetLabels(),
	}
}
