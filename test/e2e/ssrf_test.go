package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/pcapimport"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/collector/sink"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	"github.com/mirrorline/mirrorline/collector/vpc"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/canary"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// ssrfLines are hostile request lines a client can send (no spaces or control
// bytes inside the target, so every HTTP/1.x parser sees a request). canary is
// the address of the canary on a random port.
func ssrfLines(canaryAddr string) []string {
	return []string{
		"GET http:@localhost/x",
		"GET https:@localhost/x",
		"GET http:@127.0.0.3/x",
		"GET @localhost/x",
		"GET @127.0.0.3/x",
		"GET @" + canaryAddr + "/x",
		"GET .localhost/x",
		"GET //localhost/x",
		"GET //" + canaryAddr + "/x",
		`GET \\127.0.0.3\x`,
		`GET /\127.0.0.3`,
		"GET %2F%2F127.0.0.3/x",
		"GET /%2F%2F127.0.0.3/x",
		"GET evil.localhost:80/x",
		"GET " + canaryAddr + "/x",
		"GET x",
		"OPTIONS *",
		"CONNECT " + canaryAddr,
		"GET /../x",
		"GET /..;/x",
	}
}

// Issue 11 item 1, through every capture path into a live replayer on the
// real broker: hostile request-targets sent to the proxy, the sink, the
// packet collectors' parser (VXLAN datagrams as `vpc` gets them; `ebpf` and
// pcap files use the same tracker) and a .gor import are dropped at capture
// and counted; records carrying them that reach the clean topic anyway (here
// produced straight into raw, as an older collector would have) are dropped
// by the replayer and counted. Canaries on port 80 of 127.0.0.1, ::1 and
// 127.0.0.3 and on a random port get no connection; the shadow gets exactly
// the safe requests.
func TestSSRFCapturedTargetsNeverLeaveTheShadow(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 2)
	cAny := canary.Start(t, "127.0.0.3:0")
	canaries := []*canary.Canary{canary.Start(t, "127.0.0.1:80"), canary.Start(t, "127.0.0.3:80"), cAny}
	if c6 := canary.TryStart(t, "[::1]:80"); c6 != nil {
		canaries = append(canaries, c6)
	}
	lines := ssrfLines(cAny.Addr())

	primary := newRecorder(t, 200, "primary")
	shadow := newRecorder(t, 200, "shadow")
	redm := runRedactor(t, cfg, svc)
	group := "ssrf-" + svc
	rm := runLive(t, cfg, svc, broker.Topic(broker.Clean, svc), group, shadow.URL)

	cl, err := broker.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	emitter := func() (*collector.Emitter, *collector.Metrics) {
		m := collector.NewMetrics(prometheus.NewRegistry())
		return collector.NewEmitter(cl, svc, m, nil), m
	}
	unsafeDrops := func(m *collector.Metrics) float64 {
		return testutil.ToFloat64(m.Dropped.WithLabelValues(collector.DropUnsafeTarget))
	}
	want := map[string]bool{}

	// proxy: the request first, alone.
	pem, pm := emitter()
	p, err := proxy.New(primary.URL, pem)
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := serveOn(t, func(ctx context.Context, ln net.Listener) error { return p.Serve(ctx, ln) })
	sendLines(t, proxyAddr, []string{"GET http:@localhost/x"})
	testproc.Eventually(t, 30*time.Second, "the proxy's capture of http:@localhost/x dropped", func() bool { return unsafeDrops(pm) == 1 })
	sendLines(t, proxyAddr, lines)
	sendLines(t, proxyAddr, []string{"GET /safe/proxy?q=1", "GET http://primary.example/abs/proxy"})
	want["/safe/proxy?q=1"], want["/abs/proxy"] = true, true

	// sink
	sem, sm := emitter()
	sk, err := sink.New(sem)
	if err != nil {
		t.Fatal(err)
	}
	sinkAddr := serveOn(t, sk.Serve)
	sendLines(t, sinkAddr, lines)
	sendLines(t, sinkAddr, []string{"GET /safe/sink?q=1", "GET http://primary.example/abs/sink"})
	want["/safe/sink?q=1"], want["/abs/sink"] = true, true

	// vpc: VXLAN datagrams into the receiver, one TCP connection per request.
	vem, vm := emitter()
	tr := tcpstream.NewTracker(vem, tcpstream.WithSource(mlv1.Source_SOURCE_VPC))
	rcv := vpc.NewReceiver(tr)
	now := time.Now()
	for i, line := range append(append([]string(nil), lines...), "GET /safe/vpc?q=1", "GET http://primary.example/abs/vpc") {
		c := packettest.NewConn("10.9.0.1:"+strconv.Itoa(42000+i), "10.9.0.2:80")
		var frames [][]byte
		frames = append(frames, c.Handshake()...)
		frames = append(frames, c.ClientData([]byte(line+" HTTP/1.1\r\nHost: primary.example\r\n\r\n"), 0)...)
		frames = append(frames, c.ServerData([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0)...)
		frames = append(frames, c.ClientFIN(), c.ServerFIN())
		for _, f := range frames {
			rcv.HandleDatagram(packettest.VXLAN(42, f), now)
		}
	}
	tr.Close(now)
	want["/safe/vpc?q=1"], want["/abs/vpc"] = true, true

	// import of a GoReplay file
	gem, gm := emitter()
	file := writeGor(t, append(append([]string(nil), lines...), "GET /safe/gor?q=1", "GET http://primary.example/abs/gor"))
	im := pcapimport.New(gem)
	if err := im.ImportFile(context.Background(), file); err != nil {
		t.Fatalf("import: %v", err)
	}
	im.Close()
	want["/safe/gor?q=1"], want["/abs/gor"] = true, true

	// The packet parser and the importer see every line as a request: each
	// hostile one is dropped at capture. The proxy and the sink drop what Go's
	// server hands them (it refuses some lines itself, and reduces an
	// absolute-form with userinfo to its path).
	for name, m := range map[string]*collector.Metrics{"vpc": vm, "gor": gm} {
		if got := unsafeDrops(m); got != float64(len(lines)) {
			t.Errorf("%s: dropped{unsafe_target} = %v, want %d", name, got, len(lines))
		}
	}
	if unsafeDrops(pm) < 2 || unsafeDrops(sm) < 1 {
		t.Errorf("dropped{unsafe_target}: proxy %v, sink %v; want some", unsafeDrops(pm), unsafeDrops(sm))
	}

	testproc.Eventually(t, 60*time.Second, "every capture published or dropped", func() bool {
		for _, m := range []*collector.Metrics{pm, sm, vm, gm} {
			if testutil.ToFloat64(m.Published)+unsafeDrops(m) < testutil.ToFloat64(m.Captured) {
				return false
			}
		}
		return true
	})

	// Records with hostile targets produced straight into raw, as a collector
	// without these checks would have: the replayer drops them.
	var injected []*kgo.Record
	for i, line := range append(append([]string(nil), lines...), "GET /x\r\nHost: 127.0.0.3", "GET http://user@127.0.0.3/x", "GET /safe/injected") {
		method, target, _ := strings.Cut(line, " ")
		ex := &mlv1.Exchange{Id: "injected-" + strconv.Itoa(i), ConnectionId: "injected", Service: svc, CaptureTimeNs: time.Now().UnixNano(),
			Source: mlv1.Source_SOURCE_PROXY, Request: &mlv1.Request{Method: method, Url: target, Host: "127.0.0.3"}}
		b, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		injected = append(injected, &kgo.Record{Topic: broker.Topic(broker.Raw, svc), Key: []byte("injected"), Value: b})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, injected...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The redactor strips the userinfo of the absolute-form one, whose path
	// then reaches the shadow.
	want["/safe/injected"], want["/x"] = true, true
	wantReplayDrops := float64(len(injected) - 2)

	// Wait until the redactor has processed every raw record and the replayer
	// every clean one.
	published := testutil.ToFloat64(pm.Published) + testutil.ToFloat64(sm.Published) + testutil.ToFloat64(vm.Published) + testutil.ToFloat64(gm.Published)
	outcome := func(o string) float64 { return testutil.ToFloat64(redm.Records.WithLabelValues(o)) }
	replayDrops := func() float64 { return testutil.ToFloat64(rm.Dropped.WithLabelValues(replayer.DropUnsafeTarget)) }
	sent := func() float64 {
		n := 0.0
		for _, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"} {
			n += testutil.ToFloat64(rm.Sent.WithLabelValues(c))
		}
		return n
	}
	var state string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last state: %s", state)
		}
	})
	testproc.Eventually(t, 90*time.Second, "every record redacted, then replayed or dropped, and the safe requests at the shadow", func() bool {
		got := map[string]bool{}
		for _, r := range shadow.requests() {
			got[r.URI] = true
		}
		var missing []string
		for u := range want {
			if !got[u] {
				missing = append(missing, u)
			}
		}
		redacted := outcome("clean") + outcome("quarantined") + outcome("dropped") + outcome("invalid")
		state = fmt.Sprintf("missing at the shadow %q; redactor: %v of %v raw records, %v clean; replayer: %v sent, dropped{unsafe_target} %v",
			missing, redacted, published+float64(len(injected)), outcome("clean"), sent(), replayDrops())
		return len(missing) == 0 && redacted >= published+float64(len(injected)) && sent()+replayDrops() >= outcome("clean")
	})
	// The injected hostile records the redactor let through are dropped by
	// the replayer; none is sent.
	wantReplayDrops -= outcome("quarantined") + outcome("dropped") + outcome("invalid")
	if got := replayDrops(); got != wantReplayDrops {
		t.Errorf("replayer dropped{unsafe_target} = %v, want %v", got, wantReplayDrops)
	}
	for _, r := range shadow.requests() {
		if !want[r.URI] {
			t.Errorf("shadow got %q", r.URI)
		}
	}
	for _, c := range canaries {
		if c.Hits() != 0 {
			t.Errorf("canary %s: %d connections, request lines %q", c.Addr(), c.Hits(), c.Lines())
		}
	}
}

