package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/mirrorline/mirrorline/telemetry"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// runCLIOut runs args as main does and returns the exit code, stdout and
// stderr.
func runCLIOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var code int
	var stderr string
	stdout := captureStdout(t, func() { code, stderr = runCLI(t, args...) })
	return code, stdout, stderr
}

// captureStdout returns what fn writes to os.Stdout.
func captureStdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		read <- string(b)
	}()
	defer func() { os.Stdout = stdout }()
	fn()
	w.Close()
	return <-read
}

// A bad config file is refused by the command line with exit code 2 and one line.
func TestConfigErrorExitCode(t *testing.T) {
	code, stderr := runCLI(t, "proxy", "-c", "../../config/testdata/unknown-key.bad.yaml")
	want := "mirrorline: config ../../config/testdata/unknown-key.bad.yaml: line 4: proxy.smaple: unknown key; did you mean sample?\n"
	if code != 2 || stderr != want {
		t.Fatalf("exit %d, stderr %q; want exit 2, %q", code, stderr, want)
	}
}

// A --rules file is checked the same way.
func TestRulesFileError(t *testing.T) {
	code, stderr := runCLI(t, "redact", "--service", "s", "--brokers", "127.0.0.1:1", "--metrics-addr", "", "--rules", "testdata/rules/typo.bad.yaml")
	want := "mirrorline: rules testdata/rules/typo.bad.yaml: line 3: json_fields.card.number.actoin: unknown key; did you mean action?\n"
	if code != 2 || stderr != want {
		t.Fatalf("exit %d, stderr %q; want exit 2, %q", code, stderr, want)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, stderr := runCLIOut(t, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
		}
		for _, want := range []string{"mirrorline ", "revision: ", "time: ", "modified: ", "go: go1."} {
			if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
				t.Errorf("%v: output %q lacks %q", args, out, want)
			}
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	got := versionText(bi, true)
	for _, want := range []string{"mirrorline v1.2.3\n", "revision: 0123abcd\n", "time:     2026-01-02T03:04:05Z\n", "modified: true\n", "go:       go1.99.1 "} {
		if !strings.Contains(got, want) {
			t.Errorf("versionText = %q, lacks %q", got, want)
		}
	}
	if got := versionText(nil, false); !strings.Contains(got, "revision: unknown") {
		t.Errorf("versionText without build info = %q", got)
	}
}

// An unknown command is a usage error (exit code 2) on one line, with
// cobra's suggestion and a hint.
func TestUnknownCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"prox"}, `mirrorline: unknown command "prox" for "mirrorline"; did you mean proxy? run 'mirrorline --help'` + "\n"},
		{[]string{"frobnicate"}, `mirrorline: unknown command "frobnicate" for "mirrorline"; run 'mirrorline --help'` + "\n"},
		{[]string{"topics", "creat"}, `mirrorline: unknown command "creat" for "mirrorline topics"; did you mean create? run 'mirrorline topics --help'` + "\n"},
		{[]string{"compare", "reprot"}, `mirrorline: unknown command "reprot" for "mirrorline compare"; did you mean report? run 'mirrorline compare --help'` + "\n"},
	} {
		code, stderr := runCLI(t, tc.args...)
		if code != 2 || stderr != tc.want {
			t.Errorf("mirrorline %s: exit %d, stderr %q; want exit 2, %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

// Every missing required setting is listed at once, each with its flag,
// YAML key and environment variable.
func TestMissingSettings(t *testing.T) {
	t.Setenv("MIRRORLINE_BROKERS", "")
	t.Setenv("MIRRORLINE_SERVICE", "")
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"proxy"}, "", "missing settings: service (--service, service:, MIRRORLINE_SERVICE); brokers (--brokers, brokers:, MIRRORLINE_BROKERS); primary (--primary, proxy.primary:)"},
		{[]string{"replay", "--live"}, "", "missing settings: service (--service, service:, MIRRORLINE_SERVICE); brokers (--brokers, brokers:, MIRRORLINE_BROKERS); target (--target, replay.target:)"},
		{[]string{"replay", "--from", "-5m", "--dry-run", "--brokers", "127.0.0.1:1"}, "", "missing setting: service (--service, service:, MIRRORLINE_SERVICE)"},
		{[]string{"replay", "--from", "-5m", "--brokers", "127.0.0.1:1"}, "", "missing settings: service (--service, service:, MIRRORLINE_SERVICE); target (--target, replay.target:; or --dry-run)"},
		{[]string{"redact", "--brokers", "127.0.0.1:1"}, "", "missing setting: service (--service, service:, MIRRORLINE_SERVICE)"},
		{[]string{"proxy", "--primary", "http://127.0.0.1:1"}, "payments", "missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)"},
		{[]string{"lag"}, "", "missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)"},
		{[]string{"up"}, "", "missing setting: service (--service, service:, MIRRORLINE_SERVICE)"},
	} {
		t.Setenv("MIRRORLINE_SERVICE", tc.env)
		args := append(tc.args, "--metrics-addr", "")
		code, stderr := runCLI(t, args...)
		if want := "mirrorline: " + tc.want + "\n"; code != 2 || stderr != want {
			t.Errorf("mirrorline %s: exit %d, stderr %q; want exit 2, %q", strings.Join(args, " "), code, stderr, want)
		}
	}
}

