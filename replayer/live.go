package replayer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
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

// WithMetrics sets the metrics (default: unregistered).
func WithMetrics(m *Metrics) LiveOpt { return func(l *Live) { l.metrics = m } }

// WithLogger sets the logger.
func WithLogger(lg hclog.Logger) LiveOpt { return func(l *Live) { l.log = lg } }

// Job names the replay job and instance in shadow records.
func Job(job, instance string) LiveOpt {
	return func(l *Live) { l.job, l.instance = job, instance }
}

// Live shadows a service's traffic as it arrives: it consumes the topic in a
// consumer group (so several replayers share the partitions), sends each request
// to the target, publishes the response to mirror.shadow.<service> and commits
// the batch once every response is published.
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
}

// LiveClientOpts are the kgo options a live replayer's client needs on top of the
// broker options: the group, the topic, and rebalances only between batches.
// A new group starts at the end of the topic unless fromStart.
func LiveClientOpts(group, topic string, fromStart bool) []kgo.Opt {
	start := kgo.NewOffset().AtEnd()
	if fromStart {
		start = kgo.NewOffset().AtStart()
	}
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(start),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			_ = cl.CommitMarkedOffsets(ctx)
		}),
	}
}

// DefaultGroup is the consumer group of live replayers of service.
func DefaultGroup(service string) string { return "mirrorline-replay-" + service }

// NewLive returns a live replayer reading through cl (already subscribed, see
// LiveClientOpts) and sending with s.
func NewLive(cl Client, s *Sender, service string, opts ...LiveOpt) *Live {
	l := &Live{cl: cl, sender: s, service: service, shadow: broker.Topic(broker.Shadow, service), conc: 16, log: hclog.NewNullLogger(), job: "live", instance: DefaultInstance()}
	for _, o := range opts {
		o(l)
	}
	if l.metrics == nil {
		l.metrics = NewMetrics(nil)
	}
	if l.conc <= 0 {
		l.conc = 1
	}
	return l
}

// Run replays until ctx ends. It returns nil on cancellation.
func (l *Live) Run(ctx context.Context) error {
	// With BlockRebalanceOnPoll a poll blocks rebalances (and leaving the group on
	// close) until AllowRebalance; never return holding that block.
	defer l.cl.AllowRebalance()
	for {
		fs := l.cl.PollRecords(ctx, 500)
		if ctx.Err() != nil || fs.IsClientClosed() {
			l.commit()
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				l.log.Warn("fetch error", "topic", t, "partition", p, "error", err)
				l.metrics.Errors.WithLabelValues("fetch").Inc()
			}
		})
		recs := fs.Records()
		if len(recs) > 0 {
			l.batch(ctx, recs)
			if err := l.cl.Flush(ctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("replay %s: flush shadow records: %w", l.service, err)
			}
			if ctx.Err() != nil {
				// Requests may have been cut short; leave these records uncommitted
				// so that the next replayer of the group sends them again.
				l.commit()
				return nil
			}
			l.cl.MarkCommitRecords(recs...)
		}
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

// batch replays recs with at most l.conc requests in flight, keeping the order of
// records with the same key unless unordered.
func (l *Live) batch(ctx context.Context, recs []*kgo.Record) {
	fetched := time.Now()
	lanes := make([][]*kgo.Record, l.conc)
	for n, r := range recs {
		i := n % l.conc
		if !l.unordered {
			h := fnv.New32a()
			_, _ = h.Write(r.Key)
			i = int(h.Sum32() % uint32(l.conc))
		}
		lanes[i] = append(lanes[i], r)
	}
	var wg sync.WaitGroup
	for _, lane := range lanes {
		if len(lane) == 0 {
			continue
		}
		wg.Add(1)
		go func(lane []*kgo.Record) {
			defer wg.Done()
			for _, r := range lane {
				if ctx.Err() != nil {
					return
				}
				l.replay(ctx, r, fetched)
			}
		}(lane)
	}
	wg.Wait()
}

func (l *Live) replay(ctx context.Context, r *kgo.Record, fetched time.Time) {
	ex := &mlv1.Exchange{}
	if err := proto.Unmarshal(r.Value, ex); err != nil {
		l.metrics.Errors.WithLabelValues("decode").Inc()
		l.log.Warn("undecodable record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "error", err)
		return
	}
	sent := time.Now()
	l.metrics.ScheduleLag.Observe(sent.Sub(fetched).Seconds())
	resp, err := l.sender.Send(ctx, ex)
	if err != nil {
		reason := "build"
		if errors.Is(err, ErrTruncated) {
			reason = "truncated"
		}
		l.metrics.Errors.WithLabelValues(reason).Inc()
		l.log.Debug("record not replayed", "id", ex.GetId(), "reason", reason)
		return
	}
	if resp.Error != "" && ctx.Err() != nil {
		return // cancelled mid-request: not a target error
	}
	if resp.Error != "" {
		l.metrics.Sent.WithLabelValues("error").Inc()
	} else {
		l.metrics.Sent.WithLabelValues(StatusClass(int(resp.Status))).Inc()
		l.metrics.ResponseLatency.Observe(time.Duration(resp.LatencyNs).Seconds())
	}
	if ex.CaptureTimeNs > 0 {
		l.metrics.CaptureDelay.Observe(sent.Sub(time.Unix(0, ex.CaptureTimeNs)).Seconds())
	}
	out := ShadowRecord(ex, resp, l.sender.Target().String(), l.job, l.instance, sent, sent.Sub(fetched))
	out.Replay.SourceTopic, out.Replay.SourcePartition, out.Replay.SourceOffset = r.Topic, r.Partition, r.Offset
	val, err := proto.Marshal(out)
	if err != nil {
		l.metrics.Errors.WithLabelValues("encode").Inc()
		return
	}
	l.cl.Produce(ctx, &kgo.Record{Topic: l.shadow, Key: r.Key, Value: val, Timestamp: r.Timestamp}, func(_ *kgo.Record, err error) {
		if err != nil {
			l.metrics.Errors.WithLabelValues("publish").Inc()
			l.log.Warn("publish shadow response", "topic", l.shadow, "error", err)
		}
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
