package ops

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of the Compose specification the test reads.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	DependsOn   any               `yaml:"depends_on"`
	Healthcheck map[string]any    `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
	Target     string `yaml:"target"`
}

// deploy/docker-compose.yml cannot run here (no container engine): check its
// structure, that its files exist, that every mirrorline command, flag and the
// config file it uses are accepted by the binary, and that Prometheus scrapes
// every stage.
func TestDockerCompose(t *testing.T) {
	composePath := repoPath("deploy", "docker-compose.yml")
	b, err := os.ReadFile(composePath)
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	var names []string
	for n := range cf.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, want := range []string{"kafka", "topics", "primary", "shadow", "proxy", "redactor", "replayer", "comparator", "lag", "prometheus", "grafana"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("no service %q (have %v)", want, names)
		}
	}

	kafka := cf.Services["kafka"]
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") || !strings.Contains(kafka.Environment["KAFKA_PROCESS_ROLES"], "controller") {
		t.Errorf("kafka must be the apache/kafka image in KRaft mode: %+v", kafka)
	}
	for k := range kafka.Environment {
		if strings.Contains(strings.ToLower(k), "zookeeper") {
			t.Errorf("kafka: %s: KRaft needs no ZooKeeper", k)
		}
	}
	if kafka.Healthcheck == nil {
		t.Error("kafka: the stages wait for its healthcheck")
	}

	dockerfile, err := os.ReadFile(repoPath("deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+\S+\s+AS\s+(\S+)`).FindAllStringSubmatch(string(dockerfile), -1) {
		stages[m[1]] = true
	}

	imageOf := map[string]string{} // image -> build target
	for _, n := range names {
		s := cf.Services[n]
		if s.Build != nil {
			if !stages[s.Build.Target] {
				t.Errorf("%s: build target %q is not a stage of deploy/Dockerfile", n, s.Build.Target)
			}
			if filepath.Clean(filepath.Join(filepath.Dir(composePath), s.Build.Context, s.Build.Dockerfile)) != repoPath("deploy", "Dockerfile") {
				t.Errorf("%s: build %+v does not use deploy/Dockerfile", n, s.Build)
			}
			imageOf[s.Image] = s.Build.Target
		}
	}
	configs := map[string]string{} // container path -> host file
	mirrorlineServices := map[string]bool{}
	for _, n := range names {
		s := cf.Services[n]
		if s.Image == "" {
			t.Errorf("%s: no image", n)
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is not bound to 127.0.0.1", n, p)
			}
		}
		for _, v := range s.Volumes {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
				continue
			}
			host := filepath.Join(filepath.Dir(composePath), parts[0])
			if _, err := os.Stat(host); err != nil {
				t.Errorf("%s: volume %s: %v", n, v, err)
			}
			if strings.HasSuffix(parts[1], ".yaml") {
				configs[parts[1]] = host
			}
		}
		for _, d := range dependsOn(s.DependsOn) {
			if _, ok := cf.Services[d]; !ok {
				t.Errorf("%s depends on unknown service %s", n, d)
			}
		}
		switch imageOf[s.Image] {
		case "mirrorline":
			mirrorlineServices[n] = true
			checkMirrorlineArgs(t, "compose service "+n, s.Command)
			for i, a := range s.Command {
				if (a == "-c" || a == "--config") && i+1 < len(s.Command) {
					host, ok := configs[s.Command[i+1]]
					if !ok {
						t.Errorf("%s: -c %s is not a mounted file", n, s.Command[i+1])
						continue
					}
					text, err := os.ReadFile(host)
					if err != nil {
						t.Fatal(err)
					}
					checkConfigFile(t, "compose service "+n+" "+host, string(text))
				}
			}
		case "payments":
			checkPaymentsArgs(t, n, s.Command)
		case "":
			if s.Build == nil && !strings.Contains(s.Image, ":") {
				t.Errorf("%s: image %q has no tag", n, s.Image)
			}
		}
	}

	if cf.Services["grafana"].Environment["MIRRORLINE_PROMETHEUS_URL"] != "http://prometheus:9090" {
		t.Error("grafana: MIRRORLINE_PROMETHEUS_URL (the provisioned datasource's URL) must point at the prometheus service")
	}

	// Prometheus scrapes every long-running mirrorline stage.
	pb, err := os.ReadFile(repoPath("deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(pb, &prom); err != nil {
		t.Fatal(err)
	}
	scraped := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				host, port, _ := strings.Cut(tg, ":")
				scraped[host] = true
				if _, ok := cf.Services[host]; !ok {
					t.Errorf("prometheus scrapes %s, not a compose service", tg)
				}
				if !strings.Contains(strings.Join(cf.Services[host].Command, " "), "--metrics-addr :"+port) {
					t.Errorf("prometheus scrapes %s, but the service does not serve metrics on :%s", tg, port)
				}
			}
		}
	}
	for n := range mirrorlineServices {
		if n != "topics" && !scraped[n] {
			t.Errorf("prometheus does not scrape %s", n)
		}
	}
}

func dependsOn(v any) []string {
	var out []string
	switch d := v.(type) {
	case []any:
		for _, e := range d {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
	case map[string]any:
		for k := range d {
			out = append(out, k)
		}
	}
	return out
}

// checkPaymentsArgs: the demo service accepts the flags compose gives it.
func checkPaymentsArgs(t *testing.T, service string, args []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "payments")
	if out, err := run(t, root, "go", "build", "-o", bin, "./test/demo/payments"); err != nil {
		t.Fatalf("build payments: %v\n%s", err, out)
	}
	help, _ := run(t, root, bin, "--help")
	for _, a := range args {
		if strings.HasPrefix(a, "-") && !regexp.MustCompile(`(?m)^\s+-{1,2}`+regexp.QuoteMeta(strings.TrimLeft(a, "-"))+`\b`).MatchString(help) {
			t.Errorf("compose service %s: the payments demo has no flag %s", service, a)
		}
	}
}