// serveOn runs serve on a fresh loopback listener until the test ends.
func serveOn(t *testing.T, fn func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return fn(ctx, ln) })
	return ln.Addr().String()
}

// sendLines sends each request line (plus " HTTP/1.1", a Host and an empty
// body) on its own connection to addr, as raw bytes, and reads the answer.
func sendLines(t *testing.T, addr string, lines []string) {
	t.Helper()
	for _, line := range lines {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := fmt.Fprintf(conn, "%s HTTP/1.1\r\nHost: primary.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", line); err != nil {
			t.Fatal(err)
		}
		if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err == nil {
			resp.Body.Close()
		}
		conn.Close()
	}
}

// writeGor writes a GoReplay file of one request per line, each answered 200.
func writeGor(t *testing.T, lines []string) string {
	t.Helper()
	var gor strings.Builder
	ts := time.Now().UnixNano()
	for i, line := range lines {
		if i > 0 {
			gor.WriteString("\n🐵🙈🙉\n")
		}
		fmt.Fprintf(&gor, "1 id%d %d\n%s HTTP/1.1\r\nHost: primary.example\r\n\r\n", i, ts+int64(i), line)
		fmt.Fprintf(&gor, "\n🐵🙈🙉\n2 id%d %d 1000\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", i, ts+int64(i)+1000)
	}
	file := filepath.Join(t.TempDir(), "hostile.gor")
	if err := os.WriteFile(file, []byte(gor.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// `mirrorline import` of a .gor file with hostile request-targets publishes
// the safe requests (absolute-form reduced to its path) and says how many it
// left out.
func TestSSRFImportReportsUnsafeTargets(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 1)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	file := writeGor(t, []string{"GET http:@localhost/x", "GET /safe", "GET @evil.example/x", "GET http://primary.example/abs?q=1", "OPTIONS *"})
	out, code := runML(t, env, "import", "--service", svc, file)
	if code != 0 || !strings.Contains(out, "2 exchanges published") || !strings.Contains(out, "import: 3 requests not published: unsafe request-target") {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	got := map[string]string{}
	for _, ex := range kafkatest.ReadExchanges(t, brokers, broker.Topic(broker.Raw, svc), 2, 30*time.Second) {
		got[ex.Request.Url] = ex.Request.Host
	}
	if len(got) != 2 || got["/safe"] != "primary.example" || got["/abs?q=1"] != "primary.example" {
		t.Fatalf("raw records (url: host) %v, want /safe and /abs?q=1 on primary.example", got)
	}
}
