package collector

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits bound what one client can hold of an HTTP collector (proxy, sink):
// connections, time and bytes. Zero fields take the defaults of DefaultLimits
// (MaxConns: derived from the open-file limit, see DefaultMaxConns).
type Limits struct {
	// MaxConns caps open client connections. At the cap a new connection
	// closes the oldest idle one (no request in progress), or is answered 503
	// and closed when every connection is busy.
	MaxConns int `yaml:"max_conns" flag:"max-conns" help:"client connections held at most; at the cap a new one closes the oldest idle one, or gets 503 when all are busy (0: half the open-file limit after a reserve)"`
	// ReadHeaderTimeout bounds the time from the start of a request (or of the
	// connection) to the end of its head.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" flag:"read-header-timeout" help:"time a client has to send a request head (also a new connection's first one)"`
	// IdleTimeout closes a keep-alive connection with no request for this long.
	IdleTimeout time.Duration `yaml:"idle_timeout" flag:"idle-timeout" help:"close keep-alive connections idle this long"`
	// MaxHeaderBytes caps a request head; a longer one is answered 431.
	MaxHeaderBytes int `yaml:"max_header_bytes" flag:"max-header-bytes" help:"largest request head accepted; longer ones are answered 431"`
	// BodyTimeout and MinBodyRate bound how slowly a request body may arrive:
	// it must be complete within BodyTimeout plus one second per MinBodyRate
	// bytes received (bytes per second). A slower body is cut: answered 408
	// when the proxy has not forwarded it yet, aborted towards the primary
	// otherwise, and never published.
	BodyTimeout time.Duration `yaml:"body_timeout" flag:"body-timeout" help:"time a request body may take, plus one second per --min-body-rate bytes received; slower bodies are cut (408) and not published"`
	MinBodyRate int64         `yaml:"min_body_rate" flag:"min-body-rate" help:"bytes per second that extend --body-timeout"`
}

// Defaults of Limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	// DefaultMaxHeaderBytes is net/http's own default (1 MiB): the proxy must
	// not refuse a head the primary (a Go server with defaults) accepts, and
	// an exchange with such a head still fits the record budget (cut, flagged).
	DefaultMaxHeaderBytes = http.DefaultMaxHeaderBytes
	DefaultBodyTimeout    = 30 * time.Second
	DefaultMinBodyRate    = 1024
)

// fdReserve is how many file descriptors DefaultMaxConns leaves for
// everything but client connections (listeners, Kafka, logs, the proxy's idle
// primary connections).
const fdReserve = 512

// DefaultMaxConns derives the connection cap from the open-file limit (Go raises
// the soft limit to the hard limit at start): half of it after a reserve, as
// every busy proxied connection also holds one connection to the primary.
func DefaultMaxConns() int {
	n := openFileLimit()
	if n <= 0 {
		return 4096
	}
	return max(int((n-fdReserve)/2), 64)
}

// DefaultLimits returns the default limits (MaxConns left 0: derived at use).
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
		BodyTimeout:       DefaultBodyTimeout,
		MinBodyRate:       DefaultMinBodyRate,
	}
}

// WithDefaults returns l with zero fields set to their defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxConns == 0 {
		l.MaxConns = DefaultMaxConns()
	}
	d := DefaultLimits()
	l.ReadHeaderTimeout = cmp.Or(l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	l.IdleTimeout = cmp.Or(l.IdleTimeout, d.IdleTimeout)
	l.MaxHeaderBytes = cmp.Or(l.MaxHeaderBytes, d.MaxHeaderBytes)
	l.BodyTimeout = cmp.Or(l.BodyTimeout, d.BodyTimeout)
	l.MinBodyRate = cmp.Or(l.MinBodyRate, d.MinBodyRate)
	return l
}

// Validate reports the first negative limit, naming it as its flag.
func (l Limits) Validate() error {
	switch {
	case l.MaxConns < 0:
		return fmt.Errorf("max-conns: %d is negative", l.MaxConns)
	case l.ReadHeaderTimeout < 0:
		return fmt.Errorf("read-header-timeout: %v is negative", l.ReadHeaderTimeout)
	case l.IdleTimeout < 0:
		return fmt.Errorf("idle-timeout: %v is negative", l.IdleTimeout)
	case l.MaxHeaderBytes < 0:
		return fmt.Errorf("max-header-bytes: %d is negative", l.MaxHeaderBytes)
	case l.BodyTimeout < 0:
		return fmt.Errorf("body-timeout: %v is negative", l.BodyTimeout)
	case l.MinBodyRate < 0:
		return fmt.Errorf("min-body-rate: %d is negative", l.MinBodyRate)
	}
	return nil
}

