package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
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
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/proxy"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/replayer"
)

// stage is a pipeline stage running in the test.
type stage struct {
	name string
	done chan struct{}
	err  error
}

// serve runs fn until the test ends and fails the test if fn fails.
func serve(t *testing.T, name string, fn func(context.Context) error) *stage {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &stage{name: name, done: make(chan struct{})}
	go func() { st.err = fn(ctx); close(st.done) }()
	t.Cleanup(func() {
		cancel()
		<-st.done
		if st.err != nil {
			t.Errorf("%s stopped with error: %v", name, st.err)
		}
	})
	return st
}

// Running fails the test at once if the stage has stopped.
func (st *stage) Running(t *testing.T) {
	t.Helper()
	select {
	case <-st.done:
		t.Fatalf("the %s stopped while the pipeline should run: %v", st.name, st.err)
	default:
	}
}

// newPrimary is the primary service: it answers every request with 200
// "primary" at once.
func newPrimary(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "primary")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// createTopics creates the topics of service with partitions and replication.
func createTopics(t *testing.T, brokers []string, service string, partitions int32, replication int16) {
	t.Helper()
	adm := admin(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := broker.CreateTopics(ctx, adm, service, broker.TopicSpec{Partitions: partitions, Replication: replication}); err != nil {
		t.Fatalf("create topics of %s: %v", service, err)
	}
}

// admin returns an admin client of brokers, closed when the test ends.
func admin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// outcome is what became of one capture handed to Kafka.
type outcome struct {
	err      error     // nil: acknowledged
	at       time.Time // when the promise ran
	captured time.Time // the exchange's capture time
}

// proxyStage is the proxy collector wired as `mirrorline proxy` wires it
// (cmd/mirrorline newEmitter: a bounded kgo buffer, 5ms linger, kgo's
// producer defaults), publishing through a Producer that records the outcome
// of every capture by exchange id.
type proxyStage struct {
	Addr   string
	M      *collector.Metrics
	Client *kgo.Client

	mu       sync.Mutex
	outcomes map[string]outcome
}

// startProxy runs the proxy in front of primary, publishing for service to
// brokers with a buffer of queue records.
func startProxy(t *testing.T, brokers []string, service, primary string, queue int) *proxyStage {
	t.Helper()
	cl, err := broker.NewClient(broker.Config{Brokers: brokers, ClientID: "mirrorline-faults"},
		kgo.MaxBufferedRecords(queue),
		kgo.MaxBufferedBytes(64<<20),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ps := &proxyStage{Client: cl, M: collector.NewMetrics(prometheus.NewRegistry()), outcomes: map[string]outcome{}}
	p, err := proxy.New(primary, collector.NewEmitter(trackingProducer{ps}, service, ps.M, nil))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps.Addr = ln.Addr().String()
	serve(t, "proxy", func(ctx context.Context) error { return p.Serve(ctx, ln) })
	return ps
}

// trackingProducer hands records to the proxy's kgo client and records the
// outcome of each in the promise (off the request path).
type trackingProducer struct{ ps *proxyStage }

func (tp trackingProducer) TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	tp.ps.Client.TryProduce(ctx, r, func(r *kgo.Record, err error) {
		ex := &mlv1.Exchange{}
		_ = proto.Unmarshal(r.Value, ex)
		tp.ps.mu.Lock()
		tp.ps.outcomes[ex.Id] = outcome{err: err, at: time.Now(), captured: time.Unix(0, ex.CaptureTimeNs)}
		tp.ps.mu.Unlock()
		promise(r, err)
	})
}

// Outcomes returns a copy of the outcomes so far.
func (ps *proxyStage) Outcomes() map[string]outcome {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make(map[string]outcome, len(ps.outcomes))
	for k, v := range ps.outcomes {
		out[k] = v
	}
	return out
}

// count reads a collector counter.
func count(c prometheus.Collector) int { return int(testutil.ToFloat64(c)) }

// Settled reports whether every capture has been acknowledged or dropped.
func (ps *proxyStage) Settled() bool {
	return count(ps.M.Captured) == ps.finished()
}

// Accounted reports whether every capture is acknowledged, dropped, or
// waiting in the buffer: what Settled is while Kafka is down. The proxy
// captures after it has answered, so a client that got its answer may be
// ahead of these counters.
func (ps *proxyStage) Accounted() bool {
	return count(ps.M.Captured) == ps.finished()+int(testutil.ToFloat64(ps.M.Queued))
}

// finished counts the captures acknowledged or dropped.
func (ps *proxyStage) finished() int {
	m := ps.M
	n := count(m.Published)
	for _, r := range []string{collector.DropQueueFull, collector.DropPublishError, collector.DropEncodeError, collector.DropClosed} {
		n += count(m.Dropped.WithLabelValues(r))
	}
	return n
}

// Accepted returns the ids of the captures that were accepted into the
// buffer (every outcome but a full queue), checking that the metrics agree:
// accepted = captured - dropped{queue_full}.
func (ps *proxyStage) Accepted(t *testing.T) map[string]outcome {
	t.Helper()
	acc := map[string]outcome{}
	for id, o := range ps.Outcomes() {
		if !errors.Is(o.err, kgo.ErrMaxBuffered) {
			acc[id] = o
		}
	}
	want := count(ps.M.Captured) - count(ps.M.Dropped.WithLabelValues(collector.DropQueueFull))
	if len(acc) != want {
		t.Fatalf("%d captures accepted by outcome, but captured - dropped{queue_full} = %d", len(acc), want)
	}
	return acc
}

// load is a steady stream of GET requests through the proxy.
type load struct {
	stop     context.CancelFunc
	done     chan struct{}
	sent     atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	lat      []time.Duration
	firstErr error
}

// startLoad sends GET /PREFIX/SEQ to addr from workers workers at rate
// requests per second in all (best effort) until n were sent (n 0: until
// Stop). Every 20th request closes its connection, so the stream spreads over
// many connection ids (record keys), hence over every partition.
func startLoad(addr, prefix string, rate, workers, n int) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	seqs := make(chan int)
	go func() {
		defer close(seqs)
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; n == 0 || i < n; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case <-ctx.Done():
				return
			case seqs <- i:
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range seqs {
				l.one(client, fmt.Sprintf("http://%s/%s/%d", addr, prefix, i), i%20 == 19)
			}
		}()
	}
	go func() { wg.Wait(); client.CloseIdleConnections(); close(l.done) }()
	return l
}

