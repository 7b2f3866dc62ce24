package h2stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Preface is the client connection preface every HTTP/2 connection starts with.
const Preface = http2.ClientPreface

// Defaults of the Conn options.
const (
	DefaultBodyLimit      = httpstream.DefaultBodyLimit
	DefaultMaxHeaderBytes = httpstream.DefaultMaxHeaderBytes
	DefaultMaxStreams     = 256
	DefaultMaxTableSize   = 64 << 10
	// DefaultMaxFrameSize is the largest frame the protocol allows: DATA and
	// header fragments are streamed, so a large frame costs no memory.
	DefaultMaxFrameSize = 1<<24 - 1
)

// Reasons a connection is dropped, counted in Stats.Dropped.
const (
	// DropMidstream: a connection joined after its preface (HPACK state unknown).
	DropMidstream = iota
	// DropBadPreface: the client's first bytes are not the preface.
	DropBadPreface
	// DropMalformed: a frame breaks the protocol (size, stream, order).
	DropMalformed
	// DropHPACK: a header block does not decode.
	DropHPACK
	// DropGap: bytes went missing outside a DATA frame's payload.
	DropGap
	numDrops
)

// DropNames are the label values of the drop reasons, by index.
var DropNames = [numDrops]string{"midstream", "bad_preface", "malformed", "hpack", "gap"}

// Reasons a stream is skipped, counted in Stats.Skipped.
const (
	// SkipStreamLimit: more streams open at once than the limit.
	SkipStreamLimit = iota
	// SkipHeaderLimit: a header list over the limit.
	SkipHeaderLimit
	// SkipMalformed: a head without its pseudo-headers, a frame on a stream
	// in the wrong state.
	SkipMalformed
	// SkipPush: a server push (PUSH_PROMISE) is not captured.
	SkipPush
	// SkipConnDropped: open when its connection was dropped.
	SkipConnDropped
	numSkips
)

// SkipNames are the label values of the skip reasons, by index.
var SkipNames = [numSkips]string{"stream_limit", "header_limit", "malformed", "push", "connection_dropped"}

// Stats are counters Conns add to; one Stats may be shared by many Conns and
// read while they run.
type Stats struct {
	// Connections parsed (their preface seen).
	Connections atomic.Uint64
	// Exchanges emitted, and how many of them were cut by a reset or the end
	// of the connection.
	Exchanges atomic.Uint64
	Cut       atomic.Uint64
	// OverBudget counts stream directions whose data stopped being kept
	// because their connection's open streams held WithMaxConnBytes.
	OverBudget atomic.Uint64
	// Dropped counts connections no longer parsed, by reason.
	Dropped [numDrops]atomic.Uint64
	// Skipped counts streams not published, by reason.
	Skipped [numSkips]atomic.Uint64
}

// Drop counts one connection dropped for reason (a Drop* constant).
func (s *Stats) Drop(reason int) {
	if reason >= 0 && reason < numDrops {
		s.Dropped[reason].Add(1)
	}
}

// Option configures a Conn.
type Option func(*config)

type config struct {
	bodyLimit  int64
	maxHeader  int
	maxStreams int
	maxTable   uint32
	maxFrame   uint32
	connBytes  int64 // -1: 16 body limits
	stats      *Stats
}

// WithBodyLimit sets how many body bytes are kept per message (default 1 MiB);
// for gRPC it bounds each message's data and all of a direction's messages.
func WithBodyLimit(n int64) Option {
	return func(c *config) {
		if n >= 0 {
			c.bodyLimit = n
		}
	}
}

// WithMaxHeaderBytes bounds a decoded header list (names, values and 32 bytes
// a field, as SETTINGS_MAX_HEADER_LIST_SIZE counts; default 64 KiB): a stream
// over it is skipped.
func WithMaxHeaderBytes(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxHeader = n
		}
	}
}

// WithMaxStreams bounds the streams followed at once per connection (default
// 256); streams opened beyond it are skipped.
func WithMaxStreams(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.maxStreams = n
		}
	}
}