// ConnLimiter caps the connections an http.Server holds. Wrap the listener
// with Listener (outside any other wrapping) and set the server's ConnState to
// the limiter's ConnState; Server does both.
type ConnLimiter struct {
	max   int
	mu    sync.Mutex
	open  int
	peak  int      // most connections open since the last shrink
	burst bool     // connections of a burst are still open
	idle  idleList // connections with no request in progress, oldest first
	// shrink runs (in its own goroutine) when the connections open drop to a
	// quarter of a peak of at least shrinkPeak: a burst of connections is over.
	shrink    func()
	shrinking atomic.Bool
	gauge     prometheus.Gauge
	shed      *prometheus.CounterVec
}

// Reasons counted in mirrorline_collector_connections_shed_total{reason}.
const (
	ShedIdle     = "idle_closed" // an idle connection closed to admit a new one
	ShedRejected = "rejected"    // a new connection refused: all were busy
)

// NewConnLimiter returns a limiter admitting at most n connections (at least
// 1), counting into m when not nil.
//
// After a burst of connections (at least shrinkPeak open, then down to a
// quarter of that) it returns the memory they held to the OS at once (two
// garbage collections and debug.FreeOSMemory): an idle server runs no
// collection, so without this the process would keep the burst's peak
// resident size.
func NewConnLimiter(n int, m *Metrics) *ConnLimiter {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &ConnLimiter{max: max(n, 1), shrink: freeMemory, gauge: m.OpenConns, shed: m.ShedConns}
}

// Open returns the number of open connections.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// Listener wraps ln so that it never hands out more than the cap.
func (l *ConnLimiter) Listener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln, lim: l}
}

type limitListener struct {
	net.Listener
	lim *ConnLimiter
}

// overloaded is what a refused connection gets before it is closed.
var overloaded = []byte("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if lc := ll.lim.admit(c); lc != nil {
			return lc, nil
		}
		ll.lim.shed.WithLabelValues(ShedRejected).Inc()
		_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = c.Write(overloaded)
		_ = c.Close()
	}
}

// admit takes a slot for c, closing the oldest idle connection when at the
// cap; nil: no slot.
func (l *ConnLimiter) admit(c net.Conn) *limitedConn {
	l.mu.Lock()
	var victim *limitedConn
	if l.open >= l.max {
		victim = l.idle.head
		if victim == nil {
			l.mu.Unlock()
			return nil
		}
		l.idle.remove(victim)
		victim.released = true // its slot goes to c
		l.open--
	}
	lc := &limitedConn{Conn: c, lim: l}
	l.idle.pushBack(lc) // new: idle until its first request
	l.open++
	l.peak = max(l.peak, l.open)
	l.burst = l.burst || l.peak >= shrinkPeak
	l.mu.Unlock()
	if victim != nil {
		_ = victim.Conn.Close()
		l.shed.WithLabelValues(ShedIdle).Inc()
	} else {
		l.gauge.Inc()
	}
	return lc
}

// ConnState is the http.Server ConnState hook that tells idle connections from
// busy ones.
func (l *ConnLimiter) ConnState(c net.Conn, s http.ConnState) {
	lc := unwrapLimited(c)
	if lc == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.released {
		return
	}
	switch s {
	case http.StateIdle:
		if !lc.idle {
			l.idle.pushBack(lc)
		}
	case http.StateActive, http.StateHijacked:
		if lc.idle {
			l.idle.remove(lc)
		}
	}
}

func (l *ConnLimiter) release(lc *limitedConn) {
	l.mu.Lock()
	if lc.released {
		l.mu.Unlock()
		return
	}
	lc.released = true
	if lc.idle {
		l.idle.remove(lc)
	}
	l.open--
	burstOver := l.burstOver()
	l.mu.Unlock()
	l.gauge.Dec()
	if burstOver && l.shrink != nil && l.shrinking.CompareAndSwap(false, true) {
		go l.shrinkLoop()
	}
}

// burstOver reports whether the connections open fell to a quarter of a peak
// of at least shrinkPeak, or to none after such a peak. Called with mu held.
func (l *ConnLimiter) burstOver() bool {
	return (l.peak >= shrinkPeak && l.open <= l.peak/4) || (l.burst && l.open == 0)
}

// shrinkLoop returns memory until no burst is left over: connections that
// closed while it ran are collected by the next round (a quarter at a time,
// so at most a few rounds).
func (l *ConnLimiter) shrinkLoop() {
	for {
		l.mu.Lock()
		if !l.burstOver() {
			l.mu.Unlock()
			l.shrinking.Store(false)
			// A release between the check and the store saw shrinking set.
			l.mu.Lock()
			again := l.burstOver()
			l.mu.Unlock()
			if !again || !l.shrinking.CompareAndSwap(false, true) {
				return
			}
			continue
		}
		l.peak = l.open
		l.burst = l.open > 0
		l.mu.Unlock()
		l.shrink()
	}
}

