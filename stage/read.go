package stage

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Span is a part of one partition to read: offsets [From, To).
type Span struct {
	Topic     string
	Partition int32
	From, To  int64
}

// Next says how Read goes on after a record.
type Next int

// What Read does after a record.
const (
	// Continue reads on.
	Continue Next = iota
	// EndSpan stops reading the record's span; the others go on.
	EndSpan
	// EndAll stops reading.
	EndAll
)

// Read reads spans of partitions directly (no group), read committed, and
// calls fn with every committed record in them, in each partition's offset
// order, until every span is read to its end or fn says stop. Each span is
// first clamped to what the partition holds now: From to its start offset,
// To to its last stable offset (an open transaction's records are not
// readable), so Read always ends. The end is seen exactly: transaction
// markers are fetched too (never passed to fn), so a span whose last offsets
// are markers or aborted records ends without waiting for a timeout. opts
// are the client's options (the broker's: seeds, TLS, SASL). When ctx ends
// first, Read returns its error.
func Read(ctx context.Context, opts []kgo.Opt, spans []Span, fn func(*kgo.Record) Next) error {
	if len(spans) == 0 {
		return nil
	}
	adm, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("read: kafka client: %w", err)
	}
	ends, err := clamp(ctx, kadm.NewClient(adm), spans)
	adm.Close()
	if err != nil || len(ends) == 0 {
		return err
	}
	parts := map[string]map[int32]kgo.Offset{}
	for tp, s := range ends {
		if parts[tp.topic] == nil {
			parts[tp.topic] = map[int32]kgo.Offset{}
		}
		parts[tp.topic][tp.partition] = kgo.NewOffset().At(s.From)
	}
	copts := append(append(append([]kgo.Opt{}, opts...), ConsumeOpts()...), kgo.KeepControlRecords(), kgo.ConsumePartitions(parts))
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return fmt.Errorf("read: kafka client: %w", err)
	}
	defer cl.Close()
	done := false
	err = Poll(ctx, cl, Polling{}, func(fs kgo.Fetches) error {
		var ferr error
		fs.EachError(func(topic string, p int32, err error) {
			if ferr == nil {
				ferr = fmt.Errorf("read %s/%d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		stop := false
		fs.EachRecord(func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			s, ok := ends[tp]
			if stop || !ok || r.Offset < s.From {
				return
			}
			if r.Offset >= s.To-1 {
				delete(ends, tp) // the span's last offset
			}
			if r.Offset >= s.To || r.Attrs.IsControl() {
				return
			}
			switch fn(r) {
			case EndSpan:
				delete(ends, tp)
			case EndAll:
				stop = true
			}
		})
		if stop || len(ends) == 0 {
			done = true
			return ErrDone
		}
		return nil
	})
	if err == nil && !done && ctx.Err() != nil {
		// Poll ends without an error when ctx ends: the spans were not all
		// read, and a caller must not take a part for the whole.
		return fmt.Errorf("read: %w", ctx.Err())
	}
	return err
}

// Bounds lists what a read-committed consumer of topics can read now: each
// partition's start offset and its last stable offset (the end, short of any
// open transaction).
func Bounds(ctx context.Context, adm *kadm.Client, topics ...string) (starts, stable kadm.ListedOffsets, err error) {
	if starts, err = adm.ListStartOffsets(ctx, topics...); err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", err)
	}
	if stable, err = adm.ListCommittedOffsets(ctx, topics...); err == nil {
		err = stable.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list last stable offsets: %w", err)
	}
	return starts, stable, nil
}

// clamp returns the spans that hold offsets, clamped to their partitions'
// Bounds, by partition.
func clamp(ctx context.Context, adm *kadm.Client, spans []Span) (map[topicPartition]Span, error) {
	var topics []string
	seen := map[string]bool{}
	for _, s := range spans {
		if !seen[s.Topic] {
			seen[s.Topic] = true
			topics = append(topics, s.Topic)
		}
	}
	starts, stable, err := Bounds(ctx, adm, topics...)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	out := map[topicPartition]Span{}
	for _, s := range spans {
		st, ok1 := starts.Lookup(s.Topic, s.Partition)
		end, ok2 := stable.Lookup(s.Topic, s.Partition)
		if !ok1 || !ok2 {
			continue
		}
		s.From, s.To = max(s.From, st.Offset), min(s.To, end.Offset)
		if s.From < s.To {
			out[topicPartition{s.Topic, s.Partition}] = s
		}
	}
	return out, nil
}
