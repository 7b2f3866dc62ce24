package ops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mirrorline/mirrorline/test/demo/payments/app"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// proc is a running mirrorline process.
type proc struct {
	out    *testproc.Output
	exited chan struct{} // closed when the process ends
	err    error         // its exit error, once exited is closed
}

// startProc runs mirrorline with args until the test ends (SIGTERM, then it
// must exit cleanly within 30 s).
func startProc(t *testing.T, name string, env []string, args []string) *proc {
	t.Helper()
	cmd := exec.Command(mlBin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{out: &testproc.Output{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.err != nil {
				t.Errorf("%s: exit: %v\n%s", name, p.err, p.out)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
			t.Errorf("%s did not stop on SIGTERM\n%s", name, p.out)
		}
	})
	return p
}

func httpGet(url string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The chart's containers, run as rendered (same arguments, same config file,
// the redactor's key as its Secret would provide it) against a real Kafka on
// loopback: the topic Job succeeds, every stage (proxy, sink, redact, replay,
// compare, lag --serve) serves /healthz, /readyz and /metrics, and requests sent
// to the proxy reach the shadow through Kafka, scrubbed.
func TestHelmChartCommandsRun(t *testing.T) {
	tl := getTools(t)
	brokers := kafkatest.Brokers(t)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	service := "chartrun-" + hex.EncodeToString(rnd[:])

	noSleep := func(context.Context, time.Duration) {}
	primary := app.New(app.Config{Name: "primary", Version: app.V1, Sleep: noSleep})
	shadow := app.New(app.Config{Name: "shadow", Version: app.V1, Sleep: noSleep})
	ps, ss := httptest.NewServer(primary), httptest.NewServer(shadow)
	t.Cleanup(ps.Close)
	t.Cleanup(ss.Close)

	values := fmt.Sprintf(`service: %s
kafka:
  brokers: [%s]
topics:
  partitions: 2
  replication: 1
collector:
  proxy:
    primary: %s
  sink:
    enabled: true
replayer:
  target: %s
  skipOlderThan: 1h
  autoscaling:
    maxReplicas: 2
lagExporter:
  interval: 2s
redactor:
  rules:
    json_fields:
      card.number: fake
`, service, strings.Join(brokers, ", "), ps.URL, ss.URL)
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	_, objs := render(t, tl, valuesFile)

	// The config file, with the listeners moved to free loopback ports.
	var config string
	for _, o := range objs {
		if o.kind() == "ConfigMap" {
			config = str(o, "data", "config.yaml")
		}
	}
	proxyAddr, sinkAddr := testproc.FreeAddr(t), testproc.FreeAddr(t)
	for old, new := range map[string]string{`listen: ":8080"`: `listen: "` + proxyAddr + `"`, `listen: ":9080"`: `listen: "` + sinkAddr + `"`} {
		if !strings.Contains(config, old) {
			t.Fatalf("config has no %s:\n%s", old, config)
		}
		config = strings.Replace(config, old, new, 1)
	}
	configPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	type stage struct {
		name    string
		args    []string
		env     []string
		metrics string
	}
	var jobs, stages []stage
	for _, o := range objs {
		for _, c := range list(o, "spec", "template", "spec", "containers") {
			if !strings.HasPrefix(str(c, "image"), "mirrorline/mirrorline:") {
				continue
			}
			s := stage{name: o.id()}
			var args []string
			for _, a := range list(c, "args") {
				args = append(args, fmt.Sprint(a))
			}
			for i := 0; i < len(args); i++ {
				switch {
				case args[i] == "/etc/mirrorline/config/config.yaml":
					args[i] = configPath
				case args[i] == "--metrics-addr" && i+1 < len(args):
					s.metrics = testproc.FreeAddr(t)
					args[i+1] = s.metrics
				case strings.Contains(args[i], "$(POD_NAME)"):
					args[i] = strings.ReplaceAll(args[i], "$(POD_NAME)", strings.ToLower(strings.ReplaceAll(o.name(), "/", "-"))+"-0")
				}
			}
			s.args = args
			for _, e := range list(c, "env") {
				if str(e, "valueFrom", "secretKeyRef", "name") != "" {
					s.env = append(s.env, str(e, "name")+"=chart-run-secret-value-0123456789")
				}
			}
			if mirrorlineFlags(t, args[:subcommandLen(args)]).exists {
				if o.kind() == "Job" {
					jobs = append(jobs, s)
				} else {
					stages = append(stages, s)
				}
			} else {
				t.Logf("%s: `mirrorline %s` not in this binary yet: not run", o.id(), args[0])
			}
		}
	}
	if len(jobs) != 1 || len(stages) < 5 {
		t.Fatalf("want the topic Job and at least proxy, sink, redactor, replayer and lag; got jobs %v, stages %v", jobs, stages)
	}
	env := []string{"MIRRORLINE_BROKERS="}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job := exec.CommandContext(ctx, mlBin, jobs[0].args...)
	job.Env = append(os.Environ(), env...)
	if out, err := job.CombinedOutput(); err != nil || strings.Count(string(out), "created") != 5 {
		t.Fatalf("%s %v: %v\n%s", jobs[0].name, jobs[0].args, err, out)
	}

	outs := map[string]*proc{}
	for _, s := range stages {
		outs[s.name] = startProc(t, s.name, append(append([]string{}, env...), s.env...), s.args)
	}
	for _, s := range stages {
		var code int
		var body string
		if !testproc.WaitEvery(60*time.Second, 100*time.Millisecond, func() bool {
			if code, body = httpGet("http://" + s.metrics + "/readyz"); code == http.StatusOK {
				return true
			}
			select {
			case <-outs[s.name].exited:
				t.Fatalf("%s (%v) exited: %v\n%s", s.name, s.args, outs[s.name].err, outs[s.name].out)
			default:
			}
			return false
		}) {
			t.Fatalf("%s (%v): /readyz %d %s\n%s", s.name, s.args, code, body, outs[s.name].out)
		}
	}

	// Every long-running command serves /healthz and /metrics too.
	for _, s := range stages {
		if code, body := httpGet("http://" + s.metrics + "/healthz"); code != http.StatusOK {
			t.Errorf("%s: /healthz %d %s", s.name, code, body)
		}
		if code, body := httpGet("http://" + s.metrics + "/metrics"); code != http.StatusOK || !strings.Contains(body, "\ngo_goroutines ") {
			t.Errorf("%s: /metrics %d %.200s", s.name, code, body)
		}
	}

	// The replayers start at the latest offset (live shadowing): send only once
	// the group owns the clean topic's partitions.
	adm := kadm.NewClient(kafkatest.Client(t))
	group := "mirrorline-replay-" + service
	var err error
	if !testproc.WaitEvery(60*time.Second, 100*time.Millisecond, func() bool {
		gctx, gcancel := context.WithTimeout(context.Background(), 5*time.Second)
		var gs kadm.DescribedGroups
		gs, err = adm.DescribeGroups(gctx, group)
		gcancel()
		assigned := 0
		if err == nil && gs[group].State == "Stable" {
			for _, m := range gs[group].Members {
				if a, ok := m.Assigned.AsConsumer(); ok {
					for _, tp := range a.Topics {
						assigned += len(tp.Partitions)
					}
				}
			}
		}
		return assigned == 2
	}) {
		t.Fatalf("replay group %s never owned the 2 partitions: %v", group, err)
	}

	const n = 40
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf(`{"amount": %d, "currency": "EUR", "card": {"number": "4111111111111111", "expiry": "12/29"}}`, 100+i)
		resp, err := client.Post("http://"+proxyAddr+"/payments", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("request %d through the chart's proxy: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("request %d: primary answered %d", i, resp.StatusCode)
		}
	}
	if !testproc.Wait(60*time.Second, func() bool { return shadow.Stats().Shadow >= n }) {
		var logs strings.Builder
		for name, o := range outs {
			fmt.Fprintf(&logs, "--- %s\n%s\n", name, o.out)
		}
		t.Fatalf("shadow got %d of %d requests\n%s", shadow.Stats().Shadow, n, logs.String())
	}
	for _, r := range shadow.Requests() {
		if strings.Contains(r.Body, "4111111111111111") {
			t.Fatalf("card number reached the shadow: %s", r.Body)
		}
	}
	// The lag exporter reports the replay group (every lagExporter.interval, 2s).
	var lagAddr string
	for _, s := range stages {
		if s.args[0] == "lag" {
			lagAddr = s.metrics
		}
	}
	var body string
	if !testproc.WaitEvery(30*time.Second, 100*time.Millisecond, func() bool {
		_, body = httpGet("http://" + lagAddr + "/metrics")
		return strings.Contains(body, `mirrorline_consumer_lag_seconds{group="`+group+`"`)
	}) {
		t.Fatalf("the lag exporter does not report %s:\n%s", group, body)
	}
	t.Logf("%d stages of the chart ran as rendered; %d requests reached the shadow", len(stages), n)
}
