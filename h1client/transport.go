package h1client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Transport is an http.RoundTripper that does a plaintext HTTP/1.1 round
// trip on the caller's own goroutine: it writes the request and reads the
// answer itself on a pooled keep-alive connection. http.Transport runs a
// reader and a writer goroutine per connection and hands every request and
// answer between them and the caller over channels: four goroutine wake-ups
// per request that, on a busy machine, each wait for a core. What Transport
// does not handle goes to the fallback unchanged (see directable).
//
// The answer is parsed by http.ReadResponse (as http.Transport does), its
// header bounded (MaxHeaderBytes). A connection goes back to the pool only
// when its answer was read to the end and neither side asked to close it.
type Transport struct {
	fallback    http.RoundTripper
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration
	maxHeader   int64

	mu    sync.Mutex
	idle  []*conn     // most recently used last
	sweep *time.Timer // closes connections idle past idleTimeout
}

// directBodyMax is the largest request body (of known length) sent by
// Transport. The request is written whole before the answer is read:
// a body this small fits in the socket buffers, so a server that answers
// before it reads the body cannot stall the write.
const directBodyMax = 32 << 10

// max1xx bounds the informational answers (100, 103) read before the final one.
const max1xx = 5

// Option sets a knob of a Transport.
type Option func(*Transport)

// MaxIdle is the most idle connections kept for reuse (default 256).
func MaxIdle(n int) Option { return func(t *Transport) { t.maxIdle = max(n, 1) } }

// IdleTimeout is how long an idle connection is kept (default 90 s).
func IdleTimeout(d time.Duration) Option {
	return func(t *Transport) {
		if d > 0 {
			t.idleTimeout = d
		}
	}
}

// MaxHeaderBytes bounds an answer's header (default 10 MiB, as
// http.Transport's).
func MaxHeaderBytes(n int64) Option {
	return func(t *Transport) {
		if n > 0 {
			t.maxHeader = n
		}
	}
}

// Over returns a Transport that dials as t does, keeps t's idle limits
// where t sets them (MaxIdleConnsPerHost, IdleConnTimeout) and hands what
// it does not handle to t.
func Over(t *http.Transport, opts ...Option) *Transport {
	base := []Option{IdleTimeout(t.IdleConnTimeout)}
	if t.MaxIdleConnsPerHost > 0 {
		base = append(base, MaxIdle(t.MaxIdleConnsPerHost))
	}
	return New(t, t.DialContext, append(base, opts...)...)
}

// New returns a Transport that opens its connections with dial and hands
// what it does not handle (TLS, HTTP/2, upgrades, large or streamed bodies,
// 100-continue) to fallback.
func New(fallback http.RoundTripper, dial func(ctx context.Context, network, addr string) (net.Conn, error), opts ...Option) *Transport {
	t := &Transport{
		fallback:    fallback,
		dial:        dial,
		maxIdle:     256,
		idleTimeout: 90 * time.Second,
		maxHeader:   10 << 20, // http.Transport's default
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// directable reports whether r goes over Transport: plaintext http, no
// protocol switch or 100-continue, no body or a small one of known length.
func directable(r *http.Request) bool {
	if r.URL.Scheme != "http" || r.URL.Host == "" {
		return false
	}
	if r.Header.Get("Upgrade") != "" || r.Header.Get("Expect") != "" {
		return false
	}
	if r.Body != nil && r.Body != http.NoBody && (r.ContentLength <= 0 || r.ContentLength > directBodyMax) {
		return false
	}
	return len(r.Trailer) == 0 && len(r.TransferEncoding) == 0
}

// RoundTrip sends r over a pooled connection, or hands it to the fallback.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if !directable(r) {
		return t.fallback.RoundTrip(r)
	}
	// A request that cannot be sent takes no connection.
	if err := validHeader(r.Header); err != nil {
		closeBody(r)
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		c, reused, err := t.conn(r.Context(), Addr(r.URL))
		if err != nil {
			closeBody(r)
			return nil, err
		}
		res, err := c.roundTrip(r)
		if err == nil {
			return res, nil
		}
		// A kept-alive connection the server closed before it read this
		// request: try once more on a new one if the request can be sent
		// again (as http.Transport does).
		if reused && attempt == 0 && replayable(r) && errors.Is(err, ErrConnGone) {
			continue
		}
		return nil, err
	}
}

// closeBody closes the body of a request that is not sent, as a
// RoundTripper must.
func closeBody(r *http.Request) {
	if r.Body != nil {
		_ = r.Body.Close()
	}
}

// replayable reports whether r may be sent again after a connection failed
// under it: an idempotent method without a body, as http.Transport decides.
func replayable(r *http.Request) bool {
	if r.Body != nil && r.Body != http.NoBody {
		return false
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return r.Header.Get("Idempotency-Key") != "" || r.Header.Get("X-Idempotency-Key") != ""
}

// CloseIdleConnections closes the pooled connections and the fallback's.
func (t *Transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, c := range idle {
		_ = c.conn.Close()
	}
	if ci, ok := t.fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Addr is the host:port a transport dials for u: the port the URL names,
// else its scheme's (443 for https, 80 otherwise), as http.Transport dials.
// A dialler that admits only one address compares against it.
func Addr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// conn returns a live pooled connection to addr, or dials one.
func (t *Transport) conn(ctx context.Context, addr string) (*conn, bool, error) {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			break
		}
		c := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		if c.addr == addr && c.alive() {
			return c, true, nil
		}
		_ = c.conn.Close()
	}
	nc, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := &conn{t: t, conn: nc, addr: addr}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	c.br = bufio.NewReaderSize(c, 4<<10)
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	return c, false, nil
}

