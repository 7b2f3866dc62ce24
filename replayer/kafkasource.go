package replayer

import (
	"context"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// WindowConsumeOpts are the kgo options of a window replay's consumer: direct
// consumption (no group) of ranges of topic from their start offsets, reading
// committed records only, and keeping transaction markers so that a range
// that ends with a marker is seen to end.
func WindowConsumeOpts(topic string, ranges []Range) []kgo.Opt {
	offs := map[int32]kgo.Offset{}
	for _, r := range ranges {
		if !r.Empty() {
			offs[r.Partition] = kgo.NewOffset().At(r.Start)
		}
	}
	opts := append(stage.ConsumeOpts(), kgo.KeepControlRecords(), kgo.FetchMaxWait(500*time.Millisecond), kgo.FetchMaxBytes(16<<20), kgo.FetchMaxPartitionBytes(1<<20))
	if len(offs) > 0 {
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	}
	return opts
}

// Poller is the slice of *kgo.Client a KafkaSource reads with.
type Poller interface {
	stage.Poller
	PauseFetchPartitions(topicPartitions map[string][]int32) map[string][]int32
	ResumeFetchPartitions(topicPartitions map[string][]int32)
}

// KafkaSource reads the ranges of a window from Kafka (see Range) and merges
// the partitions into one stream in capture order, skipping transaction
// markers and records stamped outside the window [from, to).
type KafkaSource struct {
	options
	cl       Poller
	topic    string
	from, to time.Time

	once   sync.Once
	cancel context.CancelFunc
	fetchW sync.WaitGroup
	notify chan struct{}

	mu    sync.Mutex
	parts []*partQueue
	byID  map[int32]*partQueue
	done  int64
	total int64
	gone  int64
}

type partQueue struct {
	r      Range
	items  []Item // by capture time
	pos    int64  // the next offset expected from Kafka
	done   bool   // no more items will come
	paused bool
}

// NewKafkaSource returns a source of the ranges (this worker's share) of the
// window [from, to) of topic, read through cl (see WindowConsumeOpts).
func NewKafkaSource(cl Poller, topic string, from, to time.Time, ranges []Range, opts ...Option) *KafkaSource {
	s := &KafkaSource{options: newOptions(opts), cl: cl, topic: topic, from: from, to: to, notify: make(chan struct{}, 1), byID: map[int32]*partQueue{}}
	for _, r := range ranges {
		q := &partQueue{r: r, pos: r.Start, done: r.Empty()}
		s.parts = append(s.parts, q)
		s.byID[r.Partition] = q
		s.total += r.Len()
	}
	sort.Slice(s.parts, func(i, j int) bool { return s.parts[i].r.Partition < s.parts[j].r.Partition })
	return s
}

// Progress reports the offsets handed out or skipped (transaction markers,
// records outside the window, offsets missing from the log) and Range.Len of
// all ranges.
func (s *KafkaSource) Progress() (done, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return min(s.done, s.total), s.total
}

// Gone reports how many records of the ranges Kafka no longer had when the
// source came to read them (retention, deleted records): skipped.
func (s *KafkaSource) Gone() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

// Close stops reading; Next must not be called after.
func (s *KafkaSource) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.fetchW.Wait()
}

// Next returns the record captured first of those not yet handed out, waiting
// until every partition that has not ended has one buffered, or io.EOF once
// all have ended.
func (s *KafkaSource) Next(ctx context.Context) (Item, error) {
	s.once.Do(func() {
		fctx, cancel := context.WithCancel(ctx)
		s.cancel = cancel
		s.fetchW.Go(func() {
			s.fetch(fctx)
		})
	})
	for {
		s.mu.Lock()
		var best *partQueue
		wait := false
		for _, q := range s.parts {
			if len(q.items) == 0 {
				if !q.done {
					wait = true
					break
				}
				continue
			}
			if best == nil || q.items[0].Capture.Before(best.items[0].Capture) {
				best = q
			}
		}
		if !wait {
			if best == nil {
				s.mu.Unlock()
				return Item{}, io.EOF
			}
			it := best.items[0]
			best.items[0] = Item{}
			best.items = best.items[1:]
			s.done++
			resume := best.paused && !best.done && len(best.items) <= s.buffer/2
			if resume {
				best.paused = false
			}
			s.mu.Unlock()
			if resume {
				s.cl.ResumeFetchPartitions(map[string][]int32{s.topic: {best.r.Partition}})
			}
			return it, nil
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Item{}, ctx.Err()
		}
	}
}

