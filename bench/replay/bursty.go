package main

// The -bursty mode: a capture of bursts replayed on its captured timing.
//
// The capture is -bursts bursts of -burst-size requests captured -spacing
// apart (back to back), separated by pauses drawn uniformly from
// [-pause-min, -pause-max] (fixed seed: every run replays the same capture).
// It is replayed at -speed by the window replayer (records from a
// SliceSource, or from Kafka with -kafka) with the window starting at the
// first record and -lead before it, and by vegeta with a pacer that follows
// the same plan; GoReplay replays it too when its binary is found (-goreplay).
//
// Every request carries its index; the loopback server stamps its arrival.
// Deviation is arrival - planned time, where planned = job start + (capture -
// window start) / speed, the schedule of docs/replay.md computed here, not
// taken from the replayer. Span error is (last arrival - first arrival) /
// (last planned - first planned) - 1. A late burst is one whose median
// deviation is above lateBurst: the whole burst went out late (the process
// did not run), as opposed to lateness that piles up along a burst (the cost
// of each send). -dump writes every request's deviation as CSV.

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
)

// burstCapture is the capture: capture times in order, all in the past.
type burstCapture struct {
	at    []time.Time
	speed float64
	gap   time.Duration // shortest pause: what separates bursts
}

func makeBursts(bursts, size int, spacing, pauseMin, pauseMax time.Duration, speed float64) burstCapture {
	rng := rand.New(rand.NewPCG(15, 15))
	t := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	c := burstCapture{speed: speed, gap: pauseMin}
	for b := range bursts {
		if b > 0 {
			t = t.Add(pauseMin + time.Duration(rng.Int64N(int64(pauseMax-pauseMin)+1)))
		}
		for i := range size {
			if i > 0 {
				t = t.Add(spacing)
			}
			c.at = append(c.at, t)
		}
	}
	return c
}

// planned returns when record i is due after the job start for a window
// starting lead before the first record.
func (c burstCapture) planned(i int, lead time.Duration) time.Duration {
	return time.Duration(math.Round(float64(c.at[i].Sub(c.at[0])+lead) / c.speed))
}

func (c burstCapture) items() []replayer.Item {
	items := make([]replayer.Item, len(c.at))
	for i, at := range c.at {
		items[i] = replayer.Item{Topic: "bench", Offset: int64(i), Capture: at,
			Exchange: &mlv1.Exchange{Id: strconv.Itoa(i), CaptureTimeNs: at.UnixNano(),
				Request: &mlv1.Request{Method: "GET", Url: "/burst?i=" + strconv.Itoa(i)}}}
	}
	return items
}

// fidelity is one run's outcome.
type fidelity struct {
	tool       string
	lead       time.Duration
	requests   int
	devP50     time.Duration
	devP99     time.Duration
	devMax     time.Duration
	spanErrPct float64
	ownLagP99  time.Duration         // the replayer's summary: schedule lag p99
	dials      int                   // connections the server accepted inside a burst (dialsInBursts)
	cpu        time.Duration         // CPU time of the run: the tool and the loopback server
	steal      float64               // share of the machine's CPU time stolen by the hypervisor meanwhile; -1: unknown
	firstP99   time.Duration         // deviation p99 of the first burst
	lateBursts int                   // bursts whose median deviation is above lateBurst
	devs       map[int]time.Duration // arrival - planned by request index (signed)
	note       string
}

// absDevs returns the absolute deviations of the requests of burst b (an
// index range [lo, hi)) that arrived, sorted.
func (f fidelity) absDevs(b [2]int) []time.Duration {
	var in []time.Duration
	for i := b[0]; i < b[1]; i++ {
		if d, ok := f.devs[i]; ok {
			in = append(in, max(d, -d))
		}
	}
	sort.Slice(in, func(i, j int) bool { return in[i] < in[j] })
	return in
}

// lateBurst is the median deviation above which a burst counts as late: the
// goal's p99 bound.
const lateBurst = 2 * time.Millisecond

