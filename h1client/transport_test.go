package h1client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingRT counts the requests handed to the fallback.
type countingRT struct {
	rt http.RoundTripper
	n  atomic.Int64
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

// connCounter is a server that counts the connections it accepted.
func connCounter(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			n.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &n
}

func newTestTransport(t *testing.T) (*Transport, *countingRT) {
	t.Helper()
	fb := &countingRT{rt: &http.Transport{}}
	d := New(fb, (&net.Dialer{Timeout: 5 * time.Second}).DialContext)
	t.Cleanup(d.CloseIdleConnections)
	return d, fb
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return string(b)
}

// echo answers with the method, the request body and a header back.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Seen", r.Header.Get("X-Test"))
	_, _ = io.WriteString(w, r.Method+" "+r.URL.RequestURI()+" "+string(b))
}

func TestTransportKeepsConnectionsAlive(t *testing.T) {
	srv, conns := connCounter(t, echo)
	d, fb := newTestTransport(t)
	for i := 0; i < 10; i++ {
		var req *http.Request
		if i%2 == 0 {
			req, _ = http.NewRequest(http.MethodGet, srv.URL+"/a?b=c", nil)
		} else {
			req, _ = http.NewRequest(http.MethodPost, srv.URL+"/p", strings.NewReader("hello"))
		}
		req.Header.Set("X-Test", "v")
		res, err := d.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		want := "GET /a?b=c "
		if i%2 == 1 {
			want = "POST /p hello"
		}
		if got := readAll(t, res); got != want || res.Header.Get("X-Seen") != "v" {
			t.Fatalf("request %d: %q (X-Seen %q), want %q", i, got, res.Header.Get("X-Seen"), want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 10 sequential requests, want 1", n)
	}
	if n := fb.n.Load(); n != 0 {
		t.Errorf("%d requests went to the fallback", n)
	}
}

func TestTransportFallback(t *testing.T) {
	srv, _ := connCounter(t, echo)
	big := strings.Repeat("x", directBodyMax+1)
	for _, tc := range []struct {
		name     string
		req      func() *http.Request
		fallback bool
	}{
		{"get", func() *http.Request { r, _ := http.NewRequest("GET", srv.URL, nil); return r }, false},
		{"small body", func() *http.Request { r, _ := http.NewRequest("PUT", srv.URL, strings.NewReader("x")); return r }, false},
		{"body at the bound", func() *http.Request {
			r, _ := http.NewRequest("PUT", srv.URL, strings.NewReader(big[1:]))
			return r
		}, false},
		{"body past the bound", func() *http.Request { r, _ := http.NewRequest("PUT", srv.URL, strings.NewReader(big)); return r }, true},
		{"body of unknown length", func() *http.Request {
			r, _ := http.NewRequest("PUT", srv.URL, io.NopCloser(strings.NewReader("x")))
			r.ContentLength = -1
			return r
		}, true},
		{"upgrade", func() *http.Request {
			r, _ := http.NewRequest("GET", srv.URL, nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}, true},
		{"expect continue", func() *http.Request {
			r, _ := http.NewRequest("PUT", srv.URL, strings.NewReader("x"))
			r.Header.Set("Expect", "100-continue")
			return r
		}, true},
		{"https", func() *http.Request { r, _ := http.NewRequest("GET", "https://127.0.0.1:1/", nil); return r }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, fb := newTestTransport(t)
			req := tc.req()
			if got := !directable(req); got != tc.fallback {
				t.Fatalf("fallback %v, want %v", got, tc.fallback)
			}
			if tc.name == "https" || tc.name == "upgrade" {
				return
			}
			res, err := d.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, res)
			if got := fb.n.Load() == 1; got != tc.fallback {
				t.Errorf("went to the fallback: %v, want %v", got, tc.fallback)
			}
		})
	}
}

// rawServer serves each accepted connection with fn, on loopback.
func rawServer(t *testing.T, fn func(c net.Conn, br *bufio.Reader)) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fn(c, bufio.NewReader(c))
			}()
		}
	}()
	return "http://" + ln.Addr().String(), &n
}

// readRequest reads one request off br and its body, or reports false.
func readRequest(br *bufio.Reader) (*http.Request, bool) {
	r, err := http.ReadRequest(br)
	if err != nil {
		return nil, false
	}
	_, _ = io.Copy(io.Discard, r.Body)
	return r, true
}

