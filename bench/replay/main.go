// Command replay compares the window replayer's scheduler with vegeta's (used
// as a library) at the same fixed rate against the same loopback HTTP server,
// one after the other in one run, and prints achieved-rate accuracy and
// schedule lag for both and their ratio.
//
//	go run ./bench/replay -rate 1000 -duration 5s
//
// Schedule lag is how late each request started against its planned time:
// the replayer's i-th record is planned at start + i/rate (its own report);
// vegeta's i-th hit likewise at attack start + i/rate (from Result.Seq and
// Result.Timestamp). Achieved rate is (requests-1) / (last-first) as the
// server received them.
//
// With -bursty it replays a capture of bursts on its captured timing
// instead (the replayer, vegeta and, when found, GoReplay) and reports how
// far each request arrived from its planned time (see bursty.go):
//
//	go run ./bench/replay -bursty [-leads 0,30s] [-runs 3] [-kafka 127.0.0.1:29092]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
)

// server records when each request arrives.
type server struct {
	*httptest.Server
	mu  sync.Mutex
	at  []time.Time
	idx map[int]time.Time // -bursty: arrival by request index
	new []time.Time       // -bursty: when each connection was accepted
}

func newServer() *server {
	s := &server{idx: map[int]time.Time{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		_, _ = io.Copy(io.Discard, r.Body)
		i, ok := requestIndex(r)
		s.mu.Lock()
		s.at = append(s.at, now)
		if ok {
			s.idx[i] = now
		}
		s.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.mu.Lock()
			s.new = append(s.new, time.Now())
			s.mu.Unlock()
		}
	}
	s.Start()
	return s
}

// take returns and forgets the arrival times so far, sorted.
func (s *server) take() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.at
	s.at = nil
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// result is one tool's outcome.
type result struct {
	tool      string
	requests  int
	rate      float64 // achieved, at the server
	lagP50    time.Duration
	lagP99    time.Duration
	lagMax    time.Duration
	latP50    time.Duration
	latP99    time.Duration
	errorsPct float64
}

func achieved(at []time.Time) float64 {
	if len(at) < 2 {
		return 0
	}
	return float64(len(at)-1) / at[len(at)-1].Sub(at[0]).Seconds()
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

func runMirrorline(ctx context.Context, srv *server, rate float64, n, conc int) (result, error) {
	items := make([]replayer.Item, n)
	t0 := time.Now()
	for i := range items {
		items[i] = replayer.Item{Topic: "bench", Offset: int64(i), Capture: t0.Add(time.Duration(i)),
			Exchange: &mlv1.Exchange{Id: fmt.Sprint(i), Request: &mlv1.Request{Method: "GET", Url: fmt.Sprintf("/bench?i=%d", i)}}}
	}
	sender, err := replayer.NewSender(srv.URL, conc)
	if err != nil {
		return result{}, err
	}
	w := replayer.NewWindow(replayer.NewSliceSource(items), replayer.NewSchedule(replayer.Rate(rate), t0, 1, 0), sender,
		replayer.Concurrency(conc), replayer.MaxRate(0), replayer.MaxLag(time.Minute))
	sum, err := w.Run(ctx)
	if err != nil {
		return result{}, err
	}
	at := srv.take()
	s := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	return result{
		tool: "mirrorline", requests: len(at), rate: achieved(at),
		lagP50: s(sum.ScheduleLag.P50), lagP99: s(sum.ScheduleLag.P99), lagMax: s(sum.ScheduleLag.Max),
		latP50: s(sum.Latency.P50), latP99: s(sum.Latency.P99),
		errorsPct: 100 * float64(sum.Status["error"]) / float64(max(sum.Sent, 1)),
	}, nil
}

func runVegeta(srv *server, rate float64, d time.Duration, conc int) result {
	atk := vegeta.NewAttacker(vegeta.Workers(uint64(conc)), vegeta.MaxWorkers(uint64(conc)), vegeta.KeepAlive(true))
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: srv.URL + "/bench"})
	pace := vegeta.Rate{Freq: int(rate), Per: time.Second}
	var m vegeta.Metrics
	var lags []time.Duration
	began := time.Now()
	for res := range atk.Attack(tr, pace, d, "bench") {
		m.Add(res)
		planned := began.Add(time.Duration(float64(res.Seq) / rate * float64(time.Second)))
		lags = append(lags, max(res.Timestamp.Sub(planned), 0))
	}
	m.Close()
	at := srv.take()
	return result{
		tool: "vegeta", requests: len(at), rate: achieved(at),
		lagP50: quantile(lags, 0.50), lagP99: quantile(lags, 0.99), lagMax: quantile(lags, 1),
		latP50: m.Latencies.P50, latP99: m.Latencies.P99,
		errorsPct: 100 * (1 - m.Success),
	}
}

