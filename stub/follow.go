package stub

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// Follower fills an Index from a clean topic: read committed, from the
// first record at or after a lookback time, then live. It knows how far it
// has read each partition, so it tells the Index whether it is behind the
// topic (it is the Index's Progress).
type Follower struct {
	opts  []kgo.Opt
	topic string
	since time.Time
	ix    *Index
	log   hclog.Logger

	mu       sync.Mutex
	pos      map[int32]int64 // next offset to read, per partition
	adm      *kadm.Client
	caughtUp bool
}

// NewFollower returns a Follower reading topic from since into ix; opts are
// the Kafka client's (seeds, TLS, SASL).
func NewFollower(opts []kgo.Opt, topic string, since time.Time, ix *Index, log hclog.Logger) *Follower {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Follower{opts: opts, topic: topic, since: since, ix: ix, log: log}
}

// Run reads the topic into the index until ctx ends. The index is told of
// the Follower as its Progress once the start offsets are known.
func (f *Follower) Run(ctx context.Context) error {
	admCl, err := kgo.NewClient(f.opts...)
	if err != nil {
		return fmt.Errorf("stub index: kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	starts, err := adm.ListOffsetsAfterMilli(ctx, f.since.UnixMilli(), f.topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("stub index: list offsets of %s after %s: %w", f.topic, f.since.UTC().Format(time.RFC3339), err)
	}
	parts := map[int32]kgo.Offset{}
	pos := map[int32]int64{}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Topic == f.topic && o.Partition >= 0 {
			parts[o.Partition] = kgo.NewOffset().At(o.Offset)
			pos[o.Partition] = o.Offset
		}
	})
	if len(parts) == 0 {
		return fmt.Errorf("stub index: topic %s has no partitions (create the topics: mirrorline topics create)", f.topic)
	}
	f.mu.Lock()
	f.pos, f.adm = pos, adm
	f.mu.Unlock()
	f.ix.SetProgress(f)
	copts := append(append(append([]kgo.Opt{}, f.opts...), stage.ConsumeOpts()...), kgo.KeepControlRecords(),
		kgo.FetchMaxWait(stage.FetchMaxWait), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{f.topic: parts}))
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return fmt.Errorf("stub index: kafka client: %w", err)
	}
	defer cl.Close()
	f.log.Info("indexing recorded egress calls", "topic", f.topic, "since", f.since.UTC().Format(time.RFC3339), "partitions", len(parts))
	return stage.Poll(ctx, cl, stage.Polling{Log: f.log}, func(fs kgo.Fetches) error {
		advanced := map[int32]int64{}
		fs.EachRecord(func(r *kgo.Record) {
			advanced[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			ex := &mlv1.Exchange{}
			if err := ex.UnmarshalVT(r.Value); err != nil {
				f.ix.metrics.Skipped.WithLabelValues(SkipDecode).Inc()
				f.log.Warn("undecodable record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
				return
			}
			f.ix.Add(ex)
		})
		if len(advanced) > 0 {
			f.mu.Lock()
			for p, o := range advanced {
				f.pos[p] = max(f.pos[p], o)
			}
			f.mu.Unlock()
			f.ix.Notify()
		}
		return nil
	})
}

// Target lists the topic's last stable offsets now: what a read-committed
// reader has to reach to have seen every record committed so far.
func (f *Follower) Target(ctx context.Context) (any, error) {
	f.mu.Lock()
	adm := f.adm
	f.mu.Unlock()
	if adm == nil {
		return nil, fmt.Errorf("stub index: not started")
	}
	ends, err := adm.ListCommittedOffsets(ctx, f.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("stub index: list last stable offsets of %s: %w", f.topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == f.topic && o.Partition >= 0 {
			out[o.Partition] = o.Offset
		}
	})
	return out, nil
}

// Reached reports whether every partition of target (Target's) is read up
// to its offset.
func (f *Follower) Reached(target any) bool {
	ends, _ := target.(map[int32]int64)
	f.mu.Lock()
	defer f.mu.Unlock()
	for p, end := range ends {
		if pos, ok := f.pos[p]; ok && pos < end {
			return false
		}
	}
	return true
}

// Ready is a readiness check: nil once the Follower has read the topic up
// to its end at least once (the lookback is indexed), an error before.
func (f *Follower) Ready(ctx context.Context) error {
	f.mu.Lock()
	done := f.caughtUp
	f.mu.Unlock()
	if done {
		return nil
	}
	target, err := f.Target(ctx)
	if err != nil {
		return err
	}
	if !f.Reached(target) {
		return fmt.Errorf("stub index: reading %s from its lookback", f.topic)
	}
	f.mu.Lock()
	f.caughtUp = true
	f.mu.Unlock()
	return nil
}
