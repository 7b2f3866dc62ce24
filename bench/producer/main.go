// Command producer measures what the collectors' Kafka producer costs per
// record at a steady rate, for several linger settings: records of a fixed
// size are produced the way a collector does (TryProduce, keyed, the
// collectors' client settings) from a loop that wakes every -tick, and the
// process's CPU time over the run is divided by the records. The same loop
// without producing is measured too, so what the producer adds is the
// difference. It also counts the produce requests sent, because at moderate
// rates the cost follows the number of requests (each one wakes several
// goroutines and threads), not the number of records.
//
//	go run ./bench/producer -brokers 127.0.0.1:29092
//	go run ./bench/producer -lingers 5ms,10ms,20ms,50ms -rate 1000 -rounds 3
//
// Without -brokers or $KAFKA_BROKERS it starts a broker with test/kafka/start
// (run it from the repository's root) and stops it at the end.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/test/testproc"
)

func main() {
	var c config
	flag.StringVar(&c.brokers, "brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers (default $KAFKA_BROKERS, else test/kafka/start)")
	flag.StringVar(&c.lingers, "lingers", "5ms,10ms,20ms,50ms", "producer linger settings to measure, comma separated")
	flag.IntVar(&c.rate, "rate", 1000, "records per second")
	flag.DurationVar(&c.duration, "duration", 4*time.Second, "length of each measured run")
	flag.IntVar(&c.rounds, "rounds", 2, "interleaved rounds (figures: median over rounds)")
	flag.IntVar(&c.partitions, "partitions", 4, "partitions of the topic")
	flag.IntVar(&c.size, "size", 1500, "record value bytes (a raw exchange is 1-2 KB)")
	flag.StringVar(&c.compression, "compression", "snappy", "producer batch compression: none, snappy, lz4, zstd or gzip")
	flag.DurationVar(&c.tick, "tick", 5*time.Millisecond, "how often the loop wakes and hands over the records due (a collector's read cadence: the eBPF and VPC collectors' --poll-interval)")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "producer:", err)
		os.Exit(1)
	}
}

type config struct {
	brokers, lingers, compression  string
	rate, rounds, partitions, size int
	duration, tick                 time.Duration
}

// result is one measured run.
type result struct {
	usPerRecord float64 // CPU-µs per record, whole process
	requests    float64 // produce requests per second
}

func run(c config) error {
	var lingers []time.Duration
	for _, s := range strings.Split(c.lingers, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return fmt.Errorf("-lingers: %q is not a duration", s)
		}
		lingers = append(lingers, d)
	}
	if c.rate <= 0 || c.rounds <= 0 || c.duration <= 0 || c.size <= 0 || c.partitions <= 0 {
		return errors.New("-rate, -rounds, -duration, -size and -partitions must be positive")
	}
	ctx := context.Background()
	if c.brokers == "" {
		addr, err := benchproc.FreeAddr("tcp")
		if err != nil {
			return err
		}
		_, port, _ := strings.Cut(addr, ":")
		args := []string{"--port", port, "--dir", filepath.Join(os.TempDir(), "mirrorline-producer-"+port)}
		b, stop, err := benchproc.StartKafka(ctx, ".", args...)
		defer stop()
		if err != nil {
			return fmt.Errorf("start Kafka (run from the repository's root, or give -brokers): %w", err)
		}
		c.brokers = b
	}
	cfg := broker.Config{Brokers: strings.Split(c.brokers, ","), Compression: c.compression}
	topic := "mirror.raw.producer-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	admCl, err := broker.NewClient(cfg)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopic(ctx, int32(c.partitions), 1, nil, topic); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	defer func() { _, _ = adm.DeleteTopics(context.Background(), topic) }()

	// -1: the loop without producing.
	settings := append([]time.Duration{-1}, lingers...)
	res := map[time.Duration][]result{}
	for round := range c.rounds {
		// Rotated each round, so no setting always runs first.
		k := round % len(settings)
		order := append(slices.Clone(settings[k:]), settings[:k]...)
		for _, l := range order {
			r, err := measure(ctx, c, cfg, topic, l)
			if err != nil {
				return err
			}
			res[l] = append(res[l], r)
			fmt.Fprintf(os.Stderr, "producer: round %d/%d, %s: %.1f CPU-µs/record, %.0f produce requests/s\n", round+1, c.rounds, name(l), r.usPerRecord, r.requests)
		}
	}
	report(c, settings, res)
	return nil
}

