package tcpstream

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector/h2stream"
	"github.com/mirrorline/mirrorline/collector/httpstream"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Publisher takes finished exchanges; *collector.Emitter is one.
type Publisher interface {
	Emit(ex *mlv1.Exchange) error
}

// Defaults of the Tracker options.
const (
	DefaultIdleTimeout     = 2 * time.Minute
	DefaultGapTimeout      = 2 * time.Second
	DefaultMaxStreams      = 100_000
	DefaultMaxStreamBuffer = 1 << 20
	DefaultMaxBuffered     = 256 << 20
)

// Ends of a stream, counted in Stats.StreamsEnded.
const (
	EndFIN = iota
	EndRST
	EndIdle
	EndClose
	numEnds
)

// EndNames are the label values of the ends, by index.
var EndNames = [numEnds]string{"fin", "rst", "idle", "close"}

// TrackerOption configures a Tracker.
type TrackerOption func(*Tracker)

// WithPorts makes only TCP connections to these server ports tracked; the side
// using one of them is the server. Without it every connection is tracked and the
// server is guessed (the receiver of the SYN, else the lower port).
func WithPorts(ports ...uint16) TrackerOption {
	return func(t *Tracker) {
		for _, p := range ports {
			t.ports[p] = true
		}
	}
}

// WithSource sets the Source of published records (default SOURCE_VPC).
func WithSource(s mlv1.Source) TrackerOption { return func(t *Tracker) { t.source = s } }

// WithCollectorID names the collector in records (default: host name).
func WithCollectorID(id string) TrackerOption { return func(t *Tracker) { t.collectorID = id } }

// WithConnPrefix prefixes every connection id (default "vpc-").
func WithConnPrefix(p string) TrackerOption { return func(t *Tracker) { t.connPrefix = p } }

// WithHTTPOptions passes options (body limit, head size, ...) to every
// httpstream.Conn.
func WithHTTPOptions(opts ...httpstream.Option) TrackerOption {
	return func(t *Tracker) { t.httpOpts = append(t.httpOpts, opts...) }
}

// WithH2Options passes options (stream and HPACK table limits, ...) to every
// h2stream.Conn; the body limit and header size of the HTTP options apply to
// HTTP/2 too.
func WithH2Options(opts ...h2stream.Option) TrackerOption {
	return func(t *Tracker) { t.h2Opts = append(t.h2Opts, opts...) }
}

// WithIdleTimeout sets after how long without packets a stream is flushed and
// forgotten (default 2 min).
func WithIdleTimeout(d time.Duration) TrackerOption { return func(t *Tracker) { t.idle = d } }

// WithGapTimeout sets how long out-of-order data waits for a missing segment
// before the segment is declared lost (default 2 s).
func WithGapTimeout(d time.Duration) TrackerOption { return func(t *Tracker) { t.gapWait = d } }

// WithMaxStreams caps the streams tracked at once (default 100,000); packets of
// new streams beyond it are dropped and counted.
func WithMaxStreams(n int) TrackerOption { return func(t *Tracker) { t.maxStreams = n } }

// WithMaxStreamBuffer caps the out-of-order bytes buffered per stream direction
// (default 1 MiB); beyond it the missing bytes are declared a gap.
func WithMaxStreamBuffer(n int) TrackerOption { return func(t *Tracker) { t.maxHalfBuf = n } }

// WithMaxBuffered caps the out-of-order bytes buffered over all streams (default
// 256 MiB).
func WithMaxBuffered(n int) TrackerOption { return func(t *Tracker) { t.maxBuffered = n } }

// WithLogger sets the logger (no payloads are logged).
func WithLogger(l hclog.Logger) TrackerOption { return func(t *Tracker) { t.log = l } }

// WithStats makes the Tracker count into s (shared with metrics or a summary).
func WithStats(s *Stats) TrackerOption { return func(t *Tracker) { t.stats = s } }

