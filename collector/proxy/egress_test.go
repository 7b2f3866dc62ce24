package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// gateway is a dependency that counts the calls it gets and the trace
// context they carried.
type gateway struct {
	*httptest.Server
	mu          sync.Mutex
	calls       int
	traceparent []string
}

func startGateway(t *testing.T, tls bool) *gateway {
	t.Helper()
	g := &gateway{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.calls++
		g.traceparent = append(g.traceparent, r.Header.Get("Traceparent"))
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"charged":`+string(b)+`}`)
	})
	if tls {
		g.Server = httptest.NewTLSServer(h)
	} else {
		g.Server = httptest.NewServer(h)
	}
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) seen() (int, []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls, append([]string(nil), g.traceparent...)
}

// captureRig is a service (primary) behind an inbound proxy, which calls
// the gateway through an egress proxy (call), propagating the trace
// context it got; both proxies publish to one recorder.
type captureRig struct {
	inbound string // the inbound proxy's address
	egress  *Proxy
	pub     *collectortest.Recorder
	em      *collector.Emitter
	metrics *collector.Metrics
}

// startCaptureRig starts the egress proxy to primary ("" a forward proxy)
// with opts and the service behind an inbound proxy; call makes the
// service's outbound call with its client, given the egress proxy's URL.
func startCaptureRig(t *testing.T, primary string, opts []Option, call func(c *http.Client, egress string, in *http.Request) (*http.Response, error), client func(egress string) *http.Client) *captureRig {
	t.Helper()
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "payments", m, nil)
	ep, err := New(primary, em, append([]Option{WithCollectorID("egress")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	egressURL := "http://" + collectortest.Serve(t, ep.Serve)
	c := client(egressURL)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := call(c, egressURL, r)
		if err != nil {
			http.Error(w, "dependency failed", http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(svc.Close)
	ip, err := New(svc.URL, em, WithCollectorID("inbound"))
	if err != nil {
		t.Fatal(err)
	}
	return &captureRig{inbound: "http://" + collectortest.Serve(t, ip.Serve), egress: ep, pub: rec, em: em, metrics: m}
}

// propagate copies the W3C trace context of in to out, as OpenTelemetry's
// default propagators do.
func propagate(out, in *http.Request) {
	for _, k := range []string{"Traceparent", "Tracestate"} {
		if v := in.Header.Values(k); len(v) > 0 {
			out.Header[k] = v
		}
	}
}

func viaProxy(egress string) *http.Client {
	u, _ := url.Parse(egress)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
}

func direct(string) *http.Client { return &http.Client{Transport: &http.Transport{}} }

// records splits what was published into the inbound and the egress
// exchanges.
func (r *captureRig) records(t *testing.T) (inbound, egress []*mlv1.Exchange) {
	t.Helper()
	collectortest.Flush(t, r.em)
	for _, ex := range r.pub.Exchanges(t) {
		if ex.Kind == mlv1.Kind_KIND_EGRESS {
			egress = append(egress, ex)
		} else {
			inbound = append(inbound, ex)
		}
	}
	return inbound, egress
}

func post(t *testing.T, u, body string, hdr ...string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("answer %d %q, want 201", resp.StatusCode, b)
	}
	return string(b)
}

// checkChild checks that the egress record child is the call the service
// made to gw for the inbound exchange parent.
func checkChild(t *testing.T, parent, child *mlv1.Exchange, gw *gateway, scheme string) {
	t.Helper()
	gwURL, _ := url.Parse(gw.URL)
	if child.ParentId == "" || child.ParentId != parent.Id {
		t.Fatalf("egress parent_id %q, want the inbound exchange's id %q", child.ParentId, parent.Id)
	}
	if len(parent.TraceId) != 32 || child.TraceId != parent.TraceId {
		t.Fatalf("trace ids: egress %q inbound %q", child.TraceId, parent.TraceId)
	}
	req := child.Request
	if req.Method != "POST" || req.Url != "/charge?ref=1" || req.Host != gwURL.Host || req.Scheme != scheme || string(req.Body) != `{"amount":12}` {
		t.Fatalf("egress request: %s %s host %s scheme %s body %q", req.Method, req.Url, req.Host, req.Scheme, req.Body)
	}
	if child.Response.GetStatus() != http.StatusCreated || string(child.Response.Body) != `{"charged":{"amount":12}}` {
		t.Fatalf("egress response: %d %q", child.Response.GetStatus(), child.Response.GetBody())
	}
	if child.Service != "payments" || child.Collector != "egress" || child.Id == "" || child.Id == parent.Id {
		t.Fatalf("egress envelope: service %q collector %q id %q", child.Service, child.Collector, child.Id)
	}
	if parent.Kind != mlv1.Kind_KIND_INBOUND || parent.ParentId != "" {
		t.Fatalf("inbound kind %v parent %q", parent.Kind, parent.ParentId)
	}
}

// The service uses the egress proxy as its HTTP_PROXY: its call to the
// gateway is recorded as a child of the inbound exchange it was made for.
func TestEgressForwardProxyRecordsChild(t *testing.T) {
	gw := startGateway(t, false)
	r := startCaptureRig(t, "", []Option{WithEgress(nil)}, func(c *http.Client, _ string, in *http.Request) (*http.Response, error) {
		out, _ := http.NewRequest(http.MethodPost, gw.URL+"/charge?ref=1", strings.NewReader(`{"amount":12}`))
		propagate(out, in)
		return c.Do(out)
	}, viaProxy)
	post(t, r.inbound+"/pay", `{"card":"4111"}`)
	in, eg := r.records(t)
	if len(in) != 1 || len(eg) != 1 {
		t.Fatalf("%d inbound, %d egress records; want 1 and 1", len(in), len(eg))
	}
	checkChild(t, in[0], eg[0], gw, "http")
	if _, tps := gw.seen(); len(tps) != 1 || !strings.Contains(tps[0], in[0].TraceId) {
		t.Fatalf("the gateway saw traceparent %q, want the inbound trace", tps)
	}
}

// The service's gateway URL points at the egress proxy, which forwards to
// the gateway over TLS.
func TestEgressReverseProxyRecordsChild(t *testing.T) {
	gw := startGateway(t, true)
	tr := gw.Client().Transport.(*http.Transport).Clone()
	r := startCaptureRig(t, gw.URL, []Option{WithEgress(nil), WithTransport(tr)}, func(c *http.Client, egress string, in *http.Request) (*http.Response, error) {
		out, _ := http.NewRequest(http.MethodPost, egress+"/charge?ref=1", strings.NewReader(`{"amount":12}`))
		propagate(out, in)
		return c.Do(out)
	}, direct)
	// A client's own valid traceparent is kept: its trace id is recorded.
	post(t, r.inbound+"/pay", `{"card":"4111"}`, "Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	in, eg := r.records(t)
	if len(in) != 1 || len(eg) != 1 {
		t.Fatalf("%d inbound, %d egress records; want 1 and 1", len(in), len(eg))
	}
	if in[0].TraceId != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("inbound trace id %q, want the client's", in[0].TraceId)
	}
	checkChild(t, in[0], eg[0], gw, "https")
}

// The egress proxy adds no trace context: a call without any is forwarded
// and recorded without, its parent unknown.
func TestEgressAddsNoTraceContext(t *testing.T) {
	gw := startGateway(t, false)
	r := startCaptureRig(t, "", []Option{WithEgress(nil)}, func(c *http.Client, _ string, _ *http.Request) (*http.Response, error) {
		return c.Post(gw.URL+"/charge?ref=1", "application/json", strings.NewReader(`{"amount":12}`))
	}, viaProxy)
	post(t, r.inbound+"/pay", `{}`)
	_, eg := r.records(t)
	if len(eg) != 1 || eg[0].ParentId != "" || eg[0].TraceId != "" {
		t.Fatalf("egress records %v, want one without parent and trace", eg)
	}
	for _, h := range eg[0].Request.Headers {
		if h.Name == "Traceparent" || h.Name == "Tracestate" {
			t.Fatalf("egress record has %s", h.Name)
		}
	}
	if _, tps := gw.seen(); len(tps) != 1 || tps[0] != "" {
		t.Fatalf("the gateway saw traceparent %q, want none", tps)
	}
}

// HTTPS through the forward proxy is a CONNECT tunnel: it works, is not
// captured, and is counted.
func TestEgressConnectTunnelledAndCounted(t *testing.T) {
	gw := startGateway(t, true)
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "payments", m, nil)
	ep, err := New("", em, WithEgress(nil))
	if err != nil {
		t.Fatal(err)
	}
	egressURL, _ := url.Parse("http://" + collectortest.Serve(t, ep.Serve))
	tr := gw.Client().Transport.(*http.Transport).Clone()
	tr.Proxy = http.ProxyURL(egressURL)
	resp, err := (&http.Client{Transport: tr}).Post(gw.URL+"/charge", "application/json", strings.NewReader(`1`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(b) != `{"charged":1}` {
		t.Fatalf("through the tunnel: %d %q", resp.StatusCode, b)
	}
	tr.CloseIdleConnections()
	collectortest.Flush(t, em)
	if n := len(rec.Records()); n != 0 {
		t.Fatalf("%d records published for a tunnel, want 0", n)
	}
	if n := testutil.ToFloat64(m.Dropped.WithLabelValues(collector.DropEgressTunnel)); n != 1 {
		t.Fatalf("dropped_total{reason=egress_tunnel} = %v, want 1", n)
	}
}

// With --egress-allow the forward proxy reaches only the hosts listed; it
// refuses an origin-form request (it is no reverse proxy).
func TestEgressForwardAllowlist(t *testing.T) {
	gw := startGateway(t, false)
	other := startGateway(t, false)
	gwURL, _ := url.Parse(gw.URL)
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "payments", m, nil)
	ep, err := New("", em, WithEgress([]string{gwURL.Host}))
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, ep.Serve)
	c := viaProxy("http://" + addr)
	for _, tt := range []struct {
		url  string
		want int
	}{{gw.URL + "/charge", http.StatusCreated}, {other.URL + "/charge", http.StatusForbidden}} {
		resp, err := c.Post(tt.url, "application/json", bytes.NewReader([]byte("1")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Fatalf("%s: %d, want %d", tt.url, resp.StatusCode, tt.want)
		}
	}
	if code := rawExchange(t, addr, "GET /charge HTTP/1.1\r\nHost: x\r\n\r\n", false); code != http.StatusBadRequest {
		t.Fatalf("origin-form request: %d, want 400", code)
	}
	if n, _ := other.seen(); n != 0 {
		t.Fatalf("the host not allowed got %d calls", n)
	}
	if n := testutil.ToFloat64(m.Dropped.WithLabelValues(collector.DropEgressDenied)); n != 1 {
		t.Fatalf("dropped_total{reason=egress_denied} = %v, want 1", n)
	}
	collectortest.Flush(t, em)
	if exs := rec.Exchanges(t); len(exs) != 1 || exs[0].Request.Host != gwURL.Host {
		t.Fatalf("published %d records, want the allowed call only", len(exs))
	}
	if _, err := New("http://gateway.test", em, WithEgress([]string{"gateway.test"})); err == nil {
		t.Fatal("an allowlist with a primary: no error")
	}
}

// A dependency the forward proxy cannot reach is answered 502 and recorded
// with the error, like an unreachable primary.
func TestEgressForwardDependencyDown(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "payments", m, nil)
	ep, err := New("", em, WithEgress(nil))
	if err != nil {
		t.Fatal(err)
	}
	c := viaProxy("http://" + collectortest.Serve(t, ep.Serve))
	resp, err := c.Post(deadURL+"/charge", "application/json", strings.NewReader("1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("answer %d, want 502", resp.StatusCode)
	}
	collectortest.Flush(t, em)
	if exs := rec.Exchanges(t); len(exs) != 1 || exs[0].Response.GetError() == "" || exs[0].Kind != mlv1.Kind_KIND_EGRESS {
		t.Fatalf("published %v, want one egress record with the error", exs)
	}
}

// A tunnel open when the proxy stops is closed (the server's shutdown does
// not see hijacked connections).
func TestEgressTunnelClosedOnStop(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	em := collector.NewEmitter(&collectortest.Recorder{}, "payments", collector.NewMetrics(prometheus.NewRegistry()), nil)
	ep, err := New("", em, WithEgress(nil))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- ep.Serve(ctx, ln) }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", echo.Addr(), echo.Addr())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	fmt.Fprint(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("through the tunnel: %q %v", buf, err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := br.Read(buf)
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the tunnel is still open after the proxy stopped (read %d bytes, %v)", n, err)
	}
}
