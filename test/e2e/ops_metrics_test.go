package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// specMetric is one metric of the public contract (docs/operations.md): its family name, type, labels, and
// whether the ops traffic must have moved it.
type specMetric struct {
	family string
	typ    string
	labels []string
	moved  bool
}

// specMetrics are the contract's metrics served by `mirrorline up` (consumer lag
// included: up refreshes it every 15 s from launch).
var specMetrics = []specMetric{
	{"mirrorline_collector_captured_total", "counter", nil, true},
	{"mirrorline_collector_dropped_total", "counter", []string{"reason"}, false},
	{"mirrorline_collector_publish_latency_seconds", "histogram", nil, true},
	{"mirrorline_redactor_records_total", "counter", []string{"outcome"}, true},
	{"mirrorline_redactor_redactions_total", "counter", []string{"rule"}, true},
	{"mirrorline_replayer_sent_total", "counter", []string{"status_class"}, true},
	{"mirrorline_replayer_schedule_lag_seconds", "histogram", nil, true},
	{"mirrorline_replayer_response_latency_seconds", "histogram", nil, true},
	{"mirrorline_consumer_lag_records", "gauge", []string{"group", "topic", "partition"}, false},
	{"mirrorline_consumer_lag_seconds", "gauge", []string{"group", "topic"}, false},
}

// specComparatorMetrics are served by `mirrorline compare`.
var specComparatorMetrics = []specMetric{
	{"mirrorline_comparator_exchanges_total", "counter", []string{"verdict", "endpoint"}, true},
	{"mirrorline_comparator_latency_seconds", "histogram", []string{"side"}, true},
}

// checkSpecMetric reports what is missing of m in e ("" when all is there).
func checkSpecMetric(e *exposition, m specMetric) string {
	if got := e.types[m.family]; got != m.typ {
		return fmt.Sprintf("%s: type %q, want %q", m.family, got, m.typ)
	}
	series := m.family
	if m.typ == "histogram" {
		series = m.family + "_count"
	}
	ss := e.find(series)
	if len(ss) == 0 {
		return m.family + ": no series"
	}
	total := 0.0
	for _, s := range ss {
		for _, l := range m.labels {
			if _, ok := s.labels[l]; !ok {
				return fmt.Sprintf("%s: a series without label %s: %v", m.family, l, s.labels)
			}
		}
		total += s.value
	}
	if m.moved && total == 0 {
		return m.family + ": still 0 after traffic"
	}
	return ""
}

// waitWarm waits until every contract metric (the comparator's too when the binary
// has `mirrorline compare`) is exposed with its labels and moved by the
// traffic, and up's consumer lag covers the redactor's and replayer's groups.
// extra names more sample names that must be exposed.
func (p *opsPipeline) waitWarm(t *testing.T, timeout time.Duration, extra ...string) *exposition {
	t.Helper()
	want := append([]specMetric(nil), specMetrics...)
	if p.hasCompare {
		want = append(want, specComparatorMetrics...)
	}
	groups := []string{"mirrorline-redact-" + p.service, "mirrorline-replay-" + p.service}
	start := time.Now()
	// up's first lag refresh runs at launch (before its groups exist); the next
	// one is 15 s later.
	var missing []string
	var e *exposition
	if !testproc.WaitEvery(timeout, 250*time.Millisecond, func() bool {
		var err error
		if e, err = p.scrapeAll(); err != nil {
			t.Fatal(err)
		}
		missing = missing[:0]
		for _, m := range want {
			if msg := checkSpecMetric(e, m); msg != "" {
				missing = append(missing, msg)
			}
		}
		seen := map[string]bool{}
		for _, s := range e.find("mirrorline_consumer_lag_records") {
			seen[s.labels["group"]] = true
		}
		for _, g := range groups {
			if !seen[g] {
				missing = append(missing, "mirrorline_consumer_lag_records: no series for group "+g)
			}
		}
		names := e.names()
		for _, n := range extra {
			if !names[n] {
				missing = append(missing, n+": no series")
			}
		}
		return len(missing) == 0
	}) {
		t.Fatalf("after %s and %d requests, missing:\n  %s\nup output:\n%s", time.Since(start).Round(time.Second), p.trafficSent.Load(), strings.Join(missing, "\n  "), p.upOut)
	}
	return e
}

