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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/sink"
	"github.com/mirrorline/mirrorline/test/demo/payments/app"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// startNginx runs a real nginx with deploy/nginx/mirror.conf, its three
// addresses replaced by the test's, and returns nginx's address.
func startNginx(t *testing.T, primary, sinkAddr string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("nginx is not installed (make test installs the Debian package nginx-light)")
		}
	}
	conf, err := os.ReadFile("../../deploy/nginx/mirror.conf")
	if err != nil {
		t.Fatal(err)
	}
	listen := testproc.FreeAddr(t)
	dir := t.TempDir()
	c := string(conf)
	for old, repl := range map[string]string{"127.0.0.1:8081": primary, "127.0.0.1:9080": sinkAddr, "127.0.0.1:8088": listen} {
		if !strings.Contains(c, old) {
			t.Fatalf("deploy/nginx/mirror.conf no longer mentions %s", old)
		}
		c = strings.ReplaceAll(c, old, repl)
	}
	// Private paths for a nginx run by a test (not part of the example).
	c = strings.Replace(c, "\nhttp {", fmt.Sprintf("pid %[1]s/nginx.pid;\nerror_log %[1]s/error.log;\n\nhttp {\n    client_body_temp_path %[1]s/body;\n    proxy_temp_path %[1]s/proxy;\n    fastcgi_temp_path %[1]s/fastcgi;\n    uwsgi_temp_path %[1]s/uwsgi;\n    scgi_temp_path %[1]s/scgi;", dir), 1)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", path, "-g", "daemon off; master_process on;")
	out := &testproc.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", out, log)
		}
	})
	testproc.Eventually(t, 30*time.Second, "nginx listening", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return listen
}

// A real nginx mirrors traffic (with bodies) to `mirrorline sink`; the copies go
// through a real Kafka, the redactor and the replayer to the shadow.
func TestNginxMirrorToShadow(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 4)
	noSleep := func(context.Context, time.Duration) {}
	primary := app.New(app.Config{Name: "primary", Version: app.V1, Sleep: noSleep})
	shadow := app.New(app.Config{Name: "shadow", Version: app.V1, Sleep: noSleep})
	ps, ss := httptest.NewServer(primary), httptest.NewServer(shadow)
	t.Cleanup(ps.Close)
	t.Cleanup(ss.Close)

	cl, err := broker.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	m := collector.NewMetrics(prometheus.NewRegistry())
	s, err := sink.New(collector.NewEmitter(cl, svc, m, nil), sink.WithKeyHeader("X-Forwarded-For"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	runRedactor(t, cfg, svc)
	runLive(t, cfg, svc, broker.Topic(broker.Clean, svc), "replay-"+svc, ss.URL)

	front := startNginx(t, strings.TrimPrefix(ps.URL, "http://"), ln.Addr().String())
	const n = 200
	client := &http.Client{Timeout: 10 * time.Second}
	for i := 0; i < n; i++ {
		var req *http.Request
		if i%2 == 0 {
			body := fmt.Sprintf(`{"amount": %d, "currency": "EUR", "card": {"number": "4111111111111111", "expiry": "12/29"}, "customer": {"id": "c-%d", "address": "Łódź %d"}}`, 100+i, i, i)
			req, _ = http.NewRequest("POST", "http://"+front+"/payments", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		} else {
			req, _ = http.NewRequest("GET", fmt.Sprintf("http://%s/payments/p-%d?expand=card", front, i), nil)
		}
		req.Header.Set("X-Seq", fmt.Sprint(i))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d via nginx: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("request %d via nginx: primary answered %d", i, resp.StatusCode)
		}
	}
	testproc.Eventually(t, 60*time.Second, fmt.Sprintf("%d mirrored requests at the shadow", n), func() bool { return shadow.Stats().Shadow >= n })
	if got := primary.Stats().Total; got != n {
		t.Fatalf("primary saw %d requests, want %d", got, n)
	}
	seen := map[string]bool{}
	for _, r := range shadow.Requests() {
		seq := r.Headers["X-Seq"]
		if len(seq) != 1 || seen[seq[0]] {
			t.Fatalf("X-Seq %v missing or duplicated at the shadow", seq)
		}
		seen[seq[0]] = true
		if strings.Contains(r.Body, "4111111111111111") {
			t.Fatalf("card number reached the shadow: %s", r.Body)
		}
		if r.Method == "POST" && !strings.Contains(r.Body, "Łódź") {
			t.Fatalf("mirrored body lost its non-PII content: %s", r.Body)
		}
		if r.Method == "GET" && r.RawQuery != "expand=card" {
			t.Fatalf("query changed: %q", r.RawQuery)
		}
	}
	if len(seen) != n {
		t.Fatalf("shadow got %d distinct requests, want %d", len(seen), n)
	}
}