// Kafka not reachable: one line naming the address and why, exit code 1,
// not the client's "request ListGroups has 1 separate shard errors, first:
// unable to dial: ...".
func TestKafkaUnreachable(t *testing.T) {
	addr := testproc.FreeAddr(t)
	want := "mirrorline: cannot reach Kafka at " + addr + ": connection refused\n"
	for _, args := range [][]string{
		{"lag"},
		{"compare", "report", "--service", "s"},
		{"replay", "--service", "s", "--from", "-5m", "--dry-run", "--metrics-addr", ""},
	} {
		args = append(args, "--brokers", addr)
		code, stderr := runCLI(t, args...)
		if code != 1 || stderr != want {
			t.Errorf("mirrorline %s: exit %d, stderr %q; want exit 1, %q", strings.Join(args, " "), code, stderr, want)
		}
	}
}

// Each serving command has its own default metrics port, one table, no two
// alike; lag serves only with --serve and compare report not at all.
func TestMetricsPorts(t *testing.T) {
	_, root, err := newApp(nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]string{}
	for _, p := range metricsPorts {
		if other, dup := seen[p.port]; dup {
			t.Errorf("port %d is the default of both %s and %s", p.port, other, p.command)
		}
		seen[p.port] = p.command
		cmd, _, err := root.Find([]string{p.command})
		if err != nil || cmd.Name() != p.command {
			t.Errorf("metricsPorts names %q, which is no command", p.command)
		}
	}
	for _, tc := range []struct {
		args []string
		port int
	}{
		{[]string{"up"}, 9464},
		{[]string{"proxy"}, 9465},
		{[]string{"redact"}, 9469},
		{[]string{"replay"}, 9470},
		{[]string{"compare"}, 9471},
		{[]string{"lag", "--serve"}, 9472},
		{[]string{"stub"}, 9473},
		{[]string{"lag"}, 0},
		{[]string{"compare", "report"}, 0},
		{[]string{"topics", "create"}, 0},
		{[]string{"version"}, 0},
	} {
		_, root, err := newApp(nil)
		if err != nil {
			t.Fatal(err)
		}
		cmd, rest, err := root.Find(tc.args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatal(err)
		}
		port, ok := metricsPort(cmd)
		if ok != (tc.port != 0) || port != tc.port {
			t.Errorf("%v: metrics port %d (%v), want %d", tc.args, port, ok, tc.port)
		}
	}
}

// A second instance on a metrics port in use fails with one line naming the
// port, before it opens its data path: the proxy's --listen address is never
// bound (it used to log "proxy listening" and exit later).
func TestMetricsPortInUse(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	listen := testproc.FreeAddr(t)
	maddr := busy.Addr().String()
	code, stderr := runCLI(t, "proxy", "--service", "s", "--brokers", "127.0.0.1:1", "--primary", "http://127.0.0.1:1",
		"--listen", listen, "--metrics-addr", maddr)
	want := "mirrorline: --metrics-addr " + maddr + ": address already in use (another mirrorline proxy? pass --metrics-addr)\n"
	if code != 2 || stderr != want {
		t.Fatalf("exit %d, stderr %q; want exit 2, %q", code, stderr, want)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("the proxy's data listener %s was bound although its metrics port was taken: %v", listen, err)
	}
	ln.Close()
}

