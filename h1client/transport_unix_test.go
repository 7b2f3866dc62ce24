//go:build unix

package h1client

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestTransportServerClosedIdleConnection(t *testing.T) {
	// The server answers one request per connection without saying so
	// (no Connection: close) and closes it: the next request must notice
	// the closed connection and use a new one, whatever its method.
	base, conns := rawServer(t, func(c net.Conn, br *bufio.Reader) {
		if _, ok := readRequest(br); ok {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	d, _ := newTestTransport(t)
	for i, method := range []string{"GET", "POST", "GET", "POST"} {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("x")
		}
		req, _ := http.NewRequest(method, base, body)
		res, err := d.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, method, err)
		}
		if got := readAll(t, res); got != "ok" {
			t.Fatalf("request %d: %q", i, got)
		}
		// Wait until the server's close reached this side: the pooled
		// connection reads EOF.
		waitClosed(t, d)
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("%d connections, want 4", n)
	}
}

// waitClosed waits (bounded, in poll(2)) until the one pooled connection of
// d is closed by its peer.
func waitClosed(t *testing.T, d *Transport) {
	t.Helper()
	d.mu.Lock()
	if len(d.idle) != 1 {
		d.mu.Unlock()
		t.Fatalf("%d pooled connections, want 1", len(d.idle))
	}
	c := d.idle[0]
	d.mu.Unlock()
	var n int
	var err error
	_ = c.raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		n, err = unix.Poll(fds, 10_000)
	})
	if n != 1 || err != nil {
		t.Fatalf("the server's close never arrived (poll: %d, %v)", n, err)
	}
}
