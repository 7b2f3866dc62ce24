package collector

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Go's HTTP server keeps request headers in a map, which loses their order. The
// orderTracker watches the raw bytes the server reads from a connection, parses
// each request head (and skips its body) just far enough to record the header
// names in wire order, and queues them for the handler. If the stream ever looks
// unfamiliar (upgrade, bad framing, huge head) it gives up and the handler falls
// back to sorted order.

const maxTrackedHead = 1 << 20

type trackState int

const (
	stHead trackState = iota
	stBody
	stChunkSize
	stChunkData
	stChunkCRLF
	stTrailer
	stBroken
)

type orderTracker struct {
	mu      sync.Mutex
	state   trackState
	buf     []byte // head, chunk-size line or trailer line being assembled
	remain  int64  // body or chunk bytes still to skip
	pending [][]string
}

func (t *orderTracker) feed(p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var whole bool
	for len(p) > 0 && t.state != stBroken {
		switch t.state {
		case stHead:
			if p, whole = t.line(p); !whole {
				continue
			}
			if bytes.HasSuffix(t.buf, []byte("\r\n\r\n")) || bytes.HasSuffix(t.buf, []byte("\n\n")) || bytes.Equal(t.buf, []byte("\r\n")) || bytes.Equal(t.buf, []byte("\n")) {
				t.endHead()
			}
		case stBody, stChunkData:
			n := min(int64(len(p)), t.remain)
			p = p[n:]
			t.remain -= n
			if t.remain == 0 {
				if t.state == stBody {
					t.state = stHead
				} else {
					t.state, t.remain = stChunkCRLF, 2
				}
			}
		case stChunkCRLF:
			// CRLF after chunk data; tolerate a bare LF.
			if p[0] == '\n' {
				t.state = stChunkSize
			} else if p[0] != '\r' {
				t.state = stBroken
			}
			p = p[1:]
		case stChunkSize, stTrailer:
			if p, whole = t.line(p); !whole {
				continue
			}
			line := strings.TrimSpace(string(t.buf))
			t.buf = t.buf[:0]
			if t.state == stTrailer {
				if line == "" {
					t.state = stHead
				}
				continue
			}
			line, _, _ = strings.Cut(line, ";") // no chunk extensions
			size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
			switch {
			case err != nil || size < 0:
				t.state = stBroken
			case size == 0:
				t.state = stTrailer
			default:
				t.state, t.remain = stChunkData, size
			}
		}
	}
}

// line adds p up to its first line feed to buf and returns the rest of p;
// whole reports that buf ends a line (false: p ran out first, or broke t).
func (t *orderTracker) line(p []byte) (rest []byte, whole bool) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		t.appendBuf(p)
		return nil, false
	}
	t.appendBuf(p[:i+1])
	return p[i+1:], t.state != stBroken
}

func (t *orderTracker) appendBuf(p []byte) {
	if len(t.buf)+len(p) > maxTrackedHead {
		t.state = stBroken
		t.buf = nil
		return
	}
	t.buf = append(t.buf, p...)
}

func (t *orderTracker) endHead() {
	head := t.buf
	t.buf = t.buf[:0] // head stays valid until the next feed appends
	first, rest, _ := bytes.Cut(head, []byte("\n"))
	first = bytes.TrimSuffix(first, []byte("\r"))
	if len(bytes.TrimSpace(first)) == 0 {
		// Stray CRLF between requests: allowed by RFC 9112, ignored.
		return
	}
	if bytes.HasPrefix(first, []byte("PRI * HTTP/2.0")) {
		// The HTTP/2 preface: binary frames follow, no HTTP/1 heads.
		t.state = stBroken
		return
	}
	names := make([]string, 0, 16)
	var contentLength int64 = -1
	chunked, upgrade := false, false
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) == 0 || l[0] == ' ' || l[0] == '\t' {
			continue
		}
		i := bytes.IndexByte(l, ':')
		if i <= 0 {
			continue
		}
		name := canonicalName(bytes.TrimSpace(l[:i]))
		val := bytes.TrimSpace(l[i+1:])
		names = append(names, name)
		switch name {
		case "Content-Length":
			n, err := strconv.ParseInt(string(val), 10, 64)
			if err != nil {
				t.state = stBroken
				return
			}
			contentLength = n
		case "Transfer-Encoding":
			chunked = bytes.Contains(bytes.ToLower(val), []byte("chunked"))
		case "Upgrade":
			upgrade = true
		}
	}
	t.pending = append(t.pending, names)
	switch {
	case upgrade || bytes.HasPrefix(first, []byte("CONNECT ")):
		t.state = stBroken
	case chunked:
		t.state = stChunkSize
	case contentLength > 0:
		t.state, t.remain = stBody, contentLength
	default:
		t.state = stHead
	}
}

