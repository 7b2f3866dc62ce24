package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// netns is a fresh network namespace with only its loopback up, held open by
// a process until the test ends. Processes run in it see none of the host's
// ports, so commands bound to their fixed default ports on all interfaces
// stay independent of whatever else runs on the host.
type netns struct {
	path string // /proc/PID/ns/net
}

// newNetns makes a network namespace, or skips the test when this host
// cannot (not root, no unshare or ip).
func newNetns(t *testing.T) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace (unshare -n), so the commands' fixed default ports cannot clash with the host's")
	}
	for _, tool := range []string{"unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s for a network namespace: %v", tool, err)
		}
	}
	holder := exec.Command("unshare", "-n", "--", "sh", "-c", "ip link set lo up && echo ready && exec cat")
	stdin, err := holder.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Skipf("unshare -n: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close() // cat ends, and with it the namespace
		_ = holder.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Skipf("unshare -n did not bring up a namespace: %q, %v", line, err)
	}
	return &netns{path: fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)}
}

// do runs fn on an OS thread moved into the namespace: sockets fn opens
// (net.Listen, net.Dial) belong to the namespace.
func (ns *netns) do(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The thread is left locked when the goroutine ends, so the
		// runtime discards it instead of reusing it in the namespace.
		runtime.LockOSThread()
		f, err := os.Open(ns.path)
		if err != nil {
			t.Errorf("open %s: %v", ns.path, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// listen opens a TCP listener in the namespace.
func (ns *netns) listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	ns.do(t, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listen %s in the namespace: %v", addr, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// httpClient dials inside the namespace.
func (ns *netns) httpClient(t *testing.T) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			var err error
			ns.do(t, func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
			return c, err
		},
	}}
}

// forward makes the host's Kafka reachable in the namespace at the same
// address (the one it advertises): connections to addr there are copied to
// addr on the host.
func (ns *netns) forward(t *testing.T, addr string) {
	t.Helper()
	ln := ns.listen(t, addr)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			conns = append(conns, in, out)
			go func() { _, _ = io.Copy(out, in); out.Close() }()
			go func() { _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
}

// start runs mirrorline args in the namespace until the test ends (SIGTERM).
func (ns *netns) start(t *testing.T, env []string, args ...string) *testproc.Output {
	t.Helper()
	return startMLCmd(t, exec.Command("nsenter", append([]string{"--net=" + ns.path, "--", mlBin}, args...)...), env, args[0])
}

// Every stage runs side by side on one host with no --metrics-addr: up
// (embedded broker), proxy, sink, vpc, redact, replay --live, compare and
// lag --serve each serve /healthz on their own default port, and a request through the
// proxy reaches the shadow through the real broker. A second proxy fails at
// once on its metrics port, one line, before it listens for traffic.
func TestSideBySide(t *testing.T) {
	ns := newNetns(t)
	brokers := kafkatest.Brokers(t)
	for _, b := range brokers {
		host, _, err := net.SplitHostPort(b)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			t.Skipf("KAFKA_BROKERS %s is not a loopback address the namespace can forward", b)
		}
		ns.forward(t, b)
	}
	svc := kafkatest.Service(t, 2)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ","), "MIRRORLINE_SERVICE=" + svc}

	var mu sync.Mutex
	got := 0
	shadow := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Shadow-Request") == "true" {
			mu.Lock()
			got++
			mu.Unlock()
		}
		_, _ = io.WriteString(w, "v2")
	}))
	shadow.Listener = ns.listen(t, "127.0.0.1:18082")
	shadow.Start()
	t.Cleanup(shadow.Close)
	primary := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "v1") }))
	primary.Listener = ns.listen(t, "127.0.0.1:18081")
	primary.Start()
	t.Cleanup(primary.Close)

	// up's embedded broker on a free port: its default (19092) is where the
	// forwarded test broker may listen in the namespace.
	upCfg := filepath.Join(t.TempDir(), "up.yaml")
	if err := os.WriteFile(upCfg, []byte("embedded:\n  addr: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ns.start(t, []string{"MIRRORLINE_BROKERS=", "MIRRORLINE_SERVICE=side-up"}, "up", "-c", upCfg, "--log-level", "warn")
	ns.start(t, env, "redact", "--transactional-id", "redact-"+svc, "--log-level", "warn")
	ns.start(t, env, "replay", "--live", "--target", shadow.URL, "--start", "earliest", "--log-level", "warn")
	ns.start(t, env, "compare", "--log-level", "warn")
	ns.start(t, env, "lag", "--serve", "--log-level", "warn")
	ns.start(t, env, "proxy", "--listen", "127.0.0.1:8080", "--primary", primary.URL, "--log-level", "warn")
	ns.start(t, env, "sink", "--listen", "127.0.0.1:9080", "--log-level", "warn")
	ns.start(t, env, "vpc", "--listen", "127.0.0.1:4789", "--port", "8080", "--log-level", "warn")

	hc := ns.httpClient(t)
	ports := map[string]int{"up": 9464, "proxy": 9465, "sink": 9466, "vpc": 9468, "redact": 9469, "replay": 9470, "compare": 9471, "lag --serve": 9472}
	for name, port := range ports {
		url := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
		testproc.Eventually(t, 60*time.Second, name+" /healthz on :"+fmt.Sprint(port), func() bool {
			resp, err := hc.Get(url)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	// A second proxy (own traffic port, default metrics port): refused at
	// once, one line, before it listens for traffic.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, "nsenter", "--net="+ns.path, "--", mlBin, "proxy", "--listen", "127.0.0.1:8090", "--primary", primary.URL)
	second.Env = append(os.Environ(), env...)
	out, err := second.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	want := "mirrorline: --metrics-addr :9465: address already in use (another mirrorline proxy? pass --metrics-addr)\n"
	if code != 2 || string(out) != want {
		t.Errorf("second proxy: exit %d, output %q; want exit 2, %q", code, out, want)
	}

	// The pipeline works: proxy -> raw -> redact -> clean -> replay -> shadow.
	var sent time.Time
	testproc.Eventually(t, 90*time.Second, "a request through the proxy to reach the shadow", func() bool {
		if time.Since(sent) < time.Second {
			mu.Lock()
			defer mu.Unlock()
			return got > 0
		}
		sent = time.Now()
		resp, err := hc.Post("http://127.0.0.1:8080/pay", "application/json", strings.NewReader(`{"amount":1}`))
		if err == nil {
			resp.Body.Close()
		}
		mu.Lock()
		defer mu.Unlock()
		return got > 0
	})
}