// WithMaxTableSize bounds the HPACK dynamic table a peer may announce
// (SETTINGS_HEADER_TABLE_SIZE; default 64 KiB): an encoder that goes beyond it
// drops the connection.
func WithMaxTableSize(n uint32) Option {
	return func(c *config) {
		if n > 0 {
			c.maxTable = n
		}
	}
}

// WithMaxFrameSize bounds a frame's length (default and most 2^24-1).
func WithMaxFrameSize(n uint32) Option {
	return func(c *config) {
		if n > 0 && n <= DefaultMaxFrameSize {
			c.maxFrame = n
		}
	}
}

// WithMaxConnBytes bounds the body and message bytes kept over all the open
// streams of a connection (default 16 times the body limit, as many as
// HTTP/1.x keeps for its pipelined requests): beyond it, bodies are cut
// (flagged truncated) and gRPC directions flagged messages_truncated.
func WithMaxConnBytes(n int64) Option {
	return func(c *config) {
		if n >= 0 {
			c.connBytes = n
		}
	}
}

// WithStats makes the Conn count into s.
func WithStats(s *Stats) Option { return func(c *config) { c.stats = s } }

// errConn is why a connection is dropped.
type errConn struct {
	reason int
	err    error
}

func (e *errConn) Error() string { return DropNames[e.reason] + ": " + e.err.Error() }

func protoErr(format string, args ...any) *errConn {
	return &errConn{reason: DropMalformed, err: fmt.Errorf(format, args...)}
}

// Conn parses one HTTP/2 connection. Create it with New; it is not safe for
// concurrent use.
type Conn struct {
	cfg     config
	emit    func(*mlv1.Exchange)
	halves  [2]half
	streams map[uint32]*stream
	seq     uint64
	lastID  uint32 // highest client stream id seen
	kept    int64  // body and message bytes the open streams hold
	err     *errConn
	closed  bool
}

// half is one direction of the connection.
type half struct {
	dir     httpstream.Direction
	preface int // preface bytes still expected
	hdr     [9]byte
	nhdr    int
	// The current frame.
	length  int
	typ     http2.FrameType
	flags   http2.Flags
	sid     uint32
	left    int       // payload bytes still to come
	ts      time.Time // when its first byte arrived
	wantPre int       // bytes before the fragment: pad length, priority, promised id
	pre     [6]byte
	padding int // trailing padding bytes
	padded  bool
	ctl     [8]byte // control frame payload (at most its first 8 bytes)
	dec     *hpack.Decoder
	block   *block // the header block being read, until END_HEADERS
	table   uint32 // dynamic table size allowed now
}

// block is a header block being decoded.
type block struct {
	sid       uint32
	typ       http2.FrameType // HEADERS or PUSH_PROMISE
	endStream bool
	ts        time.Time
	fields    []hpack.HeaderField
	size      int
	over      bool
}

// New returns a Conn that calls emit for every exchange. emit runs
// synchronously inside Feed, Gap, End and Close and owns the Exchange; the
// caller sets ConnectionId, Source, Collector and RemoteAddr.
func New(emit func(*mlv1.Exchange), opts ...Option) *Conn {
	c := &Conn{
		cfg: config{bodyLimit: DefaultBodyLimit, maxHeader: DefaultMaxHeaderBytes, maxStreams: DefaultMaxStreams,
			maxTable: DefaultMaxTableSize, maxFrame: DefaultMaxFrameSize, connBytes: -1},
		emit:    emit,
		streams: map[uint32]*stream{},
	}
	for _, o := range opts {
		o(&c.cfg)
	}
	if c.cfg.stats == nil {
		c.cfg.stats = &Stats{}
	}
	if c.cfg.connBytes < 0 {
		c.cfg.connBytes = 16 * c.cfg.bodyLimit
	}
	c.cfg.stats.Connections.Add(1)
	for d := range c.halves {
		h := &c.halves[d]
		h.dir = httpstream.Direction(d)
		h.table = 4096
		h.dec = hpack.NewDecoder(h.table, func(f hpack.HeaderField) { c.field(h, f) })
		// A string longer than this drops the connection (the decoder
		// cannot skip it); one merely over the header limit skips its stream.
		h.dec.SetMaxStringLength(4 * c.cfg.maxHeader)
	}
	c.halves[httpstream.ClientToServer].preface = len(Preface)
	return c
}

