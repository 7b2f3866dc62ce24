package stub

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

const (
	parentHex = "0190d1e2a3b47c5d8e9f0a1b2c3d4e5f"
	parentID  = "0190d1e2-a3b4-7c5d-8e9f-0a1b2c3d4e5f"
	traceHex  = "4bf92f3577b34da6a3ce929d0e0e4736"
)

// recorded is a primary's egress record of a call to host.
func recorded(id, host, method, target, body string, status int32, respBody string, headers ...string) *mlv1.Exchange {
	resp := &mlv1.Response{Status: status, Body: []byte(respBody), LatencyNs: int64(time.Millisecond)}
	for i := 0; i+1 < len(headers); i += 2 {
		resp.Headers = append(resp.Headers, &mlv1.Header{Name: headers[i], Value: headers[i+1]})
	}
	return &mlv1.Exchange{Id: id, Kind: mlv1.Kind_KIND_EGRESS, ParentId: parentID, TraceId: traceHex,
		Request: &mlv1.Request{Method: method, Url: target, Host: host, Body: []byte(body)}, Response: resp}
}

// serve runs a stub Server over ix on loopback.
func serve(t *testing.T, ix *Index, opts ...Option) (*httptest.Server, *Server) {
	t.Helper()
	s, err := NewServer(ix, "payments", opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, s
}

// call sends method target with body to the stub at srv as a call to host,
// with the trace context headers of the primary's parent.
func call(t *testing.T, srv *httptest.Server, host, method, target, body string, hdr ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	req.Header.Set("Traceparent", "00-"+traceHex+"-00f067aa0ba902b7-01")
	req.Header.Set("Tracestate", "mirrorline="+parentHex+",other=x")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// The test's client follows no redirect either: what the stub
	// relays is what is checked.
	cl := &http.Client{Transport: srv.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readAll(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHitAnswersTheRecordedResponseByteForByte(t *testing.T) {
	ix := NewIndex()
	rec := recorded("e1", "gateway.internal:8443", "POST", "/v1/charges?idem=1", `{"amount":100}`, 201, `{"id":"ch_1","status":"ok"}`,
		"Content-Type", "application/json", "X-Request-Id", "r-1", "X-Multi", "a", "X-Multi", "b",
		"Connection", "close, X-Hop", "X-Hop", "h", "Transfer-Encoding", "chunked", "Content-Length", "999")
	ix.Add(rec)
	m := ix.metrics
	srv, _ := serve(t, ix)
	resp := call(t, srv, "gateway.internal:8443", "POST", "/v1/charges?idem=1", `{"amount":100}`)
	body := readAll(t, resp.Body)
	if resp.StatusCode != 201 || body != `{"id":"ch_1","status":"ok"}` {
		t.Fatalf("got %d %q, want the recorded 201 and body", resp.StatusCode, body)
	}
	want := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r-1"}, "X-Multi": {"a", "b"},
		"Content-Length": {fmt.Sprint(len(body))}}
	if len(resp.Header) != len(want) {
		t.Errorf("headers %v, want exactly %v (hop-by-hop dropped, nothing added)", resp.Header, want)
	}
	for k, v := range want {
		if !slices.Equal(resp.Header[k], v) {
			t.Errorf("header %s = %q, want %q", k, resp.Header[k], v)
		}
	}
	if got := testutil.ToFloat64(m.Calls.WithLabelValues(Hit)); got != 1 {
		t.Errorf("hits counted %v, want 1", got)
	}
	// Used once: the same call again is a miss.
	if resp := call(t, srv, "gateway.internal:8443", "POST", "/v1/charges?idem=1", `{"amount":100}`); resp.StatusCode != 502 || resp.Header.Get(HeaderStub) != Miss {
		t.Errorf("second call: %d %q, want a miss (each recorded call answers once)", resp.StatusCode, resp.Header.Get(HeaderStub))
	}
}

func TestTwoCallsOfOneParentTakeTheMostSimilarRecordedCall(t *testing.T) {
	ix := NewIndex()
	ix.Add(recorded("small", "gw", "POST", "/charge", `{"amount":100,"currency":"EUR","card":"tok_1"}`, 200, "small"))
	ix.Add(recorded("large", "gw", "POST", "/charge", `{"amount":250,"currency":"EUR","card":"tok_2"}`, 200, "large"))
	srv, _ := serve(t, ix)
	// The shadow calls in the other order, with v2 sending a changed card
	// format: each call still gets the recorded call its body is most like.
	for _, c := range []struct{ body, want string }{
		{`{"card":"tok_2","amount":250,"currency":"EUR"}`, "large"},
		{`{"amount":100,"currency":"EUR","card":"TOK-1"}`, "small"},
	} {
		resp := call(t, srv, "gw", "POST", "/charge", c.body)
		if got := readAll(t, resp.Body); got != c.want {
			t.Errorf("call %s answered %q, want %q", c.body, got, c.want)
		}
	}
	if resp := call(t, srv, "gw", "POST", "/charge", `{}`); resp.StatusCode != 502 {
		t.Errorf("third call: %d, want a miss (both recorded calls used)", resp.StatusCode)
	}
}

func TestMatchNeedsSameHostMethodPathAndParent(t *testing.T) {
	ix := NewIndex()
	ix.Add(recorded("e1", "gw", "POST", "/charge", `{}`, 200, "ok"))
	srv, _ := serve(t, ix, WithWait(0))
	for _, c := range []struct{ name, host, method, target string }{
		{"other host", "other", "POST", "/charge"},
		{"other method", "gw", "PUT", "/charge"},
		{"other path", "gw", "POST", "/charge/x"},
	} {
		if resp := call(t, srv, c.host, c.method, c.target, `{}`); resp.StatusCode != 502 {
			t.Errorf("%s: %d, want a miss", c.name, resp.StatusCode)
		}
	}
	// Another parent's call (another tracestate and trace) misses too.
	req, _ := http.NewRequest("POST", srv.URL+"/charge", strings.NewReader(`{}`))
	req.Host = "gw"
	req.Header.Set("Tracestate", "mirrorline=ffffffffffffffffffffffffffffffff")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Errorf("another parent: %d, want a miss", resp.StatusCode)
	}
	// Default ports and case do not matter; the query only ranks.
	if resp := call(t, srv, "GW:80", "post", "/charge?x=1", `{}`); resp.StatusCode != 200 {
		t.Errorf("GW:80 post /charge?x=1: %d, want the hit", resp.StatusCode)
	}
}

func TestTraceIDWhenNoParentEntry(t *testing.T) {
	ix := NewIndex()
	rec := recorded("e1", "gw", "GET", "/rates", "", 200, "rates")
	rec.ParentId = "" // the egress proxy saw no mirrorline entry
	ix.Add(rec)
	srv, _ := serve(t, ix)
	req, _ := http.NewRequest("GET", srv.URL+"/rates", nil)
	req.Host = "gw"
	req.Header.Set("Traceparent", "00-"+traceHex+"-00f067aa0ba902b7-01")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got := readAll(t, resp.Body); got != "rates" {
		t.Errorf("answered %q, want the call recorded under the trace id", got)
	}
}

func TestMissAnswerAndCount(t *testing.T) {
	for _, c := range []struct {
		name       string
		opts       []Option
		status     int
		body       string
		wantStatus int
	}{
		{"default", nil, 0, "", 502},
		{"configured", []Option{WithMissAnswer(404, "none\n")}, 404, "none\n", 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			ix := NewIndex()
			srv, _ := serve(t, ix, c.opts...)
			resp := call(t, srv, "gw", "POST", "/charge", `{"amount":1}`)
			body := readAll(t, resp.Body)
			if resp.StatusCode != c.wantStatus || resp.Header.Get(HeaderStub) != Miss {
				t.Fatalf("got %d %s=%q, want %d with %s: miss", resp.StatusCode, HeaderStub, resp.Header.Get(HeaderStub), c.wantStatus, HeaderStub)
			}
			if c.body != "" && body != c.body {
				t.Errorf("body %q, want %q", body, c.body)
			}
			if strings.Contains(body, "amount") {
				t.Errorf("the miss answer echoes the request body: %q", body)
			}
			if got := testutil.ToFloat64(ix.metrics.Calls.WithLabelValues(Miss)); got != 1 {
				t.Errorf("misses counted %v, want 1", got)
			}
		})
	}
	if _, err := NewServer(NewIndex(), "s", WithMissAnswer(99, "")); err == nil {
		t.Error("status 99 accepted")
	}
}

func TestPassThroughOnlyToAllowlistedHosts(t *testing.T) {
	var allowedCalls, otherCalls atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { otherCalls.Add(1) }))
	defer other.Close()
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowedCalls.Add(1)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Real", "yes")
		_, _ = fmt.Fprintf(w, "real %s %s", r.URL.RequestURI(), b)
	}))
	defer allowed.Close()
	allowedHost := strings.TrimPrefix(allowed.URL, "http://")
	otherHost := strings.TrimPrefix(other.URL, "http://")

	ix := NewIndex()
	srv, _ := serve(t, ix, WithPassthrough(allowedHost), WithWait(0))
	resp := call(t, srv, allowedHost, "POST", "/rates?q=1", "b")
	if got := readAll(t, resp.Body); resp.StatusCode != 200 || got != "real /rates?q=1 b" || resp.Header.Get("X-Real") != "yes" || resp.Header.Get(HeaderStub) != Passthrough {
		t.Errorf("allowlisted: %d %q %v, want the real answer marked passthrough", resp.StatusCode, got, resp.Header)
	}
	// A redirect is relayed, not followed.
	resp = call(t, srv, allowedHost, "GET", "/redirect", "")
	if resp.StatusCode != http.StatusFound {
		t.Errorf("redirect: %d, want the 302 relayed", resp.StatusCode)
	}
	// Not allowlisted: a miss, the host is never called.
	resp = call(t, srv, otherHost, "GET", "/x", "")
	if resp.StatusCode != 502 || resp.Header.Get(HeaderStub) != Miss {
		t.Errorf("not allowlisted: %d %q, want a miss", resp.StatusCode, resp.Header.Get(HeaderStub))
	}
	// Same host name, other port: not the allowlisted host.
	host, _, _ := net.SplitHostPort(allowedHost)
	resp = call(t, srv, net.JoinHostPort(host, "1"), "GET", "/x", "")
	if resp.StatusCode != 502 || resp.Header.Get(HeaderStub) != Miss {
		t.Errorf("other port: %d, want a miss", resp.StatusCode)
	}
	if n := otherCalls.Load(); n != 0 {
		t.Errorf("the host not allowlisted got %d calls, want 0", n)
	}
	if n := allowedCalls.Load(); n != 2 {
		t.Errorf("the allowlisted host got %d calls, want 2", n)
	}
	if got := testutil.ToFloat64(ix.metrics.Calls.WithLabelValues(Passthrough)); got != 2 {
		t.Errorf("passthrough counted %v, want 2", got)
	}
	for _, bad := range []string{"http://gw", "gw/path", "user@gw", "gw:0", "gw:99999", ""} {
		if _, err := NewServer(NewIndex(), "s", WithPassthrough(bad)); err == nil {
			t.Errorf("allow-passthrough %q accepted", bad)
		}
	}
}

