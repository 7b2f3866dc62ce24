package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/stage"
)

// ---- section: fetch wait of the exactly-once loop ----
//
// txloop measures what the fetch max wait of a transactional
// consume-transform-produce session (the redactor's, stage.TxOpts) does to
// the delay until its output is visible read committed: a producer writes
// records at a fixed rate to an input topic, a session copies each poll to
// an output topic in one transaction, and a read-committed reader of the
// output (its own fetches short) takes each record's delay since it was
// produced. The candidates run interleaved, -rounds times, on fresh topics.

// txLoopRun is one run of the loop with one fetch wait.
type txLoopRun struct {
	wait     time.Duration
	records  int
	visible  int
	p50, p99 time.Duration // produce → visible read committed
	fetchP99 time.Duration // the session's fetch requests
	// requests are the p50 durations of the session's requests to the
	// brokers by kind (Produce, TxnOffsetCommit, Heartbeat, EndTxn, ...):
	// a transaction's round trips.
	requests   map[string]time.Duration
	txPerSec   float64
	recordsTx  float64
	elapsedSec float64
}

// txLoopWaits are the fetch waits compared: franz-go's default and the
// stages' setting.
var txLoopWaits = []time.Duration{5 * time.Second, stage.FetchMaxWait}

func (h *harness) txLoop(ctx context.Context) error {
	runs := map[time.Duration][]txLoopRun{}
	for r := range h.cfg.rounds {
		for _, w := range txLoopWaits {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			h.logf("fetch wait: round %d/%d, %s", r+1, h.cfg.rounds, w)
			run, err := h.txLoopOnce(ctx, w, h.cfg.slowRate/3, h.cfg.duration)
			if err != nil {
				return err
			}
			runs[w] = append(runs[w], run)
		}
	}
	h.rep.txLoop(h.cfg, runs)
	return nil
}

// requestTimes collects the durations of the session's requests by kind.
// Only requests that end while the producer writes count (on: a fetch left
// waiting after the last record is not a stall).
type requestTimes struct {
	mu sync.Mutex
	on bool
	d  map[int16][]time.Duration
}

func (f *requestTimes) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	f.mu.Lock()
	if f.on {
		f.d[key] = append(f.d[key], e.DurationE2E())
	}
	f.mu.Unlock()
}

func (h *harness) txLoopOnce(ctx context.Context, wait time.Duration, rate int, d time.Duration) (txLoopRun, error) {
	run := txLoopRun{wait: wait}
	if rate <= 0 {
		rate = 1
	}
	brokers := broker.Config{Brokers: splitBrokers(h.brokers), ClientID: "mirrorline-bench-txloop"}
	id := h.svc + "-txloop-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	in, out := "mirror.bench."+id+".in", "mirror.bench."+id+".out"
	admCl, err := broker.NewClient(brokers)
	if err != nil {
		return run, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if _, err := adm.CreateTopics(ctx, int32(h.cfg.partitions), 1, nil, in, out); err != nil {
		return run, fmt.Errorf("fetch wait: create topics: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(dctx, in, out)
	}()

	prod, err := broker.NewClient(brokers, kgo.ProducerLinger(5*time.Millisecond), kgo.DefaultProduceTopic(in))
	if err != nil {
		return run, err
	}
	defer prod.Close()
	ft := &requestTimes{}
	opts, err := brokers.Opts()
	if err != nil {
		return run, err
	}
	opts = append(opts, stage.TxOpts(id, []string{in}, id, stage.Membership{})...)
	sess, err := kgo.NewGroupTransactSession(append(opts, kgo.FetchMaxWait(wait), kgo.WithHooks(ft))...)
	if err != nil {
		return run, err
	}
	defer sess.Close()
	reader, err := broker.NewClient(brokers, kgo.ConsumeTopics(out), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(hopFetchWait))
	if err != nil {
		return run, err
	}
	defer reader.Close()

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		txs      int
		polled   int
		loopErr  error
		mu       sync.Mutex
		delays   = newHist()
		visible  int
		measured time.Time // records produced before this are warm-up
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for lctx.Err() == nil {
			fs := sess.PollRecords(lctx, 1000)
			if fs.NumRecords() == 0 || lctx.Err() != nil {
				continue
			}
			if err := sess.Begin(); err != nil {
				mu.Lock()
				loopErr = err
				mu.Unlock()
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				sess.Produce(lctx, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}, nil)
			})
			committed, err := sess.End(lctx, kgo.TryCommit)
			if err != nil {
				if lctx.Err() == nil {
					mu.Lock()
					loopErr = err
					mu.Unlock()
				}
				return
			}
			if committed {
				mu.Lock()
				txs++
				polled += fs.NumRecords()
				mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		for lctx.Err() == nil {
			fs := reader.PollFetches(lctx)
			now := time.Now()
			mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				if !measured.IsZero() && !r.Timestamp.Before(measured) {
					record(delays, now.Sub(r.Timestamp))
					visible++
				}
			})
			mu.Unlock()
		}
	}()

	// Warm-up: the group joined and the first transactions committed.
	value := []byte(benchproc.PaymentJSON)
	for i := range 20 {
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: value}).FirstErr(); err != nil {
			return run, fmt.Errorf("fetch wait: produce: %w", err)
		}
	}
	if !benchproc.Poll(ctx, 60*time.Second, 20*time.Millisecond, func() bool { mu.Lock(); defer mu.Unlock(); return polled >= 20 || loopErr != nil }) || loopErr != nil {
		return run, fmt.Errorf("fetch wait: the loop did not start within 60s (%v)", loopErr)
	}
	ft.mu.Lock()
	ft.d, ft.on = map[int16][]time.Duration{}, true
	ft.mu.Unlock()
	mu.Lock()
	txs, polled = 0, 0
	start := time.Now()
	// Kafka keeps timestamps in milliseconds.
	measured = start.Truncate(time.Millisecond)
	mu.Unlock()

	interval := time.Second / time.Duration(rate)
	n := int(d.Seconds() * float64(rate))
	for i := range n {
		if w := time.Until(start.Add(time.Duration(i) * interval)); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				return run, ctx.Err()
			}
		}
		prod.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % 64)), Value: value, Timestamp: time.Now()}, nil)
	}
	run.records = n
	ft.mu.Lock()
	ft.on = false
	ft.mu.Unlock()
	benchproc.Poll(ctx, 30*time.Second, 20*time.Millisecond, func() bool { mu.Lock(); defer mu.Unlock(); return visible >= n })
	cancel()
	wg.Wait()
	if loopErr != nil {
		return run, fmt.Errorf("fetch wait: transaction loop: %w", loopErr)
	}
	run.elapsedSec = time.Since(start).Seconds()
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	run.visible, run.p50, run.p99 = visible, us(delays.ValueAtQuantile(50)), us(delays.ValueAtQuantile(99))
	run.txPerSec = float64(txs) / d.Seconds()
	if txs > 0 {
		run.recordsTx = float64(polled) / float64(txs)
	}
	ft.mu.Lock()
	run.requests = map[string]time.Duration{}
	for key, d := range ft.d {
		slices.Sort(d)
		if key == (&kmsg.FetchRequest{}).Key() {
			run.fetchP99 = d[len(d)*99/100]
			continue
		}
		run.requests[kmsg.NameForKey(key)] = d[len(d)/2]
	}
	ft.mu.Unlock()
	return run, nil
}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
