package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

// speedscaleUs is Speedscale's published cost of its eBPF collector: about
// 2.5 % of one core at 10,000 requests/s, i.e. ~2.5 µs CPU per request.
const speedscaleUs = 2.5

// perRound returns the samples of name by round.
func (h *harness) perRound(name string) map[int]sample {
	m := map[int]sample{}
	for _, s := range h.res[name] {
		m[s.round] = s
	}
	return m
}

// cost is the median CPU µs per exchange of name and its peak RSS (MiB),
// ok false when it was not measured.
func (h *harness) cost(name string) (us float64, rssMiB float64, ok bool) {
	var v []float64
	var hwm int64
	for _, s := range h.res[name] {
		v = append(v, s.usPer)
		hwm = max(hwm, s.hwmKB)
	}
	return benchproc.Median(v), float64(hwm) / 1024, len(v) > 0
}

// ratio is the median over rounds of a(round)/b(round).
func ratio(a, b map[int]float64) (float64, bool) {
	var r []float64
	for k, av := range a {
		if bv, ok := b[k]; ok && bv > 0 {
			r = append(r, av/bv)
		}
	}
	return benchproc.Median(r), len(r) > 0
}

func (h *harness) usByRound(name string) map[int]float64 {
	m := map[int]float64{}
	for k, s := range h.perRound(name) {
		m[k] = s.usPer
	}
	return m
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d cores (nproc), %s, Linux %s, %s", runtime.NumCPU(), model, kernel, runtime.Version())
}

func (h *harness) report(args []string, took time.Duration) string {
	var b strings.Builder
	c := h.cfg
	fmt.Fprintf(&b, "## Cost per exchange, each stage beside its peer\n\n")
	fmt.Fprintf(&b, "- date: %s\n- machine: %s\n- command: `go run ./bench/cost %s`\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), machine(), strings.Join(args, " "))
	fmt.Fprintf(&b, "- load: %d exchanges per front and round at %d/s (after %d unmeasured), %d interleaved rounds; Kafka: %s; took %s\n",
		c.n, c.rate, c.warm, c.rounds, h.kafka, took.Round(time.Second))
	fmt.Fprintf(&b, "- CPU: utime+stime of the process group (/proc/PID/stat) over the run, per exchange, median of rounds; ratio: median of the per-round ratios; RSS: peak (VmHWM, summed over the group's processes)\n\n")
	fmt.Fprintf(&b, "| stage | CPU µs/exchange | peer | peer CPU µs/exchange | ratio | RSS MiB | peer RSS MiB |\n|---|---:|---|---:|---:|---:|---:|\n")
	row := func(stage, name, peer, peerName string, peerUs map[int]float64, peerFixed float64) {
		us, rss, ok := h.cost(name)
		if !ok {
			return
		}
		pus, prss, pok := h.cost(peerName)
		var r float64
		var rok bool
		switch {
		case peerFixed > 0:
			pus, pok, r, rok = peerFixed, true, us/peerFixed, true
		case peerUs != nil:
			pus, pok = benchproc.Median(mapValues(peerUs)), len(peerUs) > 0
			prss = 0
			r, rok = ratio(h.usByRound(name), peerUs)
		case pok:
			r, rok = ratio(h.usByRound(name), h.usByRound(peerName))
		}
		cell := func(ok bool, f string, v float64) string {
			if !ok {
				return "—"
			}
			return fmt.Sprintf(f, v)
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s | %s | %.0f | %s |\n", stage, us, cmpStr(peer, "—"),
			cell(pok, "%.1f", pus), cell(rok, "%.2fx", r), rss, cell(pok && prss > 0, "%.0f", prss))
	}
	row("proxy (`mirrorline proxy`, publishing to Kafka)", "proxy", "Go `httputil.ReverseProxy`", "goproxy", nil, 0)
	row("proxy (`mirrorline proxy`, publishing to Kafka)", "proxy", "nginx reverse proxy with `mirror` (master + workers)", "nginx", nil, 0)
	mirrorCost := map[int]float64{}
	ng, plain := h.usByRound("nginx"), h.usByRound("nginx-plain")
	for k, v := range ng {
		if p, ok := plain[k]; ok && v > p { // a round where noise hid the difference has no ratio
			mirrorCost[k] = v - p
		}
	}
	row("sink (`mirrorline sink`, copies from nginx `mirror`)", "sink", "nginx's own cost of `mirror` (with minus without)", "", mirrorCost, 0)
	row("sink (`mirrorline sink`, copies from nginx `mirror`)", "sink", "plain Go net/http server reading the same copies (the sink's floor in Go)", "receiver", nil, 0)
	row("vpc (`mirrorline vpc`, VXLAN over loopback UDP)", "vpc", "", "", nil, 0)
	if us, _, ok := h.cost("ebpf"); ok {
		var k []float64
		var perRun, runs []float64
		for _, s := range h.bpf {
			k, perRun, runs = append(k, s.usPer), append(perRun, s.nsRun), append(runs, s.runsPer)
		}
		row("ebpf, user side (`mirrorline ebpf`)", "ebpf", "", "", nil, 0)
		if len(k) > 0 {
			ku := benchproc.Median(k)
			fmt.Fprintf(&b, "| ebpf, kernel side (BPF run time) | %.1f | | | | | |\n", ku)
			fmt.Fprintf(&b, "| ebpf, user + kernel | %.1f | Speedscale eBPF collector (published: ~2.5 %% of a core at 10k/s) | %.1f | %.2fx | | |\n",
				us+ku, speedscaleUs, (us+ku)/speedscaleUs)
			h.notes = append(h.notes, fmt.Sprintf("ebpf kernel side: %.0f ns per program run, %.1f runs per exchange (the TC programs run on every packet of the interface, loopback traffic of other processes included)", benchproc.Median(perRun), benchproc.Median(runs)))
		}
	}
	row("redact (`mirrorline redact`, exactly-once loop)", "redact", "", "", nil, 0)
	row("replay --live", "replay", "vegeta, same requests and rate, own process", "vegeta", nil, 0)
	row("compare", "compare", "", "", nil, 0)
	if us, _, ok := h.cost("redact"); ok && us > 0 {
		h.notes = append(h.notes, fmt.Sprintf("redactor in its EOS loop at %d/s: %.0f records/s per core (1e6 / CPU µs per record, its transactions' fixed cost included: at this rate not the loop's capacity; BenchmarkRedactEOSLoop measures that, goal ≥ 150,000)", h.cfg.rate, 1e6/us))
	}
	if len(h.sizes) > 0 {
		fmt.Fprintf(&b, "\nRecord sizes of the pipeline (key + value + headers, before compression; mean of the first records of each topic):\n\n| topic | bytes/record | records read |\n|---|---:|---:|\n")
		for _, s := range h.sizes {
			fmt.Fprintf(&b, "| mirror.%s.S | %.0f | %d |\n", s.kind, s.mean, s.n)
		}
	}
	h.capacity(&b)
	if len(h.notes) > 0 {
		b.WriteString("\n")
		for _, n := range h.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func mapValues(m map[int]float64) []float64 {
	var v []float64
	for _, x := range m {
		v = append(v, x)
	}
	return v
}

func cmpStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
