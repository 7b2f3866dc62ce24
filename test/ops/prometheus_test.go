package ops

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mirrorline/mirrorline/collector"
)

// lookPrometheusTool finds promtool or prometheus (Debian package prometheus,
// installed by test/deps).
func lookPrometheusTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (make test installs the Debian package prometheus through test/deps)", name)
	}
	return p
}

// The alert rules load, and each alert fires on the series it is written for
// and stays quiet on healthy ones (deploy/prometheus/tests).
func TestPrometheusRules(t *testing.T) {
	promtool := lookPrometheusTool(t, "promtool")
	rules, _ := filepath.Glob(repoPath("deploy", "prometheus", "rules", "*.yml"))
	if len(rules) == 0 {
		t.Fatal("no rule files in deploy/prometheus/rules")
	}
	out, err := run(t, root, promtool, append([]string{"check", "rules"}, rules...)...)
	if err != nil || !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	tests, _ := filepath.Glob(repoPath("deploy", "prometheus", "tests", "*.yml"))
	if len(tests) == 0 {
		t.Fatal("no rule tests in deploy/prometheus/tests")
	}
	out, err = run(t, root, promtool, append([]string{"test", "rules"}, tests...)...)
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	// Every alert has a unit test, a severity, a summary and a description.
	type rule struct {
		Alert       string            `yaml:"alert"`
		Expr        string            `yaml:"expr"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	var tested strings.Builder
	for _, f := range tests {
		b, _ := os.ReadFile(f)
		tested.Write(b)
	}
	alerts := 0
	for _, f := range rules {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				alerts++
				if !regexp.MustCompile(`\b` + r.Alert + `\b`).MatchString(tested.String()) {
					t.Errorf("alert %s has no promtool unit test", r.Alert)
				}
				if s := r.Labels["severity"]; s != "info" && s != "warning" && s != "critical" {
					t.Errorf("alert %s: severity %q", r.Alert, s)
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("alert %s: needs a summary and a description", r.Alert)
				}
			}
		}
	}
	if alerts < 6 {
		t.Errorf("only %d alerts", alerts)
	}
}

// The Prometheus configuration of docker-compose is valid (its rule_files glob
// points inside the container, so rules are checked above).
func TestPrometheusConfig(t *testing.T) {
	promtool := lookPrometheusTool(t, "promtool")
	b, err := os.ReadFile(repoPath("deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	// Point rule_files at the repository's rules so promtool can load them.
	cfg := strings.ReplaceAll(string(b), "/etc/prometheus/rules/", repoPath("deploy", "prometheus", "rules")+"/")
	p := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, root, promtool, "check", "config", p); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
}

// alertRules reads the alert rules of deploy/prometheus/rules by name.
func alertRules(t *testing.T) map[string]struct {
	Expr   string
	Labels map[string]string
} {
	t.Helper()
	files, _ := filepath.Glob(repoPath("deploy", "prometheus", "rules", "*.yml"))
	out := map[string]struct {
		Expr   string
		Labels map[string]string
	}{}
	for _, f := range files {
		var doc struct {
			Groups []struct {
				Rules []struct {
					Alert  string            `yaml:"alert"`
					Expr   string            `yaml:"expr"`
					Labels map[string]string `yaml:"labels"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		readYAML(t, f, &doc)
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out[r.Alert] = struct {
						Expr   string
						Labels map[string]string
					}{r.Expr, r.Labels}
				}
			}
		}
	}
	return out
}

// reasonSet returns the reasons of the nth (from 0) reason matcher with
// operator op (=~ or !~) in expr, sorted, or nil.
func reasonSet(expr, op string, nth int) []string {
	ms := regexp.MustCompile(`reason`+regexp.QuoteMeta(op)+`"([^"]*)"`).FindAllStringSubmatch(expr, -1)
	if nth >= len(ms) {
		return nil
	}
	rs := strings.Split(ms[nth][1], "|")
	sort.Strings(rs)
	return rs
}

// The safety metrics of "safe by default" are alerted on: a replayer refusing
// an unsafe request-target (critical), captures piling up in the collector's
// queue, records cut to the record budget, connections refused at --max-conns
// and client-caused capture drops. Drops caused by clients are one list: the
// capture-drop alerts (Kafka, buffers) leave out exactly the collector's
// client-caused reasons, and the client-drop alert counts exactly those.
func TestPrometheusSafetyAlerts(t *testing.T) {
	rules := alertRules(t)
	for name, severity := range map[string]string{
		"MirrorlineReplayerUnsafeTarget": "critical",
		"MirrorlineCaptureQueueHigh":     "warning",
		"MirrorlineRecordsTruncated":     "warning",
		"MirrorlineProxyConnectionsShed": "warning",
		"MirrorlineCollectorClientDrops": "info",
	} {
		r, ok := rules[name]
		if !ok {
			t.Errorf("no alert %s", name)
			continue
		}
		if r.Labels["severity"] != severity {
			t.Errorf("alert %s: severity %q, want %q", name, r.Labels["severity"], severity)
		}
	}
	for name, metrics := range map[string][]string{
		"MirrorlineReplayerUnsafeTarget": {`mirrorline_replayer_dropped_total{reason="unsafe_target"}`},
		"MirrorlineCaptureQueueHigh":     {"mirrorline_collector_queue_records"},
		"MirrorlineRecordsTruncated":     {"mirrorline_collector_truncated_total", "mirrorline_replayer_truncated_total", "mirrorline_comparator_truncated_total"},
		"MirrorlineProxyConnectionsShed": {`mirrorline_collector_connections_shed_total{reason="rejected"}`},
	} {
		for _, m := range metrics {
			if r, ok := rules[name]; ok && !strings.Contains(r.Expr, m) {
				t.Errorf("alert %s does not use %s", name, m)
			}
		}
	}

	client := []string{collector.DropUnsafeTarget, collector.DropIncompleteBody, collector.DropBadFraming, collector.DropBodyTimeout, collector.DropUnsupported}
	sort.Strings(client)
	// Refused before they were captured (captured_total counts unsafe targets:
	// they are dropped after capture).
	refused := []string{collector.DropIncompleteBody, collector.DropBadFraming, collector.DropBodyTimeout, collector.DropUnsupported}
	sort.Strings(refused)
	// The egress proxy's tunnels (CONNECT, not captured) and refusals of
	// hosts not allowed are drops by design, not failures.
	byDesign := append([]string{collector.DropEgressTunnel, collector.DropEgressDenied}, client...)
	sort.Strings(byDesign)
	for _, name := range []string{"MirrorlineCollectorDropping", "MirrorlineCollectorDroppingMost"} {
		if got := reasonSet(rules[name].Expr, "!~", 0); !slices.Equal(got, byDesign) {
			t.Errorf("alert %s leaves out reasons %v, want the client-caused and by-design %v", name, got, byDesign)
		}
	}
	expr := rules["MirrorlineCollectorClientDrops"].Expr
	if got := reasonSet(expr, "=~", 0); !slices.Equal(got, client) {
		t.Errorf("MirrorlineCollectorClientDrops counts reasons %v, want %v", got, client)
	}
	if got := reasonSet(expr, "=~", 1); !slices.Equal(got, refused) {
		t.Errorf("MirrorlineCollectorClientDrops adds reasons %v to the captures, want %v", got, refused)
	}
	// The collector's own failures stay in the capture-drop alerts.
	for _, r := range []string{collector.DropQueueFull, collector.DropPublishError, collector.DropEncodeError, collector.DropClosed, collector.DropTooLarge} {
		if slices.Contains(client, r) {
			t.Errorf("reason %s is the collector's, not the client's", r)
		}
	}
}
