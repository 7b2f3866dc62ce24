package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

// primaryLog is a primary that records what reached it and how its
// connections end.
type primaryLog struct {
	mu       sync.Mutex
	requests []string // "METHOD REQUEST-URI body-bytes [body error]"
	open     int      // connections not closed yet
	srv      *httptest.Server
}

func startLoggingPrimary(t *testing.T, h http.HandlerFunc) *primaryLog {
	t.Helper()
	pl := &primaryLog{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			entry := fmt.Sprintf("%s %s %d", r.Method, r.RequestURI, len(b))
			if err != nil {
				entry += " body error"
			}
			pl.mu.Lock()
			pl.requests = append(pl.requests, entry)
			pl.mu.Unlock()
			w.WriteHeader(http.StatusCreated)
		}
	}
	pl.srv = httptest.NewUnstartedServer(h)
	pl.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		pl.mu.Lock()
		defer pl.mu.Unlock()
		switch s {
		case http.StateNew:
			pl.open++
		case http.StateClosed, http.StateHijacked:
			pl.open--
		}
	}
	pl.srv.Start()
	t.Cleanup(pl.srv.Close)
	return pl
}

func (pl *primaryLog) seen() []string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return append([]string(nil), pl.requests...)
}

func (pl *primaryLog) openConns() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.open
}

type hostileRig struct {
	addr    string
	primary *primaryLog
	pub     *collectortest.Recorder
	metrics *collector.Metrics
	proxy   *Proxy
	em      *collector.Emitter
}

// published returns what the proxy published so far, once the emitter has
// handed over everything it accepted.
func (r *hostileRig) published(t *testing.T) []*mlv1.Exchange {
	t.Helper()
	collectortest.Flush(t, r.em)
	return r.pub.Exchanges(t)
}

func startHostileProxy(t *testing.T, h http.HandlerFunc, opts ...Option) *hostileRig {
	t.Helper()
	pl := startLoggingPrimary(t, h)
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "svc", m, nil)
	p, err := New(pl.srv.URL, em, opts...)
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := collectortest.Serve(t, p.Serve)
	return &hostileRig{addr: srvAddr, primary: pl, pub: rec, metrics: m, proxy: p, em: em}
}

// rawExchange writes raw on a new connection, half-closes it when closeWrite,
// and returns the proxy's answer (status 0: the connection ended without one).
func rawExchange(t *testing.T, addr, raw string, closeWrite bool) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	if closeWrite {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Requests whose framing the proxy cannot forward faithfully are answered by
// the proxy, never reach the primary, are not published, and are counted.
func TestProxyRefusesBrokenRequests(t *testing.T) {
	r := startHostileProxy(t, nil)
	for _, tc := range []struct {
		name       string
		raw        string
		closeWrite bool
		status     int
		reason     string
	}{
		{"client sends 431 of 1000 declared bytes, then leaves",
			"POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("a", 431), true, 400, collector.DropIncompleteBody},
		{"malformed chunk size",
			"POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", false, 400, collector.DropBadFraming},
		{"chunk data longer than its size",
			"POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", false, 400, collector.DropBadFraming},
		{"chunked body cut before the last chunk",
			"POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", true, 400, collector.DropIncompleteBody},
		{"asterisk target without OPTIONS",
			"GET * HTTP/1.1\r\nHost: h\r\n\r\n", false, 400, collector.DropUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropped := r.metrics.Dropped.WithLabelValues(tc.reason)
			before := testutil.ToFloat64(dropped)
			if got := rawExchange(t, r.addr, tc.raw, tc.closeWrite); got != tc.status {
				t.Errorf("status %d, want %d", got, tc.status)
			}
			if got := testutil.ToFloat64(dropped) - before; got != 1 {
				t.Errorf("dropped{reason=%q} grew by %v, want 1", tc.reason, got)
			}
		})
	}
	if seen := r.primary.seen(); len(seen) != 0 {
		t.Fatalf("primary got %q", seen)
	}
	if pub := r.published(t); len(pub) != 0 {
		t.Fatalf("published %d records, want none", len(pub))
	}
}

// Well-formed requests still pass: a chunked body is forwarded and recorded
// whole.
func TestProxyForwardsWellFramedRequests(t *testing.T) {
	r := startHostileProxy(t, nil, WithBodyLimit(64))
	if got := rawExchange(t, r.addr, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false); got != 201 {
		t.Fatalf("chunked: status %d", got)
	}
	if got, want := strings.Join(r.primary.seen(), "|"), "POST /c 11"; got != want {
		t.Fatalf("primary saw %q, want %q", got, want)
	}
	pub := r.published(t)
	if len(pub) != 1 {
		t.Fatalf("published %d, want 1", len(pub))
	}
	req := pub[0].Request
	if string(req.Body) != "hello world" || req.BodySize != 11 || req.BodyTruncated || req.BodyIncomplete {
		t.Fatalf("chunked request recorded as %q size %d truncated %v incomplete %v", req.Body, req.BodySize, req.BodyTruncated, req.BodyIncomplete)
	}
}

// A WebSocket upgrade is recorded with the primary's 101 and its headers, not
// as a 200; the tunnel still works through the proxy.
func TestProxyRecordsUpgrade(t *testing.T) {
	r := startHostileProxy(t, func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("Upgrade") != "websocket" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-Websocket-Accept: x\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprintf(brw, "echo %s", line)
		_ = brw.Flush()
	})
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-Websocket-Key: k\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answer: %v %v", resp, err)
	}
	fmt.Fprintf(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
		t.Fatalf("tunnel: %q %v", line, err)
	}
	c.Close()
	waitFor(t, "the upgrade to be published", func() bool { return len(r.published(t)) == 1 })
	ex := r.published(t)[0]
	if ex.Response.GetStatus() != 101 {
		t.Fatalf("recorded status %d, want 101", ex.Response.GetStatus())
	}
	var up, reqUp bool
	for _, h := range ex.Response.Headers {
		up = up || (h.Name == "Upgrade" && h.Value == "websocket")
	}
	for _, h := range ex.Request.Headers {
		reqUp = reqUp || (h.Name == "Upgrade" && h.Value == "websocket")
	}
	if !up || !reqUp {
		t.Fatalf("Upgrade header recorded: response %v request %v", up, reqUp)
	}
}