// Err returns why the connection was dropped, or nil.
func (c *Conn) Err() error {
	if c.err == nil {
		return nil
	}
	return c.err
}

// Feed hands the Conn the next bytes of direction d, which arrived at ts. The
// Conn does not keep data.
func (c *Conn) Feed(d httpstream.Direction, data []byte, ts time.Time) {
	if c.closed || c.err != nil || len(data) == 0 || d < 0 || d > httpstream.ServerToClient {
		return
	}
	if err := c.feed(&c.halves[d], data, ts); err != nil {
		c.fail(err)
	}
}

// Gap reports that n bytes of direction d are missing (n < 0: an unknown
// number). Inside a DATA frame's payload the stream is flagged and parsing
// goes on; anywhere else the connection is lost.
func (c *Conn) Gap(d httpstream.Direction, n int64, ts time.Time) {
	if c.closed || c.err != nil || d < 0 || d > httpstream.ServerToClient {
		return
	}
	h := &c.halves[d]
	off := h.length - h.left
	if n > 0 && h.nhdr == len(h.hdr) && h.typ == http2.FrameData && off >= h.wantPre && n <= int64(h.left) {
		if s := c.streams[h.sid]; s != nil && off < h.length-h.padding {
			s.side(d).gap = true
		}
		h.left -= int(n)
		if h.left == 0 {
			if err := c.endFrame(h); err != nil {
				c.fail(err)
			}
		}
		return
	}
	c.fail(&errConn{reason: DropGap, err: errors.New("bytes missing outside a DATA payload")})
}

// End reports the end of direction d (a FIN) at ts. HTTP/2 ends its streams
// with flags, not with the connection: nothing is published before Close.
func (c *Conn) End(httpstream.Direction, time.Time) {}

// Close ends the connection at ts: the streams still open are published cut.
// Later calls do nothing.
func (c *Conn) Close(ts time.Time) {
	if c.closed {
		return
	}
	c.closed = true
	if c.err == nil {
		c.cutAll(errTextClosed)
	}
}

// fail drops the connection: its open streams are not published.
func (c *Conn) fail(err error) {
	var ec *errConn
	if !errors.As(err, &ec) {
		ec = &errConn{reason: DropMalformed, err: err}
	}
	c.err = ec
	c.cfg.stats.Drop(ec.reason)
	if ec.reason == DropGap {
		// What was read before the gap is sound: publish it cut.
		c.cutAll(errTextGap)
		return
	}
	c.cfg.stats.Skipped[SkipConnDropped].Add(uint64(len(c.streams)))
	clear(c.streams)
	c.kept = 0
}

// cutAll publishes the open streams cut, in the order they started.
func (c *Conn) cutAll(why string) {
	open := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		open = append(open, s)
	}
	sort.Slice(open, func(i, j int) bool { return open[i].seq < open[j].seq })
	for _, s := range open {
		c.publish(s, why)
	}
}

// feed parses data of direction h.
func (c *Conn) feed(h *half, p []byte, ts time.Time) error {
	for len(p) > 0 {
		if h.preface > 0 {
			off := len(Preface) - h.preface
			n := min(len(p), h.preface)
			if string(p[:n]) != Preface[off:off+n] {
				return &errConn{reason: DropBadPreface, err: errors.New("client preface expected")}
			}
			h.preface -= n
			p = p[n:]
			continue
		}
		if h.nhdr < len(h.hdr) {
			if h.nhdr == 0 {
				h.ts = ts
			}
			n := copy(h.hdr[h.nhdr:], p)
			h.nhdr += n
			p = p[n:]
			if h.nhdr < len(h.hdr) {
				return nil
			}
			if err := c.startFrame(h); err != nil {
				return err
			}
			if h.left == 0 {
				if err := c.endFrame(h); err != nil {
					return err
				}
			}
			continue
		}
		n := min(len(p), h.left)
		if err := c.payload(h, p[:n], ts); err != nil {
			return err
		}
		p = p[n:]
		h.left -= n
		if h.left == 0 {
			if err := c.endFrame(h); err != nil {
				return err
			}
		}
	}
	return nil
}