// put returns c to the pool, or closes it when the pool is full.
func (t *Transport) put(c *conn) {
	c.idleAt = time.Now()
	t.mu.Lock()
	if len(t.idle) >= t.maxIdle {
		t.mu.Unlock()
		_ = c.conn.Close()
		return
	}
	t.idle = append(t.idle, c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.closeExpired)
	}
	t.mu.Unlock()
}

// closeExpired closes the connections idle for idleTimeout or longer, and
// comes back while any connection is left in the pool.
func (t *Transport) closeExpired() {
	cut := time.Now().Add(-t.idleTimeout)
	t.mu.Lock()
	// The pool is ordered by when each connection came back: the expired
	// ones are at its start.
	i := 0
	for i < len(t.idle) && !t.idle[i].idleAt.After(cut) {
		i++
	}
	expired := append([]*conn(nil), t.idle[:i]...)
	t.idle = append(t.idle[:0], t.idle[i:]...)
	if len(t.idle) > 0 {
		t.sweep.Reset(time.Until(t.idle[0].idleAt.Add(t.idleTimeout)))
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, c := range expired {
		_ = c.conn.Close()
	}
}

// conn is one keep-alive connection.
type conn struct {
	t      *Transport
	conn   net.Conn
	raw    syscall.RawConn
	addr   string
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
	limit  int64 // bytes the reader may still take (the answer's header)
}

// ErrConnGone is a kept-alive connection that ended before an answer began.
var ErrConnGone = errors.New("server closed the connection before answering")

// Read reads from the connection within the current limit.
func (c *conn) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, fmt.Errorf("answer header exceeds %d bytes", c.t.maxHeader)
	}
	if int64(len(p)) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.conn.Read(p)
	c.limit -= int64(n)
	return n, err
}

// alive reports whether a pooled connection is still open and silent: the
// server may have closed it (its idle timeout) while it waited here.
func (c *conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false // bytes nobody asked for
	}
	return c.raw == nil || peekOpen(c.raw)
}

// roundTrip writes r and reads its answer. On success the answer's body owns
// the connection; on failure the connection is closed.
func (c *conn) roundTrip(r *http.Request) (*http.Response, error) {
	ctx := r.Context()
	stop := context.AfterFunc(ctx, func() {
		_ = c.conn.SetDeadline(time.Unix(1, 0)) // unblocks a read or write
	})
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := r.Write(c.bw); err != nil {
		return fail(gone(fmt.Errorf("write request: %w", err)))
	}
	if err := c.bw.Flush(); err != nil {
		return fail(gone(fmt.Errorf("write request: %w", err)))
	}
	trace := httptrace.ContextClientTrace(ctx)
	for n1xx := 0; ; n1xx++ {
		c.limit = c.t.maxHeader
		res, err := http.ReadResponse(c.br, r)
		if err != nil {
			if n1xx == 0 && c.limit == c.t.maxHeader && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) {
				err = fmt.Errorf("%w: %w", ErrConnGone, err) // not a byte of an answer
			}
			return fail(fmt.Errorf("read answer: %w", err))
		}
		c.limit = math.MaxInt64
		if res.StatusCode >= 200 || res.StatusCode < 100 {
			b := &body{rc: res.Body, c: c, stop: stop, keep: !res.Close && !r.Close}
			if res.Body == http.NoBody {
				b.done(true)
			} else {
				res.Body = b
			}
			return res, nil
		}
		if res.StatusCode == http.StatusSwitchingProtocols || n1xx >= max1xx {
			return fail(fmt.Errorf("read answer: unexpected %d answer", res.StatusCode))
		}
		if trace != nil && trace.Got1xxResponse != nil {
			if err := trace.Got1xxResponse(res.StatusCode, textproto.MIMEHeader(res.Header)); err != nil {
				return fail(err)
			}
		}
	}
}

// validHeader refuses what http.Transport refuses to send: a header name or
// value that is not valid HTTP (a line break would split the request).
func validHeader(h http.Header) error {
	for k, vv := range h {
		if !httpguts.ValidHeaderFieldName(k) {
			return errors.New("write request: invalid header field name")
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return errors.New("write request: invalid header field value")
			}
		}
	}
	return nil
}

// gone marks a write error on a connection the server had already closed.
func gone(err error) error {
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: %w", ErrConnGone, err)
	}
	return err
}

// body is the body of an answer read by Transport: at its end
// the connection goes back to the pool, closed early it is closed.
type body struct {
	rc   io.ReadCloser
	c    *conn
	stop func() bool
	keep bool

	mu  sync.Mutex
	end bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.done(true)
	}
	return n, err
}

func (b *body) Close() error {
	b.done(false)
	return nil
}

// done gives the connection back once: to the pool when the answer was read
// to its end (eof), the connection may be kept and no deadline was set on
// it by a cancelled request; closed otherwise.
func (b *body) done(eof bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.end {
		return
	}
	b.end = true
	if b.stop() && eof && b.keep {
		b.c.t.put(b.c)
		return
	}
	_ = b.c.conn.Close()
}
