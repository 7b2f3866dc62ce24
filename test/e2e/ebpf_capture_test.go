package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

func requireRootForEBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("`mirrorline ebpf` needs root (CAP_BPF and CAP_NET_ADMIN to load and attach TC programs); run the tests as root")
	}
}

func ebpfHeader(hs []*mlv1.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// `mirrorline ebpf` as deployed next to a service: the built binary attaches
// to lo for the service's port, real HTTP clients talk to a real server, and
// the exchanges land in a real Kafka.
func TestEBPFCaptureIntoKafka(t *testing.T) {
	requireRootForEBPF(t)
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		time.Sleep(time.Millisecond)
		fmt.Fprintf(w, `{"id":%q}`, r.PathValue("id"))
	})
	mux.HandleFunc("GET /feed", func(w http.ResponseWriter, _ *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "item%d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("POST /pay", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, "paid %d", len(b))
	})
	srv := httptest.NewUnstartedServer(mux)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	metricsAddr := testproc.FreeAddr(t)
	out := startML(t, env, "ebpf", "--service", svc, "--interface", "lo", "--port", port,
		"--metrics-addr", metricsAddr, "--collector-id", "ebpf-e2e")
	testproc.Eventually(t, 30*time.Second, "ebpf attached", func() bool { return strings.Contains(out.String(), "eBPF capture running") })

	const conns = 10 // three keep-alive exchanges each
	for i := range conns {
		tr := &http.Transport{MaxConnsPerHost: 1}
		cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		do := func(req *http.Request) {
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/users/%d?fields=all", srv.URL, i), nil)
		req.Header.Set("X-Conn", strconv.Itoa(i))
		do(req)
		req, _ = http.NewRequest("GET", srv.URL+"/feed", nil)
		do(req)
		req, _ = http.NewRequest("POST", srv.URL+"/pay", strings.NewReader(`{"amount":1234,"currency":"EUR"}`))
		req.Header.Set("Content-Type", "application/json")
		do(req)
		tr.CloseIdleConnections()
	}

	recs := readRecords(t, brokers, broker.Topic(broker.Raw, svc), 3*conns, 30*time.Second)
	perConn := map[string][]*mlv1.Exchange{}
	for _, r := range recs {
		ex := r.ex
		if ex.Source != mlv1.Source_SOURCE_EBPF || ex.Collector != "ebpf-e2e" || ex.Service != svc || r.ts.UnixNano()/1e6 != ex.CaptureTimeNs/1e6 ||
			ex.Response == nil || ex.Response.LatencyNs <= 0 {
			t.Fatalf("record %v at %s", ex, r.ts)
		}
		perConn[ex.ConnectionId] = append(perConn[ex.ConnectionId], ex)
	}
	if len(perConn) != conns {
		t.Fatalf("%d connections, want %d", len(perConn), conns)
	}
	for id, exs := range perConn {
		if len(exs) != 3 || exs[0].Sequence != 1 || exs[1].Sequence != 2 || exs[2].Sequence != 3 {
			t.Fatalf("connection %s: %d exchanges", id, len(exs))
		}
		get, feed, pay := exs[0], exs[1], exs[2]
		n := ebpfHeader(get.Request.Headers, "X-Conn")
		if get.Request.Method != "GET" || get.Request.Url != "/users/"+n+"?fields=all" || get.Response.Status != 200 ||
			string(get.Response.Body) != `{"id":"`+n+`"}` || get.Response.LatencyNs < int64(time.Millisecond) {
			t.Fatalf("connection %s: GET %v", id, get)
		}
		if feed.Response.Status != 200 || ebpfHeader(feed.Response.Headers, "Transfer-Encoding") != "chunked" || string(feed.Response.Body) != "item0\nitem1\nitem2\n" {
			t.Fatalf("connection %s: chunked %v", id, feed)
		}
		if pay.Request.Method != "POST" || string(pay.Request.Body) != `{"amount":1234,"currency":"EUR"}` || ebpfHeader(pay.Request.Headers, "Content-Type") != "application/json" ||
			pay.Response.Status != 202 || string(pay.Response.Body) != "paid 32" {
			t.Fatalf("connection %s: POST %v", id, pay)
		}
	}
	metrics := func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// Retransmitted segments are not asserted: on a saturated machine the
	// kernel may retransmit on loopback (a tail-loss probe fires when the
	// ACK is late), and the exchanges are checked whole above either way.
	want := []string{
		`mirrorline_ebpf_attached{hook="egress",interface="lo"} 1`,
		"mirrorline_ebpf_ringbuf_drops_total 0",
		"mirrorline_ebpf_streams_active 0",
		"mirrorline_ebpf_http_exchanges_total 30",
		"mirrorline_collector_captured_total 30",
	}
	var m string
	ok := testproc.Wait(30*time.Second, func() bool {
		m = metrics()
		for _, w := range want {
			if !strings.Contains(m, w) {
				return false
			}
		}
		return !strings.Contains(m, "mirrorline_ebpf_kernel_packets_total 0")
	})
	if !ok {
		var lines []string
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "mirrorline_ebpf_") || strings.HasPrefix(l, "mirrorline_collector_captured_total") {
				lines = append(lines, l)
			}
		}
		t.Fatalf("ebpf metrics after 30s, want %q:\n%s", want, strings.Join(lines, "\n"))
	}
}

