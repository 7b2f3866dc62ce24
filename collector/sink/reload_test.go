package sink

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
)

// A reload of the sink's policy applies from the next copy on, on the same
// keep-alive connection: routes and sample fraction select what is published,
// the body limit cuts it, and copies not published are still answered 200.
func TestSinkReload(t *testing.T) {
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "svc", m, nil)
	s, err := New(em, WithBodyLimit(4))
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, s.Serve)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer hc.CloseIdleConnections()
	send := func(path string) {
		t.Helper()
		resp, err := hc.Post("http://"+addr+path, "text/plain", strings.NewReader("0123456789"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200", path, resp.StatusCode)
		}
	}
	for i := range 4 {
		send(fmt.Sprintf("/v1/%d", i))
	}
	half := 0.5
	pol, err := collector.NewPolicy(1, []collector.Route{{Name: "orders", PathPrefix: "/orders", Sample: &half}}, 8)
	if err != nil {
		t.Fatal(err)
	}
	s.Reload(pol)
	if got := testutil.ToFloat64(m.SampleRatio.WithLabelValues("sink", "orders")); got != 0.5 {
		t.Fatalf("sample_ratio{sink,orders} = %v, want 0.5", got)
	}
	for i := range 100 {
		send(fmt.Sprintf("/orders/%d", i))
		send(fmt.Sprintf("/other/%d", i))
	}
	var before, orders int
	collectortest.Flush(t, em)
	for _, ex := range rec.Exchanges(t) {
		url, b := ex.GetRequest().GetUrl(), string(ex.GetRequest().GetBody())
		switch {
		case strings.HasPrefix(url, "/v1/") && b == "0123":
			before++
		case strings.HasPrefix(url, "/orders/") && b == "01234567":
			orders++
		default:
			t.Fatalf("published %s with body %q: want /v1/ cut at 4 or /orders/ cut at 8", url, b)
		}
	}
	if before != 4 || orders < 48 || orders > 52 {
		t.Fatalf("published %d before the reload (want 4), %d of 100 /orders/ at 0.5 (want 50±2)", before, orders)
	}
	if got := testutil.ToFloat64(m.Skipped.WithLabelValues("filtered")); got != 100 {
		t.Fatalf("skipped{filtered} = %v, want 100", got)
	}
}