// measure produces c.rate records a second for c.duration with linger l (no
// producing when l < 0) after a warm-up, and returns the CPU per record and
// the produce requests per second.
func measure(ctx context.Context, c config, cfg broker.Config, topic string, l time.Duration) (result, error) {
	var requests atomic.Int64
	cl, err := broker.NewClient(cfg, kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(max(l, 0)),
		kgo.MaxBufferedRecords(10000), kgo.WithHooks(produceCounter{&requests}))
	if err != nil {
		return result{}, err
	}
	defer cl.Close()
	val := make([]byte, c.size)
	for i := range val {
		val[i] = byte('a' + i%26)
	}
	produce := func(n int) {
		if l < 0 {
			return
		}
		cl.TryProduce(ctx, &kgo.Record{Key: []byte("conn-" + strconv.Itoa(n%97)), Value: val}, nil)
	}
	// Warm-up: connections, metadata, the producer ID.
	for i := range 200 {
		produce(i)
	}
	if err := cl.Flush(ctx); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	n := int(c.duration.Seconds() * float64(c.rate))
	every := time.Second / time.Duration(c.rate)
	tick := time.NewTicker(c.tick)
	defer tick.Stop()
	r0, cpu0, start := requests.Load(), testproc.CPUTime(), time.Now()
	for sent := 0; sent < n; {
		<-tick.C
		for due := min(n, int(time.Since(start)/every)+1); sent < due; sent++ {
			produce(sent)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return result{}, fmt.Errorf("flush: %w", err)
	}
	cpu, el := testproc.CPUTime()-cpu0, time.Since(start)
	return result{
		usPerRecord: float64(cpu.Microseconds()) / float64(n),
		requests:    float64(requests.Load()-r0) / el.Seconds(),
	}, nil
}

// produceCounter counts the produce requests written to any broker.
type produceCounter struct{ n *atomic.Int64 }

// OnBrokerWrite implements kgo.HookBrokerWrite.
func (p produceCounter) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == 0 && err == nil { // Produce
		p.n.Add(1)
	}
}

func name(l time.Duration) string {
	if l < 0 {
		return "no producing (the loop alone)"
	}
	return "linger " + l.String()
}

func report(c config, settings []time.Duration, res map[time.Duration][]result) {
	med := func(rs []result, f func(result) float64) float64 {
		vs := make([]float64, len(rs))
		for i, r := range rs {
			vs[i] = f(r)
		}
		return benchproc.Median(vs)
	}
	base := med(res[-1], func(r result) float64 { return r.usPerRecord })
	fmt.Printf("## The collectors' Kafka producer: CPU per record against linger\n\n")
	fmt.Printf("- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Printf("- command: `go run ./bench/producer %s`\n", strings.Join(os.Args[1:], " "))
	fmt.Printf("- %d records/s of %d bytes for %v per run, handed over every %v, %d partitions, %s compression, %d interleaved rounds (figures: medians)\n\n",
		c.rate, c.size, c.duration, c.tick, c.partitions, c.compression, c.rounds)
	fmt.Printf("| setting | CPU-µs per record | produce requests/s | added by producing, µs per record | added, µs per produce request |\n|---|---:|---:|---:|---:|\n")
	for _, l := range settings {
		us := med(res[l], func(r result) float64 { return r.usPerRecord })
		if l < 0 {
			fmt.Printf("| %s | %.1f | — | — | — |\n", name(l), us)
			continue
		}
		reqs := med(res[l], func(r result) float64 { return r.requests })
		perReq := "—"
		if reqs > 0 {
			perReq = fmt.Sprintf("%.0f", (us-base)*float64(c.rate)/reqs)
		}
		fmt.Printf("| %s | %.1f | %.0f | %.1f | %s |\n", name(l), us, reqs, us-base, perReq)
	}
}
