package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// startPrimary is a primary that echoes what it got in headers of its answer.
func startPrimary(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Primary", "yes")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "primary saw %s %s %d bytes", r.Method, r.URL.RequestURI(), len(b))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type rig struct {
	addr    string
	brokers []string
	metrics *collector.Metrics
	client  *kgo.Client
}

func startProxy(t *testing.T, brokers []string, service string, popts []Option, kopts ...kgo.Opt) *rig {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, kopts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(cl, service, m, nil)
	p, err := New(startPrimary(t).URL, em, popts...)
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := collectortest.Serve(t, p.Serve)
	return &rig{addr: srvAddr, brokers: brokers, metrics: m, client: cl}
}

func TestProxyCapturesExchanges(t *testing.T) {
	brokers := kafkatest.Embedded(t, "payments", 3)
	r := startProxy(t, brokers, "payments", []Option{WithCollectorID("c1")})

	// Two requests on one keep-alive connection, headers in a deliberate order.
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"amount":12,"name":"Zoë"}`
	fmt.Fprintf(conn, "POST /pay/ments?x=1&y=%%C3%%A9 HTTP/1.1\r\nHost: shop.example\r\nX-Zeta: z\r\nContent-Type: application/json\r\nAccept: */*\r\nX-Alpha: a1\r\nX-Alpha: a2\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	fmt.Fprintf(conn, "GET /second HTTP/1.1\r\nHost: shop.example\r\nB: 2\r\nA: 1\r\n\r\n")
	br := bufio.NewReader(conn)
	for i, want := range []string{fmt.Sprintf("primary saw POST /pay/ments?x=1&y=%%C3%%A9 %d bytes", len(body)), "primary saw GET /second 0 bytes"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || string(got) != want {
			t.Fatalf("response %d: %d %q, want 201 %q", i, resp.StatusCode, got, want)
		}
	}

	exs := kafkatest.ReadExchanges(t, r.brokers, broker.Topic(broker.Raw, "payments"), 2, 10*time.Second)
	if exs[0].Sequence > exs[1].Sequence {
		exs[0], exs[1] = exs[1], exs[0]
	}
	first, second := exs[0], exs[1]
	if first.ConnectionId == "" || first.ConnectionId != second.ConnectionId || first.Sequence != 1 || second.Sequence != 2 {
		t.Fatalf("connection ids/sequences: %q/%d %q/%d", first.ConnectionId, first.Sequence, second.ConnectionId, second.Sequence)
	}
	req := first.Request
	if req.Method != "POST" || req.Url != "/pay/ments?x=1&y=%C3%A9" || req.Host != "shop.example" || string(req.Body) != body || req.BodyTruncated || req.BodySize != int64(len(body)) {
		t.Fatalf("request: %+v", req)
	}
	var hs []string
	for _, h := range req.Headers {
		hs = append(hs, h.Name+"="+h.Value)
	}
	// The trace context the proxy added comes last, as forwarded.
	wantHs := []string{"X-Zeta=z", "Content-Type=application/json", "Accept=*/*", "X-Alpha=a1", "X-Alpha=a2", fmt.Sprintf("Content-Length=%d", len(body)),
		"Traceparent=00-" + first.TraceId, "Tracestate=mirrorline=" + strings.ReplaceAll(first.Id, "-", "")}
	if len(hs) == len(wantHs) {
		hs[6] = hs[6][:len(wantHs[6])] // the span id is random
	}
	if strings.Join(hs, ",") != strings.Join(wantHs, ",") {
		t.Fatalf("headers in order: got %v, want %v", hs, wantHs)
	}
	resp := first.Response
	if resp.Status != 201 || !strings.HasPrefix(string(resp.Body), "primary saw POST") || resp.LatencyNs <= 0 {
		t.Fatalf("response: %+v", resp)
	}
	found := false
	for _, h := range resp.Headers {
		found = found || (h.Name == "X-Primary" && h.Value == "yes")
	}
	if !found {
		t.Fatalf("response headers lack X-Primary: %v", resp.Headers)
	}
	if first.Id == "" || first.Id == second.Id || first.Service != "payments" || first.Source != mlv1.Source_SOURCE_PROXY || first.Collector != "c1" || first.CaptureTimeNs == 0 {
		t.Fatalf("envelope: %+v", first)
	}
	if got := testutil.ToFloat64(r.metrics.Captured); got != 2 {
		t.Fatalf("captured_total = %v, want 2", got)
	}
}

func TestProxyBodyLimit(t *testing.T) {
	brokers := kafkatest.Embedded(t, "trunc", 3)
	r := startProxy(t, brokers, "trunc", []Option{WithBodyLimit(10)})
	resp, err := http.Post("http://"+r.addr+"/big", "text/plain", strings.NewReader(strings.Repeat("x", 100)))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "primary saw POST /big 100 bytes" {
		t.Fatalf("primary must get the whole body: %q", got)
	}
	ex := kafkatest.ReadExchanges(t, r.brokers, broker.Topic(broker.Raw, "trunc"), 1, 10*time.Second)[0]
	if string(ex.Request.Body) != "xxxxxxxxxx" || !ex.Request.BodyTruncated || ex.Request.BodySize != 100 {
		t.Fatalf("request body: %q truncated=%v size=%d", ex.Request.Body, ex.Request.BodyTruncated, ex.Request.BodySize)
	}
	if len(ex.Response.Body) != 10 || !ex.Response.BodyTruncated || ex.Response.BodySize != int64(len(got)) {
		t.Fatalf("response body: %q truncated=%v size=%d", ex.Response.Body, ex.Response.BodyTruncated, ex.Response.BodySize)
	}
}

// With Kafka unreachable the primary keeps answering every request at once and
// captures beyond the bounded queue are dropped and counted.
func TestProxyKafkaDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	r := startProxy(t, []string{dead}, "down", nil, kgo.MaxBufferedRecords(10))
	const n = 200
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		resp, err := client.Get(fmt.Sprintf("http://%s/item/%d", r.addr, i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	dropped := r.metrics.Dropped.WithLabelValues(collector.DropQueueFull)
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(dropped) < n-10 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // promises are delivered asynchronously
	}
	if got := testutil.ToFloat64(dropped); got != n-10 {
		t.Fatalf("dropped{queue_full} = %v, want %d", got, n-10)
	}
	if got := testutil.ToFloat64(r.metrics.Captured); got != n {
		t.Fatalf("captured = %v, want %d", got, n)
	}
}

// A request skipped by the filter still takes its place on the connection, so
// the header order recorded for the next request is its own.
func TestProxyHeaderOrderAfterSkippedRequest(t *testing.T) {
	brokers := kafkatest.Embedded(t, "skip", 3)
	f, err := collector.NewFilter(1, []collector.Route{{PathPrefix: "/keep"}})
	if err != nil {
		t.Fatal(err)
	}
	r := startProxy(t, brokers, "skip", []Option{WithFilter(f)})
	conn, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /skip HTTP/1.1\r\nHost: h\r\nA-First: 1\r\nB-Second: 2\r\n\r\n")
	fmt.Fprintf(conn, "GET /keep HTTP/1.1\r\nHost: h\r\nZ-One: 1\r\nY-Two: 2\r\nX-Three: 3\r\n\r\n")
	br := bufio.NewReader(conn)
	for i := 0; i < 2; i++ {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ex := kafkatest.ReadExchanges(t, r.brokers, broker.Topic(broker.Raw, "skip"), 1, 10*time.Second)[0]
	var names []string
	for _, h := range ex.Request.Headers {
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "Z-One,Y-Two,X-Three,Traceparent,Tracestate" || ex.Sequence != 2 {
		t.Fatalf("headers %v seq %d; want Z-One,Y-Two,X-Three (then the trace context added) and seq 2", names, ex.Sequence)
	}
	if got := testutil.ToFloat64(r.metrics.Skipped.WithLabelValues("filtered")); got != 1 {
		t.Fatalf("skipped{filtered} = %v", got)
	}
}