func TestTransportRetriesOnlyReplayable(t *testing.T) {
	// Every connection answers its first request and closes without a
	// word when it has read the second: the race between a server's idle
	// timeout and a request sent on that connection.
	base, conns := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, ok := readRequest(br); !ok {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		readRequest(br)
	})
	for _, tc := range []struct {
		method string
		body   io.Reader
		header string
		retry  bool
	}{
		{"GET", nil, "", true},
		{"HEAD", nil, "", true},
		{"POST", strings.NewReader("x"), "", false},
		{"POST", nil, "Idempotency-Key", true},
		{"DELETE", nil, "", false},
	} {
		t.Run(tc.method+tc.header, func(t *testing.T) {
			d, _ := newTestTransport(t)
			first, _ := http.NewRequest("GET", base, nil)
			res, err := d.RoundTrip(first)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, res)
			before := conns.Load()
			req, _ := http.NewRequest(tc.method, base, tc.body)
			if tc.header != "" {
				req.Header.Set(tc.header, "k-1")
			}
			res, err = d.RoundTrip(req)
			if tc.retry {
				if err != nil {
					t.Fatalf("not retried: %v", err)
				}
				readAll(t, res)
				if n := conns.Load() - before; n != 1 {
					t.Errorf("%d new connections, want 1", n)
				}
				return
			}
			if err == nil {
				readAll(t, res)
				t.Fatal("a request that cannot be sent twice was sent again")
			}
			if !errors.Is(err, ErrConnGone) {
				t.Errorf("err %v, want ErrConnGone", err)
			}
			if n := conns.Load() - before; n != 0 {
				t.Errorf("%d new connections, want 0", n)
			}
		})
	}
}

func TestTransportConnectionClose(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		reqCls bool
		conns  int64
	}{
		{"kept", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 1},
		{"server says close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, 3},
		{"request says close", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, 3},
		{"HTTP/1.0 answer", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, conns := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				for {
					r, ok := readRequest(br)
					if !ok {
						return
					}
					_, _ = io.WriteString(c, tc.answer)
					if r.Close || strings.Contains(tc.answer, "close") || strings.HasPrefix(tc.answer, "HTTP/1.0") {
						return
					}
				}
			})
			d, _ := newTestTransport(t)
			for i := 0; i < 3; i++ {
				req, _ := http.NewRequest("GET", base, nil)
				req.Close = tc.reqCls
				res, err := d.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if got := readAll(t, res); got != "ok" {
					t.Fatalf("request %d: %q", i, got)
				}
			}
			if n := conns.Load(); n != tc.conns {
				t.Errorf("%d connections, want %d", n, tc.conns)
			}
		})
	}
}

func TestTransportBodyClosedEarly(t *testing.T) {
	srv, conns := connCounter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("y", 100<<10))
	})
	d, _ := newTestTransport(t)
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		res, err := d.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadFull(res.Body, make([]byte, 10))
		_ = res.Body.Close() // the rest of the answer is never read
		if n := len(d.idle); n != 0 {
			t.Fatalf("a connection with an unread answer went back to the pool")
		}
	}
	req, _ := http.NewRequest("GET", srv.URL, nil)
	res, err := d.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, res); len(got) != 100<<10 {
		t.Fatalf("%d bytes", len(got))
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

func TestTransportNoBodyAnswers(t *testing.T) {
	srv, conns := connCounter(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/204" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	})
	d, _ := newTestTransport(t)
	for _, path := range []string{"/204", "/", "/204"} {
		for _, method := range []string{"HEAD", "GET"} {
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			res, err := d.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			want := "hello"
			if method == "HEAD" || path == "/204" {
				want = ""
			}
			if got := readAll(t, res); got != want {
				t.Fatalf("%s %s: %q, want %q", method, path, got, want)
			}
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

func TestTransportCancelled(t *testing.T) {
	release := make(chan struct{})
	base, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		<-release // never answers until the test ends
	})
	t.Cleanup(func() { close(release) })
	d, _ := newTestTransport(t)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base, nil)
	done := make(chan error, 1)
	go func() {
		_, err := d.RoundTrip(req)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip did not return after its request was cancelled")
	}
	if n := len(d.idle); n != 0 {
		t.Errorf("%d pooled connections after a cancelled request", n)
	}
}

func TestTransportHostileServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		want   string
	}{
		{"endless header", "HTTP/1.1 200 OK\r\nX-A: " + strings.Repeat("a", 64<<10), "header exceeds"},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", "malformed HTTP"},
		{"too many 1xx", strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", max1xx+2), "unexpected 103"},
		{"switching protocols unasked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", "unexpected 101"},
		{"closed before answering", "", "before answering"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
				readRequest(br)
				_, _ = io.WriteString(c, tc.answer)
			})
			d, _ := newTestTransport(t)
			d.maxHeader = 16 << 10
			req, _ := http.NewRequest("GET", base, nil)
			res, err := d.RoundTrip(req)
			if err == nil {
				_ = res.Body.Close()
				t.Fatalf("status %d, want an error", res.StatusCode)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestTransportRefusesInvalidHeaders(t *testing.T) {
	srv, conns := connCounter(t, echo)
	d, _ := newTestTransport(t)
	for _, h := range []http.Header{
		{"X-A": {"v\r\nX-Injected: 1"}},
		{"X-A\r\nX-Injected": {"v"}},
	} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header = h
		if _, err := d.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid header") {
			t.Errorf("header %q: err %v, want an invalid header error", h, err)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connections for requests refused before sending, want 0", n)
	}
}

func TestTransportForwards1xx(t *testing.T) {
	base, _ := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br)
		_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	d, _ := newTestTransport(t)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", base, nil)
	res, err := d.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, res); body != "ok" || res.StatusCode != 200 {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	if len(got) != 1 || got[0] != "</style.css>; rel=preload" {
		t.Errorf("1xx seen: %q", got)
	}
}

func TestTransportClosesExpiredIdle(t *testing.T) {
	srv, conns := connCounter(t, echo)
	d, _ := newTestTransport(t)
	d.idleTimeout = time.Hour
	get := func() {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL, nil)
		res, err := d.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, res)
	}
	get()
	d.mu.Lock()
	if len(d.idle) != 1 || d.sweep == nil {
		d.mu.Unlock()
		t.Fatalf("%d pooled connections, sweep armed %v", len(d.idle), d.sweep != nil)
	}
	d.idle[0].idleAt = time.Now().Add(-2 * time.Hour)
	d.mu.Unlock()
	d.closeExpired()
	if n := len(d.idle); n != 0 || d.sweep != nil {
		t.Fatalf("%d pooled connections after the sweep, sweep armed %v", n, d.sweep != nil)
	}
	get()
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the expired one closed)", n)
	}
}