// Every long-running command serves /metrics, /healthz and /readyz, and every
// contract metric is exposed with its labels by `mirrorline up` (and `mirrorline
// compare`) once traffic flowed through the whole pipeline.
func TestOpsMetricsEndpoints(t *testing.T) {
	t.Parallel()
	p := startOpsPipeline(t)
	p.startTraffic(t, 30, 3000)

	start := time.Now()
	last := p.waitWarm(t, 50*time.Second)
	t.Logf("all contract metrics exposed after %s (%d requests)", time.Since(start).Round(100*time.Millisecond), p.trafficSent.Load())

	checkSafetyMetrics(t, last, p.hasCompare)

	// Labels never carry payload data.
	for _, s := range last.samples {
		if !strings.HasPrefix(s.name, "mirrorline_") {
			continue
		}
		for k, v := range s.labels {
			for _, pii := range []string{opsCard, opsEmail, opsToken, "Straße", "Olga"} {
				if strings.Contains(v, pii) {
					t.Errorf("%s label %s=%q carries payload data", s.name, k, v)
				}
			}
		}
	}
	// Label values are a small closed set, not per request.
	values := map[string]map[string]bool{}
	for _, s := range last.samples {
		for k, v := range s.labels {
			key := s.name + "/" + k
			if values[key] == nil {
				values[key] = map[string]bool{}
			}
			values[key][v] = true
		}
	}
	for key, vs := range values {
		if strings.HasPrefix(key, "mirrorline_") && len(vs) > 40 {
			t.Errorf("%s has %d distinct values: unbounded label", key, len(vs))
		}
	}

	for _, addr := range p.metrics {
		for _, path := range []string{"/healthz", "/readyz"} {
			code, body, err := httpGet("http://" + addr + path)
			if err != nil || code != http.StatusOK {
				t.Errorf("%s%s: %d %q %v", addr, path, code, body, err)
			}
		}
	}
	var names []string
	for n := range last.names() {
		if strings.HasPrefix(n, "mirrorline_") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	t.Logf("mirrorline series names: %s", strings.Join(names, " "))
}

// safetyMetric is a metric the safety alerts and the dashboard's Safety row
// rely on: its type and the label values it must expose from the start (at 0),
// so that a dashboard shows 0 rather than nothing and an alert on increase()
// sees the first event.
type safetyMetric struct {
	family, typ, label string
	values             []string
}

var safetyMetrics = []safetyMetric{
	{"mirrorline_collector_dropped_total", "counter", "reason", []string{"queue_full", "publish_error", "encode_error", "closed", "too_large", "unsafe_target", "incomplete_body", "bad_framing", "body_timeout", "unsupported"}},
	{"mirrorline_collector_connections_shed_total", "counter", "reason", []string{"idle_closed", "rejected"}},
	{"mirrorline_collector_queue_records", "gauge", "", nil},
	{"mirrorline_collector_open_connections", "gauge", "", nil},
	{"mirrorline_collector_truncated_total", "counter", "", nil},
	{"mirrorline_replayer_dropped_total", "counter", "reason", []string{"unsafe_target"}},
	{"mirrorline_replayer_truncated_total", "counter", "", nil},
	{"mirrorline_replayer_throttled_seconds_total", "counter", "", nil},
}

// checkSafetyMetrics checks that e exposes every safety metric (the
// comparator's too when withCompare).
func checkSafetyMetrics(t *testing.T, e *exposition, withCompare bool) {
	t.Helper()
	want := append([]safetyMetric(nil), safetyMetrics...)
	if withCompare {
		want = append(want, safetyMetric{"mirrorline_comparator_truncated_total", "counter", "", nil})
	}
	for _, m := range want {
		if got := e.types[m.family]; got != m.typ {
			t.Errorf("safety metric %s: type %q, want %q", m.family, got, m.typ)
			continue
		}
		ss := e.find(m.family)
		if len(ss) == 0 {
			t.Errorf("safety metric %s: no series", m.family)
		}
		seen := map[string]bool{}
		for _, s := range ss {
			seen[s.labels[m.label]] = true
		}
		for _, v := range m.values {
			if !seen[v] {
				t.Errorf("safety metric %s: no series with %s=%q from the start", m.family, m.label, v)
			}
		}
	}
}
