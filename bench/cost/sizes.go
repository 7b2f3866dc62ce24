package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
)

// recordSize is the mean size (key + value + headers, before compression)
// of the records of one topic of the pipeline.
type recordSize struct {
	topic string
	kind  string
	mean  float64
	n     int
}

// recordSizes reads up to max records (read committed) of each topic of the
// pipeline's service and returns their mean sizes: the figure docs/capacity.md
// turns into MB/s per partition.
func (h *harness) recordSizes(ctx context.Context, max int) ([]recordSize, error) {
	svc := h.svc + "-pipeline"
	var out []recordSize
	for _, kind := range []broker.Stage{broker.Raw, broker.Clean, broker.Shadow, broker.Diff} {
		topic := broker.Topic(kind, svc)
		cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(h.brokers, ",")...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		if err != nil {
			return out, fmt.Errorf("record sizes: %w", err)
		}
		var bytes, n int
		deadline := time.Now().Add(10 * time.Second)
		for n < max && time.Now().Before(deadline) && ctx.Err() == nil {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			fs := cl.PollRecords(pctx, max-n)
			cancel()
			fs.EachRecord(func(r *kgo.Record) {
				bytes += len(r.Key) + len(r.Value)
				for _, hd := range r.Headers {
					bytes += len(hd.Key) + len(hd.Value)
				}
				n++
			})
		}
		cl.Close()
		if n > 0 {
			out = append(out, recordSize{topic: topic, kind: string(kind), mean: float64(bytes) / float64(n), n: n})
		}
	}
	return out, nil
}
