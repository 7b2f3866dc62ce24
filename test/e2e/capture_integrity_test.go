package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// rawRequest writes raw to addr on a new connection (half-closing it when
// closeWrite) and returns the status of the answer, 0 without one; with tunnel
// it then sends tunnel and returns what comes back as the answer's body.
func rawRequest(t *testing.T, addr, raw string, closeWrite bool, tunnel string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, ""
	}
	if tunnel != "" {
		if _, err := io.WriteString(c, tunnel); err != nil {
			t.Fatal(err)
		}
		line, _ := br.ReadString('\n')
		return resp.StatusCode, line
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// Capture integrity through the whole pipeline on the real broker: requests
// whose body never arrived whole (short, malformed chunked), an asterisk
// target and a WebSocket upgrade go through the proxy, the redactor and a live
// replayer; the primary gets none of the broken ones, and the shadow gets only
// the complete request — the upgrade is counted, not replayed as a plain GET,
// and so is a body a packet collector flagged incomplete.
func TestCaptureIntegrityEndToEnd(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 2)
	plain := newRecorder(t, http.StatusCreated, "ok") // fails the test if it gets a broken body
	primary := newUpgradingPrimary(t, plain)
	shadow := newRecorder(t, http.StatusCreated, "shadow")
	addr, cm := runProxy(t, cfg, svc, primary)
	runRedactor(t, cfg, svc)
	rm := runLive(t, cfg, svc, broker.Topic(broker.Clean, svc), "replay-"+svc, shadow.URL)

	for _, tc := range []struct {
		name       string
		raw        string
		closeWrite bool
		tunnel     string
		status     int
	}{
		{"short body", "POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("a", 431), true, "", 400},
		{"malformed chunked", "POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", false, "", 400},
		{"asterisk target", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", false, "", 400},
		{"websocket", "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-Websocket-Key: k\r\n\r\n", false, "ping\n", 101},
		{"complete", "POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", false, "", 201},
	} {
		status, body := rawRequest(t, addr, tc.raw, tc.closeWrite, tc.tunnel)
		if status != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.name, status, tc.status)
		}
		if tc.tunnel != "" && body != "echo "+tc.tunnel {
			t.Fatalf("%s: tunnel answered %q", tc.name, body)
		}
	}
	// What a packet collector (vpc, ebpf, import) publishes for a client that
	// left mid-body: flagged, never replayed.
	cl, err := broker.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cut := &mlv1.Exchange{Id: "cut-1", Service: svc, ConnectionId: "pcap-1", Source: mlv1.Source_SOURCE_VPC, CaptureTimeNs: time.Now().UnixNano(),
		Request:  &mlv1.Request{Method: "POST", Url: "/pay", Body: []byte(strings.Repeat("a", 431)), BodySize: 431, BodyTruncated: true, BodyIncomplete: true},
		Response: &mlv1.Response{Status: 400}}
	val, err := proto.Marshal(cut)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: broker.Topic(broker.Raw, svc), Key: []byte(cut.ConnectionId), Value: val}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	testproc.Eventually(t, 60*time.Second, "the complete request at the shadow, the upgrade and the cut body counted", func() bool {
		return len(shadow.requests()) >= 1 && testutil.ToFloat64(rm.Errors.WithLabelValues(replayer.ReasonUpgrade)) == 1 &&
			testutil.ToFloat64(rm.Errors.WithLabelValues(replayer.ReasonIncomplete)) == 1
	})
	got := shadow.requests()
	if len(got) != 1 || got[0].Method != "POST" || string(got[0].Body) != "hello" {
		t.Fatalf("shadow got %d requests (first %+v), want only the complete POST", len(got), got[0])
	}
	if seen := plain.requests(); len(seen) != 1 || string(seen[0].Body) != "hello" {
		t.Fatalf("primary got %d plain requests, want only the complete one", len(seen))
	}
	for reason, want := range map[string]float64{collector.DropIncompleteBody: 1, collector.DropBadFraming: 1, collector.DropUnsupported: 1} {
		if got := testutil.ToFloat64(cm.Dropped.WithLabelValues(reason)); got != want {
			t.Errorf("collector dropped{%s} = %v, want %v", reason, got, want)
		}
	}
}

// newUpgradingPrimary answers WebSocket upgrades with 101 and echoes one line
// through the tunnel; other requests go to plain. It returns its URL.
func newUpgradingPrimary(t *testing.T, plain *recorder) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			plain.Config.Handler.ServeHTTP(w, r)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprintf(brw, "echo %s", line)
		_ = brw.Flush()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// `mirrorline import` of a pcapng whose valid start is followed by garbage:
// exit 1 with the offset of the bad block, the packets before it published.
func TestImportPcapngGarbageFails(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 1)
	good, err := os.ReadFile(importTestdata("http.pcapng"))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "garbage.pcapng")
	if err := os.WriteFile(bad, append(good, []byte(strings.Repeat("not a pcapng block ", 8))...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}, "import", "--service", svc, "--port", "8080", bad)
	if code != 1 || !strings.Contains(out, fmt.Sprintf("import %s: offset %d: block length", bad, len(good))) || !strings.Contains(out, "3 exchanges published") {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	readRecords(t, brokers, broker.Topic(broker.Raw, svc), 3, 30*time.Second)
}

// `mirrorline proxy` flags: a body trickled byte by byte is cut after
// --body-timeout with 408, and --max-conns holds: the proxy keeps serving a
// normal client while more idle connections than the cap are open.
func TestProxyFlagsAgainstHostileClients(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 1)
	plain := newRecorder(t, http.StatusCreated, "ok")
	listen, metrics := testproc.FreeAddr(t), testproc.FreeAddr(t)
	out := startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}, "proxy", "--service", svc, "--primary", plain.URL,
		"--listen", listen, "--metrics-addr", metrics, "--max-conns", "50", "--body-timeout", "500ms", "--min-body-rate", "1024", "--read-header-timeout", "2s")
	testproc.Eventually(t, 30*time.Second, "the proxy to listen", func() bool {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 200 {
		c, err := net.Dial("tcp", listen)
		if err != nil {
			t.Fatalf("dial: %v\n%s", err, out)
		}
		idle = append(idle, c)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 10 {
		resp, err := client.Get("http://" + listen + "/normal")
		if err != nil {
			t.Fatalf("normal request %d under 200 idle connections: %v\n%s", i, err, out)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("normal request %d: %d", i, resp.StatusCode)
		}
	}
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprint(c, "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nx")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for range 999 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := c.Write([]byte{'x'}); err != nil {
				return
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body: %v %v, want 408", resp, err)
	}
	for _, s := range plain.requests() {
		if s.URI == "/slow" {
			t.Fatal("the slow body reached the primary")
		}
	}
}
