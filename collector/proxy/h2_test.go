package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/testcert"
)

// seenPrimary is an HTTP/1.1 primary that notes the request lines it gets
// and answers 201 with what it saw.
func seenPrimary(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		lines = append(lines, r.Method+" "+r.RequestURI)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "primary saw %s %s %d bytes", r.Method, r.URL.RequestURI(), len(b))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), lines...) }
}

// An HTTP/2 client with prior knowledge (h2c) is served over HTTP/2: its
// requests reach the primary as themselves, never as the "PRI *" preface
// (on main it was answered 505), and are captured as HTTP/2 with bodies,
// also a body of unknown length (streamed).
func TestProxyH2CPriorKnowledge(t *testing.T) {
	primary, lines := seenPrimary(t)
	addr, em, rec := grpcProxy(t, primary.URL, nil)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 15 * time.Second}
	type call struct {
		method, path string
		body         io.Reader
		want         string
	}
	pr, pw := io.Pipe()
	go func() { _, _ = io.WriteString(pw, "streamed body"); pw.Close() }()
	calls := []call{
		{"GET", "/a?x=1", nil, "primary saw GET /a?x=1 0 bytes"},
		{"POST", "/b", strings.NewReader("known length"), "primary saw POST /b 12 bytes"},
		{"POST", "/c", pr, "primary saw POST /c 13 bytes"},
	}
	for _, c := range calls {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, c.body)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s over h2c: %v", c.method, c.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusCreated || string(b) != c.want {
			t.Fatalf("%s %s: %s %d %q, want HTTP/2 201 %q", c.method, c.path, resp.Proto, resp.StatusCode, b, c.want)
		}
	}
	if got := strings.Join(lines(), ", "); got != "GET /a?x=1, POST /b, POST /c" {
		t.Fatalf("the primary saw %q", got)
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 3 {
		t.Fatalf("%d exchanges, want 3", len(exs))
	}
	for i, ex := range exs {
		wantBody := map[int]string{1: "known length", 2: "streamed body"}[i]
		if ex.Protocol != mlv1.Protocol_PROTOCOL_HTTP2 || ex.Request.Proto != "HTTP/2.0" || ex.Request.Method != calls[i].method ||
			string(ex.Request.Body) != wantBody || ex.Request.BodyTruncated || string(ex.Response.Body) != calls[i].want || ex.Response.Status != 201 {
			t.Fatalf("exchange %d: %v %s %s %s body %q (cut %v) answer %d %q", i, ex.Protocol, ex.Request.Proto, ex.Request.Method, ex.Request.Url,
				ex.Request.Body, ex.Request.BodyTruncated, ex.Response.Status, ex.Response.Body)
		}
	}
	if exs[0].ConnectionId != exs[2].ConnectionId || exs[0].Sequence != 1 || exs[2].Sequence != 3 {
		t.Fatalf("streams of one connection: ids %q %q, sequences %d %d", exs[0].ConnectionId, exs[2].ConnectionId, exs[0].Sequence, exs[2].Sequence)
	}
}

// An HTTP/1.1 client asking to upgrade to h2c (RFC 7540 section 3.2) gets
// 101 and its request answered over HTTP/2; the primary sees a plain
// request, no upgrade. With a body, the upgrade is declined: answered over
// HTTP/1.1.
func TestProxyH2CUpgrade(t *testing.T) {
	primary, lines := seenPrimary(t)
	addr, em, rec := grpcProxy(t, primary.URL, nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(conn, "GET /up HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answer: %v %v", resp, err)
	}
	// HTTP/2 from here: the client's preface, then the answer on stream 1.
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, br)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var status string
	var body bytes.Buffer
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status = f.Value
		}
	})
	for done := false; !done; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read HTTP/2 frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				t.Fatal(err)
			}
			done = f.StreamEnded()
		case *http2.DataFrame:
			body.Write(f.Data())
			done = f.StreamEnded()
		}
	}
	if status != "201" || body.String() != "primary saw GET /up 0 bytes" {
		t.Fatalf("answer over HTTP/2: %s %q", status, body.String())
	}

	// A body: the upgrade is declined.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	_ = c2.SetDeadline(time.Now().Add(15 * time.Second))
	fmt.Fprintf(c2, "POST /body HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\nabc")
	resp, err = http.ReadResponse(bufio.NewReader(c2), nil)
	if err != nil || resp.StatusCode != http.StatusCreated || resp.ProtoMajor != 1 {
		t.Fatalf("upgrade with a body: %v %v, want HTTP/1.1 201", resp, err)
	}
	if got := strings.Join(lines(), ", "); got != "GET /up, POST /body" {
		t.Fatalf("the primary saw %q", got)
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 2 || exs[0].Protocol != mlv1.Protocol_PROTOCOL_HTTP2 || exs[0].Request.Url != "/up" || exs[0].Request.Proto != "HTTP/2.0" || header(exs[0].Request.Headers, "Upgrade") != "" ||
		exs[1].Protocol != mlv1.Protocol_PROTOCOL_UNSPECIFIED || string(exs[1].Request.Body) != "abc" {
		t.Fatalf("captured %v", exs)
	}
	if header(exs[1].Request.Headers, "Upgrade") != "" {
		t.Fatalf("declined upgrade recorded with its Upgrade header: %v", exs[1].Request.Headers)
	}
}

