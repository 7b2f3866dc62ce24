package httpstream

import (
	"sync/atomic"
	"time"
)

// Direction is the direction of a byte stream on a connection.
type Direction int

const (
	// ClientToServer carries requests.
	ClientToServer Direction = iota
	// ServerToClient carries responses.
	ServerToClient
)

// String returns "client" or "server" (the side that sends).
func (d Direction) String() string {
	if d == ServerToClient {
		return "server"
	}
	return "client"
}

// Defaults of the Conn options.
const (
	DefaultBodyLimit      = 1 << 20
	DefaultMaxHeaderBytes = 64 << 10
	DefaultMaxPending     = 16
)

// Header is one header line as it appeared on the wire.
type Header struct {
	Name  string
	Value string
}

// Body is a captured message body.
type Body struct {
	// Data holds at most the body limit's first bytes (chunked bodies decoded).
	Data []byte
	// Size is the length of the whole body including missing bytes, as far as it
	// is known.
	Size int64
	// Truncated is set when Data holds only the first bytes of the body.
	Truncated bool
	// Gap is set when bytes of the message were missing from the capture; Size
	// counts them when their number is known.
	Gap bool
	// Incomplete is set when the message ended (gap, end of stream) before its
	// declared end.
	Incomplete bool
}

// Request is one parsed HTTP/1.x request.
type Request struct {
	Method string
	// Target is the request target as sent ("/a?b=1", or absolute-form).
	Target string
	Proto  string
	// Host is the value of the Host header.
	Host string
	// Headers are in wire order, Host excluded.
	Headers []Header
	Body
	// Start is the time of the first byte of the request, End of its last.
	Start, End time.Time
}

// Response is one parsed final HTTP/1.x response.
type Response struct {
	Status  int
	Reason  string
	Proto   string
	Headers []Header
	Body
	// Start is the time of the first byte of the response, End of its last.
	Start, End time.Time
}

// Exchange is one request and, when it was captured, its response.
type Exchange struct {
	// Seq is the position of the request on its connection, from 1.
	Seq      uint64
	Request  *Request
	Response *Response
	// ResponseLost is set when the response was not captured (the stream ended,
	// a gap swallowed it, or too many requests were pending).
	ResponseLost bool
}

// Latency is the time from the first byte of the request to the last byte of the
// response, or 0 without a response.
func (e *Exchange) Latency() time.Duration {
	if e.Response == nil || e.Response.End.IsZero() || e.Request.Start.IsZero() {
		return 0
	}
	return max(e.Response.End.Sub(e.Request.Start), 0)
}

// Stats are counters a Conn adds to; one Stats may be shared by many Conns (it is
// safe to read while they run).
type Stats struct {
	// Exchanges emitted.
	Exchanges atomic.Uint64
	// Requests emitted without a response.
	Unanswered atomic.Uint64
	// Responses that matched no request and were discarded.
	Orphans atomic.Uint64
	// Malformed heads or chunk framing (the stream was resynchronised).
	ParseErrors atomic.Uint64
	// Gaps reported and bytes known to be missing.
	Gaps     atomic.Uint64
	GapBytes atomic.Uint64
	// Connections that switched protocol (101, CONNECT) and were no longer parsed.
	Tunnels atomic.Uint64
}

// Option configures a Conn.
type Option func(*config)

type config struct {
	bodyLimit  int64
	maxHead    int
	maxPending int
	stats      *Stats
}

// WithBodyLimit sets how many body bytes are kept per message (default 1 MiB).
func WithBodyLimit(n int64) Option {
	return func(c *config) {
		if n >= 0 {
			c.bodyLimit = n
		}
	}
}

// WithMaxHeaderBytes sets the largest request or response head accepted (default
// 64 KiB); a longer one is dropped as malformed.
func WithMaxHeaderBytes(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxHead = n
		}
	}
}

// WithMaxPending sets how many requests may wait for their responses (pipelining,
// default 16); beyond that the oldest is emitted without a response.
func WithMaxPending(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxPending = n
		}
	}
}

// WithStats makes the Conn count into s.
func WithStats(s *Stats) Option { return func(c *config) { c.stats = s } }

// Limits returns the body limit and the largest head opts set (the defaults
// when they set none), for parsers of other protocols fed the same
// connections (collector/h2stream).
func Limits(opts ...Option) (bodyLimit int64, maxHeaderBytes int) {
	c := config{bodyLimit: DefaultBodyLimit, maxHead: DefaultMaxHeaderBytes}
	for _, o := range opts {
		o(&c)
	}
	return c.bodyLimit, c.maxHead
}

// Conn pairs the requests and responses of one HTTP/1.x connection. Create it with
// New; it is not safe for concurrent use.
type Conn struct {
	cfg     config
	emit    func(*Exchange)
	req     parser
	resp    parser
	pending []*entry
	seq     uint64
	tunnel  bool
	closed  bool
}