// Tracker follows TCP connections from their segments, reassembles both
// directions (out of order, retransmits, missing segments), parses HTTP/1.x with
// httpstream and publishes every exchange. Its methods are safe for concurrent
// use; segments of one connection must be handed over in capture order.
type Tracker struct {
	mu          sync.Mutex
	pub         Publisher
	ports       map[uint16]bool
	source      mlv1.Source
	collectorID string
	connPrefix  string
	httpOpts    []httpstream.Option
	h2Opts      []h2stream.Option
	idle        time.Duration
	gapWait     time.Duration
	maxStreams  int
	maxHalfBuf  int
	maxBuffered int
	log         hclog.Logger
	stats       *Stats
	flows       map[flowKey]*flow
	buffered    int
}

type flowKey struct{ client, server netip.AddrPort }

type flow struct {
	key    flowKey
	id     string
	start  time.Time
	last   time.Time
	halves [2]half
	conn   parser
}

// half is one direction of a flow.
type half struct {
	started   bool
	isn       uint32
	synSeen   bool
	next      uint32
	segs      []oooSeg // out-of-order segments, sorted by sequence
	bufBytes  int
	holeSince time.Time
	fin       bool
	finSeq    uint32
	ended     bool
}

type oooSeg struct {
	seq      uint32
	data     []byte
	gapAfter int // bytes cut off by the capture after data
	ts       time.Time
}

// NewTracker returns a Tracker publishing to pub.
func NewTracker(pub Publisher, opts ...TrackerOption) *Tracker {
	host, _ := os.Hostname()
	t := &Tracker{
		pub:         pub,
		ports:       map[uint16]bool{},
		source:      mlv1.Source_SOURCE_VPC,
		collectorID: host,
		connPrefix:  "vpc-",
		idle:        DefaultIdleTimeout,
		gapWait:     DefaultGapTimeout,
		maxStreams:  DefaultMaxStreams,
		maxHalfBuf:  DefaultMaxStreamBuffer,
		maxBuffered: DefaultMaxBuffered,
		log:         hclog.NewNullLogger(),
		flows:       map[flowKey]*flow{},
	}
	for _, o := range opts {
		o(t)
	}
	if t.stats == nil {
		t.stats = &Stats{}
	}
	bodyLimit, maxHead := httpstream.Limits(t.httpOpts...)
	t.h2Opts = append([]h2stream.Option{h2stream.WithBodyLimit(bodyLimit), h2stream.WithMaxHeaderBytes(maxHead)}, t.h2Opts...)
	t.h2Opts = append(t.h2Opts, h2stream.WithStats(&t.stats.H2))
	t.httpOpts = append(t.httpOpts, httpstream.WithStats(&t.stats.HTTP))
	return t
}

// Stats returns the counters the Tracker adds to.
func (t *Tracker) Stats() *Stats { return t.stats }

// seqDiff is a-b in sequence space.
func seqDiff(a, b uint32) int64 { return int64(int32(a - b)) }

// Handle processes one segment captured at ts.
func (t *Tracker) Handle(seg *Segment, ts time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, dir, res := t.lookup(seg, ts)
	if f == nil {
		t.stats.Count(res)
		return
	}
	f.last = ts
	h, o := &f.halves[dir], &f.halves[1-dir]
	if seg.RST {
		t.stats.Count(ResultAccepted)
		t.endFlow(f, EndRST, ts)
		return
	}
	if seg.SYN {
		if h.synSeen && h.isn != seg.Seq {
			// The 4-tuple is reused by a new connection.
			t.endFlow(f, EndFIN, ts)
			if f, dir, res = t.lookup(seg, ts); f == nil {
				t.stats.Count(res)
				return
			}
			h, o = &f.halves[dir], &f.halves[1-dir]
		}
		if !h.synSeen {
			h.synSeen, h.isn = true, seg.Seq
			if !h.started {
				h.started, h.next = true, seg.Seq+1
			}
		}
		seg.Seq++ // data on a SYN (TCP Fast Open) starts after it
	}
	if seg.ACK && o.started && !o.ended {
		t.acked(f, 1-dir, seg.Ack, ts)
	}
	res = ResultAccepted
	if len(seg.Payload) > 0 || seg.Missing > 0 || seg.FIN {
		if !h.started {
			h.started, h.next = true, seg.Seq
		}
		if h.ended {
			res = ResultRetransmit
		} else {
			res = t.data(f, dir, seg.Seq, seg.Payload, seg.Missing, ts)
		}
		if seg.FIN && !h.fin {
			h.fin, h.finSeq = true, seg.Seq+uint32(len(seg.Payload)+seg.Missing)
			res = ResultAccepted
		}
		t.checkFIN(f, dir, ts)
	}
	t.stats.Count(res)
	if f.halves[0].ended && f.halves[1].ended {
		t.endFlow(f, EndFIN, ts)
	}
}

