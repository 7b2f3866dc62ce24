package comparator

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
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
// cfg, read committed (stage.Read). Each call reads, per partition, from the
// lowest to the highest offset asked for.
func KafkaLookup(cfg broker.Config) PrimaryLookup {
	return func(ctx context.Context, srcs []Source) (map[Source]*mlv1.Exchange, error) {
		found := map[Source]*mlv1.Exchange{}
		if len(srcs) == 0 {
			return found, nil
		}
		opts, err := cfg.Opts()
		if err != nil {
			return nil, fmt.Errorf("look up primaries: %w", err)
		}
		type part struct {
			topic string
			p     int32
		}
		want := map[Source]bool{}
		span := map[part]int{}
		var spans []stage.Span
		for _, s := range srcs {
			want[s] = true
			if i, ok := span[part{s.Topic, s.Partition}]; ok {
				spans[i].From, spans[i].To = min(spans[i].From, s.Offset), max(spans[i].To, s.Offset+1)
				continue
			}
			span[part{s.Topic, s.Partition}] = len(spans)
			spans = append(spans, stage.Span{Topic: s.Topic, Partition: s.Partition, From: s.Offset, To: s.Offset + 1})
		}
		err = stage.Read(ctx, opts, spans, func(r *kgo.Record) stage.Next {
			s := Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
			ex := &mlv1.Exchange{}
			if want[s] && proto.Unmarshal(r.Value, ex) == nil {
				found[s] = ex
			}
			return stage.Continue
		})
		if err != nil {
			return nil, fmt.Errorf("look up primaries: %w", err)
		}
		return found, nil
	}
}