// bursts returns the bursts of the capture as index ranges [lo, hi): runs
// of records closer together than the shortest pause.
func (c burstCapture) bursts() [][2]int {
	var out [][2]int
	for i := 0; i < len(c.at); {
		j := i + 1
		for j < len(c.at) && c.at[j].Sub(c.at[j-1]) < c.gap {
			j++
		}
		out = append(out, [2]int{i, j})
		i = j
	}
	return out
}

// judge compares arrivals (by index) with the plan anchored at start.
func (c burstCapture) judge(tool string, lead time.Duration, start time.Time, arr map[int]time.Time) fidelity {
	f := fidelity{tool: tool, lead: lead, requests: len(arr), devs: make(map[int]time.Duration, len(arr))}
	if len(arr) == 0 {
		return f
	}
	for i, at := range arr {
		f.devs[i] = at.Sub(start.Add(c.planned(i, lead)))
	}
	bursts := c.bursts()
	for _, b := range bursts {
		if in := f.absDevs(b); len(in) > 0 && in[len(in)/2] > lateBurst {
			f.lateBursts++
		}
	}
	if first := f.absDevs(bursts[0]); len(first) > 0 {
		f.firstP99 = first[min(len(first)-1, int(0.99*float64(len(first))))]
	}
	devs := make([]time.Duration, 0, len(arr))
	first, last := time.Time{}, time.Time{}
	lo, hi := len(c.at), -1
	for i, at := range arr {
		d := f.devs[i]
		devs = append(devs, max(d, -d))
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		lo, hi = min(lo, i), max(hi, i)
	}
	sort.Slice(devs, func(i, j int) bool { return devs[i] < devs[j] })
	q := func(p float64) time.Duration { return devs[min(len(devs)-1, int(p*float64(len(devs))))] }
	f.devP50, f.devP99, f.devMax = q(0.50), q(0.99), devs[len(devs)-1]
	if plannedSpan := c.planned(hi, lead) - c.planned(lo, lead); plannedSpan > 0 {
		f.spanErrPct = 100 * (float64(last.Sub(first))/float64(plannedSpan) - 1)
	}
	return f
}

// indexed returns the arrivals of srv by request index and the times it
// accepted connections, and forgets both.
func (s *server) indexed() (map[int]time.Time, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	accepts := s.new
	s.new = nil
	out := make(map[int]time.Time, len(s.idx))
	for k, v := range s.idx {
		out[k] = v
	}
	s.idx = map[int]time.Time{}
	s.at = nil
	return out, accepts
}

// Around each burst, the stretch in which an accepted connection counts as
// dialled inside the burst: from a little before its first planned request
// (a connection opened then is not ready for it either) to a little after
// its last (late requests). A connection dialled ahead of a burst (the
// replayer's warm-up, 50 ms before) falls outside.
const (
	dialBefore = 5 * time.Millisecond
	dialAfter  = 10 * time.Millisecond
)

// dialsInBursts counts the accepts inside a burst of the plan anchored at
// start for a window starting lead before the first record.
func (c burstCapture) dialsInBursts(start time.Time, lead time.Duration, accepts []time.Time) int {
	bursts := c.bursts()
	n := 0
	for _, t := range accepts {
		off := t.Sub(start)
		for _, b := range bursts {
			if off >= c.planned(b[0], lead)-dialBefore && off <= c.planned(b[1]-1, lead)+dialAfter {
				n++
				break
			}
		}
	}
	return n
}

// requestIndex is the index a bench request carries: ?i=N (the replayer,
// GoReplay) or X-Vegeta-Seq.
func requestIndex(r *http.Request) (int, bool) {
	v := r.URL.Query().Get("i")
	if v == "" {
		v = r.Header.Get("X-Vegeta-Seq")
	}
	i, err := strconv.Atoi(v)
	return i, err == nil && i >= 0
}

