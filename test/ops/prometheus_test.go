package ops

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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