// lookup finds or creates the flow of seg and its direction.
func (t *Tracker) lookup(seg *Segment, ts time.Time) (*flow, httpstream.Direction, Result) {
	if f := t.flows[flowKey{seg.Src, seg.Dst}]; f != nil {
		return f, httpstream.ClientToServer, ResultAccepted
	}
	if f := t.flows[flowKey{seg.Dst, seg.Src}]; f != nil {
		return f, httpstream.ServerToClient, ResultAccepted
	}
	toServer := seg.Dst.Port() <= seg.Src.Port()
	switch {
	case len(t.ports) > 0:
		if !t.ports[seg.Dst.Port()] && !t.ports[seg.Src.Port()] {
			return nil, 0, ResultFiltered
		}
		toServer = t.ports[seg.Dst.Port()]
	case seg.SYN:
		toServer = !seg.ACK // a SYN goes to the server, a SYN-ACK from it
	}
	if seg.RST || (!seg.SYN && len(seg.Payload) == 0 && seg.Missing == 0) {
		// A bare ACK, FIN or RST of a connection we do not know opens nothing.
		return nil, 0, ResultIgnored
	}
	if len(t.flows) >= t.maxStreams {
		t.stats.StreamsRejected.Add(1)
		return nil, 0, ResultStreamLimit
	}
	key := flowKey{seg.Src, seg.Dst}
	dir := httpstream.ClientToServer
	if !toServer {
		key = flowKey{seg.Dst, seg.Src}
		dir = httpstream.ServerToClient
	}
	f := &flow{key: key, start: ts, last: ts, id: t.connPrefix + connID(key, ts)}
	f.conn = t.newParser(f)
	t.flows[key] = f
	t.stats.StreamsActive.Add(1)
	t.stats.Streams.Add(1)
	return f, dir, ResultAccepted
}

// connID derives a connection id from the 4-tuple and the start time.
func connID(k flowKey, start time.Time) string {
	h := fnv.New64a()
	b, _ := k.client.MarshalBinary()
	_, _ = h.Write(b)
	b, _ = k.server.MarshalBinary()
	_, _ = h.Write(b)
	var ns [8]byte
	binary.BigEndian.PutUint64(ns[:], uint64(start.UnixNano()))
	return fmt.Sprintf("%016x-%x", h.Sum64(), ns)
}

// newParser returns the parser of f's bytes: HTTP/1.x or HTTP/2, chosen by
// the first bytes (see sniff). This is the one place a connection's protocol
// is decided.
func (t *Tracker) newParser(f *flow) parser {
	return &sniff{
		newHTTP1: func() parser {
			return httpstream.New(func(e *httpstream.Exchange) { t.publish(f, e.Record()) }, t.httpOpts...)
		},
		newH2:  func() parser { return h2stream.New(func(rec *mlv1.Exchange) { t.publish(f, rec) }, t.h2Opts...) },
		midway: func() { t.stats.H2.Drop(h2stream.DropMidstream) },
	}
}

