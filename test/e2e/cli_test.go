package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
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

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/test/demo/payments/app"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

var mlBin string

func TestMain(m *testing.M) {
	bin, dir, err := testproc.BuildMirrorline("mirrorline-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mlBin = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startML runs a long-lived mirrorline command, stopped with SIGTERM when the
// test ends; it must then exit cleanly.
func startML(t *testing.T, env []string, args ...string) *testproc.Output {
	t.Helper()
	return startMLCmd(t, exec.Command(mlBin, args...), env, args[0])
}

// startMLCmd starts cmd (mirrorline NAME ..., possibly behind a wrapper such
// as nsenter) with env added, and stops it with SIGTERM when the test ends;
// it must then exit cleanly. Its output is logged when the test failed.
func startMLCmd(t *testing.T, cmd *exec.Cmd, env []string, name string) *testproc.Output {
	t.Helper()
	cmd.Env = append(os.Environ(), env...)
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
		case err := <-done:
			if err != nil {
				t.Errorf("mirrorline %s: exit: %v\n%s", name, err, out)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("mirrorline %s did not stop on SIGTERM\n%s", name, out)
		}
		if t.Failed() {
			t.Logf("mirrorline %s output:\n%s", name, out)
		}
	})
	return out
}

// runML runs a short mirrorline command and returns its output and exit code.
func runML(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mlBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// The walking skeleton as users run it: separate processes for the proxy, the
// redactor and two live replayers of one consumer group, against a real Kafka.
func TestCLIPipeline(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	svc := fmt.Sprintf("cli-%d", time.Now().UnixNano())

	out, code := runML(t, env, "topics", "create", "--service", svc, "--partitions", "4", "--replication", "1", "--retention", "raw=2h")
	if code != 0 || strings.Count(out, "created") != 5 || !strings.Contains(out, "mirror.raw."+svc+"  ") {
		t.Fatalf("topics create: exit %d\n%s", code, out)
	}
	if out, code = runML(t, env, "topics", "create", "--service", svc, "--partitions", "4"); code != 0 || strings.Count(out, "exists") != 5 {
		t.Fatalf("topics create again: exit %d\n%s", code, out)
	}
	if out, code = runML(t, env, "topics", "describe", "--service", svc); code != 0 || !strings.Contains(out, "mirror.raw."+svc) || !strings.Contains(out, "7200000") {
		t.Fatalf("topics describe: exit %d\n%s", code, out)
	}

	primary := app.New(app.Config{Name: "primary", Version: app.V1, Sleep: func(context.Context, time.Duration) {}})
	shadow := app.New(app.Config{Name: "shadow", Version: app.V1, Sleep: func(context.Context, time.Duration) {}})
	ps, ss := httptest.NewServer(primary), httptest.NewServer(shadow)
	t.Cleanup(ps.Close)
	t.Cleanup(ss.Close)

	startML(t, env, "redact", "--service", svc, "--transactional-id", "redact-"+svc, "--metrics-addr", testproc.FreeAddr(t))
	group := "replay-" + svc
	for _, inst := range []string{"r1", "r2"} {
		startML(t, env, "replay", "--live", "--service", svc, "--target", ss.URL, "--group", group, "--start", "earliest", "--instance", inst, "--metrics-addr", testproc.FreeAddr(t))
	}
	proxyAddr, metricsAddr := testproc.FreeAddr(t), testproc.FreeAddr(t)
	startML(t, env, "proxy", "--service", svc, "--listen", proxyAddr, "--primary", ps.URL, "--metrics-addr", metricsAddr)

	adm := kadm.NewClient(kafkatest.Client(t))
	testproc.Eventually(t, 60*time.Second, "two replayers in the group", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g := gs[group]
		if len(g.Members) != 2 || g.State != "Stable" {
			return false
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 || len(a.Topics[0].Partitions) == 0 {
				return false
			}
		}
		return true
	})
	testproc.Eventually(t, 30*time.Second, "proxy listening", func() bool {
		c, err := net.Dial("tcp", proxyAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	const n = 300
	const card, email, token = "4111111111111111", "zoe.mueller@example.com", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	// One connection per request: records are keyed by connection, so they spread
	// over the partitions and so over both replayers.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < n; i++ {
		var req *http.Request
		if i%2 == 0 {
			body := fmt.Sprintf(`{"amount": %d, "currency": "EUR", "card": {"number": %q, "expiry": "12/29", "holder": "Zoë Müller"}, "customer": {"id": "c-%d", "email": %q, "address": "Straße 1, Berlin"}}`, 100+i, card, i, email)
			req, _ = http.NewRequest("POST", "http://"+proxyAddr+"/payments", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req, _ = http.NewRequest("GET", fmt.Sprintf("http://%s/users/%d?include=profile&email=%s", proxyAddr, i, email), nil)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("X-Seq", fmt.Sprint(i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("request %d: primary answered %d", i, resp.StatusCode)
		}
	}
	testproc.Eventually(t, 90*time.Second, fmt.Sprintf("%d requests at the shadow", n), func() bool { return shadow.Stats().Shadow >= n })

	reqs := shadow.Requests()
	if len(reqs) != n {
		t.Fatalf("shadow got %d requests, want exactly %d", len(reqs), n)
	}
	seqs := map[string]bool{}
	for _, r := range reqs {
		dump := fmt.Sprint(r.Path, r.RawQuery, r.Headers, r.Body)
		for _, pii := range []string{card, email, token, "Bearer"} {
			if strings.Contains(dump, pii) {
				t.Fatalf("shadow received personal data %q: %s", pii, dump)
			}
		}
		if !r.Shadow || len(r.Headers["X-Mirrorline-Id"]) != 1 {
			t.Fatalf("shadow request lacks the replay headers (X-Shadow-Request, X-Mirrorline-Id): %v", r.Headers)
		}
		seq := r.Headers["X-Seq"]
		if len(seq) != 1 || seqs[seq[0]] {
			t.Fatalf("X-Seq %v missing or replayed twice", seq)
		}
		seqs[seq[0]] = true
		if r.Method == "POST" && !strings.Contains(r.Body, `"address":"Straße 1, Berlin"`) && !strings.Contains(r.Body, `"address": "Straße 1, Berlin"`) {
			t.Fatalf("non-PII field changed: %s", r.Body)
		}
	}
	// Both replayers of the group took part.
	recs := kafkatest.ReadExchanges(t, brokers, broker.Topic(broker.Shadow, svc), n, 30*time.Second)
	instances := map[string]int{}
	for _, ex := range recs {
		instances[ex.GetReplay().GetInstance()]++
	}
	if instances["r1"] == 0 || instances["r2"] == 0 || instances["r1"]+instances["r2"] != n {
		t.Fatalf("shadow records by replayer instance: %v", instances)
	}
	// The proxy's metrics endpoint counts what it captured.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), fmt.Sprintf("mirrorline_collector_captured_total %d", n)) {
		t.Fatalf("proxy metrics lack captured_total %d", n)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("service: x\nproxy:\n  primry: http://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"proxy", "-c", bad}, "primry"},
		{[]string{"proxy", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"proxy", "--service", "s", "--brokers", "127.0.0.1:1"}, "missing setting: primary (--primary, proxy.primary:)"},
		{[]string{"proxy", "--service", "s", "--primary", "http://127.0.0.1:1"}, "missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)"},
		{[]string{"proxy", "--service", "bad name", "--brokers", "127.0.0.1:1", "--primary", "http://x"}, "service \"bad name\""},
		{[]string{"proxy", "--service", "s", "--brokers", "127.0.0.1:1", "--primary", "http://x", "--sample", "2"}, "sample: 2"},
		{[]string{"replay", "--service", "s", "--brokers", "127.0.0.1:1", "--target", "http://x"}, "--live is required"},
		{[]string{"replay", "--live", "--service", "s", "--brokers", "127.0.0.1:1", "--target", "ftp://x"}, "want an absolute http"},
		{[]string{"topics", "create", "--service", "s", "--brokers", "127.0.0.1:1", "--retention", "bogus=1h"}, "unknown stage \"bogus\""},
		{[]string{"topics", "create", "--service", "s", "--brokers", "127.0.0.1:1", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u"}, "password_file or password_env is required"},
		{[]string{"lag", "--brokers", "127.0.0.1:1", "--kafka-tls-ca", "/nonexistent/ca.pem"}, "tls.ca_file"},
	}
	for _, tc := range tests {
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line with %q", tc.args, code, out, tc.want)
		}
	}
}
