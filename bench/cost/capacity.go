package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

// The capacity model of docs/capacity.md, applied to this run's figures so
// the document is updated by pasting the report.
const (
	capUtil         = 0.6  // target CPU utilisation of a stage (40 % headroom)
	capCoresPerInst = 2    // cores per instance (GOMAXPROCS=2)
	capPartMBs      = 10.0 // planning write throughput of one partition, MB/s
	capPartRecs     = 10_000
	capPartGrowth   = 2 // partitions beyond the minimum, to scale out later
)

var capRates = []int{10_000, 100_000, 1_000_000}

// capacity writes, for each rate, the cores and instances of every measured
// stage and the partitions of the service's topics.
func (h *harness) capacity(b *strings.Builder) {
	type st struct{ name, row string }
	stages := []st{{"proxy", "proxy"}, {"sink", "sink"}, {"vpc", "vpc"}, {"ebpf", "ebpf (user + kernel)"},
		{"redact", "redact"}, {"replay", "replay --live"}, {"compare", "compare"}}
	cost := map[string]float64{}
	for _, s := range stages {
		if us, _, ok := h.cost(s.name); ok {
			cost[s.name] = us
		}
	}
	if len(h.bpf) > 0 {
		var k []float64
		for _, s := range h.bpf {
			k = append(k, s.usPer)
		}
		cost["ebpf"] += benchproc.Median(k)
	}
	if len(cost) == 0 {
		return
	}
	fmt.Fprintf(b, "\nCapacity (docs/capacity.md): cores = rate × CPU-µs / 1e6 / %.1f; instances of %d cores; partitions ≥ the largest consumer group, ≥ MB/s / %.0f and ≥ records/s / %d on every topic, then ×%d:\n\n",
		capUtil, capCoresPerInst, capPartMBs, capPartRecs, capPartGrowth)
	fmt.Fprintf(b, "| stage | CPU µs/exchange |")
	for _, r := range capRates {
		fmt.Fprintf(b, " %s/s: cores (instances) |", kilo(r))
	}
	fmt.Fprintf(b, "\n|---|---:|")
	for range capRates {
		fmt.Fprintf(b, "---:|")
	}
	b.WriteString("\n")
	group := map[int]int{} // rate -> largest consumer group
	for _, s := range stages {
		us, ok := cost[s.name]
		if !ok {
			continue
		}
		fmt.Fprintf(b, "| %s | %.1f |", s.row, us)
		for _, r := range capRates {
			cores := float64(r) * us / 1e6 / capUtil
			inst := int(math.Ceil(cores / capCoresPerInst))
			fmt.Fprintf(b, " %.1f (%d) |", cores, inst)
			if s.name == "redact" || s.name == "replay" || s.name == "compare" {
				group[r] = max(group[r], inst)
			}
		}
		b.WriteString("\n")
	}
	if len(h.sizes) == 0 {
		return
	}
	fmt.Fprintf(b, "| **partitions** per topic (minimum → with growth) | |")
	for _, r := range capRates {
		need := group[r]
		var mbs float64
		for _, s := range h.sizes {
			need = max(need, int(math.Ceil(float64(r)*s.mean/1e6/capPartMBs)), int(math.Ceil(float64(r)/capPartRecs)))
			mbs += float64(r) * s.mean / 1e6
		}
		fmt.Fprintf(b, " %d → %d (%.0f MB/s produced, ×3 replicated) |", need, need*capPartGrowth, mbs)
	}
	b.WriteString("\n")
}

func kilo(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}