// publish completes rec with the connection's details and publishes it.
func (t *Tracker) publish(f *flow, rec *mlv1.Exchange) {
	rec.ConnectionId = f.id
	rec.Source = t.source
	rec.Collector = t.collectorID
	rec.Request.RemoteAddr = f.key.client.String()
	rec.CaptureTimeNs = cmp.Or(rec.CaptureTimeNs, f.last.UnixNano())
	t.stats.Exchanges.Add(1)
	if err := t.pub.Emit(rec); err != nil {
		t.stats.PublishErrors.Add(1)
		t.log.Warn("publish exchange", "connection", f.id, "error", err)
	}
}

// data handles payload (plus missing bytes cut off by the capture) at seq.
func (t *Tracker) data(f *flow, dir httpstream.Direction, seq uint32, payload []byte, missing int, ts time.Time) Result {
	h := &f.halves[dir]
	end := seq + uint32(len(payload)+missing)
	if seqDiff(end, h.next) <= 0 {
		return ResultRetransmit
	}
	if d := seqDiff(seq, h.next); d > 0 {
		if d >= 1<<30 {
			return ResultIgnored // not of this stream's window
		}
		t.buffer(f, dir, seq, payload, missing, ts)
		return ResultAccepted
	}
	t.deliver(f, dir, seq, payload, missing, ts)
	t.drain(f, dir)
	return ResultAccepted
}

// deliver hands the part of (payload, missing) at seq beyond h.next to the parser.
func (t *Tracker) deliver(f *flow, dir httpstream.Direction, seq uint32, payload []byte, missing int, ts time.Time) {
	h := &f.halves[dir]
	skip := seqDiff(h.next, seq)
	if skip > 0 {
		if skip >= int64(len(payload)) {
			missing -= int(skip) - len(payload)
			payload = nil
		} else {
			payload = payload[skip:]
		}
	}
	if len(payload) > 0 {
		f.conn.Feed(dir, payload, ts)
		h.next += uint32(len(payload))
	}
	if missing > 0 {
		t.gap(f, dir, int64(missing), ts)
	}
}

func (t *Tracker) gap(f *flow, dir httpstream.Direction, n int64, ts time.Time) {
	t.stats.Gaps.Add(1)
	t.stats.GapBytes.Add(uint64(n))
	f.conn.Gap(dir, n, ts)
	f.halves[dir].next += uint32(n)
}

// buffer keeps an out-of-order segment, declaring gaps when over the caps.
func (t *Tracker) buffer(f *flow, dir httpstream.Direction, seq uint32, payload []byte, missing int, ts time.Time) {
	h := &f.halves[dir]
	for _, s := range h.segs {
		if s.seq == seq && len(s.data) >= len(payload) {
			return // retransmitted while waiting
		}
	}
	s := oooSeg{seq: seq, data: append([]byte(nil), payload...), gapAfter: missing, ts: ts}
	i := sort.Search(len(h.segs), func(i int) bool { return seqDiff(h.segs[i].seq, seq) > 0 })
	h.segs = slices.Insert(h.segs, i, s)
	h.bufBytes += len(s.data)
	t.buffered += len(s.data)
	t.stats.BufferedBytes.Add(int64(len(s.data)))
	if h.holeSince.IsZero() {
		h.holeSince = ts
	}
	for len(h.segs) > 0 && (h.bufBytes > t.maxHalfBuf || t.buffered > t.maxBuffered) {
		t.stats.BufferOverflows.Add(1)
		t.skipHole(f, dir, ts)
	}
}

// skipHole declares the bytes up to the first buffered segment lost.
func (t *Tracker) skipHole(f *flow, dir httpstream.Direction, ts time.Time) {
	h := &f.halves[dir]
	if len(h.segs) == 0 {
		return
	}
	if d := seqDiff(h.segs[0].seq, h.next); d > 0 {
		t.gap(f, dir, d, ts)
	}
	t.drain(f, dir)
}