// commonNames maps request header names as clients usually spell them to
// their canonical form, so the tracker does not allocate a string for each.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie", "Date",
		"Expect", "Forwarded", "From", "Host", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
		"If-Unmodified-Since", "Keep-Alive", "Origin", "Pragma", "Priority", "Range", "Referer", "Te",
		"Traceparent", "Tracestate", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent", "Via",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"X-Amzn-Trace-Id", "X-B3-Traceid", "X-B3-Spanid", "X-B3-Sampled", "X-Correlation-Id", "Idempotency-Key"} {
		m[n] = n
		m[strings.ToLower(n)] = n
	}
	return m
}()

// canonicalName returns textproto.CanonicalMIMEHeaderKey of b, without
// allocating for a common name.
func canonicalName(b []byte) string {
	if n, ok := commonNames[string(b)]; ok {
		return n
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// next returns the header names of the next request on the connection, or nil.
func (t *orderTracker) next() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.pending) == 0 {
		return nil
	}
	n := t.pending[0]
	t.pending = t.pending[1:]
	return n
}

// trackedConn feeds everything read from the connection to its tracker.
type trackedConn struct {
	net.Conn
	t *orderTracker
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.feed(p[:n])
	}
	return n, err
}

// orderedHeaders lists h in the wire order given by order (names as they arrived),
// with any names order does not mention appended in sorted order. Host is skipped:
// it travels in Request.host.
func orderedHeaders(h http.Header, order []string) []*mlv1.Header {
	out, slab := headerSlab(h)
	// Names already listed: a linear scan of out for the usual few dozen,
	// a map beyond (a hostile head may hold thousands).
	var seen map[string]bool
	if len(h) > 32 {
		seen = make(map[string]bool, len(h))
	}
	listed := 0
	isListed := func(name string) bool {
		if seen != nil {
			return seen[name]
		}
		for _, x := range out {
			if x.Name == name {
				return true
			}
		}
		return false
	}
	emit := func(name string) {
		if name == "Host" || isListed(name) {
			return
		}
		vals, ok := h[name]
		if !ok {
			return
		}
		if seen != nil {
			seen[name] = true
		}
		listed++
		for _, v := range vals {
			x := &slab[len(out)]
			x.Name, x.Value = name, v
			out = append(out, x)
		}
	}
	for _, n := range order {
		emit(n)
	}
	_, hasHost := h["Host"]
	if rest := len(h) - listed; rest > 0 && !(rest == 1 && hasHost) {
		// Only the rest, in one allocation: per request when the order is unknown.
		names := make([]string, 0, rest)
		for n := range h {
			if n != "Host" && !isListed(n) {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			emit(n)
		}
	}
	return out
}

// headerSlab returns an empty list with room for every value of h and the
// headers to fill it with, in two allocations instead of one per value.
func headerSlab(h http.Header) ([]*mlv1.Header, []mlv1.Header) {
	n := 0
	for _, vals := range h {
		n += len(vals)
	}
	return make([]*mlv1.Header, 0, n), make([]mlv1.Header, n)
}

// SortedHeaders lists h sorted by name (values in their order), as
// mlv1.HeadersFromHTTP does, in three allocations whatever the number of
// headers.
func SortedHeaders(h http.Header) []*mlv1.Header {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	slices.Sort(names)
	out, slab := headerSlab(h)
	for _, n := range names {
		for _, v := range h[n] {
			x := &slab[len(out)]
			x.Name, x.Value = n, v
			out = append(out, x)
		}
	}
	return out
}

// Conns names the connections an HTTP server accepts and tracks the header order
// of the requests on each. Wrap the listener with Listener and set the server's
// ConnContext to Conns.ConnContext; handlers then call RequestMeta.
type Conns struct {
	prefix string
	seq    atomic.Uint64
}

// NewConns returns a Conns whose ids are unique to this process.
func NewConns() *Conns {
	var pfx [6]byte
	_, _ = rand.Read(pfx[:])
	return &Conns{prefix: hex.EncodeToString(pfx[:])}
}

// Listener wraps ln so the header order of each request can be recorded.
func (c *Conns) Listener(ln net.Listener) net.Listener { return &trackingListener{ln} }

type trackingListener struct{ net.Listener }

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c, t: &orderTracker{}}, nil
}

