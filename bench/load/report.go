package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/stage"
)

// report collects the results as Markdown (readable in a terminal too).
type report struct {
	head  strings.Builder
	b     strings.Builder
	sum   []string
	notes []string
}

func (r *report) f(format string, args ...any) { fmt.Fprintf(&r.b, format, args...) }

func (r *report) note(s string) { r.notes = append(r.notes, s) }

// summary adds a headline line to the summary printed above the tables.
func (r *report) summary(format string, args ...any) {
	r.sum = append(r.sum, fmt.Sprintf(format, args...))
}

func (r *report) String() string {
	s := r.head.String()
	if len(r.sum) > 0 {
		s += "### Summary (ratios measured in this run)\n\n" + bullets(r.sum) + "\n"
	}
	s += r.b.String()
	if len(r.notes) > 0 {
		s += "\nNotes:\n" + bullets(r.notes)
	}
	return s
}

// bullets renders items as a Markdown list.
func bullets(items []string) string { return "- " + strings.Join(items, "\n- ") + "\n" }

// machine describes this machine from /proc and the tools.
func machine() (cpus int, model, mem, kernel, goVer string) {
	model = cmp.Or(procField("/proc/cpuinfo", "model name"), "unknown CPU")
	mem = "unknown memory"
	if kb, err := strconv.ParseFloat(strings.TrimSuffix(procField("/proc/meminfo", "MemTotal"), " kB"), 64); err == nil {
		mem = fmt.Sprintf("%.1f GiB", kb/(1<<20))
	}
	kernel = "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	return runtime.NumCPU(), model, mem, kernel, runtime.Version()
}