// freeMemory returns what a burst of connections held: the first collection
// moves the server's pooled connection buffers (sync.Pool) to their victim
// cache, the second (in FreeOSMemory) frees them and returns the pages.
func freeMemory() {
	runtime.GC()
	debug.FreeOSMemory()
}

// shrinkPeak is the smallest burst of connections after which memory is
// returned to the OS.
const shrinkPeak = 1000

// limitedConn gives its slot back when closed.
type limitedConn struct {
	net.Conn
	lim      *ConnLimiter
	released bool // guarded by lim.mu
	// In lim.idle while idle; guarded by lim.mu. Linked through the
	// connections themselves: a request does not allocate a list element.
	idle       bool
	prev, next *limitedConn
}

// idleList is a doubly linked list of connections, oldest first.
type idleList struct{ head, tail *limitedConn }

func (l *idleList) pushBack(c *limitedConn) {
	c.idle, c.prev, c.next = true, l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *idleList) remove(c *limitedConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.idle, c.prev, c.next = false, nil, nil
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.lim.release(c)
	return err
}

// NetConn returns the wrapped connection.
func (c *limitedConn) NetConn() net.Conn { return c.Conn }

// unwrapLimited finds the limitedConn under c: the HTTP/2 server reports
// the state of the *tls.Conn it serves (TLS, or h2c's stand-in) wrapping it.
func unwrapLimited(c net.Conn) *limitedConn {
	for range 4 {
		switch x := c.(type) {
		case *limitedConn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Server returns an http.Server for a collector handler with l applied
// (defaults filled in), counting into m (may be nil), and wraps ln so that the
// connection cap holds and conns (may be nil) names connections and records
// header order. Serve the server on the returned listener.
//
// The server speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on
// plaintext connections; see TLSServer for TLS.
func (l Limits) Server(h http.Handler, conns *Conns, m *Metrics, ln net.Listener) (*http.Server, net.Listener) {
	return l.TLSServer(h, conns, m, ln, nil)
}

// TLSServer is Server with TLS when cfg is not nil: the returned listener
// completes the handshake, offering HTTP/2 and HTTP/1.1 by ALPN (h2,
// http/1.1); the connection cap holds as on plaintext. Header order is not
// tracked under TLS (headers are recorded sorted).
func (l Limits) TLSServer(h http.Handler, conns *Conns, m *Metrics, ln net.Listener, cfg *tls.Config) (*http.Server, net.Listener) {
	l = l.WithDefaults()
	lim := NewConnLimiter(l.MaxConns, m)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ConnState:         lim.ConnState,
		Protocols:         new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetHTTP2(true)
	if conns != nil {
		srv.ConnContext = conns.ConnContext
	}
	if cfg != nil {
		cfg = cfg.Clone()
		if len(cfg.NextProtos) == 0 {
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
		srv.TLSConfig = cfg
		return srv, tls.NewListener(lim.Listener(ln), cfg)
	}
	srv.Protocols.SetUnencryptedHTTP2(true)
	if conns != nil {
		ln = conns.Listener(ln)
	}
	return srv, lim.Listener(ln)
}

// Body errors, told apart with errors.Is.
var (
	// ErrBodyTimeout: the body arrived slower than the limits allow.
	ErrBodyTimeout = errors.New("request body too slow")
	// ErrBodyIncomplete: the client went away before the body's declared end.
	ErrBodyIncomplete = errors.New("request body ended before its declared length")
	// ErrBodyFraming: the body's framing (chunked encoding) is malformed.
	ErrBodyFraming = errors.New("malformed request body framing")
)

// Drop reasons for requests whose body could not be read whole; they are
// neither forwarded complete nor published.
const (
	DropIncompleteBody = "incomplete_body"
	DropBodyTimeout    = "body_timeout"
	DropBadFraming     = "bad_framing"
	// DropUnsupported: a request the collector refuses to forward or record
	// faithfully (the HTTP/2 preface on an HTTP/1 listener, "*" without OPTIONS).
	DropUnsupported = "unsupported"
)

// BodyDropReason returns the drop reason of a body error of RateBody.
func BodyDropReason(err error) string {
	switch {
	case errors.Is(err, ErrBodyTimeout):
		return DropBodyTimeout
	case errors.Is(err, ErrBodyFraming):
		return DropBadFraming
	}
	return DropIncompleteBody
}

// RefuseBody answers a request whose body could not be read whole (err, a
// body error of RateBody) and closes the connection: 408 for a body too slow,
// 400 for one cut short or badly framed.
func RefuseBody(w http.ResponseWriter, err error) {
	code := http.StatusBadRequest
	if errors.Is(err, ErrBodyTimeout) {
		code = http.StatusRequestTimeout
	}
	Refuse(w, code, http.StatusText(code))
}

// RateBody wraps the body of r (served through w) so that it must arrive within
// timeout plus one second per rate bytes, and classifies read errors as
// ErrBodyTimeout, ErrBodyIncomplete or ErrBodyFraming (the first is kept: see
// Err). rate <= 0 or timeout <= 0 disables the deadline.
func RateBody(w http.ResponseWriter, r *http.Request, timeout time.Duration, rate int64) *BodyReader {
	b := &BodyReader{rc: r.Body, rate: rate, ctx: r.Context()}
	if timeout > 0 && rate > 0 {
		b.ctl = http.NewResponseController(w)
		b.deadline = time.Now().Add(timeout)
	}
	return b
}

// BodyReader is a request body read under a deadline; see RateBody. Its
// methods are safe for concurrent use (a transport may still read the body
// while the handler looks at the outcome).
type BodyReader struct {
	rc       io.ReadCloser
	ctx      context.Context // the request's: ended when an HTTP/2 client resets the stream
	ctl      *http.ResponseController
	rate     int64
	mu       sync.Mutex
	deadline time.Time
	got      int64
	credit   int64 // bytes received not yet turned into deadline extension
	done     bool
	err      error // first read error other than io.EOF, classified
}

// Read reads from the body under its deadline.
func (b *BodyReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.err != nil || b.done {
		err := cmp.Or(b.err, io.EOF)
		b.mu.Unlock()
		return 0, err
	}
	if b.ctl != nil {
		_ = b.ctl.SetReadDeadline(b.deadline)
	}
	b.mu.Unlock()
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got += int64(n)
	if b.ctl != nil && n > 0 {
		b.credit += int64(n)
		if ext := b.credit * int64(time.Second) / b.rate; ext > 0 {
			b.deadline = b.deadline.Add(time.Duration(ext))
			b.credit -= ext * b.rate / int64(time.Second)
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.finish()
	default:
		if b.err == nil {
			b.err = classifyBodyError(err)
			if errors.Is(b.err, ErrBodyFraming) && b.ctx.Err() != nil {
				// An HTTP/2 client reset the stream (it cancelled the call):
				// the server cancels the request before it ends the body.
				b.err = fmt.Errorf("read body: %w", ErrBodyIncomplete)
			}
		}
		b.finish()
		err = b.err
	}
	return n, err
}

// finish lifts the body deadline so it cannot cut what follows the body (the
// server's own reads while the response is produced). Called with mu held.
func (b *BodyReader) finish() {
	if b.done {
		return
	}
	b.done = true
	if b.ctl != nil {
		_ = b.ctl.SetReadDeadline(time.Time{})
	}
}

// Close closes the body.
func (b *BodyReader) Close() error {
	b.mu.Lock()
	b.finish()
	b.mu.Unlock()
	return b.rc.Close()
}

// Received returns the body bytes read so far.
func (b *BodyReader) Received() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got
}

// Err returns the first read error other than io.EOF, classified as
// ErrBodyTimeout, ErrBodyIncomplete or ErrBodyFraming; nil if none.
func (b *BodyReader) Err() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func classifyBodyError(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("read body: %w", ErrBodyTimeout)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("read body: %w", ErrBodyIncomplete)
	}
	// net/http's chunked reader: malformed sizes, missing CRLF, too long lines.
	// Its error texts name no payload bytes, but keep only ours.
	return fmt.Errorf("read body: %w", ErrBodyFraming)
}

// Unsupported returns the status and text a collector refuses r with because
// it cannot forward or record it faithfully, or 0.
func Unsupported(r *http.Request) (int, string) {
	switch {
	case r.Method == "PRI":
		// The HTTP/2 connection preface ("PRI * HTTP/2.0") read as an HTTP/1
		// request: on an HTTP/1.1 connection over TLS (on plaintext it starts h2c).
		return http.StatusHTTPVersionNotSupported, "HTTP/2 with prior knowledge is served on plaintext only; over TLS negotiate h2 by ALPN"
	case r.RequestURI == "*":
		// (net/http answers OPTIONS * itself.)
		return http.StatusBadRequest, "the asterisk request target is only allowed with OPTIONS"
	}
	return 0, ""
}

// Refuse answers a request that cannot be read or forwarded faithfully with
// code and closes its connection (its framing can no longer be trusted).
func Refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}