// A body trickled one byte at a time is cut after the body timeout: answered
// 408 before it reaches the primary when it fits the body limit; aborted, with
// the primary's connection released, when it was already being streamed.
func TestProxyCutsSlowBodies(t *testing.T) {
	lim := collector.Limits{BodyTimeout: 300 * time.Millisecond, MinBodyRate: 1024}
	r := startHostileProxy(t, nil, WithBodyLimit(256), WithLimits(lim))
	for _, tc := range []struct {
		name  string
		burst int // bytes sent at once before trickling
		upTo  int // bytes sent in all, then silence (the body never ends)
	}{
		{"within the body limit", 4, 200},
		{"streamed past the body limit", 300, 2000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			const total = 2000 // at one byte per 10 ms: 20 s if never cut
			fmt.Fprintf(c, "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", total, strings.Repeat("b", tc.burst))
			stop := make(chan struct{})
			go func() {
				tick := time.NewTicker(10 * time.Millisecond)
				defer tick.Stop()
				for i := tc.burst; i < tc.upTo; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if _, err := c.Write([]byte{'b'}); err != nil {
						return
					}
				}
			}()
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			close(stop)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("status %d, want 408", resp.StatusCode)
			}
		})
	}
	waitFor(t, "the primary's connections to close", func() bool { return r.primary.openConns() == 0 })
	if seen := r.primary.seen(); len(seen) > 1 || (len(seen) == 1 && !strings.HasSuffix(seen[0], "body error")) {
		t.Fatalf("primary saw %q; want at most the aborted streamed one", seen)
	}
	if got := testutil.ToFloat64(r.metrics.Dropped.WithLabelValues(collector.DropBodyTimeout)); got != 2 {
		t.Fatalf("dropped{body_timeout} = %v, want 2", got)
	}
	if pub := r.published(t); len(pub) != 0 {
		t.Fatalf("published %d, want none", len(pub))
	}
}

// A chunked body the proxy read whole (within the body limit) reaches the
// primary with its length; one past the limit, streamed, stays chunked. The
// primary gets the same bytes either way.
func TestProxyFramesAChunkedBodyReadWhole(t *testing.T) {
	type seen struct {
		length int64
		te     string
		body   string
	}
	got := make(chan seen, 1)
	r := startHostileProxy(t, func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		got <- seen{req.ContentLength, strings.Join(req.TransferEncoding, ","), string(b)}
		w.WriteHeader(http.StatusCreated)
	}, WithBodyLimit(64))
	long := strings.Repeat("x", 100)
	for _, tc := range []struct {
		name, chunks string
		want         seen
	}{
		{"read whole", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", seen{11, "", "hello world"}},
		{"past the body limit", fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(long), long), seen{-1, "chunked", long}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status := rawExchange(t, r.addr, "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"+tc.chunks, false); status != http.StatusCreated {
				t.Fatalf("status %d", status)
			}
			if s := <-got; s != tc.want {
				t.Fatalf("primary saw length %d, transfer-encoding %q, %d body bytes; want %d, %q, %d",
					s.length, s.te, len(s.body), tc.want.length, tc.want.te, len(tc.want.body))
			}
		})
	}
}
