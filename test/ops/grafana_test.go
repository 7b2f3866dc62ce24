package ops

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

type gPanel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Panels     []gPanel `json:"panels"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
}

// The provisioned dashboard is well formed, has the panels operators need and
// uses every metric of the contract; the provisioning files point at it. (Its queries are
// run against a real Prometheus in test/e2e/ops_prometheus_test.go.)
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(repoPath("deploy", "grafana", "dashboards", "mirrorline.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID        string   `json:"uid"`
		Title      string   `json:"title"`
		Panels     []gPanel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Error("want a datasource variable, so the dashboard imports into any Grafana")
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	rows := map[string]bool{}
	var exprs strings.Builder
	var walk func([]gPanel)
	walk = func(ps []gPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
				t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				rows[strings.ToLower(p.Title)] = true
				continue
			}
			titles[strings.ToLower(p.Title)] = true
			if p.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] || strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q: query %q/%q", p.Title, tg.RefID, tg.Expr)
				}
				refs[tg.RefID] = true
				if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
					t.Errorf("panel %q: unbalanced query %q", p.Title, tg.Expr)
				}
				exprs.WriteString(tg.Expr + "\n")
			}
		}
	}
	walk(d.Panels)
	for _, want := range []string{"capture rate", "drops by reason", "redaction outcomes", "redactions by rule", "replay rate vs asked", "schedule lag", "shadow latency vs primary", "diff rate by verdict", "consumer lag (records)", "consumer lag (seconds)"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
	// The safety metrics: what a crash would lose, records cut to the record
	// budget, hostile clients and request-targets, connection caps, throttling.
	if !rows["safety"] {
		t.Error(`no "Safety" row`)
	}
	for _, want := range []string{"client-caused capture drops", "truncated records by stage", "replayer safety skips", "open client connections", "shed connections", "capture queue (records)", "replayer throttled time"} {
		if !titles[want] {
			t.Errorf("no panel %q", want)
		}
	}
	for _, m := range []string{"collector_queue_records", "collector_truncated_total", "replayer_truncated_total", "comparator_truncated_total", `replayer_dropped_total{job=~"$job",reason="unsafe_target"}`, "replayer_errors_total", "collector_open_connections", "collector_connections_shed_total", "replayer_throttled_seconds_total"} {
		if !strings.Contains(exprs.String(), "mirrorline_"+m) {
			t.Errorf("no panel uses safety metric mirrorline_%s", m)
		}
	}
	for _, r := range []string{"unsafe_target", "incomplete_body", "bad_framing", "body_timeout", "unsupported", "too_large"} {
		if !regexp.MustCompile(`mirrorline_collector_dropped_total\{[^}]*reason=~?"[^"]*\b` + r + `\b`).MatchString(exprs.String()) {
			t.Errorf("no panel selects capture drops with reason %s", r)
		}
	}
	for _, r := range []string{"incomplete", "upgrade"} {
		if !regexp.MustCompile(`mirrorline_replayer_errors_total\{[^}]*reason=~"[^"]*\b` + r + `\b`).MatchString(exprs.String()) {
			t.Errorf("no panel selects replayer skips with reason %s", r)
		}
	}
	for _, m := range []string{"collector_captured_total", "collector_dropped_total", "collector_publish_latency_seconds", "redactor_records_total", "redactor_redactions_total", "replayer_sent_total", "replayer_schedule_lag_seconds", "replayer_response_latency_seconds", "comparator_exchanges_total", "comparator_latency_seconds", "consumer_lag_records", "consumer_lag_seconds"} {
		if !strings.Contains(exprs.String(), "mirrorline_"+m) {
			t.Errorf("no panel uses contract metric mirrorline_%s", m)
		}
	}

	// Provisioning: a Prometheus datasource and a file provider whose path is
	// where docker-compose mounts deploy/grafana/dashboards.
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID, URL string
			JSONData             map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, repoPath("deploy", "grafana", "provisioning", "datasources", "mirrorline.yaml"), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL == "" || ds.Datasources[0].JSONData["timeInterval"] == nil {
		t.Errorf("datasource provisioning: %+v", ds)
	}
	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string         `yaml:"type"`
			Options map[string]any `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, repoPath("deploy", "grafana", "provisioning", "dashboards", "mirrorline.yaml"), &dp)
	if dp.APIVersion != 1 || len(dp.Providers) != 1 || dp.Providers[0].Type != "file" {
		t.Fatalf("dashboard provisioning: %+v", dp)
	}
	path, _ := dp.Providers[0].Options["path"].(string)
	compose, err := os.ReadFile(repoPath("deploy", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if path == "" || !strings.Contains(string(compose), "./grafana/dashboards:"+path+":ro") {
		t.Errorf("docker-compose does not mount deploy/grafana/dashboards at the provider path %q", path)
	}
	for _, dir := range []string{"datasources", "dashboards"} {
		if !strings.Contains(string(compose), "./grafana/provisioning/"+dir+":/etc/grafana/provisioning/"+dir) {
			t.Errorf("docker-compose does not mount the %s provisioning", dir)
		}
	}
	if _, err := os.Stat(filepath.Join(repoPath("deploy", "grafana", "dashboards"), "mirrorline.json")); err != nil {
		t.Fatal(err)
	}
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