// Bad flags are a one-line error and exit code 2; a missing privilege is a
// one-line error naming it and exit code 1.
func TestEBPFErrors(t *testing.T) {
	usage := []struct {
		args []string
		want string
	}{
		{[]string{"ebpf", "--service", "s", "--brokers", "127.0.0.1:1"}, "at least one --port"},
		{[]string{"ebpf", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "70000"}, "port: 70000"},
		{[]string{"ebpf", "--service", "s", "--port", "8080"}, "missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)"},
		{[]string{"ebpf", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "8080", "--interface", "nope0"}, `interface "nope0": no such network interface`},
		{[]string{"ebpf", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "8080", "--hooks", "sideways"}, "hooks:"},
		{[]string{"ebpf", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "8080", "--ring-buffer", "1000"}, "ring buffer size 1000"},
	}
	for _, tc := range usage {
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line with %q", tc.args, code, out, tc.want)
		}
	}

	// The YAML section ebpf: is read (and its unknown keys refused).
	cfgDir := t.TempDir()
	for _, tc := range []struct{ yaml, want string }{
		{"service: s\nbrokers: [127.0.0.1:1]\nebpf:\n  ports: [8080]\n  interfaces: [nope1]\n", `interface "nope1"`},
		{"service: s\nbrokers: [127.0.0.1:1]\nebpf:\n  ports: [8080]\n  snaplen: -5\n", "snap length -5"},
		{"service: s\nebpf:\n  portz: [8080]\n", "portz"},
	} {
		f := filepath.Join(cfgDir, "ebpf.yaml")
		if err := os.WriteFile(f, []byte(tc.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, "ebpf", "-c", f)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("config %q: exit %d, output %q; want exit 2 and one line with %q", tc.yaml, code, out, tc.want)
		}
	}

	// Not root: run the binary as nobody.
	if os.Geteuid() != 0 {
		t.Skip("the unprivileged case is checked by dropping root, which needs root")
	}
	dir, err := os.MkdirTemp("", "mirrorline-ebpf-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "mirrorline")
	b, err := os.ReadFile(mlBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "ebpf", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "8080", "--metrics-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "MIRRORLINE_BROKERS=")
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	outb, err := cmd.CombinedOutput()
	out := strings.TrimSpace(string(outb))
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || strings.Count(out, "\n") != 0 ||
		!strings.Contains(out, "needs CAP_BPF and CAP_NET_ADMIN (run as root)") {
		t.Fatalf("as nobody: %v, output %q; want exit 1 and one line naming CAP_BPF and CAP_NET_ADMIN", err, out)
	}
}
