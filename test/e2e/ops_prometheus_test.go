package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// Grafana's built-in variables as Grafana computes them for this test's
// Prometheus (scrape_interval 1s): $__rate_interval = max(4 x scrape interval,
// $__interval + scrape interval).
var grafanaBuiltins = map[string]string{
	"$__rate_interval": "5s",
	"$__interval":      "1s",
	"$__range":         "1m",
}

// The dashboard's template variables, set to "All" (allValue ".*").
var dashboardVariables = map[string]string{"job": ".*", "group": ".*", "endpoint": ".*"}

// pendingMetric matches metrics that the dashboard and the alerts may use before
// the binary exposes them: the comparator's (when the binary has no
// `mirrorline compare`). A name not matched here must be exposed by the running
// pipeline, so a typo fails (or a safety metric an alert relies on goes
// missing).
var pendingMetric = regexp.MustCompile(`^mirrorline_comparator_[a-z_]+$`)

var metricNameRE = regexp.MustCompile(`\bmirrorline_[a-z0-9_]+\b`)

// dashboardTarget is one query of the dashboard.
type dashboardTarget struct {
	panel, ref, expr string
}

// grafanaDashboard reads the provisioned dashboard's queries and variables.
func grafanaDashboard(t *testing.T) (targets []dashboardTarget, variables map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana", "dashboards", "mirrorline.json"))
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		Type    string  `json:"type"`
		Title   string  `json:"title"`
		Panels  []panel `json:"panels"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name       string          `json:"name"`
				Type       string          `json:"type"`
				Definition string          `json:"definition"`
				Query      json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				targets = append(targets, dashboardTarget{panel: p.Title, ref: tg.RefID, expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	variables = map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			variables[v.Name] = v.Definition
		}
	}
	return targets, variables
}

// substitute replaces Grafana's variables in a panel query.
func substitute(expr string) string {
	for k, v := range grafanaBuiltins {
		expr = strings.ReplaceAll(expr, k, v)
	}
	for k, v := range dashboardVariables {
		expr = strings.ReplaceAll(expr, "${"+k+"}", v)
		expr = regexp.MustCompile(`\$`+k+`\b`).ReplaceAllString(expr, v)
	}
	return expr
}

// promAPI queries Prometheus's HTTP API.
type promAPI string

func (p promAPI) get(path string, params url.Values, into any) error {
	code, body, err := httpGet(string(p) + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		return fmt.Errorf("%s: %d %s", path, code, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, into)
}

// query runs an instant query; it returns how many series have a finite value.
func (p promAPI) query(expr string) (int, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			n++
		}
	}
	return n, nil
}

// startPrometheus runs the Debian prometheus on loopback, scraping targets
// every second and loading deploy/prometheus/rules; it returns its API.
func startPrometheus(t *testing.T, targets []string) promAPI {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed (make test installs the Debian package prometheus through test/deps)")
	}
	rules, err := filepath.Abs(filepath.Join("..", "..", "deploy", "prometheus", "rules"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files": []string{filepath.Join(rules, "*.yml")},
		"scrape_configs": []any{map[string]any{
			"job_name":       "mirrorline",
			"static_configs": []any{map[string]any{"targets": targets}},
		}},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testproc.FreeAddr(t)
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	out := &testproc.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("prometheus did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out)
		}
	})
	api := promAPI("http://" + addr)
	if !testproc.WaitEvery(30*time.Second, 100*time.Millisecond, func() bool {
		code, _, err := httpGet(string(api) + "/-/ready")
		return err == nil && code == http.StatusOK
	}) {
		t.Fatalf("prometheus not ready after 30s\n%s", out)
	}
	return api
}

// A real Prometheus scrapes a running pipeline (`mirrorline up`, plus
// `mirrorline compare` when the binary has it): every query of the Grafana
// dashboard returns data, every template variable has values, and every alert
// rule evaluates without error.
func TestOpsDashboardQueriesReturnData(t *testing.T) {
	t.Parallel()
	targets, variables := grafanaDashboard(t)
	if len(targets) < 15 {
		t.Fatalf("dashboard has only %d queries", len(targets))
	}
	p := startOpsPipeline(t)
	api := startPrometheus(t, p.metrics)
	p.startTraffic(t, 30, 4000)

	// Once the pipeline is warm, the names it exposes decide which queries are
	// required (pendingMetric).
	exposed := p.waitWarm(t, 50*time.Second, "mirrorline_replayer_errors_total").names()
	usable := func(expr string) (ok bool, pending []string) {
		for _, n := range metricNameRE.FindAllString(expr, -1) {
			if exposed[n] {
				continue
			}
			if !pendingMetric.MatchString(n) {
				t.Errorf("query uses %s, which mirrorline does not expose: %s", n, expr)
			}
			pending = append(pending, n)
		}
		return len(pending) == 0, pending
	}
	type check struct {
		what, expr string
		ok         bool
	}
	var checks []*check
	for _, tg := range targets {
		expr := substitute(tg.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s/%s: unsubstituted variable in %q", tg.panel, tg.ref, expr)
			continue
		}
		if ok, pending := usable(expr); !ok {
			t.Logf("panel %q query %s not required: %v not exposed by this binary yet", tg.panel, tg.ref, pending)
			continue
		}
		checks = append(checks, &check{what: fmt.Sprintf("panel %q query %s", tg.panel, tg.ref), expr: expr})
	}
	if t.Failed() {
		t.FailNow()
	}
	// Template variables: label_values(SELECTOR, LABEL).
	lv := regexp.MustCompile(`^label_values\((.*),\s*([a-zA-Z_]+)\)$`)
	for name, def := range variables {
		m := lv.FindStringSubmatch(def)
		if m == nil {
			t.Errorf("variable %s: unsupported definition %q", name, def)
			continue
		}
		if ok, pending := usable(m[1]); !ok {
			t.Logf("variable %s not required: %v not exposed by this binary yet", name, pending)
			continue
		}
		checks = append(checks, &check{what: "variable " + name, expr: fmt.Sprintf("count by (%s) (%s)", m[2], m[1])})
	}

	start := time.Now()
	var failing []string
	if !testproc.WaitEvery(60*time.Second, 500*time.Millisecond, func() bool {
		failing = failing[:0]
		for _, c := range checks {
			if c.ok {
				continue
			}
			n, err := api.query(c.expr)
			if err != nil {
				t.Fatalf("%s: %v\n%s", c.what, err, c.expr)
			}
			c.ok = n > 0
			if !c.ok {
				failing = append(failing, c.what+": "+c.expr)
			}
		}
		return len(failing) == 0
	}) {
		t.Fatalf("after %s (%d requests), queries without data:\n  %s", time.Since(start).Round(time.Second), p.trafficSent.Load(), strings.Join(failing, "\n  "))
	}
	t.Logf("%d dashboard queries and variables return data after %s (%d requests)", len(checks), time.Since(start).Round(100*time.Millisecond), p.trafficSent.Load())

	checkSafetyRow(t, api, p, targets)

	// Scrape targets are up.
	var tg struct {
		ActiveTargets []struct {
			ScrapeURL string `json:"scrapeUrl"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := api.get("/api/v1/targets", url.Values{}, &tg); err != nil {
		t.Fatal(err)
	}
	if len(tg.ActiveTargets) != len(p.metrics) {
		t.Errorf("%d scrape targets, want %d", len(tg.ActiveTargets), len(p.metrics))
	}
	for _, a := range tg.ActiveTargets {
		if a.Health != "up" {
			t.Errorf("target %s: %s %s", a.ScrapeURL, a.Health, a.LastError)
		}
	}

	// Every alert rule is loaded, has been evaluated and evaluates cleanly
	// against the live series; its metrics exist (or are pending).
	type rule struct {
		Name           string `json:"name"`
		Query          string `json:"query"`
		Health         string `json:"health"`
		LastError      string `json:"lastError"`
		LastEvaluation string `json:"lastEvaluation"`
	}
	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	var all []rule
	testproc.Eventually(t, 60*time.Second, "every alert rule evaluated", func() bool {
		if err := api.get("/api/v1/rules", url.Values{}, &rules); err != nil {
			return false
		}
		all = all[:0]
		for _, g := range rules.Groups {
			for _, r := range g.Rules {
				if strings.HasPrefix(r.LastEvaluation, "0001-") || r.Health == "unknown" {
					return false
				}
				all = append(all, r)
			}
		}
		return len(all) > 0
	})
	var names []string
	for _, r := range all {
		names = append(names, r.Name)
		if r.Health != "ok" {
			t.Errorf("rule %s: health %s: %s", r.Name, r.Health, r.LastError)
		}
		usable(r.Query)
	}
	sort.Strings(names)
	t.Logf("%d alert rules healthy: %s", len(all), strings.Join(names, " "))
}