func runBurstMirrorline(ctx context.Context, srv *server, c burstCapture, lead time.Duration, conc int, src func(from time.Time) (replayer.Source, func(), error)) (fidelity, error) {
	from := c.at[0].Add(-lead)
	sender, err := replayer.NewSender(srv.URL, conc)
	if err != nil {
		return fidelity{}, err
	}
	source, done, err := src(from)
	if err != nil {
		return fidelity{}, err
	}
	defer done()
	// The job start is the command's default (no --start-at): the replay
	// says when it was (Started + StartWait).
	w := replayer.NewWindow(source, replayer.NewSchedule(replayer.Speed(c.speed), from, 1, 0), sender,
		replayer.Concurrency(conc), replayer.MaxLag(time.Minute))
	sum, err := w.Run(ctx)
	if err != nil {
		return fidelity{}, err
	}
	start := sum.Started.Add(time.Duration(sum.StartWait * float64(time.Second)))
	arr, accepts := srv.indexed()
	f := c.judge("mirrorline", lead, start, arr)
	f.dials = c.dialsInBursts(start, lead, accepts)
	f.ownLagP99 = time.Duration(sum.ScheduleLag.P99 * float64(time.Second))
	return f, nil
}

func runBurstVegeta(srv *server, c burstCapture, lead time.Duration, conc int) fidelity {
	atk := vegeta.NewAttacker(vegeta.Workers(uint64(conc)), vegeta.MaxWorkers(uint64(conc)), vegeta.KeepAlive(true))
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: "GET", URL: srv.URL + "/burst"})
	start := time.Now() // vegeta's own start is a few µs later
	for range atk.Attack(tr, planPacer{c, lead}, 0, "burst") {
	}
	arr, accepts := srv.indexed()
	f := c.judge("vegeta", lead, start, arr)
	f.dials = c.dialsInBursts(start, lead, accepts)
	return f
}

// planPacer paces vegeta's hits on the capture's plan: hit i at planned(i).
type planPacer struct {
	c    burstCapture
	lead time.Duration
}

func (p planPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= uint64(len(p.c.at)) {
		return 0, true
	}
	return max(p.c.planned(int(hits), p.lead)-elapsed, 0), false
}

// Rate is not used by Attack.
func (p planPacer) Rate(time.Duration) float64 { return 0 }