type connKey struct{}

type connState struct {
	id      string
	seq     atomic.Uint64
	tracker *orderTracker
}

// ConnContext is an http.Server ConnContext that attaches the connection's id
// and header-order tracker.
func (c *Conns) ConnContext(ctx context.Context, nc net.Conn) context.Context {
	cs := &connState{id: fmt.Sprintf("%s-%d", c.prefix, c.seq.Add(1))}
	for nc != nil {
		if _, ok := nc.(*tls.Conn); ok {
			// A tracker under TLS would read ciphertext: order unknown.
			break
		}
		if tc, ok := nc.(*trackedConn); ok {
			cs.tracker = tc.t
			break
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	return context.WithValue(ctx, connKey{}, cs)
}

// RequestMeta returns the id of r's connection, r's position on it (from 1) and
// r's headers in wire order (sorted when the order is unknown). Without Conns
// the id is derived from the remote address and the sequence is 0.
func (c *Conns) RequestMeta(r *http.Request) (connID string, seq uint64, headers []*mlv1.Header) {
	var order []string
	if cs, ok := r.Context().Value(connKey{}).(*connState); ok {
		connID, seq = cs.id, cs.seq.Add(1)
		if cs.tracker != nil && r.ProtoMajor < 2 {
			// HTTP/2 heads arrive HPACK-coded in frames, not as lines.
			order = cs.tracker.next()
		}
	} else {
		connID = c.prefix + "-" + r.RemoteAddr
	}
	return connID, seq, orderedHeaders(r.Header, order)
}

// BodyCapture keeps the first Limit bytes written to it and counts the rest.
type BodyCapture struct {
	Limit int64
	buf   bytes.Buffer
	total int64
}

// Write records p; it never fails.
func (c *BodyCapture) Write(p []byte) (int, error) {
	c.total += int64(len(p))
	if room := c.Limit - int64(c.buf.Len()); room > 0 {
		c.buf.Write(p[:min(int64(len(p)), room)])
	}
	return len(p), nil
}

// maxPresize bounds what Presize allocates ahead of the bytes: a sender
// announcing a large body it never sends costs no more than this.
const maxPresize = 64 << 10

// Presize makes room for an announced body of n bytes (up to the limit and
// 64 KiB), so keeping it does not grow the buffer step by step; n < 0 (not
// announced) does nothing.
func (c *BodyCapture) Presize(n int64) {
	if n = min(n, c.Limit-int64(c.buf.Len()), maxPresize); n > 0 {
		c.buf.Grow(int(n))
	}
}

// ReadFrom reads r to its end, keeping the first Limit bytes and counting
// the rest, without the 32 KiB buffer io.Copy would allocate for each body.
func (c *BodyCapture) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	if room := c.Limit - int64(c.buf.Len()); room > 0 {
		m, err := c.buf.ReadFrom(io.LimitReader(r, room))
		n += m
		c.total += m
		if err != nil || m < room {
			return n, err // the body ended (or failed) within the limit
		}
	}
	m, err := io.Copy(io.Discard, r) // io.Discard reads with pooled buffers
	n += m
	c.total += m
	return n, err
}

// Result returns the kept bytes, whether bytes were cut, and the total size.
func (c *BodyCapture) Result() (body []byte, truncated bool, size int64) {
	return c.buf.Bytes(), c.total > int64(c.buf.Len()), c.total
}
