package main

import (
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-only", "pipeline,vpc"}, true},
		{[]string{"-only", "pipeline,bogus"}, false},
		{[]string{"-n", "0"}, false},
		{[]string{"-rate", "-1"}, false},
		{[]string{"extra"}, false},
	} {
		c, err := parseFlags(tc.args)
		if (err == nil) != tc.ok {
			t.Errorf("%v: err %v, want ok %v", tc.args, err, tc.ok)
		}
		if err == nil && len(tc.args) == 0 && len(c.only) != len(fronts) {
			t.Errorf("default -only %v, want every front", c.only)
		}
	}
}

func TestRatio(t *testing.T) {
	r, ok := ratio(map[int]float64{0: 2, 1: 6, 2: 9}, map[int]float64{0: 1, 1: 2, 3: 1})
	if !ok || r != 2.5 { // rounds 0 and 1 only: 2 and 3
		t.Errorf("ratio %v %v, want 2.5", r, ok)
	}
}

// Each exchange of the VXLAN plan has its request and response; a
// connection's first has the handshake, its last the FINs.
func TestVPCPlan(t *testing.T) {
	h := &harness{}
	plan := h.vpcPlan(25)
	if len(plan) != 25 {
		t.Fatalf("%d exchanges", len(plan))
	}
	// handshake 3 + request 1 + response 1 + ack 1 (+ FIN, FIN, ACK)
	for i, want := range map[int]int{0: 6, 1: 3, 9: 6, 10: 6, 24: 6} {
		if len(plan[i]) != want {
			t.Errorf("exchange %d: %d datagrams, want %d", i, len(plan[i]), want)
		}
	}
}

// The capacity model turns CPU-µs per exchange and record sizes into cores,
// instances and partitions (the arithmetic docs/capacity.md describes).
func TestCapacity(t *testing.T) {
	h := &harness{res: map[string][]sample{
		"proxy":   {{usPer: 300, hwmKB: 1 << 10}},
		"replay":  {{round: 0, usPer: 150}, {round: 1, usPer: 160}, {round: 2, usPer: 140}},
		"compare": {{usPer: 100}},
		"redact":  {{usPer: 60}},
	}, sizes: []recordSize{{kind: "raw", mean: 1000}, {kind: "diff", mean: 200}}}
	var b strings.Builder
	h.capacity(&b)
	out := b.String()
	for _, want := range []string{
		"| proxy | 300.0 | 5.0 (3) | 50.0 (25) | 500.0 (250) |",
		// 150 µs: 10k/s -> 2.5 cores (2 instances), 1M/s -> 250 cores (125)
		"| replay --live | 150.0 | 2.5 (2) | 25.0 (13) | 250.0 (125) |",
		// 10k/s: raw 10 MB/s -> 1, records 1, group 2 -> 2; 100k/s: group 13;
		// 1M/s: raw 1000 MB/s -> 100, records 100, group 125 -> 125.
		"| 2 → 4 (12 MB/s produced, ×3 replicated) | 13 → 26 (120 MB/s produced, ×3 replicated) | 125 → 250 (1200 MB/s produced, ×3 replicated) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("capacity table lacks %q:\n%s", want, out)
		}
	}
}