// goreplayFile writes the capture as a GoReplay file (.gor): one request
// payload per record, stamped with its capture time.
func (c burstCapture) goreplayFile(path string) error {
	var b strings.Builder
	for i, at := range c.at {
		fmt.Fprintf(&b, "1 %024x %d 0\nGET /burst?i=%d HTTP/1.1\r\nHost: bench\r\n\r\n\n\U0001F435\U0001F648\U0001F649\n", i+1, at.UnixNano(), i)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// runBurstGoReplay replays the capture with GoReplay's file input at the
// same speed. GoReplay has no window start: it starts at the first record,
// and its plan is anchored at the first arrival (a favourable reading).
func runBurstGoReplay(ctx context.Context, bin string, srv *server, c burstCapture, conc int) (fidelity, error) {
	dir, err := os.MkdirTemp("", "bench-burst-")
	if err != nil {
		return fidelity{}, err
	}
	defer os.RemoveAll(dir)
	file := dir + "/capture.gor"
	if err := c.goreplayFile(file); err != nil {
		return fidelity{}, err
	}
	speed := strconv.FormatFloat(c.speed*100, 'f', -1, 64) + "%"
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// GoReplay does not exit at the end of its file: it is stopped a margin
	// after the planned span (its delay on a quiet machine is far shorter).
	exit := c.planned(len(c.at)-1, 0) + 2*time.Second
	if err := runQuiet(cctx, bin, "--input-file", file+"|"+speed, "--exit-after", exit.String(),
		"--output-http", srv.URL, "--output-http-workers", strconv.Itoa(conc)); err != nil {
		return fidelity{}, err
	}
	arr, accepts := srv.indexed()
	first := time.Time{}
	for _, at := range arr {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	if len(arr) == 0 {
		return fidelity{tool: "goreplay", note: "nothing arrived"}, nil
	}
	f := c.judge("goreplay", 0, first, arr)
	f.dials = c.dialsInBursts(first, 0, accepts)
	f.note = "anchored at its first arrival"
	return f, nil
}

// cpuTime returns the CPU time (user and system) used so far by this
// process and by its waited-for children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + kids.Utime.Nano() + kids.Stime.Nano())
}

// timed runs fn and sets on its result the CPU time it took and the
// machine's steal share meanwhile.
func timed(fn func() (fidelity, error)) (fidelity, error) {
	c0, st := cpuTime(), benchproc.StartSteal()
	f, err := fn()
	f.cpu = cpuTime() - c0
	f.steal = -1
	if share, ok := st.Share(); ok {
		f.steal = share
	}
	return f, err
}

// runQuiet runs a peer tool, its output kept for the error only.
func runQuiet(ctx context.Context, bin string, args ...string) error {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		tail := string(out)
		if len(tail) > 400 {
			tail = tail[len(tail)-400:]
		}
		return fmt.Errorf("run %s: %w: %s", bin, err, tail)
	}
	return nil
}

func printFidelity(rs []fidelity) {
	fmt.Printf("%-11s %8s %9s %10s %10s %10s %9s %12s %12s %6s %11s %8s %6s  %s\n", "tool", "lead", "requests", "dev p50", "dev p99", "dev max", "span err", "1st burst 99", "own lag p99", "dials", "late bursts", "cpu", "steal", "")
	for _, r := range rs {
		own := "-"
		if strings.HasPrefix(r.tool, "ml") || r.tool == "mirrorline" {
			own = r.ownLagP99.Round(time.Microsecond).String()
		}
		fmt.Printf("%-11s %8s %9d %10s %10s %10s %8.2f%% %12s %12s %6d %11d %8s %6s  %s\n", r.tool, r.lead, r.requests,
			r.devP50.Round(time.Microsecond), r.devP99.Round(time.Microsecond), r.devMax.Round(time.Microsecond),
			r.spanErrPct, r.firstP99.Round(time.Microsecond), own, r.dials, r.lateBursts, r.cpu.Round(time.Millisecond), fmtSteal(r.steal), r.note)
	}
}

type burstFlags struct {
	bursts, size, runs, conc int
	spacing, pauseMin        time.Duration
	pauseMax                 time.Duration
	speed                    float64
	leads, goreplay, kafka   string
	dump                     string // CSV of every request's deviation, "" for none
}

func burstMain(fl burstFlags) int {
	if fl.bursts <= 0 || fl.size <= 0 || fl.runs <= 0 || fl.conc <= 0 || fl.speed <= 0 || fl.pauseMax < fl.pauseMin || fl.spacing < 0 {
		fmt.Fprintln(os.Stderr, "bench/replay: -bursts, -burst-size, -runs, -concurrency and -speed must be positive, -pause-max >= -pause-min")
		return 2
	}
	var leads []time.Duration
	for _, f := range strings.Split(fl.leads, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 0 {
			fmt.Fprintf(os.Stderr, "bench/replay: -leads: %q is not a duration >= 0\n", f)
			return 2
		}
		leads = append(leads, d)
	}
	c := makeBursts(fl.bursts, fl.size, fl.spacing, fl.pauseMin, fl.pauseMax, fl.speed)
	srv := newServer()
	defer srv.Close()
	ctx := context.Background()
	fmt.Printf("bursty replay fidelity: %d bursts of %d requests %s apart, pauses %s..%s, speed %gx, planned span %s, concurrency %d, loopback server\n",
		fl.bursts, fl.size, fl.spacing, fl.pauseMin, fl.pauseMax, fl.speed, c.planned(len(c.at)-1, 0).Round(time.Millisecond), fl.conc)
	slice := func(time.Time) (replayer.Source, func(), error) {
		return replayer.NewSliceSource(c.items()), func() {}, nil
	}
	var all []fidelity
	for _, lead := range leads {
		var rows []fidelity
		for range fl.runs { // interleaved: mirrorline, vegeta, mirrorline, ...
			f, err := timed(func() (fidelity, error) { return runBurstMirrorline(ctx, srv, c, lead, fl.conc, slice) })
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench/replay: mirrorline:", err)
				return 1
			}
			v, _ := timed(func() (fidelity, error) { return runBurstVegeta(srv, c, lead, fl.conc), nil })
			rows = append(rows, f, v)
		}
		printFidelity(rows)
		all = append(all, rows...)
	}
	if fl.kafka != "" {
		f, err := timed(func() (fidelity, error) { return runBurstKafka(ctx, srv, c, leads[len(leads)-1], fl.conc, fl.kafka) })
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/replay: kafka:", err)
			return 1
		}
		printFidelity([]fidelity{f})
		all = append(all, f)
	}
	if bin := goreplayBinary(fl.goreplay); bin != "" {
		var rows []fidelity
		for range fl.runs {
			f, err := timed(func() (fidelity, error) { return runBurstGoReplay(ctx, bin, srv, c, fl.conc) })
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench/replay: goreplay:", err)
				break
			}
			rows = append(rows, f)
		}
		printFidelity(rows)
		all = append(all, rows...)
	} else {
		fmt.Println("goreplay: not found (install it and pass -goreplay BIN to compare)")
	}
	fmt.Println("medians of the runs (deviation p99 and span error; goal: p99 <= 2ms, |span error| <= 1%):")
	printMedians(all)
	if fl.dump != "" {
		if err := c.dump(fl.dump, all); err != nil {
			fmt.Fprintln(os.Stderr, "bench/replay: -dump:", err)
			return 1
		}
	}
	return 0
}