// REST over TLS: HTTP/2 by ALPN (and HTTP/1.1 for a client that offers only
// that), captured with its body and protocol.
func TestProxyHTTP2OverTLS(t *testing.T) {
	cert := testcert.New(t)
	primary, _ := seenPrimary(t)
	addr, em, rec := grpcProxy(t, primary.URL, cert.Server())
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: cert.Client(), ForceAttemptHTTP2: h2}
		hc := &http.Client{Transport: tr, Timeout: 15 * time.Second}
		resp, err := hc.Post("https://"+addr+"/rest", "application/json", strings.NewReader(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.ProtoMajor != map[bool]int{true: 2, false: 1}[h2] || string(b) != "primary saw POST /rest 7 bytes" {
			t.Fatalf("h2 %v: %s %q", h2, resp.Proto, b)
		}
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 2 {
		t.Fatalf("%d exchanges", len(exs))
	}
	for i, want := range []mlv1.Protocol{mlv1.Protocol_PROTOCOL_HTTP2, mlv1.Protocol_PROTOCOL_UNSPECIFIED} {
		ex := exs[i]
		if ex.Protocol != want || ex.Request.Scheme != "https" || string(ex.Request.Body) != `{"a":1}` || string(ex.Response.Body) != "primary saw POST /rest 7 bytes" {
			t.Fatalf("exchange %d: %v %s body %q answer %q", i, ex.Protocol, ex.Request.Scheme, ex.Request.Body, ex.Response.Body)
		}
	}
}

// The primary gets the protocol configured: auto sends REST over HTTP/1.1
// and gRPC over h2c to an http:// primary, h2c sends everything over h2c;
// settings that cannot work are refused by New.
func TestPrimaryProtocol(t *testing.T) {
	var mu sync.Mutex
	var protos []string
	h2cPrimary := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		protos = append(protos, r.Proto)
		mu.Unlock()
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
	}))
	h2cPrimary.Config.Protocols = new(http.Protocols)
	h2cPrimary.Config.Protocols.SetHTTP1(true)
	h2cPrimary.Config.Protocols.SetUnencryptedHTTP2(true)
	h2cPrimary.Start()
	t.Cleanup(h2cPrimary.Close)
	for _, tc := range []struct {
		proto string
		want  string // protocols the primary saw for a REST and a gRPC-typed request
	}{
		{PrimaryAuto, "HTTP/1.1 HTTP/2.0"},
		{PrimaryH2C, "HTTP/2.0 HTTP/2.0"},
		{PrimaryHTTP1, "HTTP/1.1 HTTP/1.1"},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			mu.Lock()
			protos = nil
			mu.Unlock()
			addr, _, _ := grpcProxy(t, h2cPrimary.URL, nil, WithPrimaryProtocol(tc.proto))
			for _, ct := range []string{"application/json", "application/grpc"} {
				resp, err := http.Post("http://"+addr+"/x", ct, strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			mu.Lock()
			got := strings.Join(protos, " ")
			mu.Unlock()
			if got != tc.want {
				t.Fatalf("the primary saw %q, want %q", got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ primary, proto string }{
		{"http://127.0.0.1:1", PrimaryH2},
		{"https://127.0.0.1:1", PrimaryH2C},
		{"http://127.0.0.1:1", "http3"},
	} {
		if _, err := New(tc.primary, nil, WithPrimaryProtocol(tc.proto)); err == nil || !strings.Contains(err.Error(), "primary-protocol") {
			t.Errorf("New(%s, %s): %v, want a primary-protocol error", tc.primary, tc.proto, err)
		}
	}
}

// syncBuffer is a log output tests read while servers write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A client that negotiates h2 and sends something else is logged by the
// HTTP/2 server ("bogus greeting") without the bytes it sent.
func TestProxyLogsNoClientBytes(t *testing.T) {
	const secret = "4111111111111111"
	cert := testcert.New(t)
	primary, _ := seenPrimary(t)
	out := &syncBuffer{}
	addr, _, _ := grpcProxy(t, primary.URL, cert.Server(),
		WithLogger(hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Debug})))
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: cert.Pool, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", secret)
	_, _ = io.Copy(io.Discard, c) // until the server closes
	waitFor(t, "the HTTP/2 server's log line", func() bool { return strings.Contains(out.String(), "preface") })
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), "GET /") {
		t.Fatalf("the log shows the client's bytes:\n%s", out.String())
	}
}

// A streamed HTTP/2 body (unknown length) that trickles slower than the
// limits is cut: the client gets 408, the primary's request is aborted,
// nothing is published, and it is counted.
func TestProxyH2CSlowStreamedBody(t *testing.T) {
	primary, _ := seenPrimary(t)
	addr, em, rec := grpcProxy(t, primary.URL, nil, WithLimits(collector.Limits{BodyTimeout: 300 * time.Millisecond, MinBodyRate: 1 << 20}))
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() { _, _ = io.WriteString(pw, "first bytes") }() // then nothing
	req, _ := http.NewRequest("POST", "http://"+addr+"/slow", pr)
	resp, err := (&http.Client{Transport: tr, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	collectortest.Flush(t, em)
	if n := len(rec.Exchanges(t)); n != 0 {
		t.Fatalf("%d exchanges published for a body cut short", n)
	}
	if got := testutil.ToFloat64(em.Metrics().Dropped.WithLabelValues(collector.DropBodyTimeout)); got != 1 {
		t.Fatalf("dropped{body_timeout} = %v, want 1", got)
	}
}