func TestForwardProxyFormAndConnect(t *testing.T) {
	ix := NewIndex()
	ix.Add(recorded("e1", "gateway.test", "POST", "/charge", `{"amount":1}`, 200, "charged"))
	srv, _ := serve(t, ix, WithDependency("ignored.for.absolute.form"))
	proxyURL, _ := url.Parse(srv.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest("POST", "http://gateway.test/charge", strings.NewReader(`{"amount":1}`))
	req.Header.Set("Tracestate", "mirrorline="+parentHex)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp.Body); got != "charged" {
		t.Errorf("forward proxy: %d %q, want the recorded answer", resp.StatusCode, got)
	}
	resp.Body.Close()

	// CONNECT (an https:// dependency through HTTP_PROXY) is refused.
	conn, err := net.Dial("tcp", proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "CONNECT gateway.test:443 HTTP/1.1\r\nHost: gateway.test:443\r\n\r\n")
	cresp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	if cresp.StatusCode != 502 || cresp.Header.Get(HeaderStub) != Miss {
		t.Errorf("CONNECT: %d %q, want 502 with the miss header", cresp.StatusCode, cresp.Header.Get(HeaderStub))
	}
}

func TestFixedDependency(t *testing.T) {
	ix := NewIndex()
	ix.Add(recorded("e1", "gateway.test", "GET", "/ping", "", 200, "pong"))
	srv, _ := serve(t, ix, WithDependency("gateway.test"))
	// The shadow calls the stub's own address: Host is the stub's.
	resp := call(t, srv, strings.TrimPrefix(srv.URL, "http://"), "GET", "/ping", "")
	if got := readAll(t, resp.Body); got != "pong" {
		t.Errorf("--dependency: %d %q, want the recorded answer", resp.StatusCode, got)
	}
	if _, err := NewServer(NewIndex(), "s", WithDependency("http://x/")); err == nil {
		t.Error("--dependency with a scheme accepted")
	}
}

