// Package canary gives tests a listener that must never be reached: it counts
// every connection it accepts (and the request lines it reads), so a test can
// prove that nothing a record says makes a component connect to it.
package canary

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Canary is a TCP listener that counts connections and answers any HTTP/1.x
// request with 200, so a request that reaches it succeeds like a real one.
type Canary struct {
	ln    net.Listener
	mu    sync.Mutex
	conns int
	lines []string
	open  map[net.Conn]bool
	wg    sync.WaitGroup
}

// Start listens on addr (e.g. "127.0.0.2:80" or "127.0.0.1:0") until the test
// ends. A fixed port another test process holds is waited for (up to 60 s).
func Start(t testing.TB, addr string) *Canary {
	t.Helper()
	c := TryStart(t, addr)
	if c == nil {
		t.Fatalf("canary listen %s: no such address on this host", addr)
	}
	return c
}

// TryStart is Start, but returns nil when this host has no such address (no
// IPv6 loopback, say).
func TryStart(t testing.TB, addr string) *Canary {
	t.Helper()
	var ln net.Listener
	deadline := time.Now().Add(60 * time.Second)
	for {
		var err error
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) {
			return nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("canary listen %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond) // another test process holds the port
	}
	c := &Canary{ln: ln, open: map[net.Conn]bool{}}
	c.wg.Add(1)
	go c.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		c.mu.Lock()
		for conn := range c.open {
			_ = conn.Close()
		}
		c.mu.Unlock()
		c.wg.Wait()
	})
	return c
}

// Addr is the listening address (host:port).
func (c *Canary) Addr() string { return c.ln.Addr().String() }

// Port is the listening port.
func (c *Canary) Port() int { return c.ln.Addr().(*net.TCPAddr).Port }

// Hits is the number of connections accepted so far.
func (c *Canary) Hits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns
}

// Lines are the request lines read so far.
func (c *Canary) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *Canary) accept() {
	defer c.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		c.conns++
		c.open[conn] = true
		c.mu.Unlock()
		c.wg.Add(1)
		go c.serve(conn)
	}
}

// serve answers each request on conn with an empty 200 (bodies are not
// expected: requests are read up to their blank line).
func (c *Canary) serve(conn net.Conn) {
	defer c.wg.Done()
	defer func() {
		_ = conn.Close()
		c.mu.Lock()
		delete(c.open, conn)
		c.mu.Unlock()
	}()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		c.mu.Lock()
		c.lines = append(c.lines, strings.TrimRight(line, "\r\n"))
		c.mu.Unlock()
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimRight(h, "\r\n") == "" {
				break
			}
		}
		if _, err := conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ncanary")); err != nil {
			return
		}
	}
}
