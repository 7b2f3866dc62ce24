package redactor

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// The redactor's whole exactly-once loop, as `mirrorline redact` runs it:
// fetch raw records (read committed), decode the envelope, redact, encode,
// produce to the clean topic and commit the offsets, one Kafka transaction
// per poll. The raw topic is filled with b.N records of the bench payload
// first; the measured window starts when the first transaction has committed
// (the group join is reported apart, join-ms) and ends when every record has
// been committed to the clean topic. CPU time is the whole process's
// (getrusage: every goroutine of the loop, franz-go's included, and the
// garbage collector), so records/cpu-s is records per second of one core.
//
// BenchmarkRedactEOSLoop runs against the real Kafka broker of KAFKA_BROKERS
// (skipped without it): the process is the redactor alone.
// BenchmarkRedactEOSLoopEmbedded runs against the in-process kfake broker:
// its CPU time includes the broker's, so it is for profiles, not for the
// per-core figure.
//
// REDACT_LOOP_CPUPROFILE=file writes a CPU profile of the measured window
// only (not of the pre-filling). REDACT_LOOP_COMPRESSION=codec sets the
// batch codec of both the pre-filled raw records and the loop's producer
// (broker.Compressions; the default is broker.DefaultCompression).

func BenchmarkRedactEOSLoop(b *testing.B) {
	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		b.Skip("KAFKA_BROKERS not set: the redactor's EOS loop needs a Kafka broker")
	}
	benchLoop(b, strings.Split(brokers, ","))
}

func BenchmarkRedactEOSLoopEmbedded(b *testing.B) {
	e, err := broker.StartEmbedded()
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	benchLoop(b, e.Addrs())
}

// BenchmarkEOSLoopPassThrough is the peer of BenchmarkRedactEOSLoop: the same
// exactly-once loop (stage.Tx, the same session, batch and topics, the same
// records) with a transformer that encodes each decoded exchange again as it
// is, without redacting it. What the redactor's loop costs above it is the
// engine's; what it costs itself is what any transformer pays for Kafka,
// the transactions and the envelope's codec.
func BenchmarkEOSLoopPassThrough(b *testing.B) {
	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		b.Skip("KAFKA_BROKERS not set: the exactly-once loop needs a Kafka broker")
	}
	benchLoopWith(b, strings.Split(brokers, ","), true)
}

// loopPartitions is the raw topic's partitions in the loop benchmark.
const loopPartitions = 3

func benchLoop(b *testing.B, brokers []string) { benchLoopWith(b, brokers, false) }

