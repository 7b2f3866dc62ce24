package replayer

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// Live shadows a service's traffic as it arrives: it consumes the topic in a
// consumer group (so several replayers share the partitions), sends each request
// to the target and publishes the response to mirror.shadow.<service>.
//
// It is a handler of the stage runtime (stage.Group), which owns polling,
// decoding, offsets and rebalances. Polling goes on while requests are in
// flight: a slow request holds back only the later requests of its own
// connection (or none, unordered), never a whole poll batch. A record is done
// once its shadow response is published.
type Live struct {
	options
	sender  Requester
	service string
	// group is the stage runtime running the replayer (set by ClientOpts).
	group *stage.Group
	// cap is the send rate cap in force (never nil; its limiter nil: no cap).
	cap atomic.Pointer[rateCap]
	// share is this member's share of the job's cap (see rateShare).
	share *rateShare
	// Set by Run: the records waiting for a worker, and the workers.
	queue   *keyQueue[work]
	workers sync.WaitGroup
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

// SetMaxRate changes the job's cap on requests sent per second while the
// replayer runs (0: no cap), shared by the group's members (see rateShare);
// raising or lifting it takes effect at once.
func (l *Live) SetMaxRate(perSecond float64) { l.share.setJob(perSecond) }

// MaxRate returns the job's cap on requests sent per second (0: none).
func (l *Live) MaxRate() float64 { return l.share.job() }

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

// ClientOpts are the kgo options, on top of the broker options, of the stage
// runtime's group consumer of topic (see stage.Group) that a live replayer
// runs with, committing every LiveCommitInterval; a new group starts at the
// end of the topic unless fromStart. Append stage.Membership.Opts for a static
// instance id or another session timeout. Call it once, before Run.
func (l *Live) ClientOpts(group, topic string, fromStart bool) []kgo.Opt {
	l.group = stage.NewGroup(liveHandler{l}, stage.WithLogger(l.log), stage.WithMetrics(l.metrics.Stage),
		stage.CommitEvery(LiveCommitInterval), stage.FromStart(fromStart), stage.OnAssigned(l.share.assigned),
		stage.WithPolling(stage.Polling{Max: 500, OnFetchError: func(string, int32, error) {
			l.metrics.Errors.WithLabelValues("fetch").Inc()
		}}))
	l.share.topic = topic
	return l.group.ClientOpts(group, topic)
}

// LiveCommitInterval is how often a live replayer commits the offsets of the
// records it replayed. A replayer that crashes sends again, after its
// restart, the records it sent since its last commit (at least once).
const LiveCommitInterval = time.Second

// DefaultGroup is the consumer group of live replayers of service.
func DefaultGroup(service string) string { return "mirrorline-replay-" + service }

// NewLive returns a live replayer of service sending with s (a *Sender, or a
// *Router); ClientOpts gives the options of the client it runs with.
func NewLive(s Requester, service string, opts ...Option) *Live {
	l := &Live{options: newOptions(opts, Concurrency(DefaultConcurrency)), sender: s, service: service}
	l.shadow = broker.Topic(broker.Shadow, service)
	l.job = cmp.Or(l.job, "live")
	l.share = newRateShare(l.maxRate, l.setCap)
	return l
}

// work is one record waiting for a worker.
type work struct {
	msg     *stage.Msg
	ex      *mlv1.Exchange
	fetched time.Time
}

// Run replays through cl (built with ClientOpts) until ctx ends (then it
// returns nil) or the middleware (WithMiddleware) fails for good; on stop,
// the responses already received are published before the last commit, and
// the middleware is closed.
func (l *Live) Run(ctx context.Context, cl *kgo.Client) error {
	if l.group == nil {
		return fmt.Errorf("replay %s: the client was not built with Live.ClientOpts", l.service)
	}
	if err := l.share.lookup(ctx, cl); err != nil {
		l.log.Warn("--max-rate taken whole by this replayer, not shared by partitions", "error", err)
	}
	if l.mw != nil {
		defer l.mw.Close()
	}
	err := supervise(ctx, l.mw, func(ctx context.Context) error {
		l.start(ctx, cl)
		return l.group.Run(ctx, cl)
	})
	if err != nil {
		return fmt.Errorf("replay %s: %w", l.service, err)
	}
	return nil
}

// start starts the workers, which publish to pub.
func (l *Live) start(ctx context.Context, pub Publisher) {
	l.pub = pub
	l.queue = newKeyQueue[work](queueDepth)
	for range l.conc {
		l.workers.Go(func() {
			for {
				w, done, ok := l.queue.Take()
				if !ok {
					return
				}
				l.replay(ctx, w)
				done()
			}
		})
	}
}

// liveHandler is the live replayer as the stage runtime sees it.
type liveHandler struct{ *Live }

// Handle queues the record for a worker, blocking while the queue is full
// (polling waits: backpressure). The schedule lag counts from the poll.
// HTTP/2 and gRPC exchanges are never held behind the earlier ones of their
// connection: HTTP/2 streams run concurrently (a long-lived stream would
// otherwise hold back every later call of its connection).
func (h liveHandler) Handle(ctx context.Context, m *stage.Msg, ex *mlv1.Exchange) error {
	if skipEgress(h.metrics, ex) {
		m.Done()
		return nil
	}
	ordered := !h.unordered && ex.GetProtocol() == mlv1.Protocol_PROTOCOL_UNSPECIFIED
	return h.queue.Push(ctx, string(m.Record.Key), ordered, work{msg: m, ex: ex, fetched: m.Polled})
}

// Drain closes the queue and waits for the workers: what is queued is given
// up (ctx is done) or replayed (the client was closed).
func (h liveHandler) Drain() {
	h.queue.Close()
	h.workers.Wait()
}

// Undecodable counts the record in mirrorline_replayer_errors_total{reason="decode"}.
func (h liveHandler) Undecodable(*kgo.Record) { h.metrics.Errors.WithLabelValues("decode").Inc() }

// replay sends w's request and publishes the response; its record is done
// then (or when it can never be replayed), abandoned if ctx ended first.
func (l *Live) replay(ctx context.Context, w work) {
	r, ex := w.msg.Record, w.ex
	if ctx.Err() != nil {
		w.msg.Abandon()
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
			w.msg.Done()
			return
		}
	}
	if l.cap.Load().limiter != nil {
		if err := l.waitRate(ctx); err != nil {
			w.msg.Abandon() // stopping: not sent
			return
		}
		now := time.Now()
		l.metrics.Throttled.Add(now.Sub(sent).Seconds())
		sent = now
	}
	l.metrics.ScheduleLag.Observe(sent.Sub(w.fetched).Seconds())
	res, err := l.sender.Replay(ctx, ex)
	if err != nil && ctx.Err() != nil {
		w.msg.Abandon() // stopping (e.g. while a paused breaker held it): not sent
		return
	}
	if err != nil {
		reason := l.metrics.countSkip(err)
		l.log.Debug("record not replayed", "id", ex.GetId(), "reason", reason)
		w.msg.Done()
		return
	}
	if res.Response.Error != "" && ctx.Err() != nil {
		w.msg.Abandon() // cancelled mid-request: not a target error
		return
	}
	l.metrics.countResponse(res.Response, res.Failure)
	if ex.CaptureTimeNs > 0 {
		l.metrics.CaptureDelay.Observe(sent.Sub(time.Unix(0, ex.CaptureTimeNs)).Seconds())
	}
	// The produce context is not ctx: a response already received is still
	// published when the replayer stops (the runtime flushes before it
	// commits). The record is done even when publishing fails: replaying it
	// again would send the request twice.
	l.publish(context.WithoutCancel(ctx), r, ex, res, sent, sent.Sub(w.fetched), func(string) { w.msg.Done() })
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
		Labels:   ex.GetLabels(),
		Protocol: ex.GetProtocol(),
	}
}