// vector runs an instant query; it returns the finite value of each series by
// the value of label.
func (p promAPI) vector(expr, label string) (map[string]float64, error) {
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.get("/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) {
			out[r.Metric[label]] = v
		}
	}
	return out, nil
}

// hostileClient sends, until ctx ends, requests the proxy must not capture:
// a request-target that could make a replayer leave the shadow, and a body
// that ends before its declared length. It returns how many of each it sent.
func hostileClient(ctx context.Context, proxyAddr string, unsafe, incomplete *atomic.Int64) {
	send := func(raw string, closeAfter bool) bool {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", proxyAddr)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, raw); err != nil {
			return false
		}
		if closeAfter {
			return true
		}
		// Wait for the primary's answer: the request was forwarded.
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if send("GET //evil.example/steal HTTP/1.1\r\nHost: payments\r\nConnection: close\r\n\r\n", false) {
			unsafe.Add(1)
		}
		if send("POST /payments HTTP/1.1\r\nHost: payments\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"amount\": 1", true) {
			incomplete.Add(1)
		}
	}
}

// checkSafetyRow: the dashboard's Safety row shows hostile clients while they
// send: the client-caused capture drops panel has unsafe_target and
// incomplete_body above 0, and the other Safety panels keep returning data.
func checkSafetyRow(t *testing.T, api promAPI, p *opsPipeline, targets []dashboardTarget) {
	t.Helper()
	var drops string
	safety := map[string]bool{}
	for _, tg := range targets {
		switch tg.panel {
		case "Client-caused capture drops":
			drops = substitute(tg.expr)
			safety[tg.panel] = true
		case "Truncated records by stage", "Replayer safety skips", "Open client connections", "Shed connections", "Capture queue (records)", "Replayer throttled time":
			safety[tg.panel] = true
		}
	}
	if drops == "" || len(safety) != 7 {
		t.Fatalf("the dashboard's Safety row is incomplete: %v", safety)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var unsafe, incomplete atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		hostileClient(ctx, strings.TrimPrefix(p.proxyURL, "http://"), &unsafe, &incomplete)
	}()
	defer func() { cancel(); <-done }()

	start := time.Now()
	var got map[string]float64
	if !testproc.WaitEvery(60*time.Second, 250*time.Millisecond, func() bool {
		var err error
		if got, err = api.vector(drops, "reason"); err != nil {
			t.Fatalf("%s: %v", drops, err)
		}
		return got["unsafe_target"] > 0 && got["incomplete_body"] > 0
	}) {
		t.Fatalf("after %s (%d unsafe request-targets, %d incomplete bodies sent), panel \"Client-caused capture drops\" shows %v\n%s", time.Since(start).Round(time.Second), unsafe.Load(), incomplete.Load(), got, drops)
	}
	t.Logf("Safety row: client-caused capture drops %v /s after %s (%d unsafe request-targets, %d incomplete bodies sent)", got, time.Since(start).Round(100*time.Millisecond), unsafe.Load(), incomplete.Load())
	for reason, v := range got {
		if reason != "unsafe_target" && reason != "incomplete_body" && v != 0 {
			t.Errorf("panel \"Client-caused capture drops\": %s at %v/s, but no client sent that", reason, v)
		}
	}
}