func (l *load) one(client *http.Client, url string, closeConn bool) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Close = closeConn
	start := time.Now()
	resp, err := client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || string(body) != "primary") {
			err = fmt.Errorf("%s: %d %q", url, resp.StatusCode, body)
		}
	}
	d := time.Since(start)
	l.sent.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed.Add(1)
		if l.firstErr == nil {
			l.firstErr = err
		}
		return
	}
	l.lat = append(l.lat, d)
}

// Stop ends the stream and waits for the requests in flight.
func (l *load) Stop() { l.stop(); <-l.done }

// Wait waits until the stream has sent its n requests.
func (l *load) Wait() { <-l.done }

// Check fails the test unless every request got the primary's answer.
func (l *load) Check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.failed.Load(); f > 0 {
		t.Fatalf("%d of %d requests did not get the primary's answer; first: %v", f, l.sent.Load(), l.firstErr)
	}
}

// Quantile returns the q-quantile (0..1) of the successful requests' latency.
func (l *load) Quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return quantile(l.lat, q)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// startRedactor runs the redactor stage (safe default rules) of service on
// brokers with its own transactional id, as `mirrorline redact` does; extra
// options are added to its Kafka session.
func startRedactor(t *testing.T, brokers []string, service, txnID string, extra ...kgo.Opt) (*redactor.Metrics, *stage) {
	t.Helper()
	engine, err := redactor.NewEngine(redactor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := broker.Config{Brokers: brokers, ClientID: "mirrorline-faults"}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, redactor.SessionOpts(service, redactor.DefaultGroup(service), txnID)...)
	opts = append(opts, extra...)
	open := func() (*kgo.GroupTransactSession, error) { return kgo.NewGroupTransactSession(opts...) }
	sess, err := open()
	if err != nil {
		t.Fatal(err)
	}
	m := redactor.NewMetrics(prometheus.NewRegistry())
	p, err := redactor.NewProcessor(sess, engine, service, redactor.WithMetrics(m), redactor.WithBatch(200), redactor.WithReopen(open))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return m, serve(t, "redactor", p.Run)
}