// drain delivers buffered segments that are now in order.
func (t *Tracker) drain(f *flow, dir httpstream.Direction) {
	h := &f.halves[dir]
	n := 0
	for n < len(h.segs) && seqDiff(h.segs[n].seq, h.next) <= 0 {
		s := h.segs[n]
		h.bufBytes -= len(s.data)
		t.buffered -= len(s.data)
		t.stats.BufferedBytes.Add(-int64(len(s.data)))
		end := s.seq + uint32(len(s.data)+s.gapAfter)
		if seqDiff(end, h.next) > 0 {
			t.deliver(f, dir, s.seq, s.data, s.gapAfter, s.ts)
		}
		n++
	}
	if n > 0 {
		h.segs = slices.Delete(h.segs, 0, n) // clears the tail: no stale data kept
		h.holeSince = time.Time{}
		if len(h.segs) > 0 {
			h.holeSince = h.segs[0].ts
		}
	}
	if len(h.segs) == 0 {
		h.segs = nil
	}
}

// acked handles the peer acknowledging bytes of direction dir up to ack: bytes
// it received that the capture did not see are lost for us.
func (t *Tracker) acked(f *flow, dir httpstream.Direction, ack uint32, ts time.Time) {
	h := &f.halves[dir]
	if h.fin && seqDiff(ack, h.finSeq) > 0 {
		ack = h.finSeq
	}
	d := seqDiff(ack, h.next)
	if d <= 0 || d >= 1<<30 {
		return
	}
	for seqDiff(ack, h.next) > 0 {
		if len(h.segs) > 0 && seqDiff(h.segs[0].seq, ack) < 0 {
			t.skipHole(f, dir, ts)
			continue
		}
		t.gap(f, dir, seqDiff(ack, h.next), ts)
	}
	t.checkFIN(f, dir, ts)
}

// checkFIN ends direction dir when all its bytes up to its FIN are through.
func (t *Tracker) checkFIN(f *flow, dir httpstream.Direction, ts time.Time) {
	h := &f.halves[dir]
	if h.fin && !h.ended && seqDiff(h.next, h.finSeq) >= 0 {
		h.ended = true
		f.conn.End(dir, ts)
	}
}

// endFlow flushes and forgets f.
func (t *Tracker) endFlow(f *flow, why int, ts time.Time) {
	for dir := httpstream.ClientToServer; dir <= httpstream.ServerToClient; dir++ {
		h := &f.halves[dir]
		for len(h.segs) > 0 {
			t.skipHole(f, dir, ts)
		}
	}
	f.conn.Close(ts)
	delete(t.flows, f.key)
	t.stats.StreamsActive.Add(-1)
	t.stats.StreamsEnded[why].Add(1)
}

// Flush flushes streams idle since before now minus the idle timeout and
// declares lost the segments out-of-order data has waited for longer than the
// gap timeout. now is wall-clock time for live capture, the latest packet time
// for a file.
func (t *Tracker) Flush(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	idleBefore, gapBefore := now.Add(-t.idle), now.Add(-t.gapWait)
	for _, f := range t.flows {
		if f.last.Before(idleBefore) {
			t.endFlow(f, EndIdle, now)
			continue
		}
		for dir := httpstream.ClientToServer; dir <= httpstream.ServerToClient; dir++ {
			h := &f.halves[dir]
			for len(h.segs) > 0 && h.holeSince.Before(gapBefore) {
				t.skipHole(f, dir, now)
			}
			t.checkFIN(f, dir, now)
		}
	}
}

// FlushEvery calls Flush every d with the time now returns until ctx ends
// (live capture).
func (t *Tracker) FlushEvery(ctx context.Context, d time.Duration, now func() time.Time) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			t.Flush(now())
		}
	}
}

// Close flushes every stream (pending requests are published without response).
func (t *Tracker) Close(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, f := range t.flows {
		t.endFlow(f, EndClose, now)
	}
}

// Active returns the number of streams tracked.
func (t *Tracker) Active() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.flows)
}