// startFrame checks the header of the frame just read.
func (c *Conn) startFrame(h *half) error {
	b := h.hdr[:]
	h.length = int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	h.typ, h.flags = http2.FrameType(b[3]), http2.Flags(b[4])
	h.sid = binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1)
	h.left, h.wantPre, h.padding, h.padded = h.length, 0, 0, false
	if uint32(h.length) > c.cfg.maxFrame {
		return protoErr("%s frame of %d bytes over the frame size limit", h.typ, h.length)
	}
	if h.block != nil && (h.typ != http2.FrameContinuation || h.sid != h.block.sid) {
		return protoErr("%s frame inside a header block", h.typ)
	}
	onStream := func() error {
		if h.sid == 0 {
			return protoErr("%s frame on stream 0", h.typ)
		}
		return nil
	}
	onConn := func() error {
		if h.sid != 0 {
			return protoErr("%s frame on a stream", h.typ)
		}
		return nil
	}
	exact := func(n int) error {
		if h.length != n {
			return protoErr("%s frame of %d bytes", h.typ, h.length)
		}
		return nil
	}
	switch h.typ {
	case http2.FrameData:
		h.padded = h.flags.Has(http2.FlagDataPadded)
		if h.padded {
			h.wantPre = 1
		}
		return errors.Join(onStream(), c.checkPre(h))
	case http2.FrameHeaders:
		h.padded = h.flags.Has(http2.FlagHeadersPadded)
		if h.padded {
			h.wantPre++
		}
		if h.flags.Has(http2.FlagHeadersPriority) {
			h.wantPre += 5
		}
		if err := errors.Join(onStream(), c.checkPre(h)); err != nil {
			return err
		}
		c.openBlock(h)
	case http2.FramePushPromise:
		if h.dir != httpstream.ServerToClient {
			return protoErr("PUSH_PROMISE from the client")
		}
		h.padded = h.flags.Has(http2.FlagPushPromisePadded)
		if h.padded {
			h.wantPre++
		}
		h.wantPre += 4
		if err := errors.Join(onStream(), c.checkPre(h)); err != nil {
			return err
		}
		c.openBlock(h)
	case http2.FrameContinuation:
		if h.block == nil {
			return protoErr("CONTINUATION outside a header block")
		}
	case http2.FramePriority:
		return errors.Join(onStream(), exact(5))
	case http2.FrameRSTStream, http2.FrameWindowUpdate:
		if h.typ == http2.FrameRSTStream {
			if err := onStream(); err != nil {
				return err
			}
		}
		return exact(4)
	case http2.FrameSettings:
		if h.length%6 != 0 || (h.flags.Has(http2.FlagSettingsAck) && h.length != 0) {
			return protoErr("SETTINGS frame of %d bytes", h.length)
		}
		return onConn()
	case http2.FramePing:
		return errors.Join(onConn(), exact(8))
	case http2.FrameGoAway:
		if h.length < 8 {
			return protoErr("GOAWAY frame of %d bytes", h.length)
		}
		return onConn()
	}
	return nil // unknown frame types are skipped
}

// checkPre checks that the frame holds its pad length, priority or promised
// id.
func (c *Conn) checkPre(h *half) error {
	if h.length < h.wantPre {
		return protoErr("%s frame of %d bytes too short", h.typ, h.length)
	}
	return nil
}

// openBlock starts the header block of a HEADERS or PUSH_PROMISE frame.
func (c *Conn) openBlock(h *half) {
	h.block = &block{sid: h.sid, typ: h.typ, ts: h.ts, endStream: h.typ == http2.FrameHeaders && h.flags.Has(http2.FlagHeadersEndStream)}
	h.dec.SetEmitEnabled(true)
}

