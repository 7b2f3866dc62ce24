package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
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

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testcert"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// tlsHandlers are the routes of the HTTPS servers of these tests.
func tlsHandlers() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"proto":%q}`, r.PathValue("id"), r.Proto)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "echo:%s", b)
	})
	return mux
}

// startTLSNginx runs a real nginx terminating TLS on a loopback port in front
// of backend (plain HTTP) and returns its binary, address and master pid.
func startTLSNginx(t *testing.T, certFile, keyFile, backend string) (bin, addr string, pid int) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("nginx is not installed (make test installs the Debian package nginx-light)")
		}
	}
	addr = testproc.FreeAddr(t)
	dir := t.TempDir()
	// Workers run as root: they write bodies into the test's private dir.
	conf := fmt.Sprintf(`user root;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
worker_processes 2;
events {}
http {
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    access_log off;
    server {
        listen %[2]s ssl http2;
        ssl_certificate %[3]s;
        ssl_certificate_key %[4]s;
        location / {
            proxy_pass http://%[5]s;
            proxy_http_version 1.1;
        }
    }
}
`, dir, addr, certFile, keyFile, backend)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
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
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return bin, addr, cmd.Process.Pid
}

// tlsRequest is a request a test sends and what its captured exchange must
// hold. Tag, unique per request, is sent in the X-Req header.
type tlsRequest struct {
	tag, client, method, path, body string
	h2                              bool
	status                          int
	respBody                        string
}

// sendTLS sends r to https://addr with curl or Go's client.
func sendTLS(t *testing.T, addr, certFile string, pool *x509.CertPool, r tlsRequest) {
	t.Helper()
	url := "https://" + addr + r.path
	if r.client == "curl" {
		args := []string{"-sS", "--http1.1", "--cacert", certFile, "-H", "X-Req: " + r.tag, "-o", "-", "-w", "\n%{http_code}"}
		if r.method == "POST" {
			args = append(args, "--data-binary", r.body, "-H", "Content-Type: text/plain")
		}
		out, err := exec.Command("curl", append(args, url)...).CombinedOutput()
		if err != nil || !strings.HasSuffix(string(out), fmt.Sprint(r.status)) {
			t.Fatalf("curl %s %s: %v: %s", r.method, url, err, out)
		}
		return
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: r.h2}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	var body io.Reader
	if r.method == "POST" {
		body = strings.NewReader(r.body)
	}
	req, _ := http.NewRequest(r.method, url, body)
	req.Header.Set("X-Req", r.tag)
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != r.status || string(b) != r.respBody || (r.h2 && resp.ProtoMajor != 2) {
		t.Fatalf("%s %s: %s %d %q", r.method, url, resp.Proto, resp.StatusCode, b)
	}
}

// checkTLSCapture sends reqs and then a sentinel request, reads the service's
// raw topic (one partition: records in capture order) up to the sentinel's
// exchange, and checks that each request was captured exactly once, paired
// with its response, with its plaintext bodies.
func checkTLSCapture(t *testing.T, brokers []string, svc, addr, certFile string, pool *x509.CertPool, reqs []tlsRequest) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		var kept []tlsRequest
		for _, r := range reqs {
			if r.client != "curl" {
				kept = append(kept, r)
			}
		}
		t.Log("curl is not installed: its requests are left out")
		reqs = kept
	}
	sentinel := tlsRequest{tag: "sentinel", client: "go", method: "GET", path: "/users/end", status: 200, respBody: `{"id":"end","proto":"HTTP/1.1"}`}
	reqs = append(reqs, sentinel)
	for _, r := range reqs {
		sendTLS(t, addr, certFile, pool, r)
	}
	recs := readRecords(t, brokers, broker.Topic(broker.Raw, svc), len(reqs), 60*time.Second)
	byTag := map[string][]*mlv1.Exchange{}
	for _, r := range recs {
		tag := ebpfHeader(r.ex.Request.GetHeaders(), "X-Req")
		byTag[tag] = append(byTag[tag], r.ex)
	}
	for _, r := range reqs {
		exs := byTag[r.tag]
		if len(exs) != 1 {
			t.Fatalf("request %s (%s %s by %s) captured %d times, want once; records: %d", r.tag, r.method, r.path, r.client, len(exs), len(recs))
		}
		ex := exs[0]
		host, _, _ := net.SplitHostPort(ex.Request.RemoteAddr)
		if ex.Source != mlv1.Source_SOURCE_EBPF_TLS || ex.Collector != "ebpf-tls-e2e" || ex.Service != svc ||
			!strings.HasPrefix(ex.ConnectionId, "ebpf-tls-") || ex.Request.Scheme != "https" || host != "127.0.0.1" || ex.Request.RemoteAddr == addr {
			t.Fatalf("request %s: record %v", r.tag, ex)
		}
		if ex.Request.Method != r.method || ex.Request.Url != r.path || string(ex.Request.Body) != r.body {
			t.Fatalf("request %s: captured request %s %s body %q", r.tag, ex.Request.Method, ex.Request.Url, ex.Request.Body)
		}
		if r.h2 != strings.HasPrefix(ex.Request.Proto, "HTTP/2") {
			t.Fatalf("request %s: captured as %s", r.tag, ex.Request.Proto)
		}
		if ex.Response == nil || int(ex.Response.Status) != r.status || string(ex.Response.Body) != r.respBody {
			t.Fatalf("request %s: captured response %v", r.tag, ex.Response)
		}
	}
}

// startTLSCapture starts `mirrorline ebpf --tls` with args, waits until it
// runs and returns its metrics address.
func startTLSCapture(t *testing.T, brokers []string, svc string, args ...string) string {
	t.Helper()
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	metricsAddr := testproc.FreeAddr(t)
	out := startML(t, env, append([]string{"ebpf", "--tls", "--service", svc, "--metrics-addr", metricsAddr, "--collector-id", "ebpf-tls-e2e"}, args...)...)
	testproc.Eventually(t, 60*time.Second, "ebpf --tls running", func() bool {
		if strings.Contains(out.String(), "\nmirrorline: ") || strings.HasPrefix(out.String(), "mirrorline: ") {
			t.Fatalf("mirrorline ebpf --tls failed: %s", out)
		}
		return strings.Contains(out.String(), "eBPF TLS capture running")
	})
	return metricsAddr
}

// waitTLSProcesses waits until the capture selected n processes.
func waitTLSProcesses(t *testing.T, metricsAddr string, n int) {
	t.Helper()
	metric := fmt.Sprintf("mirrorline_ebpf_tls_processes %d\n", n)
	testproc.Eventually(t, 30*time.Second, metric, func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return bytes.Contains(b, []byte(metric))
	})
}

// nginx terminating TLS with OpenSSL, selected by its binary or by its
// master's pid (the workers are its children): requests by curl and by Go's
// client are captured in plaintext, once each, paired with their responses.
func TestEBPFTLSNginx(t *testing.T) {
	requireRootForEBPF(t)
	brokers := kafkatest.Brokers(t)
	for _, by := range []string{"binary", "pid"} {
		t.Run(by, func(t *testing.T) {
			svc := kafkatest.Service(t, 1)
			cert := testcert.New(t)
			certFile, keyFile, pool := cert.CertFile, cert.KeyFile, cert.Pool
			backend := httptest.NewServer(tlsHandlers())
			t.Cleanup(backend.Close)
			bin, addr, pid := startTLSNginx(t, certFile, keyFile, strings.TrimPrefix(backend.URL, "http://"))
			sel := []string{"--binary", bin}
			if by == "pid" {
				sel = []string{"--pid", fmt.Sprint(pid)}
			}
			// The master and its two workers.
			waitTLSProcesses(t, startTLSCapture(t, brokers, svc, sel...), 3)
			checkTLSCapture(t, brokers, svc, addr, certFile, pool, []tlsRequest{
				{tag: "curl-get", client: "curl", method: "GET", path: "/users/1", status: 200, respBody: `{"id":"1","proto":"HTTP/1.1"}`},
				{tag: "curl-post", client: "curl", method: "POST", path: "/echo", body: "card=4111-curl", status: 201, respBody: "echo:card=4111-curl"},
				{tag: "go-get", client: "go", method: "GET", path: "/users/2?x=y", status: 200, respBody: `{"id":"2","proto":"HTTP/1.1"}`},
				{tag: "go-post", client: "go", method: "POST", path: "/echo", body: strings.Repeat("go-body-", 5000), status: 201, respBody: "echo:" + strings.Repeat("go-body-", 5000)},
				{tag: "go-h2", client: "go", method: "POST", path: "/echo", h2: true, body: "over h2", status: 201, respBody: "echo:over h2"},
			})
		})
	}
}

// startGoTLSServer runs the test's Go HTTPS server bin and returns its
// address and process.
func startGoTLSServer(t *testing.T, bin, certFile, keyFile string) (string, *os.Process) {
	t.Helper()
	cmd := exec.Command(bin, "-cert", certFile, "-key", keyFile)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("tlsserver address: %v", err)
	}
	return strings.TrimSpace(addr), cmd.Process
}

// cgroup2Root returns where the cgroup v2 hierarchy is mounted.
func cgroup2Root(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}

// A Go HTTPS server built by the test (crypto/tls, probed at function entry
// and at each RET), selected by its binary before it starts or by a cgroup it
// was moved into: HTTP/1.1 from curl and Go, and HTTP/2 by ALPN.
func TestEBPFTLSGoServer(t *testing.T) {
	requireRootForEBPF(t)
	brokers := kafkatest.Brokers(t)
	dir := t.TempDir()
	cert := testcert.New(t)
	certFile, keyFile, pool := cert.CertFile, cert.KeyFile, cert.Pool
	bin := filepath.Join(dir, "tlsserver")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/tlsserver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	reqs := []tlsRequest{
		{tag: "curl-get", client: "curl", method: "GET", path: "/users/1", status: 200, respBody: `{"id":"1","proto":"HTTP/1.1"}`},
		{tag: "go-post", client: "go", method: "POST", path: "/echo", body: strings.Repeat("x", 40000), status: 201, respBody: "echo:" + strings.Repeat("x", 40000)},
		{tag: "go-h2", client: "go", method: "GET", path: "/users/3", h2: true, status: 200, respBody: `{"id":"3","proto":"HTTP/2.0"}`},
		{tag: "go-h2-post", client: "go", method: "POST", path: "/echo", h2: true, body: "h2 body", status: 201, respBody: "echo:h2 body"},
	}
	t.Run("binary", func(t *testing.T) {
		svc := kafkatest.Service(t, 1)
		// Probed before it runs: the executable is named.
		metricsAddr := startTLSCapture(t, brokers, svc, "--binary", bin)
		addr, _ := startGoTLSServer(t, bin, certFile, keyFile)
		// Requests before the rescan selects the new process are not captured.
		waitTLSProcesses(t, metricsAddr, 1)
		checkTLSCapture(t, brokers, svc, addr, certFile, pool, reqs)
	})
	t.Run("cgroup", func(t *testing.T) {
		svc := kafkatest.Service(t, 1)
		root := cgroup2Root(t)
		name := fmt.Sprintf("mirrorline-tls-%d", os.Getpid())
		cg := filepath.Join(root, name)
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Skipf("cannot create a cgroup: %v", err)
		}
		addr, proc := startGoTLSServer(t, bin, certFile, keyFile)
		t.Cleanup(func() {
			_ = proc.Kill()
			_, _ = proc.Wait()
			_ = os.Remove(cg)
		})
		if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(fmt.Sprint(proc.Pid)), 0o644); err != nil {
			t.Skipf("cannot move a process into a cgroup: %v", err)
		}
		waitTLSProcesses(t, startTLSCapture(t, brokers, svc, "--cgroup", "/"+name), 1)
		checkTLSCapture(t, brokers, svc, addr, certFile, pool, reqs)
	})
}

// Bad TLS selections are a one-line error and exit code 2; a library, symbol
// or process that cannot be probed is a one-line error naming why and exit
// code 1.
func TestEBPFTLSErrors(t *testing.T) {
	base := []string{"ebpf", "--service", "s", "--brokers", "127.0.0.1:1", "--metrics-addr", "127.0.0.1:0"}
	self := fmt.Sprint(os.Getpid())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls", "--pid", self, "--libssl", "/nonexistent"}, "libssl /nonexistent: no OpenSSL libssl: no such file or directory"},
		{[]string{"--tls"}, "TLS capture needs processes: --pid, --binary or --cgroup"},
		{[]string{"--tls", "--binary", "/nonexistent"}, "binary /nonexistent: no such file or directory"},
		{[]string{"--port", "8080", "--pid", self}, "needs --tls"},
	} {
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, append(base, tc.args...)...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line with %q", tc.args, code, out, tc.want)
		}
	}

	// The YAML keys of the ebpf: section are read.
	cfgFile := filepath.Join(t.TempDir(), "tls.yaml")
	if err := os.WriteFile(cfgFile, []byte("service: s\nbrokers: [127.0.0.1:1]\nebpf:\n  tls: true\n  pids: ["+self+"]\n  libssl: /nonexistent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, "ebpf", "-c", cfgFile); code != 2 || !strings.Contains(out, "libssl /nonexistent") {
		t.Errorf("config file: exit %d, output %q; want exit 2 naming libssl /nonexistent", code, out)
	}

	requireRootForEBPF(t)
	dir := t.TempDir()
	stripped := filepath.Join(dir, "stripped")
	if out, err := exec.Command("go", "build", "-ldflags=-s -w", "-o", stripped, "./testdata/tlsserver").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sleep := exec.Command("sleep", "300")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleep.Process.Kill()
		_ = sleep.Wait()
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls", "--binary", stripped}, "stripped Go binary (built with -ldflags=-s)"},
		{[]string{"--tls", "--binary", "/bin/true"}, "uses neither a dynamically linked OpenSSL (libssl.so) nor Go's crypto/tls"},
		{[]string{"--tls", "--pid", fmt.Sprint(sleep.Process.Pid)}, "uses neither a dynamically linked OpenSSL (libssl.so) nor Go's crypto/tls"},
		{[]string{"--tls", "--pid", fmt.Sprint(sleep.Process.Pid), "--libssl", "/bin/true"}, "has no symbol SSL_write"},
		{[]string{"--tls", "--pid", "2147483647"}, "pid 2147483647: no such process"},
	} {
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, append(base, tc.args...)...)
		if code != 1 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d, output %q; want exit 1 and one line with %q", tc.args, code, out, tc.want)
		}
	}
}