func TestTransportConcurrent(t *testing.T) {
	srv, conns := connCounter(t, echo)
	d, _ := newTestTransport(t)
	d.maxIdle = 4
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				req, _ := http.NewRequest("POST", srv.URL+"/c", strings.NewReader("b"))
				res, err := d.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				if string(b) != "POST /c b" {
					errs <- errors.New("wrong answer " + string(b))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := len(d.idle); n > 4 {
		t.Errorf("%d pooled connections, bound 4", n)
	}
	if n := conns.Load(); n > 16*50/2 {
		t.Errorf("%d connections for 800 requests of 16 clients: not reused", n)
	}
}

func TestTransportOptions(t *testing.T) {
	dial := (&net.Dialer{}).DialContext
	for _, tc := range []struct {
		name      string
		t         *Transport
		maxIdle   int
		idle      time.Duration
		maxHeader int64
	}{
		{"defaults", New(http.DefaultTransport, dial), 256, 90 * time.Second, 10 << 20},
		{"set", New(http.DefaultTransport, dial, MaxIdle(8), IdleTimeout(time.Minute), MaxHeaderBytes(4096)), 8, time.Minute, 4096},
		{"out of range kept at defaults or one", New(http.DefaultTransport, dial, MaxIdle(0), IdleTimeout(-1), MaxHeaderBytes(0)), 1, 90 * time.Second, 10 << 20},
		{"over an http.Transport", Over(&http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}), 16, 30 * time.Second, 10 << 20},
		{"over, options after", Over(&http.Transport{MaxIdleConnsPerHost: 16}, MaxIdle(4)), 4, 90 * time.Second, 10 << 20},
		{"over an http.Transport without limits", Over(&http.Transport{}), 256, 90 * time.Second, 10 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.t.maxIdle != tc.maxIdle || tc.t.idleTimeout != tc.idle || tc.t.maxHeader != tc.maxHeader {
				t.Fatalf("maxIdle %d, idleTimeout %v, maxHeader %d; want %d, %v, %d",
					tc.t.maxIdle, tc.t.idleTimeout, tc.t.maxHeader, tc.maxIdle, tc.idle, tc.maxHeader)
			}
		})
	}
}

func TestTransportDialsTheURLsHostAndPort(t *testing.T) {
	srv, _ := connCounter(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	for _, tc := range []struct{ url, want string }{
		{"http://example.test/a", "example.test:80"},
		{"http://example.test:8080/a", "example.test:8080"},
		{"http://[::1]/a", "[::1]:80"},
		{"http://[::1]:81/a", "[::1]:81"},
		{"http://Example.Test./a", "Example.Test.:80"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			var dialled []string
			d := New(&http.Transport{}, func(ctx context.Context, network, addr string) (net.Conn, error) {
				dialled = append(dialled, network+" "+addr)
				return (&net.Dialer{}).DialContext(ctx, "tcp", srv.Listener.Addr().String())
			})
			t.Cleanup(d.CloseIdleConnections)
			for range 2 { // the second request finds the first one's connection
				req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
				res, err := d.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, res); got != "ok" {
					t.Fatalf("answer %q", got)
				}
			}
			if len(dialled) != 1 || dialled[0] != "tcp "+tc.want {
				t.Fatalf("dialled %q, want once tcp %s", dialled, tc.want)
			}
		})
	}
}
