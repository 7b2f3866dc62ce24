package collector

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// serveLimited serves h under lim on a loopback listener until the test ends.
func serveLimited(t *testing.T, lim Limits, h http.Handler) (string, *Metrics) {
	t.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, wrapped := lim.Server(h, NewConns(), m, ln)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "test", srv, wrapped) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String(), m
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get does one GET on a new connection and returns its status.
func get(addr string) (int, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// closedByPeer reports whether the server closed c (read gives EOF or reset).
func closedByPeer(c net.Conn, wait time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// At the cap a new connection takes the place of the oldest idle one; when
// every connection is busy it is answered 503.
func TestConnLimiterEvictsIdleThenRejects(t *testing.T) {
	release, entered := make(chan struct{}), make(chan struct{}, 3)
	addr, m := serveLimited(t, Limits{MaxConns: 3}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			entered <- struct{}{}
			<-release
		}
	}))
	var idle []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	waitUntil(t, "3 open connections", func() bool { return testutil.ToFloat64(m.OpenConns) == 3 })
	if code, err := get(addr); err != nil || code != 200 {
		t.Fatalf("normal client at the cap: %d %v", code, err)
	}
	if !closedByPeer(idle[0], 10*time.Second) {
		t.Fatal("the oldest idle connection was not closed")
	}
	if got := testutil.ToFloat64(m.ShedConns.WithLabelValues(ShedIdle)); got != 1 {
		t.Fatalf("shed{idle_closed} = %v, want 1", got)
	}
	for _, c := range idle {
		c.Close()
	}
	waitUntil(t, "idle connections to be released", func() bool { return testutil.ToFloat64(m.OpenConns) == 0 })

	// Three busy connections: the fourth is refused, not queued.
	busy := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() {
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get("http://" + addr + "/block")
			if err == nil {
				resp.Body.Close()
			}
			busy <- err
		}()
	}
	for range 3 {
		select {
		case <-entered:
		case <-time.After(15 * time.Second):
			t.Fatal("busy requests not in the handler")
		}
	}
	waitUntil(t, "a new connection refused", func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err == nil && resp.StatusCode == http.StatusServiceUnavailable
	})
	if got := testutil.ToFloat64(m.ShedConns.WithLabelValues(ShedRejected)); got < 1 {
		t.Fatalf("shed{rejected} = %v", got)
	}
	close(release)
	for i := 0; i < 3; i++ {
		if err := <-busy; err != nil {
			t.Fatalf("busy request: %v", err)
		}
	}
	if code, err := get(addr); err != nil || code != 200 {
		t.Fatalf("after the busy ones: %d %v", code, err)
	}
}

// Thousands of idle connections (more than the cap) do not keep a normal
// client from being served, and are closed by the timeouts: ones that never
// send a request after the header timeout, keep-alive ones after the idle
// timeout.
func TestServerManyIdleConnections(t *testing.T) {
	const idleConns, maxConns = 3000, 1000
	addr, m := serveLimited(t, Limits{MaxConns: maxConns, ReadHeaderTimeout: time.Second, IdleTimeout: time.Second},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	conns := make([]net.Conn, 0, idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < idleConns; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	for i := 0; i < 20; i++ {
		if code, err := get(addr); err != nil || code != 200 {
			t.Fatalf("normal request %d under %d idle connections: %d %v", i, idleConns, code, err)
		}
	}
	if open := testutil.ToFloat64(m.OpenConns); open > maxConns {
		t.Fatalf("%v connections open, cap %d", open, maxConns)
	}
	// A keep-alive connection that made one request and went quiet.
	ka, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ka.Close()
	fmt.Fprint(ka, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	br := bufio.NewReader(ka)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !closedByPeer(ka, 15*time.Second) {
		t.Fatal("idle keep-alive connection not closed")
	}
	waitUntil(t, "silent connections to be closed by the header timeout", func() bool { return testutil.ToFloat64(m.OpenConns) == 0 })
}

// When a burst of connections is over, the limiter hands the memory they held
// back at once (an idle server runs no GC that would): at a quarter of the
// peak, and when the last one closed.
func TestConnLimiterShrinksAfterBurst(t *testing.T) {
	lim := NewConnLimiter(5000, nil)
	shrunk := make(chan struct{}, 10)
	lim.shrink = func() { shrunk <- struct{}{} }
	ln := lim.Listener(nil)
	var conns []*limitedConn
	for range shrinkPeak {
		a, b := net.Pipe()
		defer b.Close()
		lc := ln.(*limitListener).lim.admit(a)
		if lc == nil {
			t.Fatal("not admitted under the cap")
		}
		conns = append(conns, lc)
	}
	waitShrink := func(what string) {
		t.Helper()
		select {
		case <-shrunk:
		case <-time.After(10 * time.Second):
			t.Fatalf("no shrink %s", what)
		}
	}
	quarter := shrinkPeak - shrinkPeak/4
	for _, c := range conns[:quarter-1] {
		c.Close()
	}
	select {
	case <-shrunk:
		t.Fatal("shrunk before the burst was over")
	default:
	}
	conns[quarter-1].Close()
	waitShrink("at a quarter of the peak")
	for _, c := range conns[quarter:] {
		c.Close()
	}
	waitShrink("when the last connection closed")
	if lim.Open() != 0 {
		t.Fatalf("%d open", lim.Open())
	}
	select {
	case <-shrunk:
		t.Fatal("shrunk again with no new burst")
	case <-time.After(100 * time.Millisecond):
	}
}

// The idle list keeps connections oldest first through removals at either
// end and in the middle (the connection cap closes its head).
func TestIdleListOrder(t *testing.T) {
	var l idleList
	c := make([]*limitedConn, 5)
	for i := range c {
		c[i] = &limitedConn{}
		l.pushBack(c[i])
	}
	order := func() []int {
		var out []int
		for x := l.head; x != nil; x = x.next {
			for i := range c {
				if c[i] == x {
					out = append(out, i)
				}
			}
		}
		return out
	}
	for _, step := range []struct {
		remove int
		push   int // -1: none
		want   []int
	}{
		{2, -1, []int{0, 1, 3, 4}},
		{0, -1, []int{1, 3, 4}},
		{4, 0, []int{1, 3, 0}},
		{1, 4, []int{3, 0, 4}},
		{3, -1, []int{0, 4}},
		{0, -1, []int{4}},
		{4, 2, []int{2}},
	} {
		l.remove(c[step.remove])
		if c[step.remove].idle {
			t.Fatalf("connection %d still marked idle after removal", step.remove)
		}
		if step.push >= 0 {
			l.pushBack(c[step.push])
		}
		if got := order(); !slices.Equal(got, step.want) {
			t.Fatalf("after removing %d (push %d): %v, want %v", step.remove, step.push, got, step.want)
		}
		if l.tail != c[step.want[len(step.want)-1]] {
			t.Fatalf("tail is not connection %d", step.want[len(step.want)-1])
		}
	}
}
