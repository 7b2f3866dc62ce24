package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/replayer"
)

// kafkaSource writes the capture to a new one-partition topic on brokers
// and returns a factory of KafkaSources over it (the window replay's real
// source: fetch, decode, merge), and a cleanup that deletes the topic.
func kafkaSource(ctx context.Context, c burstCapture, brokers string) (func(from time.Time) (replayer.Source, func(), error), func(), error) {
	seeds := strings.Split(brokers, ",")
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	adm := kadm.NewClient(cl)
	topic := fmt.Sprintf("bench.burst.%d", time.Now().UnixNano())
	cleanup := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(dctx, topic)
		cl.Close()
	}
	// The capture is stamped on a fixed day months ago: without it the
	// broker's retention check (every 5 minutes by default) may delete the
	// records while a run reads them.
	keep := "-1"
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &keep}, topic); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("create topic %s: %w", topic, err)
	}
	var recs []*kgo.Record
	for _, it := range c.items() {
		v, err := proto.Marshal(it.Exchange)
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("encode record: %w", err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Timestamp: it.Capture, Value: v})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("produce the capture: %w", err)
	}
	n := int64(len(recs))
	to := c.at[len(c.at)-1].Add(time.Second)
	return func(from time.Time) (replayer.Source, func(), error) {
		ranges := []replayer.Range{{Partition: 0, Start: 0, End: n, Limit: n}}
		cons, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...)}, replayer.WindowConsumeOpts(topic, ranges)...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("kafka consumer: %w", err)
		}
		src := replayer.NewKafkaSource(cons, topic, from, to, ranges)
		return src, func() { src.Close(); cons.Close() }, nil
	}, cleanup, nil
}

// runBurstKafka replays the capture once through a KafkaSource, with the
// window starting lead before the first record.
func runBurstKafka(ctx context.Context, srv *server, c burstCapture, lead time.Duration, conc int, brokers string) (fidelity, error) {
	// A broker that does not answer fails the run instead of hanging it.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute+lead/time.Duration(max(c.speed, 1)))
	defer cancel()
	src, cleanup, err := kafkaSource(ctx, c, brokers)
	if err != nil {
		return fidelity{}, err
	}
	defer cleanup()
	f, err := runBurstMirrorline(ctx, srv, c, lead, conc, src)
	f.tool = "ml+kafka"
	return f, err
}