// payload handles a piece of the current frame's payload.
func (c *Conn) payload(h *half, p []byte, ts time.Time) error {
	off := h.length - h.left // offset of p[0] in the payload
	if off < h.wantPre {
		n := copy(h.pre[off:h.wantPre], p)
		off += n
		p = p[n:]
		if off < h.wantPre {
			return nil
		}
		if h.padded {
			h.padding = int(h.pre[0])
			if h.padding > h.length-h.wantPre {
				return protoErr("%s frame padding longer than its payload", h.typ)
			}
		}
	}
	switch h.typ {
	case http2.FrameData, http2.FrameHeaders, http2.FramePushPromise, http2.FrameContinuation:
		// The fragment is what comes before the trailing padding.
		p = p[:min(len(p), max(h.length-h.padding-off, 0))]
		if len(p) == 0 {
			return nil
		}
		if h.typ == http2.FrameData {
			c.data(h, p, ts)
			return nil
		}
		if _, err := h.dec.Write(p); err != nil {
			return &errConn{reason: DropHPACK, err: fmt.Errorf("decode header block: %w", err)}
		}
	case http2.FrameSettings:
		// Entries are read 6 bytes at a time.
		for len(p) > 0 {
			n := copy(h.ctl[off%6:6], p)
			off += n
			p = p[n:]
			if off%6 == 0 {
				c.setting(h, http2.SettingID(binary.BigEndian.Uint16(h.ctl[:2])), binary.BigEndian.Uint32(h.ctl[2:6]))
			}
		}
	default:
		if off < len(h.ctl) {
			copy(h.ctl[off:], p)
		}
	}
	return nil
}

// endFrame handles the end of the current frame.
func (c *Conn) endFrame(h *half) error {
	h.nhdr = 0
	switch h.typ {
	case http2.FrameData:
		if h.flags.Has(http2.FlagDataEndStream) {
			c.endSide(h.sid, h.dir, h.ts)
		}
	case http2.FrameHeaders, http2.FramePushPromise, http2.FrameContinuation:
		if h.flags.Has(http2.FlagHeadersEndHeaders) { // the same bit for the three
			return c.endBlock(h)
		}
	case http2.FrameRSTStream:
		c.reset(h, http2.ErrCode(binary.BigEndian.Uint32(h.ctl[:4])))
	}
	return nil
}

// setting applies one SETTINGS entry sent by h's side.
func (c *Conn) setting(h *half, id http2.SettingID, v uint32) {
	if id != http2.SettingHeaderTableSize {
		return
	}
	// The table size a side announces bounds what its peer's encoder may
	// use: the decoder of the other direction. It is only raised (the peer
	// may still use the older size until it sees the setting).
	o := &c.halves[1-h.dir]
	if v = min(v, c.cfg.maxTable); v > o.table {
		o.table = v
		o.dec.SetAllowedMaxDynamicTableSize(v)
	}
}

// field collects one decoded header field of h's open block.
func (c *Conn) field(h *half, f hpack.HeaderField) {
	b := h.block
	if b == nil || b.over {
		return
	}
	b.size += int(f.Size())
	if b.size > c.cfg.maxHeader {
		b.over, b.fields = true, nil
		h.dec.SetEmitEnabled(false) // keeps the table in sync without the strings
		return
	}
	b.fields = append(b.fields, f)
}

// endBlock decodes the end of h's header block and hands it to its stream.
func (c *Conn) endBlock(h *half) error {
	b := h.block
	h.block = nil
	if err := h.dec.Close(); err != nil {
		return &errConn{reason: DropHPACK, err: fmt.Errorf("decode header block: %w", err)}
	}
	h.dec.SetEmitEnabled(true)
	if b.typ == http2.FramePushPromise {
		c.cfg.stats.Skipped[SkipPush].Add(1)
		return nil
	}
	if h.dir == httpstream.ClientToServer {
		c.requestBlock(b)
	} else {
		c.responseBlock(b)
	}
	return nil
}
