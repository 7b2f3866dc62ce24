package comparator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Source locates a record: for a shadow record, the record it replayed
// (Replay.source_topic, source_partition, source_offset).
type Source struct {
	Topic     string
	Partition int32
	Offset    int64
}

// PrimaryLookup returns the exchanges recorded at srcs, those it finds (a
// record gone with retention is left out). An error means the lookup failed
// and is retried.
type PrimaryLookup func(ctx context.Context, srcs []Source) (map[Source]*mlv1.Exchange, error)

// KafkaLookup returns a PrimaryLookup reading the records from Kafka with
// cfg, read committed. Each call reads, per partition, from the lowest to
// the highest offset asked for.
func KafkaLookup(cfg broker.Config) PrimaryLookup {
	return func(ctx context.Context, srcs []Source) (map[Source]*mlv1.Exchange, error) {
		return lookupKafka(ctx, cfg, srcs)
	}
}

func lookupKafka(ctx context.Context, cfg broker.Config, srcs []Source) (map[Source]*mlv1.Exchange, error) {
	type span struct{ lo, hi int64 }
	want := map[Source]bool{}
	spans := map[string]map[int32]*span{}
	var topics []string
	for _, s := range srcs {
		want[s] = true
		m := spans[s.Topic]
		if m == nil {
			m = map[int32]*span{}
			spans[s.Topic] = m
			topics = append(topics, s.Topic)
		}
		if sp := m[s.Partition]; sp == nil {
			m[s.Partition] = &span{s.Offset, s.Offset}
		} else {
			sp.lo, sp.hi = min(sp.lo, s.Offset), max(sp.hi, s.Offset)
		}
	}
	found := map[Source]*mlv1.Exchange{}
	if len(srcs) == 0 {
		return found, nil
	}
	admCl, err := broker.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("look up primaries: list start offsets: %w", err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("look up primaries: list last stable offsets: %w", err)
	}
	parts := map[string]map[int32]kgo.Offset{}
	left := map[string]map[int32]int64{} // partition -> last offset still to read
	for t, m := range spans {
		for p, sp := range m {
			lo, hi := sp.lo, sp.hi
			if st, ok := starts.Lookup(t, p); ok {
				lo = max(lo, st.Offset)
			}
			if end, ok := ends.Lookup(t, p); ok {
				hi = min(hi, end.Offset-1)
			}
			if lo > hi {
				continue // gone with retention, or not there
			}
			if parts[t] == nil {
				parts[t], left[t] = map[int32]kgo.Offset{}, map[int32]int64{}
			}
			parts[t][p] = kgo.NewOffset().At(lo)
			left[t][p] = hi
		}
	}
	if len(parts) == 0 {
		return found, nil
	}
	cl, err := broker.NewClient(cfg, append(broker.ConsumeOpts(), kgo.ConsumePartitions(parts))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	remaining := 0
	for _, m := range left {
		remaining += len(m)
	}
	for idle := 0; remaining > 0 && idle < 2; {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("look up primaries: %w", ctx.Err())
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && ferr == nil {
				ferr = err
			}
		})
		if ferr != nil {
			return nil, fmt.Errorf("look up primaries: read: %w", ferr)
		}
		if fs.NumRecords() == 0 {
			idle++ // only aborted or control records left before the offsets asked
			continue
		}
		idle = 0
		fs.EachRecord(func(r *kgo.Record) {
			hi, ok := left[r.Topic][r.Partition]
			if !ok {
				return
			}
			if r.Offset >= hi {
				delete(left[r.Topic], r.Partition)
				remaining--
			}
			s := Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
			if !want[s] {
				return
			}
			ex := &mlv1.Exchange{}
			if proto.Unmarshal(r.Value, ex) == nil {
				found[s] = ex
			}
		})
	}
	return found, nil
}