// metrics_addr in the -c file overrides the command's default; the flag
// overrides both.
func TestMetricsAddrPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(cfgFile, []byte("metrics_addr: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lag", "--serve", "-c", cfgFile}, "127.0.0.1:0"},
		{[]string{"lag", "--serve", "-c", cfgFile, "--metrics-addr", ""}, ""},
	} {
		a := boundApp(t, tc.args)
		if a.cfg.MetricsAddr != tc.want {
			t.Errorf("%v: metrics addr %q, want %q", tc.args, a.cfg.MetricsAddr, tc.want)
		}
		if (a.metricsLn != nil) != (tc.want != "") {
			t.Errorf("%v: listener %v, want one only for a non-empty address", tc.args, a.metricsLn)
		}
		a.closeMetrics()
	}
}

// A bad setting is reported as such even when the metrics port is taken:
// settings are checked before the port is bound.
func TestSettingsBeforeMetricsPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfgFile := filepath.Join(t.TempDir(), "bad.yaml")
	body := "service: s\nmetrics_addr: " + busy.Addr().String() + "\ncollectors: [proxy, tcpdump]\nproxy:\n  primary: http://127.0.0.1:1\n"
	if err := os.WriteFile(cfgFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr := runCLI(t, "up", "-c", cfgFile)
	if want := `mirrorline: collectors: "tcpdump" is not one of proxy, sink, vpc, ebpf` + "\n"; code != 2 || stderr != want {
		t.Fatalf("exit %d, stderr %q; want exit 2, %q", code, stderr, want)
	}
}

// The whole configuration (defaults, file, environment, flags) is
// validated before a command runs, whichever sections it reads: every bad
// value at once, on one line, naming its flag and YAML path, exit code 2.
// An empty file keeps the defaults.
func TestConfigValidatedAtStart(t *testing.T) {
	t.Setenv("MIRRORLINE_BROKERS", "")
	two := writeTemp(t, "two.yaml", "replay:\n  timeout: 0s\nredact:\n  batch: 0\n")
	empty := writeTemp(t, "empty.yaml", "# nothing set\n")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"lag", "-c", two}, 2, "mirrorline: batch: must be positive, got 0 (redact.batch, --batch); timeout: must be positive, got 0s (replay.timeout, --timeout)\n"},
		{[]string{"lag", "-c", two, "--log-level", "loud"}, 2, "mirrorline: log-level: \"loud\" is not one of trace, debug, info, warn, error (log_level, --log-level); batch: must be positive, got 0 (redact.batch, --batch); timeout: must be positive, got 0s (replay.timeout, --timeout)\n"},
		{[]string{"topics", "create", "--service", "s", "--partitions", "0"}, 2, "mirrorline: partitions: must be positive, got 0 (topics.partitions, --partitions)\n"},
		{[]string{"lag", "-c", empty}, 2, "mirrorline: missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)\n"},
		{[]string{"ebpf", "--service", "s", "--port", "8080", "--poll-interval", "0"}, 2, "mirrorline: poll-interval: 0s is less than 1ms (the ring buffer is read on a timer) (ebpf.poll_interval, --poll-interval)\n"},
	} {
		code, stderr := runCLI(t, append(tc.args, "--metrics-addr", "")...)
		if code != tc.code || stderr != tc.want {
			t.Errorf("mirrorline %s: exit %d, stderr %q; want exit %d, %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
}

// writeTemp writes content to a file name in a temporary directory of t
// and returns its path.
func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// --pprof serves Go's profiles beside the metrics; without it they are not
// there.
func TestPprofFlag(t *testing.T) {
	for _, tc := range []struct {
		flag   []string
		status int
	}{
		{nil, http.StatusNotFound},
		{[]string{"--pprof"}, http.StatusOK},
	} {
		args := append([]string{"lag", "--serve", "--metrics-addr", "127.0.0.1:0"}, tc.flag...)
		a := boundApp(t, args)
		addr := a.metricsLn.Addr().String()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.serveMetrics(ctx, telemetry.NewServer()) }()
		res, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		res.Body.Close()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status {
			t.Errorf("%v: /debug/pprof/cmdline answered %d, want %d", args, res.StatusCode, tc.status)
		}
	}
}

// boundApp parses args as the command line does, up to binding the metrics
// listener (bindMetrics).
func boundApp(t *testing.T, args []string) *app {
	t.Helper()
	a, root, err := newApp(args)
	if err != nil {
		t.Fatal(err)
	}
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	a.resolveMetricsAddr(cmd)
	if err := a.bindMetrics(); err != nil {
		t.Fatal(err)
	}
	return a
}
