package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// `mirrorline up` with every collector in the one process, on the real
// broker: the proxy in front of a primary, a sink for NGINX/Istio mirror
// copies, a VPC Traffic Mirroring target and (as root) the eBPF capture of a
// local service. Traffic of each reaches the shadow, redacted and replayed by
// the same process.
func TestUpRunsEveryCollector(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 2)

	var mu sync.Mutex
	got := map[string]int{}
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("X-Shadow-Request") != "true" {
			t.Errorf("%s without X-Shadow-Request", r.URL.Path)
		}
		mu.Lock()
		got[r.URL.Path]++
		mu.Unlock()
	}))
	t.Cleanup(shadow.Close)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "primary") }))
	t.Cleanup(primary.Close)
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "local") }))
	t.Cleanup(local.Close)
	localPort := local.Listener.Addr().(*net.TCPAddr).Port

	collectors := []string{"proxy", "sink", "vpc"}
	ebpfSection := ""
	if os.Geteuid() == 0 {
		collectors = append(collectors, "ebpf")
		ebpfSection = fmt.Sprintf("ebpf:\n  interfaces: [lo]\n  ports: [%d]\n", localPort)
	} else {
		t.Log("not root: up runs without the eBPF collector")
	}
	proxyAddr, sinkAddr, udpAddr, metricsAddr := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeUDPAddr(t), testproc.FreeAddr(t)
	cfg := fmt.Sprintf(`service: %s
brokers: [%s]
metrics_addr: %s
collectors: [%s]
proxy:
  listen: %s
  primary: %s
sink:
  listen: %s
vpc:
  listen: %s
  ports: [8080]
%sreplay:
  target: %s
  start: earliest
compare:
  start: earliest
`, svc, strings.Join(brokers, ", "), metricsAddr, strings.Join(collectors, ", "), proxyAddr, primary.URL, sinkAddr, udpAddr, ebpfSection, shadow.URL)
	cfgPath := filepath.Join(t.TempDir(), "up.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out := startML(t, []string{"MIRRORLINE_BROKERS="}, "up", "-c", cfgPath)
	waitReady(t, metricsAddr, out)

	const n = 10
	want := map[string]bool{}
	cl := &http.Client{Timeout: 10 * time.Second}
	get := func(url string, header http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", url, resp.StatusCode)
		}
	}
	for i := range n {
		p := fmt.Sprintf("/via-proxy/%d", i)
		get("http://"+proxyAddr+p, nil)
		want[p] = true
		// A mirror copy as NGINX sends it to the sink.
		p = fmt.Sprintf("/via-sink/%d", i)
		get("http://"+sinkAddr+p, http.Header{"X-Original-Host": {"pay.example"}})
		want[p] = true
		if os.Geteuid() == 0 {
			p = fmt.Sprintf("/via-ebpf/%d", i)
			get(local.URL+p, nil)
			want[p] = true
		}
	}
	conn, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range n {
		p := fmt.Sprintf("/via-vpc/%d", i)
		want[p] = true
		c := packettest.NewConn("10.9.0.1:"+strconv.Itoa(42000+i), "10.9.0.2:8080")
		frames := c.Handshake()
		frames = append(frames, c.ClientData([]byte("GET "+p+" HTTP/1.1\r\nHost: pay\r\n\r\n"), 0)...)
		frames = append(frames, c.ServerData([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0)...)
		frames = append(frames, c.ClientFIN(), c.ServerFIN(), c.ClientAck())
		for _, f := range frames {
			if _, err := conn.Write(packettest.VXLAN(1, f)); err != nil {
				t.Fatal(err)
			}
		}
	}

	testproc.Eventually(t, 60*time.Second, fmt.Sprintf("%d requests of %v at the shadow", len(want), collectors), func() bool {
		mu.Lock()
		defer mu.Unlock()
		for p := range want {
			if got[p] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	for p, c := range got {
		if !want[p] || c != 1 {
			t.Errorf("shadow got %s %d times", p, c)
		}
	}
	mu.Unlock()
	_, body, err := httpGet("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"mirrorline_collector_captured_total", "mirrorline_vpc_http_exchanges_total", "mirrorline_replayer_sent_total"} {
		if !strings.Contains(body, m) {
			t.Errorf("/metrics of up lacks %s", m)
		}
	}
	if os.Geteuid() == 0 && !strings.Contains(body, "mirrorline_ebpf_http_exchanges_total") {
		t.Error("/metrics of up lacks mirrorline_ebpf_http_exchanges_total")
	}

	// A collector up does not know is a usage error.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("service: s\ncollectors: [proxy, tcpdump]\nproxy:\n  primary: http://127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if msg, code := runML(t, []string{"MIRRORLINE_BROKERS=127.0.0.1:1"}, "up", "-c", bad); code != 2 || !strings.Contains(msg, `collectors: "tcpdump" is not one of proxy, sink, vpc, ebpf`) {
		t.Fatalf("unknown collector: exit %d\n%s", code, msg)
	}
}
