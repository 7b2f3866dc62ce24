package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

func TestBenchHeaderRoundTrip(t *testing.T) {
	sent := time.Unix(0, 1764070000123456789)
	v := benchValue(7, 123456, sent)
	if strings.ContainsAny(v, "0123456789") {
		t.Fatalf("%q has digits; the redactor's detectors could rewrite it", v)
	}
	step, seq, got, ok := parseBenchHeader(v)
	if !ok || step != 7 || seq != 123456 || !got.Equal(sent) {
		t.Fatalf("parseBenchHeader(%q) = %d %d %v %v", v, step, seq, got, ok)
	}
	for _, bad := range []string{"", "abc", "azbz", "qzazb", "azazaz"} {
		if _, _, _, ok := parseBenchHeader(bad); ok {
			t.Errorf("parseBenchHeader(%q) accepted", bad)
		}
	}
}

func TestMetric(t *testing.T) {
	page := `# HELP mirrorline_collector_dropped_total x
mirrorline_collector_dropped_total{reason="queue_full"} 3
mirrorline_collector_dropped_total{reason="closed"} 2
mirrorline_collector_dropped_totalx 100
mirrorline_collector_captured_total 1.5e+06
`
	if got := benchproc.Metric(page, "mirrorline_collector_dropped_total"); got != 5 {
		t.Errorf("dropped = %v, want 5", got)
	}
	if got := benchproc.Metric(page, "mirrorline_collector_captured_total"); got != 1.5e6 {
		t.Errorf("captured = %v, want 1.5e6", got)
	}
}

func TestParseGoBench(t *testing.T) {
	out := "goos: linux\nBenchmarkRedactJSON1KB \t  345678\t      6123 ns/op\t 170.1 MB/s\t  163312 records/s\t    1632 B/op\t      14 allocs/op\nPASS\n"
	rps, ns, err := parseGoBench(out)
	if err != nil || rps != 163312 || ns != 6123 {
		t.Fatalf("parseGoBench = %v %v %v", rps, ns, err)
	}
	if _, _, err := parseGoBench("FAIL\n"); err == nil {
		t.Fatal("no error for output without the benchmark")
	}
}

func TestNginxConf(t *testing.T) {
	root, err := benchproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path, err := nginxConf(root, dir, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "auto")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := string(b)
	for _, want := range []string{"listen 127.0.0.1:1;", "server 127.0.0.1:2;", "server 127.0.0.1:3;", "worker_processes auto;", "pid " + filepath.Join(dir, "nginx.pid")} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
}

func TestSpread(t *testing.T) {
	runs := []latencies{{P99: 3 * time.Millisecond}, {P99: 100 * time.Millisecond}, {P99: 2 * time.Millisecond}}
	s := over(runs, p99)
	if time.Duration(s.med) != 3*time.Millisecond || time.Duration(s.lo) != 2*time.Millisecond || time.Duration(s.hi) != 100*time.Millisecond {
		t.Fatalf("spread = %+v", s)
	}
}

func TestBenchMetrics(t *testing.T) {
	out := "goos: linux\nBenchmarkRedactEOSLoopEmbedded-2 \t 100\t 1 ns/op\t 9 records/cpu-s\n" +
		"BenchmarkRedactEOSLoop-2   \t   50000\t    83682 ns/op\t        37.78 cpu-µs/record\t      1136 join-ms\t     26471 records/cpu-s\t     11950 records/s\t   10470 B/op\t      29 allocs/op\nPASS\n"
	m := benchMetrics(out, "BenchmarkRedactEOSLoop")
	want := map[string]float64{"ns/op": 83682, "cpu-µs/record": 37.78, "join-ms": 1136, "records/cpu-s": 26471, "records/s": 11950, "B/op": 10470, "allocs/op": 29}
	if len(m) != len(want) {
		t.Fatalf("metrics %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	both := out[:len(out)-len("PASS\n")] + "BenchmarkEOSLoopPassThrough-2 \t 50000\t 12000 ns/op\t 7.5 cpu-µs/record\t 133333 records/cpu-s\nPASS\n"
	if got := benchMetrics(both, "BenchmarkEOSLoopPassThrough"); got["cpu-µs/record"] != 7.5 || got["records/cpu-s"] != 133333 {
		t.Errorf("pass-through metrics %v from the same output", got)
	}
	if got := benchMetrics(both, "BenchmarkRedactEOSLoop"); got["cpu-µs/record"] != 37.78 {
		t.Errorf("loop metrics %v next to the pass-through line", got)
	}
	if m := benchMetrics("FAIL\n", "BenchmarkRedactEOSLoop"); len(m) != 0 {
		t.Errorf("metrics from a failed run: %v", m)
	}
}

func TestFmtShares(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want string
	}{
		{nil, "-"},
		{[]float64{0.031, 0, 0.125}, "3 / 0 / 13 %"},
		{[]float64{1}, "100 %"},
	} {
		if got := fmtShares(tc.in); got != tc.want {
			t.Errorf("fmtShares(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