// procField returns the value of the first "key: value" line of a /proc file,
// or "".
func procField(path, key string) string {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func nginxVersion(bin string) string {
	if bin == "" {
		return "not found"
	}
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
}

func (r *report) header(h *harness, args []string) {
	cpus, model, mem, kernel, goVer := machine()
	ngx, _ := benchproc.FindNginx(h.cfg.nginx)
	cmd := strings.Join(append([]string{"go run ./bench/load"}, args...), " ")
	fmt.Fprintf(&r.head, "## Load harness results\n\n")
	fmt.Fprintf(&r.head, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&r.head, "- machine: %d cores (nproc), %s, %s RAM, %s, %s\n", cpus, model, mem, kernel, goVer)
	fmt.Fprintf(&r.head, "- nginx: %s; Kafka: %s; producers' batch compression: %s\n", nginxVersion(ngx), h.kafka, cmp.Or(h.cfg.compression, broker.DefaultCompression))
	fmt.Fprintf(&r.head, "- command: `%s`\n", cmd)
	fmt.Fprintf(&r.head, "- everything on loopback on this machine: load generator, primary, shadow, proxies, Kafka, redactor, replayer share the %d cores\n", cpus)
	fmt.Fprintf(&r.head, "- request mix: alternately `GET /payments/p-N?expand=card` and `POST /payments` with a 1 KB JSON body carrying synthetic card, email and phone data\n\n")
}

func ratio(a, b float64) string {
	if b == 0 || a == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func fmtSpreadDur(s spread) string {
	return fmt.Sprintf("%s (%s–%s)", fmtDur(time.Duration(s.med)), fmtDur(time.Duration(s.lo)), fmtDur(time.Duration(s.hi)))
}

// fmtShares formats shares as whole percentages ("3 / 0 / 12 %"), "-" for none.
func fmtShares(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(int(math.Round(100 * x)))
	}
	return strings.Join(parts, " / ") + " %"
}

func (r *report) overhead(c config, fronts []front) {
	r.f("### Proxy overhead\n\n")
	r.f("All fronts run at once and are measured in %d interleaved rounds (order rotating each round) after a %s warm-up each. Fixed rate: vegeta, %d/s for %s per round (open model). Max throughput: closed loop, %d keep-alive workers for %s per round. Each figure is the median round, the range over rounds in brackets.\n\n",
		c.rounds, c.warmup, c.rate, c.duration, c.workers, c.duration)
	r.f("| path | p50 @%d/s | p99 @%d/s | max req/s | p50 at max | p99 at max | errors | copies captured / published / dropped | CPU stolen @%d/s, each round |\n", c.rate, c.rate, c.rate)
	r.f("|---|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, f := range fronts {
		copies := "-"
		answered := f.open.Requests + f.closed.Requests + f.open.Errors + f.closed.Errors
		if f.copies != nil {
			copies = fmt.Sprintf("%.0f / %.0f / %.0f of %d answered", f.copies.Captured, f.copies.Published, f.copies.Dropped, answered)
		}
		r.f("| %s | %s | %s | %.0f (%.0f–%.0f) | %s | %s | %d | %s | %s |\n", f.name, fmtSpreadDur(f.p50), fmtSpreadDur(f.p99),
			f.maxRate.med, f.maxRate.lo, f.maxRate.hi, fmtDur(time.Duration(f.maxP50.med)), fmtDur(time.Duration(f.maxP99.med)), f.open.Errors+f.closed.Errors, copies, fmtShares(f.steals))
	}
	if len(fronts) == 0 {
		return
	}
	direct := fronts[0]
	r.f("\nRatios of the medians (latency: above 1x is slower; throughput: below 1x is less):\n\n")
	r.f("| comparison | p50 @%d/s | p99 @%d/s | max req/s | p99 at max |\n|---|---:|---:|---:|---:|\n", c.rate, c.rate)
	row := func(name string, a, b front) {
		r.f("| %s | %s | %s | %s | %s |\n", name, ratio(a.p50.med, b.p50.med), ratio(a.p99.med, b.p99.med), ratio(a.maxRate.med, b.maxRate.med), ratio(a.maxP99.med, b.maxP99.med))
	}
	for _, f := range fronts[1:] {
		row(f.name+" vs direct", f, direct)
		r.summary("%s vs direct: p50 %s, p99 %s at %d/s; max throughput %s", f.name, ratio(f.p50.med, direct.p50.med), ratio(f.p99.med, direct.p99.med), c.rate, ratio(f.maxRate.med, direct.maxRate.med))
	}
	byName := map[string]front{}
	for _, f := range fronts {
		byName[strings.Fields(f.name)[0]] = f
	}
	if ml, ok := byName["mirrorline"]; ok {
		for _, other := range []string{"Go", "nginx", "baseline"} {
			if o, ok := byName[other]; ok {
				row("mirrorline proxy vs "+o.name, ml, o)
				r.summary("mirrorline proxy vs %s: p50 %s, p99 %s; max throughput %s", o.name, ratio(ml.p50.med, o.p50.med), ratio(ml.p99.med, o.p99.med), ratio(ml.maxRate.med, o.maxRate.med))
			}
		}
		if ml.copies != nil && ml.copies.Dropped > 0 {
			r.summary("mirrorline proxy dropped %.0f of %.0f captures (bounded queue full, by design never blocking the client)", ml.copies.Dropped, ml.copies.Captured)
		}
	}
	r.f("\n")
}

func (r *report) slow(c config, runs []slowRun) {
	r.f("### Slow shadow: the primary's latency when the shadow is %dx slower\n\n", c.slowFactor)
	r.f("Primary service time %s; shadow %s (fast) or %s (slow), alternating for %d rounds. vegeta %d/s for %s per pass through each front; each figure is the median pass, the range in brackets. mirrorline: the shadow is behind Kafka, the redactor and `mirrorline replay --live` (those two at nice %d, standing in for nodes of their own); nginx: the shadow is the `mirror` target (deploy/nginx/mirror.conf).\n\n",
		c.primaryDelay, c.primaryDelay, c.primaryDelay*time.Duration(c.slowFactor), c.rounds, c.slowRate, c.duration, c.slowNice)
	r.f("| front | shadow service time | primary p50 | primary p99 | client errors | client req/s | shadow received req/s meanwhile |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range runs {
		r.f("| %s | %s | %s | %s | %d | %.0f | %.0f |\n", s.system, s.shadowDelay, fmtSpreadDur(s.p50), fmtSpreadDur(s.p99), s.errors, s.clientRate, s.shadowRate)
	}
	r.f("\n| front | primary p50, slow / fast shadow | primary p99, slow / fast shadow |\n|---|---:|---:|\n")
	for i := 0; i+1 < len(runs); i += 2 {
		fast, slow := runs[i], runs[i+1]
		r.f("| %s | %s | %s |\n", fast.system, ratio(slow.p50.med, fast.p50.med), ratio(slow.p99.med, fast.p99.med))
		r.summary("primary latency through %s with a %dx slower shadow vs an equally fast one: p50 %s, p99 %s (shadow received %.0f of %.0f req/s)", fast.system, c.slowFactor,
			ratio(slow.p50.med, fast.p50.med), ratio(slow.p99.med, fast.p99.med), slow.shadowRate, slow.clientRate)
	}
	if len(runs) == 4 {
		r.f("| nginx vs mirrorline, both with the slow shadow | %s | %s |\n", ratio(runs[3].p50.med, runs[1].p50.med), ratio(runs[3].p99.med, runs[1].p99.med))
	}
	r.f("\n")
}

// The end-to-end delay goal: at delayGoalRate, send-to-shadow p50 and p99
// below these.
const (
	delayGoalRate = 1000
	delayGoalP50  = 50 * time.Millisecond
	delayGoalP99  = 250 * time.Millisecond
)

func (r *report) e2e(c config, pl *pipeline, steps []e2eStep) {
	r.f("### End to end: proxy → Kafka → redactor → live replayer → shadow\n\n")
	r.f("Each step: the harness's open-loop generator (pre-built requests, keep-alive connections) at the rate for %s through `mirrorline proxy`; `mirrorline redact` (exactly once) and `mirrorline replay --live --concurrency %d` run as processes; %d partitions. A step passes when every answered request reaches the shadow within %s, the proxy drops nothing and the p99 send-to-shadow delay is at most %s.\n\n",
		c.e2eStep, c.replayConc, c.partitions, c.e2eDrain, c.e2eMaxLag)
	r.f("Before the first step the pipeline was warmed (consumer groups joined, transactions initialised, a first batch through to the shadow): processes listening after %s, first requests at the shadow %s later. No step pays a group join.\n\n",
		fmtDur(pl.started), fmtDur(pl.ready))
	if pl.warmup > 0 {
		var sl []string
		for _, w := range pl.warmupSlices {
			sl = append(sl, fmt.Sprintf("%s (%.0f tx/s)", fmtDur(w.p50), w.txPerSec))
		}
		r.f("Then it ran unmeasured at %d/s for %s, in slices of %s, until %d slices in a row did not lower the send→shadow p50 by a tenth (a broker's JVM compiles its transaction paths during its first minutes): %s.\n\n",
			c.e2eRates[0], fmtDur(pl.warmup), e2eWarmupSlice, e2eWarmupFlat, strings.Join(sl, ", "))
	}
	r.f("| offered/s | sent/s | generator late p99 | answered | at shadow | lost | duplicates | proxy drops | send→shadow p50 | send→shadow p99 | drain after load | verdict |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	best := 0
	for _, s := range steps {
		v := "ok"
		if !s.ok {
			v = s.reasonBad
		} else {
			best = s.rate
		}
		r.f("| %d | %.0f | %s | %d | %d | %d | %d | %.0f | %s | %s | %s | %s |\n", s.rate, s.sent.rate(), fmtDur(s.sent.Late99), s.sent.Requests, s.got, max(s.sent.Requests-s.got, 0), s.dups, s.dropped, fmtDur(s.p50), fmtDur(s.p99), fmtDur(s.drain), v)
	}
	if best > 0 {
		r.summary("end to end through real Kafka, redactor and live replayer: highest zero-loss, no-lag rate %d/s of the steps %v", best, c.e2eRates)
		r.f("\nHighest zero-loss, no-lag rate: **%d/s**", best)
		if len(steps) > 0 && steps[len(steps)-1].ok {
			r.f(" (the highest rate tried; raise -e2e-rates to find the limit)")
		}
		r.f(".\n\n")
	} else {
		r.f("\nNo step passed.\n\n")
	}
	for _, s := range steps {
		if s.rate != delayGoalRate {
			continue
		}
		met := "met"
		if s.p50 >= delayGoalP50 || s.p99 >= delayGoalP99 || !s.ok {
			met = "NOT met"
		}
		r.f("Delay goal at %d/s with exactly-once redaction (p50 < %s, p99 < %s): send→shadow p50 %s, p99 %s: **%s**.\n\n",
			delayGoalRate, fmtDur(delayGoalP50), fmtDur(delayGoalP99), fmtDur(s.p50), fmtDur(s.p99), met)
		r.summary("end-to-end delay at %d/s: p50 %s, p99 %s (goal < %s, < %s: %s)", delayGoalRate, fmtDur(s.p50), fmtDur(s.p99), fmtDur(delayGoalP50), fmtDur(delayGoalP99), met)
	}
	if len(steps) == 0 {
		return
	}
	r.f("Where the time goes, per step: the delay since the send at the raw topic (proxy and its producer), at the clean topic read committed (plus the redactor's transactions) and at the shadow (plus the live replayer), measured by a reader of both topics beside the pipeline; the redactor's transactions (one per poll; a record becomes visible to the replayer when its transaction commits) and the CPU of each process over the step (share of one core, and per request answered; from /proc/PID/stat).\n\n")
	r.f("| offered/s | send→raw p50 / p99 | send→clean p50 / p99 | send→shadow p50 / p99 | transactions/s | records/transaction | aborted |")
	for _, l := range steps[0].loads {
		r.f(" %s |", l.name)
	}
	r.f("\n|---:|---:|---:|---:|---:|---:|---:|")
	for range steps[0].loads {
		r.f("---:|")
	}
	r.f("\n")
	for _, s := range steps {
		el := s.sent.Elapsed.Seconds() + s.drain.Seconds()
		txps, per := 0.0, 0.0
		if el > 0 {
			txps = s.tx.committed / el
		}
		if s.tx.committed > 0 {
			per = s.tx.polled / s.tx.committed
		}
		r.f("| %d | %s / %s | %s / %s | %s / %s | %.1f | %.1f | %.0f |", s.rate, fmtDur(s.hops.rawP50), fmtDur(s.hops.rawP99),
			fmtDur(s.hops.cleanP50), fmtDur(s.hops.cleanP99), fmtDur(s.p50), fmtDur(s.p99), txps, per, s.tx.aborted)
		for _, l := range s.loads {
			r.f(" %.0f%% (%dµs) |", 100*l.core, l.perRequest.Microseconds())
		}
		r.f("\n")
	}
	r.f("\n")
}

func (r *report) txLoop(c config, runs map[time.Duration][]txLoopRun) {
	r.f("### Fetch wait of the exactly-once loop\n\n")
	r.f("A transactional consume-transform-produce session with the redactor's options (stage.TxOpts) copies records produced at %d/s, each poll in one transaction; a read-committed reader takes each record's delay from produce to visible. Each fetch wait runs %d times, interleaved, %s each, on fresh topics; figures are the median run (lowest–highest).\n\n",
		max(c.slowRate/3, 1), c.rounds, c.duration)
	r.f("| session fetch max wait | visible p50 | visible p99 | session fetch p99 | transactions/s | records/transaction | visible of produced |\n|---|---:|---:|---:|---:|---:|---:|\n")
	med := map[time.Duration]float64{}
	for _, w := range txLoopWaits {
		rs := runs[w]
		if len(rs) == 0 {
			continue
		}
		lat := make([]latencies, len(rs))
		fetch := make([]latencies, len(rs))
		vis, tot := 0, 0
		var txs, per []float64
		for i, x := range rs {
			lat[i] = latencies{P50: x.p50, P99: x.p99}
			fetch[i] = latencies{P99: x.fetchP99}
			vis += x.visible
			tot += x.records
			txs = append(txs, x.txPerSec)
			per = append(per, x.recordsTx)
		}
		p5, p9, f9 := over(lat, p50), over(lat, p99), over(fetch, p99)
		med[w] = p9.med
		slices.Sort(txs)
		slices.Sort(per)
		r.f("| %s | %s | %s | %s | %.1f | %.1f | %d/%d |\n", w, fmtSpreadDur(p5), fmtSpreadDur(p9), fmtSpreadDur(f9), txs[len(txs)/2], per[len(per)/2], vis, tot)
	}
	if a, b := med[txLoopWaits[0]], med[stage.FetchMaxWait]; a > 0 && b > 0 {
		r.summary("exactly-once loop, visible p99 with fetch wait %s vs %s: %s", stage.FetchMaxWait, txLoopWaits[0], ratio(b, a))
	}
	r.f("\n")
	r.txRequests(runs[stage.FetchMaxWait])
}

// txRequests reports the round trips of a transaction: the p50 of each kind
// of request the session sent (fetches aside), the median over runs.
func (r *report) txRequests(runs []txLoopRun) {
	byKind := map[string][]time.Duration{}
	for _, x := range runs {
		for k, d := range x.requests {
			byKind[k] = append(byKind[k], d)
		}
	}
	if len(byKind) == 0 {
		return
	}
	kinds := slices.Sorted(maps.Keys(byKind))
	r.f("Round trips of one transaction (fetch wait %s): p50 of each request the session sent, median over runs. Produce is the longest: it is the first request of a transaction, and Kafka holds it (CONCURRENT_TRANSACTIONS, retried every `add.partitions.to.txn.retry.backoff.ms` on the broker, or `stage.ConcurrentTransactionsBackoff` on the client before transaction protocol v2) until the previous transaction's commit markers are written.\n\n", stage.FetchMaxWait)
	r.f("| request | p50 |\n|---|---:|\n")
	for _, k := range kinds {
		d := byKind[k]
		slices.Sort(d)
		r.f("| %s | %s |\n", k, fmtDur(d[len(d)/2]))
	}
	r.f("\n")
}

func (r *report) redactor(rps, nsop float64, how string) {
	r.f("### Redactor\n\n")
	r.f("| benchmark | records/s per core | ns/record |\n|---|---:|---:|\n")
	r.f("| BenchmarkRedactJSON1KB (1 KB JSON payments request with PII) | %.0f | %.0f |\n\n", rps, nsop)
	r.f("Measured with: %s.\n\n", how)
	r.summary("redactor: %.0f records/s per core (1 KB JSON with PII)", rps)
}

// redactorLoop reports the redactor's exactly-once loop
// (BenchmarkRedactEOSLoop) and, when floor has figures, the same loop
// passing records through unredacted (BenchmarkEOSLoopPassThrough).
func (r *report) redactorLoop(m, floor map[string]float64, how string) {
	r.f("| benchmark | records/s per core | CPU-µs per record | wall records/s | allocs per record |\n|---|---:|---:|---:|---:|\n")
	r.f("| BenchmarkRedactEOSLoop (raw → clean in Kafka transactions, same payload) | %.0f | %.1f | %.0f | %.0f |\n",
		m["records/cpu-s"], m["cpu-µs/record"], m["records/s"], m["allocs/op"])
	if floor["records/cpu-s"] > 0 {
		r.f("| BenchmarkEOSLoopPassThrough (the same loop, records encoded again unredacted: its floor) | %.0f | %.1f | %.0f | %.0f |\n",
			floor["records/cpu-s"], floor["cpu-µs/record"], floor["records/s"], floor["allocs/op"])
	}
	r.f("\nMeasured with: %s. Per core: records over the process's CPU time (getrusage), from the first committed transaction to the last.\n\n", how)
	if floor["cpu-µs/record"] > 0 {
		r.summary("redactor in its exactly-once loop: %.0f records/s per core, %.1f CPU-µs per record, %.2fx the CPU of the same loop without redaction (%.0f records/s per core)",
			m["records/cpu-s"], m["cpu-µs/record"], m["cpu-µs/record"]/floor["cpu-µs/record"], floor["records/cpu-s"])
		return
	}
	r.summary("redactor in its exactly-once loop: %.0f records/s per core, %.1f CPU-µs per record", m["records/cpu-s"], m["cpu-µs/record"])
}

func (r *report) footer(d time.Duration) {
	r.f("Replayer accuracy vs vegeta: `go run ./bench/replay -rate 1000 -duration 5s` (make bench runs it).\n\n")
	r.f("Harness wall time: %s.\n", d.Round(time.Second))
}