// dump writes every request of every run as CSV: tool, lead, run (per tool
// and lead, from 1), index, burst, position in the burst, and the signed
// deviation (arrival - planned) in microseconds.
func (c burstCapture) dump(path string, rs []fidelity) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"tool", "lead", "run", "index", "burst", "position", "deviation_us"})
	type key struct {
		tool string
		lead time.Duration
	}
	runs := map[key]int{}
	bursts := c.bursts()
	for _, r := range rs {
		k := key{r.tool, r.lead}
		runs[k]++
		for b, span := range bursts {
			for i := span[0]; i < span[1]; i++ {
				if d, ok := r.devs[i]; ok {
					_ = w.Write([]string{r.tool, r.lead.String(), strconv.Itoa(runs[k]), strconv.Itoa(i), strconv.Itoa(b),
						strconv.Itoa(i - span[0]), strconv.FormatInt(d.Microseconds(), 10)})
				}
			}
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func goreplayBinary(flagged string) string {
	if flagged != "" {
		return flagged
	}
	for _, name := range []string{"gor", "goreplay"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// fmtSteal formats a steal share as a whole percentage, "-" when unknown
// (negative).
func fmtSteal(share float64) string {
	if share < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*share)
}

// printMedians prints, per tool and lead, the median p99 deviation, span
// error and steal share of the runs.
func printMedians(rs []fidelity) {
	type key struct {
		tool string
		lead time.Duration
	}
	var order []key
	groups := map[key][]fidelity{}
	for _, r := range rs {
		k := key{r.tool, r.lead}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	for _, k := range order {
		g := groups[k]
		p99s := make([]time.Duration, len(g))
		spans := make([]float64, len(g))
		var steals []float64
		for i, r := range g {
			p99s[i], spans[i] = r.devP99, math.Abs(r.spanErrPct)
			if r.steal >= 0 {
				steals = append(steals, r.steal)
			}
		}
		sort.Slice(p99s, func(i, j int) bool { return p99s[i] < p99s[j] })
		sort.Float64s(spans)
		steal := -1.0
		if len(steals) > 0 {
			sort.Float64s(steals)
			steal = steals[len(steals)/2]
		}
		fmt.Printf("  %-11s lead %-8s runs %d  dev p99 %10s  |span err| %6.2f%%  steal %s\n", k.tool, k.lead, len(g), p99s[len(g)/2].Round(time.Microsecond), spans[len(g)/2], fmtSteal(steal))
	}
}