// lagging is a Progress behind its topic until released.
type lagging struct {
	asked   chan struct{}
	once    sync.Once
	reached atomic.Bool
}

func (l *lagging) Target(context.Context) (any, error) {
	l.once.Do(func() { close(l.asked) })
	return struct{}{}, nil
}
func (l *lagging) Reached(any) bool { return l.reached.Load() }

func TestWaitsForALateIndexThenHits(t *testing.T) {
	ix := NewIndex()
	lag := &lagging{asked: make(chan struct{})}
	ix.SetProgress(lag)
	srv, _ := serve(t, ix, WithWait(time.Minute))
	got := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", srv.URL+"/ping", nil)
		req.Host = "gw"
		req.Header.Set("Tracestate", "mirrorline="+parentHex)
		resp, err := srv.Client().Do(req)
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- string(b)
	}()
	select {
	case <-lag.asked: // the call found nothing and waits for the index
	case <-time.After(time.Minute):
		t.Fatal("the call did not wait for the index")
	}
	ix.Add(recorded("e1", "gw", "GET", "/ping", "", 200, "pong"))
	select {
	case g := <-got:
		if g != "pong" {
			t.Errorf("answered %q, want the late record's answer", g)
		}
	case <-time.After(time.Minute):
		t.Fatal("no answer")
	}
	// An index that has caught up is not waited for: a miss at once
	// (the wait bound is a minute).
	lag.reached.Store(true)
	done := make(chan int, 1)
	go func() {
		resp := call(t, srv, "gw", "GET", "/other", "")
		done <- resp.StatusCode
	}()
	select {
	case code := <-done:
		if code != 502 {
			t.Errorf("caught-up index: %d, want a miss", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a call waited for an index that had caught up")
	}
}

func TestWaitIsBounded(t *testing.T) {
	ix := NewIndex()
	ix.SetProgress(&lagging{asked: make(chan struct{})}) // never catches up
	srv, _ := serve(t, ix, WithWait(50*time.Millisecond))
	resp := call(t, srv, "gw", "GET", "/ping", "")
	if resp.StatusCode != 502 {
		t.Errorf("%d, want a miss once the wait is over", resp.StatusCode)
	}
	if n := testutil.CollectAndCount(ix.metrics.Wait); n != 1 {
		t.Errorf("wait histogram has %d series, want 1", n)
	}
}

func TestIndexBoundsEvictOldestAndCount(t *testing.T) {
	ix := NewIndex(WithBounds(2, 0))
	for i := range 3 {
		ix.Add(recorded(fmt.Sprint("e", i), "gw", "GET", fmt.Sprint("/", i), "", 200, "x"))
	}
	if ix.Len() != 2 || testutil.ToFloat64(ix.metrics.Evicted) != 1 {
		t.Fatalf("len %d evicted %v, want 2 and 1", ix.Len(), testutil.ToFloat64(ix.metrics.Evicted))
	}
	if rec, _ := ix.Match(context.Background(), Call{Parent: parentID, Host: "gw", Method: "GET", Target: "/0"}, 0); rec != nil {
		t.Error("the oldest record was not evicted")
	}
	if rec, _ := ix.Match(context.Background(), Call{Parent: parentID, Host: "gw", Method: "GET", Target: "/2"}, 0); rec == nil {
		t.Error("the newest record was evicted")
	}
	// Bytes: each record about 1 KiB, bound 2.5 KiB.
	big := strings.Repeat("b", 1024)
	ix = NewIndex(WithBounds(100, 2560))
	for i := range 5 {
		ix.Add(recorded(fmt.Sprint("e", i), "gw", "GET", fmt.Sprint("/", i), "", 200, big))
	}
	if ix.Len() != 2 || testutil.ToFloat64(ix.metrics.Evicted) != 3 || testutil.ToFloat64(ix.metrics.IndexBytes) > 2560 {
		t.Errorf("len %d evicted %v bytes %v, want 2, 3 and at most 2560", ix.Len(), testutil.ToFloat64(ix.metrics.Evicted), testutil.ToFloat64(ix.metrics.IndexBytes))
	}
}

func TestIndexSkips(t *testing.T) {
	ix := NewIndex()
	inbound := recorded("i", "gw", "GET", "/", "", 200, "")
	inbound.Kind = mlv1.Kind_KIND_INBOUND
	nokey := recorded("n", "gw", "GET", "/", "", 200, "")
	nokey.ParentId, nokey.TraceId = "", ""
	noresp := recorded("r", "gw", "GET", "/", "", 0, "")
	for _, ex := range []*mlv1.Exchange{inbound, nokey, noresp} {
		if ix.Add(ex) {
			t.Errorf("%s indexed", ex.Id)
		}
	}
	for _, r := range []string{SkipInbound, SkipNoKey, SkipNoResponse} {
		if testutil.ToFloat64(ix.metrics.Skipped.WithLabelValues(r)) != 1 {
			t.Errorf("skipped{%s} not counted", r)
		}
	}
}

func TestSimilarity(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 100},
		{`{"a":1,"b":2}`, `{ "b" : 2, "a" : 1 }`, 100},
		{`{"amount":100,"currency":"EUR"}`, `{"amount":120,"currency":"EUR"}`, 50},
		{`{"a":[1,2]}`, `{"a":[1,3]}`, 50},
		{`{"a":1}`, `[1]`, 0},
		{"abcdef", "abcxef", 83},
		{"abc", "", 0},
		{`{"a":1} trailing`, `{"a":1}`, 43},
		{`{"n":1.0}`, `{"n":1}`, 0},
	} {
		if got := Similarity([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("Similarity(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// producer records what the Publisher produces.
type producer struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (p *producer) TryProduce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	p.recs = append(p.recs, r)
	p.mu.Unlock()
	promise(r, nil)
}

func TestPublishesEveryAnsweredCall(t *testing.T) {
	ix := NewIndex()
	ix.Add(recorded("e1", "gw", "POST", "/charge", `{"amount":100,"currency":"EUR"}`, 200, "ok"))
	prod := &producer{}
	pub := NewPublisher(prod, "mirror.shadow.payments", 16, nil, ix.metrics, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = pub.Run(ctx) }()
	srv, _ := serve(t, ix, WithPublisher(pub), WithInstance("stub-1"))
	call(t, srv, "gw", "POST", "/charge", `{"amount":120,"currency":"EUR"}`)
	call(t, srv, "gw", "POST", "/refund", `{}`)
	srv.Close()
	cancel()
	<-pub.Done()
	if len(prod.recs) != 2 {
		t.Fatalf("published %d records, want 2", len(prod.recs))
	}
	var got []*mlv1.Exchange
	for _, r := range prod.recs {
		ex := &mlv1.Exchange{}
		if err := ex.UnmarshalVT(r.Value); err != nil {
			t.Fatal(err)
		}
		if r.Topic != "mirror.shadow.payments" || string(r.Key) != parentID {
			t.Errorf("record to %s keyed %q, want mirror.shadow.payments keyed by the parent", r.Topic, r.Key)
		}
		got = append(got, ex)
	}
	slices.SortFunc(got, func(a, b *mlv1.Exchange) int { return strings.Compare(a.Request.Url, b.Request.Url) })
	hit, miss := got[0], got[1]
	if hit.Kind != mlv1.Kind_KIND_EGRESS || hit.ParentId != parentID || hit.TraceId != traceHex || hit.Service != "payments" || hit.Collector != "stub-1" {
		t.Errorf("hit record %v, want egress, parent, trace, service, instance", hit)
	}
	if hit.Stub.GetOutcome() != Hit || hit.Stub.GetMatchedId() != "e1" || hit.Stub.GetScore() != 50 {
		t.Errorf("hit answer %v, want hit of e1 scored 50", hit.Stub)
	}
	if string(hit.Request.Body) != `{"amount":120,"currency":"EUR"}` || hit.Request.Host != "gw" || hit.Response.Status != 200 || string(hit.Response.Body) != "ok" {
		t.Errorf("hit record holds %v, want the shadow's request and the answer given", hit)
	}
	if miss.Stub.GetOutcome() != Miss || miss.Stub.GetMatchedId() != "" || miss.Response.Status != 502 || miss.ParentId != parentID {
		t.Errorf("miss record %v, want a miss answered 502 with the parent", miss)
	}
	if testutil.ToFloat64(ix.metrics.Published) != 2 {
		t.Errorf("published counted %v, want 2", testutil.ToFloat64(ix.metrics.Published))
	}
}

func TestPublisherDropsWhenFull(t *testing.T) {
	m := NewMetrics(nil)
	pub := NewPublisher(&producer{}, "t", 1, nil, m, nil) // not running: nothing drains
	pub.Submit(&mlv1.Exchange{Id: "1"})
	pub.Submit(&mlv1.Exchange{Id: "2"})
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues("queue_full")); got != 1 {
		t.Errorf("queue_full drops %v, want 1", got)
	}
}

func TestHostileRecordedAnswer(t *testing.T) {
	ix := NewIndex()
	ix.Add(recorded("e1", "gw", "POST", "/a", "", 200, "ok",
		"X-Ok", "1", "X-Bad", "v\r\nInjected: yes", "Bad Name", "v", "X-Nul", "a\x00b"))
	ix.Add(recorded("e2", "gw", "DELETE", "/a", "", 204, "ignored body"))
	ix.Add(recorded("e3", "gw", "GET", "/a", "", 1000, "status out of range"))
	ix.Add(recorded("e4", "gw", "GET", "/b", "", 101, "switching"))
	srv, _ := serve(t, ix, WithWait(0))
	resp := call(t, srv, "gw", "POST", "/a", "")
	if resp.StatusCode != 200 || resp.Header.Get("X-Ok") != "1" || resp.Header.Get("Injected") != "" || resp.Header.Get("X-Bad") != "" || resp.Header.Get("X-Nul") != "" || len(resp.Header["Bad Name"]) != 0 {
		t.Errorf("headers %v: want X-Ok only, the malformed recorded headers left out", resp.Header)
	}
	resp = call(t, srv, "gw", "DELETE", "/a", "")
	if resp.StatusCode != 204 || readAll(t, resp.Body) != "" {
		t.Errorf("204: %d, want 204 without a body", resp.StatusCode)
	}
	for _, target := range []string{"/a", "/b"} {
		if resp := call(t, srv, "gw", "GET", target, ""); resp.StatusCode != 502 {
			t.Errorf("GET %s recorded with no final status: %d, want a miss", target, resp.StatusCode)
		}
	}
}

func TestRecordedLatencyHoldsTheAnswer(t *testing.T) {
	ix := NewIndex()
	rec := recorded("e1", "gw", "GET", "/slow", "", 200, "slow")
	rec.Response.LatencyNs = int64(200 * time.Millisecond)
	ix.Add(rec)
	srv, _ := serve(t, ix, WithRecordedLatency(true))
	start := time.Now()
	resp := call(t, srv, "gw", "GET", "/slow", "")
	if got := readAll(t, resp.Body); got != "slow" {
		t.Fatalf("answered %q", got)
	}
	// Only the lower bound is asserted: a loaded machine may take longer.
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("answered after %s, before the recorded latency of 200ms", d)
	}
}

func TestPassThroughFailureAndLongBodies(t *testing.T) {
	// An allowlisted host nobody listens on: counted as an error, 502.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var calls atomic.Int32
	live := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { calls.Add(1) }))
	defer live.Close()
	liveHost := strings.TrimPrefix(live.URL, "http://")
	ix := NewIndex()
	srv, _ := serve(t, ix, WithPassthrough(dead, liveHost), WithBodyLimit(4), WithWait(0))
	resp := call(t, srv, dead, "GET", "/x", "")
	if resp.StatusCode != 502 || resp.Header.Get(HeaderStub) != Passthrough {
		t.Errorf("dead pass-through: %d %q, want 502 marked passthrough", resp.StatusCode, resp.Header.Get(HeaderStub))
	}
	if got := testutil.ToFloat64(ix.metrics.Calls.WithLabelValues(Error)); got != 1 {
		t.Errorf("errors counted %v, want 1", got)
	}
	// A body longer than the limit is never passed through cut short.
	resp = call(t, srv, liveHost, "POST", "/x", "longer than four bytes")
	if resp.StatusCode != 502 || resp.Header.Get(HeaderStub) != Miss || calls.Load() != 0 {
		t.Errorf("long body: %d %q, %d calls through; want a miss and none", resp.StatusCode, resp.Header.Get(HeaderStub), calls.Load())
	}
}

