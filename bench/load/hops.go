package main

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// hops splits the send-to-shadow delay at the two Kafka topics: the harness
// reads the raw topic (as the proxy wrote it, uncommitted) and the clean
// topic (read committed, as the replayer sees it) beside the pipeline, and
// for each record of the current step takes the delay since the generator
// sent its request (the X-Bench header). send→raw is the proxy and its
// producer; raw→clean the redactor's transactions; clean→shadow the live
// replayer. Its own fetches wait at most hopFetchWait, so that what it
// reports is the pipeline's delay rather than its own.
type hops struct {
	raw, clean *kgo.Client
	cancel     context.CancelFunc
	wg         sync.WaitGroup

	mu      sync.Mutex
	step    uint64
	toRaw   *hdrhistogram.Histogram
	toClean *hdrhistogram.Histogram
}

// hopFetchWait bounds how long the harness's fetches wait for records.
const hopFetchWait = 20 * time.Millisecond

// hopStats are the delays of one step at each topic.
type hopStats struct {
	rawN, cleanN       int64
	rawP50, rawP99     time.Duration
	cleanP50, cleanP99 time.Duration
}

func startHops(brokers []string, service string) (*hops, error) {
	h := &hops{toRaw: newHist(), toClean: newHist()}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	for _, t := range []struct {
		stage     broker.Stage
		committed bool
		into      **kgo.Client
		hist      func() *hdrhistogram.Histogram
	}{
		{broker.Raw, false, &h.raw, func() *hdrhistogram.Histogram { return h.toRaw }},
		{broker.Clean, true, &h.clean, func() *hdrhistogram.Histogram { return h.toClean }},
	} {
		opts := []kgo.Opt{kgo.ConsumeTopics(broker.Topic(t.stage, service)), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
			kgo.FetchMaxWait(hopFetchWait)}
		if t.committed {
			opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		}
		cl, err := broker.NewClient(broker.Config{Brokers: brokers, ClientID: "mirrorline-bench-hops"}, opts...)
		if err != nil {
			h.stop()
			return nil, err
		}
		*t.into = cl
		hist := t.hist
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for ctx.Err() == nil {
				fs := cl.PollFetches(ctx)
				now := time.Now()
				h.mu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					if sent, ok := h.sentOf(r.Value); ok {
						record(hist(), now.Sub(sent))
					}
				})
				h.mu.Unlock()
			}
		}()
	}
	return h, nil
}

// sentOf returns when the generator sent the request of a record of the
// current step (h.mu held). Records are parsed, never trusted.
func (h *hops) sentOf(value []byte) (time.Time, bool) {
	var ex mlv1.Exchange
	if proto.Unmarshal(value, &ex) != nil {
		return time.Time{}, false
	}
	for _, hd := range ex.GetRequest().GetHeaders() {
		if !strings.EqualFold(hd.GetName(), benchHeader) {
			continue
		}
		step, _, sent, ok := parseBenchHeader(hd.GetValue())
		return sent, ok && step == h.step
	}
	return time.Time{}, false
}

// reset starts counting the records of step.
func (h *hops) reset(step uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.step = step
	h.toRaw.Reset()
	h.toClean.Reset()
}

func (h *hops) stats() hopStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return hopStats{
		rawN: h.toRaw.TotalCount(), cleanN: h.toClean.TotalCount(),
		rawP50: us(h.toRaw.ValueAtQuantile(50)), rawP99: us(h.toRaw.ValueAtQuantile(99)),
		cleanP50: us(h.toClean.ValueAtQuantile(50)), cleanP99: us(h.toClean.ValueAtQuantile(99)),
	}
}

func (h *hops) stop() {
	h.cancel()
	for _, cl := range []*kgo.Client{h.raw, h.clean} {
		if cl != nil {
			cl.Close()
		}
	}
	h.wg.Wait()
}