func main() {
	rate := flag.Float64("rate", 1000, "requests per second")
	d := flag.Duration("duration", 5*time.Second, "how long each tool runs")
	conc := flag.Int("concurrency", 64, "requests in flight at most (both tools)")
	bursty := flag.Bool("bursty", false, "replay a capture of bursts at -speed and report the deviation from the plan (see bursty.go)")
	bursts := flag.Int("bursts", 30, "-bursty: bursts in the capture")
	burstSize := flag.Int("burst-size", 50, "-bursty: requests per burst")
	spacing := flag.Duration("spacing", time.Millisecond, "-bursty: capture time between the requests of a burst")
	pauseMin := flag.Duration("pause-min", 200*time.Millisecond, "-bursty: shortest pause between bursts (captured)")
	pauseMax := flag.Duration("pause-max", 1500*time.Millisecond, "-bursty: longest pause between bursts (captured)")
	speed := flag.Float64("speed", 10, "-bursty: replay speed")
	leads := flag.String("leads", "0,30s", "-bursty: window starts, before the first record (comma-separated)")
	runs := flag.Int("runs", 3, "-bursty: runs of each tool per lead, interleaved")
	goreplay := flag.String("goreplay", "", "-bursty: GoReplay binary (default: gor or goreplay on PATH, skipped when absent)")
	kafka := flag.String("kafka", os.Getenv("KAFKA_BROKERS"), "-bursty: also replay through a KafkaSource from these brokers")
	dump := flag.String("dump", "", "-bursty: write every request's deviation from the plan to this CSV file (tool, lead, run, index, burst, position, deviation_us)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	traceFile := flag.String("trace", "", "write a Go execution trace of the run to this file (go tool trace): what every goroutine waited for")
	flag.Parse()
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/replay: trace:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer trace.Stop()
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/replay: cpuprofile:", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if *bursty {
		code := burstMain(burstFlags{bursts: *bursts, size: *burstSize, spacing: *spacing, pauseMin: *pauseMin, pauseMax: *pauseMax,
			speed: *speed, leads: *leads, runs: *runs, conc: *conc, goreplay: *goreplay, kafka: *kafka, dump: *dump})
		if code != 0 {
			pprof.StopCPUProfile()
			trace.Stop()
			os.Exit(code)
		}
		return
	}
	if *rate <= 0 || *d <= 0 || *conc <= 0 {
		fmt.Fprintln(os.Stderr, "bench/replay: -rate, -duration and -concurrency must be positive")
		os.Exit(2)
	}
	srv := newServer()
	defer srv.Close()
	n := int(*rate * d.Seconds())
	ctx := context.Background()

	st := benchproc.StartSteal()
	ml, err := runMirrorline(ctx, srv, *rate, n, *conc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/replay: mirrorline:", err)
		os.Exit(1)
	}
	vg := runVegeta(srv, *rate, *d, *conc)

	fmt.Printf("replay scheduler vs vegeta: %.0f/s for %s, concurrency %d, loopback server\n", *rate, *d, *conc)
	fmt.Printf("%-11s %9s %12s %9s %10s %10s %10s %10s %10s %7s\n", "tool", "requests", "achieved/s", "accuracy", "lag p50", "lag p99", "lag max", "lat p50", "lat p99", "errors")
	for _, r := range []result{ml, vg} {
		fmt.Printf("%-11s %9d %12.2f %8.3f%% %10s %10s %10s %10s %10s %6.2f%%\n", r.tool, r.requests, r.rate, 100*r.rate / *rate,
			r.lagP50.Round(time.Microsecond), r.lagP99.Round(time.Microsecond), r.lagMax.Round(time.Microsecond),
			r.latP50.Round(time.Microsecond), r.latP99.Round(time.Microsecond), r.errorsPct)
	}
	errOf := func(r result) float64 { return math.Abs(r.rate / *rate - 1) }
	ratio := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	fmt.Printf("ratio mirrorline/vegeta: achieved rate %s, rate error %s, lag p99 %s (below 1: mirrorline is more accurate / on time)\n",
		ratio(ml.rate, vg.rate), ratio(errOf(ml), errOf(vg)), ratio(float64(ml.lagP99), float64(vg.lagP99)))
	if share, ok := st.Share(); ok {
		fmt.Printf("CPU time stolen by the hypervisor meanwhile: %.0f%% of the time the machine had work for\n", 100*share)
	}
}