// benchLoopWith runs the loop benchmark with the redactor's Processor, or,
// passThrough, with a transformer that encodes each exchange unredacted.
func benchLoopWith(b *testing.B, brokers []string, passThrough bool) {
	b.Setenv("MIRRORLINE_REDACT_HASH_KEY", "bench-key-0123456789")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	svc := fmt.Sprintf("benchloop-%d", time.Now().UnixNano())
	cfg := broker.Config{Brokers: brokers, Compression: os.Getenv("REDACT_LOOP_COMPRESSION")}
	n := b.N
	const warm = DefaultBatch // records the first transactions may take before the window opens
	total := n + warm
	prefillLoop(ctx, b, cfg, svc, total)

	opts, err := cfg.Opts()
	if err != nil {
		b.Fatal(err)
	}
	opts = append(opts, SessionOpts(svc, DefaultGroup(svc), "bench-"+svc)...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		b.Fatal(err)
	}
	var (
		p    loopRunner
		done func() int
	)
	if passThrough {
		pt := &passThroughTx{clean: broker.Topic(broker.Clean, svc)}
		p = stage.NewTx(sess, pt, stage.WithPolling(stage.Polling{Max: DefaultBatch}))
		done = func() int { return int(pt.committed.Load()) }
	} else {
		engine, err := NewEngine(Config{})
		if err != nil {
			b.Fatal(err)
		}
		m := NewMetrics(prometheus.NewRegistry())
		proc, err := NewProcessor(sess, engine, svc, WithMetrics(m), WithBatch(DefaultBatch))
		if err != nil {
			b.Fatal(err)
		}
		p = proc
		clean := m.Records.WithLabelValues(OutcomeClean)
		done = func() int { return int(testutil.ToFloat64(clean)) }
	}

	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	rctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- p.Run(rctx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			b.Error(err)
		}
		p.Close()
	}()
	// The window opens at the first commit: the group is joined and the
	// fetches are flowing.
	wait := func(until func(int) bool) int {
		for {
			if c := done(); until(c) {
				return c
			}
			select {
			case err := <-ran:
				b.Fatalf("redactor stopped: %v", err)
			case <-ctx.Done():
				b.Fatalf("%d of %d records redacted: %v", done(), total, ctx.Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
	first := wait(func(c int) bool { return c > 0 })
	join := time.Since(start)
	use0, t0 := testproc.ReadUsage(), time.Now()
	var prof *os.File
	if path := os.Getenv("REDACT_LOOP_CPUPROFILE"); path != "" {
		if prof, err = os.Create(path); err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(prof); err != nil {
			b.Fatal(err)
		}
	}
	wait(func(c int) bool { return c >= total })
	wall, use := time.Since(t0), testproc.ReadUsage()
	cpu, sys := use.CPU()-use0.CPU(), use.System-use0.System
	b.StopTimer()
	if prof != nil {
		pprof.StopCPUProfile()
		prof.Close()
	}
	if got := done(); got != total {
		b.Fatalf("%d records redacted to the clean topic, want %d", got, total)
	}
	measured := float64(total - first)
	if measured == 0 {
		// One transaction took every record (a small b.N): no window.
		b.ReportMetric(float64(join.Nanoseconds())/float64(total), "ns/op")
		return
	}
	b.ReportMetric(measured/cpu.Seconds(), "records/cpu-s")
	b.ReportMetric(float64(cpu.Microseconds())/measured, "cpu-µs/record")
	b.ReportMetric(measured/wall.Seconds(), "records/s")
	b.ReportMetric(float64(sys.Microseconds())/measured, "sys-µs/record")
	b.ReportMetric(float64(use.MinorFaults-use0.MinorFaults)/measured, "faults/record")
	b.ReportMetric(float64(join.Milliseconds()), "join-ms")
	b.ReportMetric(float64(wall.Nanoseconds())/measured, "ns/op")
}

// loopRunner is what the loop benchmark runs: the redactor's Processor or
// the pass-through stage.Tx.
type loopRunner interface {
	Run(ctx context.Context) error
	Close()
}

// passThroughTx is the pass-through transformer of
// BenchmarkEOSLoopPassThrough: each exchange encoded again, unredacted,
// into a recycled buffer (as the Processor does), to the clean topic. It
// counts the records of committed transactions.
type passThroughTx struct {
	clean     string
	pending   int
	committed atomic.Int64
	values    sync.Pool
}

func (t *passThroughTx) Transform(r *kgo.Record, ex *mlv1.Exchange) ([]*kgo.Record, error) {
	var buf []byte
	if v, ok := t.values.Get().(*[]byte); ok {
		buf = *v
	}
	val, err := mlv1.AppendExchange(buf, ex)
	if err != nil {
		return nil, err
	}
	t.pending++
	return []*kgo.Record{{Topic: t.clean, Key: r.Key, Value: val, Timestamp: r.Timestamp}}, nil
}

func (t *passThroughTx) SetAside(*kgo.Record, *mlv1.Exchange, string, string) *kgo.Record {
	return nil
}

func (t *passThroughTx) Ended(committed bool) {
	if committed {
		t.committed.Add(int64(t.pending))
	}
	t.pending = 0
}

func (t *passThroughTx) Recycle(out *kgo.Record) {
	v := out.Value[:0]
	out.Value = nil
	t.values.Put(&v)
}

// prefillLoop creates svc's topics and writes total raw records of the bench
// payload (distinct ids, 64 connections as keys).
func prefillLoop(ctx context.Context, b *testing.B, cfg broker.Config, svc string, total int) {
	b.Helper()
	cl, err := broker.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := broker.CreateTopics(ctx, adm, svc, broker.TopicSpec{Partitions: loopPartitions}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cl, err := broker.NewClient(cfg)
		if err != nil {
			return
		}
		defer cl.Close()
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var topics []string
		for _, st := range broker.Stages {
			topics = append(topics, broker.Topic(st, svc))
		}
		_, _ = kadm.NewClient(cl).DeleteTopics(dctx, topics...)
		_, _ = kadm.NewClient(cl).DeleteGroup(dctx, DefaultGroup(svc))
	})
	raw := broker.Topic(broker.Raw, svc)
	errc := make(chan error, 1)
	for i := range total {
		ex := benchExchange(benchPaymentJSON)
		ex.Id = fmt.Sprintf("0190d9a0-0000-7000-8000-%012d", i)
		ex.ConnectionId = fmt.Sprintf("conn-%02d", i%64)
		ex.Service = svc
		v, err := proto.Marshal(ex)
		if err != nil {
			b.Fatal(err)
		}
		cl.Produce(ctx, &kgo.Record{Topic: raw, Key: []byte(ex.ConnectionId), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
}

// BenchmarkRedactRecord is the loop's per-record work without Kafka: decode
// the raw envelope into the exchange decoded before, redact, encode the
// clean record (stage.Tx's decode and Processor.Transform), on the bench
// payload.
func BenchmarkRedactRecord(b *testing.B) {
	b.Setenv("MIRRORLINE_REDACT_HASH_KEY", "bench-key-0123456789")
	engine, err := NewEngine(Config{})
	if err != nil {
		b.Fatal(err)
	}
	p, err := NewProcessor(nil, engine, "payments")
	if err != nil {
		b.Fatal(err)
	}
	raw, err := proto.Marshal(benchExchange(benchPaymentJSON))
	if err != nil {
		b.Fatal(err)
	}
	r := &kgo.Record{Topic: broker.Topic(broker.Raw, "payments"), Key: []byte("conn-1"), Value: raw}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	ex := &mlv1.Exchange{}
	for b.Loop() {
		if err := mlv1.UnmarshalExchangeRecycled(r.Value, ex); err != nil {
			b.Fatal(err)
		}
		outs, err := p.Transform(r, ex)
		if err != nil || len(outs) != 1 {
			b.Fatal(outs, err)
		}
		p.Ended(true)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