// startLive runs a live replayer of service (default group, from the start
// of the clean topic) into target.
func startLive(t *testing.T, brokers []string, service, target string) (*replayer.Metrics, *stage) {
	t.Helper()
	s, err := replayer.NewSender(target, 16)
	if err != nil {
		t.Fatal(err)
	}
	m := replayer.NewMetrics(prometheus.NewRegistry())
	l := replayer.NewLive(s, service, replayer.WithMetrics(m), replayer.Concurrency(16))
	cl, err := broker.NewClient(broker.Config{Brokers: brokers, ClientID: "mirrorline-faults"},
		l.ClientOpts(replayer.DefaultGroup(service), broker.Topic(broker.Clean, service), true)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return m, serve(t, "live replayer", func(ctx context.Context) error { return l.Run(ctx, cl) })
}

// endOffsets returns the high watermark of every partition of topic.
func endOffsets(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lo, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	out := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out
}

// readAll reads topic from its start up to the end offsets it has when
// called (a topic nobody writes to any more, without transactions) and
// returns how often each exchange id is on it.
func readAll(t *testing.T, brokers []string, topic string) map[string]int {
	t.Helper()
	ends := endOffsets(t, admin(t, brokers), topic)
	next := map[int32]int64{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := map[string]int{}
	done := func() bool {
		for p, end := range ends {
			if next[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: not at its end offsets %v after a minute (at %v)", topic, ends, next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			ex := &mlv1.Exchange{}
			if err := proto.Unmarshal(r.Value, ex); err != nil {
				t.Errorf("%s/%d@%d does not decode: %v", topic, r.Partition, r.Offset, err)
				return
			}
			ids[ex.Id]++
		})
	}
	return ids
}

// groupCaughtUp reports whether group has committed offsets at the end of
// every partition of topic.
func groupCaughtUp(t *testing.T, adm *kadm.Client, group, topic string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends := endOffsets(t, adm, topic)
	committed, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return false
	}
	for p, end := range ends {
		o, ok := committed.Lookup(topic, p)
		if end > 0 && (!ok || o.Err != nil || o.At < end) {
			return false
		}
	}
	return true
}

// checkExactlyOnce fails the test unless got holds every id of want exactly
// once and nothing else.
func checkExactlyOnce[V any](t *testing.T, where string, want map[string]V, got map[string]int) {
	t.Helper()
	missing, dup, extra := 0, 0, 0
	var example string
	for id := range want {
		switch c := got[id]; {
		case c == 0:
			missing++
			example = id + " missing"
		case c > 1:
			dup++
			example = fmt.Sprintf("%s %d times", id, c)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			extra++
			example = id + " unexpected"
		}
	}
	if missing+dup+extra > 0 {
		t.Fatalf("%s: of %d records, %d missing, %d duplicated, %d unexpected (e.g. %s)", where, len(want), missing, dup, extra, example)
	}
}

// checkAtLeastOnce fails the test unless got holds every id of want and
// nothing else; it returns how many records are repeats.
func checkAtLeastOnce[V any](t *testing.T, where string, want map[string]V, got map[string]int) int {
	t.Helper()
	repeats := 0
	for id := range want {
		if got[id] == 0 {
			t.Fatalf("%s: %s missing (of %d)", where, id, len(want))
		}
		repeats += got[id] - 1
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Fatalf("%s: unexpected %s", where, id)
		}
	}
	return repeats
}