// entry is a request waiting to be emitted.
type entry struct {
	ex       Exchange
	reqDone  bool
	respDone bool
	expect   bool // Expect: 100-continue
}

// New returns a Conn that calls emit for every exchange, in request order. emit
// runs synchronously inside Feed, Gap, End and Close and owns the Exchange.
func New(emit func(*Exchange), opts ...Option) *Conn {
	c := &Conn{cfg: config{bodyLimit: DefaultBodyLimit, maxHead: DefaultMaxHeaderBytes, maxPending: DefaultMaxPending}, emit: emit}
	for _, o := range opts {
		o(&c.cfg)
	}
	if c.cfg.stats == nil {
		c.cfg.stats = &Stats{}
	}
	c.req = parser{c: c, dir: ClientToServer}
	c.resp = parser{c: c, dir: ServerToClient}
	return c
}

func (c *Conn) parser(d Direction) *parser {
	if d == ServerToClient {
		return &c.resp
	}
	return &c.req
}

// Feed hands the Conn the next bytes of direction d, which arrived at ts. The
// Conn does not keep data.
func (c *Conn) Feed(d Direction, data []byte, ts time.Time) {
	if c.closed || len(data) == 0 {
		return
	}
	c.parser(d).feed(data, ts)
	c.flush()
}

// Gap reports that n bytes of direction d are missing from the capture (n < 0:
// an unknown number), detected at ts.
func (c *Conn) Gap(d Direction, n int64, ts time.Time) {
	if c.closed {
		return
	}
	c.cfg.stats.Gaps.Add(1)
	if n > 0 {
		c.cfg.stats.GapBytes.Add(uint64(n))
	}
	c.parser(d).gap(n, ts)
	c.flush()
}

// End reports the end of direction d (a FIN) at ts: a response delimited by the
// end of the connection is complete.
func (c *Conn) End(d Direction, ts time.Time) {
	if c.closed {
		return
	}
	c.parser(d).endStream(ts)
	c.flush()
}

// Close ends both directions at ts and emits everything still pending: requests
// without a response are emitted with ResponseLost set. Later calls do nothing.
func (c *Conn) Close(ts time.Time) {
	if c.closed {
		return
	}
	c.req.endStream(ts)
	c.resp.endStream(ts)
	for _, e := range c.pending {
		e.reqDone = true
		e.lose()
	}
	c.flush()
	c.closed = true
}

// Pending returns how many requests wait for their responses.
func (c *Conn) Pending() int { return len(c.pending) }

// lose marks e, unless answered already, as answered by nothing.
func (e *entry) lose() {
	if e.respDone {
		return
	}
	e.respDone = true
	if e.ex.Response == nil {
		e.ex.ResponseLost = true
	} else {
		e.ex.Response.Incomplete = true
	}
}

// flush emits the leading exchanges that are complete.
func (c *Conn) flush() {
	for len(c.pending) > 0 {
		e := c.pending[0]
		if !e.reqDone || !e.respDone {
			return
		}
		c.pending[0] = nil
		c.pending = c.pending[1:]
		c.cfg.stats.Exchanges.Add(1)
		if e.ex.Response == nil {
			c.cfg.stats.Unanswered.Add(1)
		}
		if c.emit != nil {
			c.emit(&e.ex)
		}
	}
	if len(c.pending) == 0 {
		c.pending = nil
	}
}

// addRequest queues a parsed request head.
func (c *Conn) addRequest(r *Request, expect bool) *entry {
	if len(c.pending) >= c.cfg.maxPending {
		// Too deep a pipeline (or a server that never answers): give up on the oldest.
		old := c.pending[0]
		old.reqDone = true
		old.lose()
		if c.resp.cur == old {
			c.resp.abandon()
		}
		c.flush()
	}
	c.seq++
	e := &entry{ex: Exchange{Seq: c.seq, Request: r}, expect: expect}
	c.pending = append(c.pending, e)
	return e
}

// pairResponse finds the request a final response that started at start answers.
// afterResync says the response stream lost its place since the last response:
// then all but the latest request that started before the response are taken to
// have lost their responses in the gap.
func (c *Conn) pairResponse(start time.Time, afterResync bool) *entry {
	var cands []*entry
	for _, e := range c.pending {
		if e.respDone || e.ex.Response != nil {
			continue
		}
		if !start.IsZero() && !e.ex.Request.Start.IsZero() && start.Before(e.ex.Request.Start) {
			break // a response cannot start before its request
		}
		cands = append(cands, e)
		if !afterResync {
			break
		}
	}
	if len(cands) == 0 {
		return nil
	}
	for _, e := range cands[:len(cands)-1] {
		e.lose()
	}
	return cands[len(cands)-1]
}