// fetch polls records into the partition queues until every partition
// ended, pausing the partitions whose queue is full.
func (s *KafkaSource) fetch(ctx context.Context) {
	if s.allDone() {
		return
	}
	o := stage.Polling{Log: s.log, Metrics: s.metrics.Stage, OnFetchError: func(string, int32, error) {
		s.metrics.Errors.WithLabelValues("fetch").Inc()
	}}
	_ = stage.Poll(ctx, s.cl, o, func(fs kgo.Fetches) error {
		var pause []int32
		s.mu.Lock()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Err == nil {
				s.logStart(p.Topic, p.Partition, p.LogStartOffset)
			}
		})
		fs.EachRecord(s.add)
		all := true
		for _, q := range s.parts {
			if !q.paused && (q.done || len(q.items) >= s.buffer) {
				q.paused = true
				pause = append(pause, q.r.Partition)
			}
			all = all && q.done
		}
		s.mu.Unlock()
		if len(pause) > 0 {
			s.cl.PauseFetchPartitions(map[string][]int32{s.topic: pause})
		}
		select {
		case s.notify <- struct{}{}:
		default:
		}
		if all {
			return stage.ErrDone
		}
		return nil
	})
}

func (s *KafkaSource) allDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !slices.ContainsFunc(s.parts, func(q *partQueue) bool { return !q.done })
}

// add queues one fetched record; s.mu is held.
func (s *KafkaSource) add(r *kgo.Record) {
	q := s.byID[r.Partition]
	if q == nil || q.done || r.Topic != s.topic || r.Offset < q.pos {
		return
	}
	if r.Offset >= q.r.Limit {
		s.end(q)
		return
	}
	control := r.Attrs.IsControl()
	if !control && !r.Timestamp.Before(s.to.Add(WindowEndGrace)) {
		s.end(q) // past the window and its grace: the partition's part ends
		return
	}
	s.done += r.Offset - q.pos // offsets the log does not have
	q.pos = r.Offset + 1
	switch {
	case control:
		s.done++ // a transaction marker: takes an offset, carries no request
	case r.Timestamp.Before(s.from), !r.Timestamp.Before(s.to):
		s.done++ // stamped outside the window although stored in its range
	default:
		it := Item{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Capture: r.Timestamp}
		ex := &mlv1.Exchange{}
		if err := mlv1.UnmarshalExchange(r.Value, ex); err != nil {
			// Handed out without an exchange: the replay counts it.
			s.metrics.Stage.Undecodable.Inc()
			s.log.Warn("undecodable record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "error", err)
		} else {
			it.Exchange = ex
			it.Capture = RecordCaptureTime(r.Timestamp, ex)
		}
		// Keep the queue in capture order: a record written after others but
		// captured before them goes out at its own time (the schedule wins
		// over the partition's order).
		i := len(q.items)
		q.items = append(q.items, it)
		for ; i > 0 && q.items[i-1].Capture.After(it.Capture); i-- {
			q.items[i] = q.items[i-1]
		}
		q.items[i] = it
	}
	if q.pos >= q.r.Limit {
		s.end(q)
	}
}

// logStart accounts for the records of a range that Kafka no longer has: a
// fetch of partition says its log starts at start, past the offset q reads
// next (retention deleted the records meanwhile, or they were deleted). The
// consumer resumes at the log start by itself; a range whose remaining
// records are all gone ends here instead of waiting for offsets that will
// never come (on a topic nothing is written to any more, for ever). The
// records skipped are counted in errors{reason="gone"}. s.mu is held.
func (s *KafkaSource) logStart(topic string, partition int32, start int64) {
	q := s.byID[partition]
	if q == nil || q.done || topic != s.topic || start <= q.pos {
		return
	}
	gone := min(start, q.r.Limit) - q.pos
	s.done += gone
	s.gone += gone
	q.pos = start
	s.metrics.Errors.WithLabelValues(ReasonGone).Add(float64(gone))
	s.log.Warn("records of the window are no longer in Kafka (retention or deleted records); skipped", "topic", topic, "partition", partition, "records", gone, "log_start_offset", start)
	if q.pos >= q.r.Limit {
		s.end(q)
	}
}

// end marks q ended and accounts for the estimated offsets it will not read.
func (s *KafkaSource) end(q *partQueue) {
	q.done = true
	if q.pos < q.r.End {
		s.done += q.r.End - q.pos
	}
	q.pos = max(q.pos, q.r.Limit)
}