func TestFormBodiesMatchFieldByField(t *testing.T) {
	ix := NewIndex()
	for _, c := range []struct{ id, body string }{
		{"small", "amount=100&currency=eur&source=tok_visa&description=order+1"},
		{"large", "amount=2500&currency=eur&source=tok_visa&description=order+2"},
	} {
		rec := recorded(c.id, "api.gateway", "POST", "/v1/charges", c.body, 200, c.id)
		rec.Request.Headers = []*mlv1.Header{{Name: "content-type", Value: "application/x-www-form-urlencoded"}}
		ix.Add(rec)
	}
	srv, _ := serve(t, ix)
	// Field order changed, one field differs: still the call for order 2.
	resp := call(t, srv, "api.gateway", "POST", "/v1/charges", "description=order+2&source=tok_visa&currency=eur&amount=2600",
		"Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if got := readAll(t, resp.Body); got != "large" {
		t.Errorf("answered %q, want the recorded call with 3 of 4 fields alike", got)
	}
}

// The primary's egress records are published by its egress proxy, apart
// from the inbound exchange: the replayed request can reach the shadow, and
// its call the stub, before they are on the clean topic, even when the
// index had read the topic to its end. A call whose parent has no recorded
// call yet waits for them (up to its bound); one whose parent has some
// misses at once.
func TestWaitsForAnUnseenParentThenHits(t *testing.T) {
	ix := NewIndex()
	lag := &lagging{asked: make(chan struct{})}
	lag.reached.Store(true)
	ix.SetProgress(lag)
	srv, _ := serve(t, ix, WithWait(time.Minute))
	got := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("GET", srv.URL+"/ping", nil)
		req.Host = "gw"
		req.Header.Set("Tracestate", "mirrorline="+parentHex)
		resp, err := srv.Client().Do(req)
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	select {
	case <-lag.asked:
	case <-time.After(time.Minute):
		t.Fatal("the call did not ask how far the index is")
	}
	ix.Add(recorded("e1", "gw", "GET", "/ping", "", 200, "pong"))
	select {
	case code := <-got:
		if code != 200 {
			t.Errorf("answered %d, want the late record's answer", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("no answer")
	}
	done := make(chan int, 1)
	go func() { done <- call(t, srv, "gw", "GET", "/other", "").StatusCode }()
	select {
	case code := <-done:
		if code != 502 {
			t.Errorf("a parent with recorded calls: %d, want a miss", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a call of a parent with recorded calls waited")
	}
}
