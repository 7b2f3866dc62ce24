package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// Values of tls_event.dir and .lib in tls.bpf.c.
const (
	tlsDirWrite = 0 // the process sent the bytes
	tlsDirRead  = 1 // the process received them
	tlsDirClose = 2 // the connection is gone

	tlsLibOpenSSL = 0
	tlsLibGo      = 1
)

// tlsEventSize is sizeof(struct tls_event) in tls.bpf.c.
const tlsEventSize = 80

// tlsEvent is one decoded record of the TLS ring buffer: a chunk of the
// plaintext one SSL_read/SSL_write or (*tls.Conn).Read/Write call moved.
type tlsEvent struct {
	TS       uint64 // CLOCK_MONOTONIC ns
	Conn     uint64 // SSL* or *tls.Conn in the process
	PID      uint32
	FD       int32 // socket, -1 if unknown
	Len      uint32
	Offset   uint32
	Dir, Lib uint8
	Last     bool
	Data     []byte // aliases the record
	// Local and Remote are the socket's addresses read by the program
	// (invalid when it could not).
	Local, Remote netip.AddrPort
}

var errShortTLSEvent = errors.New("malformed TLS record")

// parseTLSEvent decodes a ring buffer record (the layout of struct tls_event).
func parseTLSEvent(raw []byte) (tlsEvent, error) {
	if len(raw) < tlsEventSize {
		return tlsEvent{}, errShortTLSEvent
	}
	e := tlsEvent{
		TS:     binary.NativeEndian.Uint64(raw[0:8]),
		Conn:   binary.NativeEndian.Uint64(raw[8:16]),
		PID:    binary.NativeEndian.Uint32(raw[16:20]),
		FD:     int32(binary.NativeEndian.Uint32(raw[20:24])),
		Len:    binary.NativeEndian.Uint32(raw[24:28]),
		Offset: binary.NativeEndian.Uint32(raw[28:32]),
		Dir:    raw[36],
		Lib:    raw[37],
		Last:   raw[38] != 0,
	}
	n := int(binary.NativeEndian.Uint32(raw[32:36]))
	if n > len(raw)-tlsEventSize || e.Dir > tlsDirClose || uint64(e.Offset)+uint64(n) > uint64(e.Len) && e.Dir != tlsDirClose {
		return tlsEvent{}, errShortTLSEvent
	}
	e.Data = raw[tlsEventSize : tlsEventSize+n]
	lport := binary.NativeEndian.Uint16(raw[72:74])
	rport := binary.NativeEndian.Uint16(raw[74:76])
	switch binary.NativeEndian.Uint16(raw[76:78]) {
	case 2: // AF_INET
		e.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[40:44])), lport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[56:60])), rport)
	case 10: // AF_INET6
		e.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[40:56])).Unmap(), lport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(raw[56:72])).Unmap(), rport)
	}
	return e, nil
}

// segmentHandler takes TCP segments: a *tcpstream.Tracker.
type segmentHandler interface {
	Handle(seg *tcpstream.Segment, ts time.Time)
}

// socketResolver returns the local and remote address of socket fd of
// process pid (ok false when unknown).
type socketResolver func(pid uint32, fd int32) (local, remote netip.AddrPort, ok bool)

type connRef struct {
	pid  uint32
	conn uint64
	lib  uint8
}

// tlsConn is a connection seen through its plaintext.
type tlsConn struct {
	fd             int32
	client, server netip.AddrPort
	procIsServer   bool
	next, base     [2]uint32 // by tcpstream direction: next sequence number, start of the current call
	last           time.Time
	closed         time.Time // when the close event came (zero: open)
	local, remote  netip.AddrPort
	tuple          bool // local and remote came from the socket
}

// tlsAssembler turns plaintext chunks into the TCP segments of a connection
// between the connection's client and server, so that the packet collectors'
// path (tcpstream: reassembly, HTTP/1.x or HTTP/2 by the first bytes,
// pairing, publishing) handles them. A connection opens with a SYN from its
// client; the bytes of each direction follow in sequence; a close event or a
// socket reused by another connection sends the FINs. It is not safe for
// concurrent use.
type tlsAssembler struct {
	out     segmentHandler
	resolve socketResolver
	conns   map[connRef]*tlsConn
	seg     tcpstream.Segment
}

func newTLSAssembler(out segmentHandler, resolve socketResolver) *tlsAssembler {
	return &tlsAssembler{out: out, resolve: resolve, conns: map[connRef]*tlsConn{}}
}

// Segment directions.
const (
	toServer = 0
	toClient = 1
)

// handle takes one event captured at ts.
func (a *tlsAssembler) handle(e tlsEvent, ts time.Time) {
	k := connRef{pid: e.PID, conn: e.Conn, lib: e.Lib}
	c := a.conns[k]
	if e.Dir == tlsDirClose {
		// Ended later (reap): a call that returned before the close may still
		// be on its way, from another CPU or a goroutine not yet run.
		if c != nil && c.closed.IsZero() {
			c.closed = ts
		}
		return
	}
	if c != nil && e.Offset == 0 && (e.FD >= 0 && c.fd >= 0 && e.FD != c.fd ||
		e.Local.IsValid() && c.tuple && (e.Local != c.local || e.Remote != c.remote)) {
		// The SSL*/tls.Conn address is reused by a connection on another socket.
		a.end(k, c, ts)
		c = nil
	}
	if c == nil {
		c = a.open(e, ts)
		a.conns[k] = c
	}
	if c.fd < 0 {
		c.fd = e.FD
	}
	c.last = ts
	d := toServer
	if (e.Dir == tlsDirWrite) == c.procIsServer {
		d = toClient
	}
	if e.Offset == 0 {
		c.base[d] = c.next[d]
		c.next[d] += e.Len
	}
	a.seg = tcpstream.Segment{Seq: c.base[d] + e.Offset, Payload: e.Data}
	a.seg.Src, a.seg.Dst = c.client, c.server
	if d == toClient {
		a.seg.Src, a.seg.Dst = c.server, c.client
	}
	if e.Last {
		// Bytes beyond what the program copies of one call are missing.
		a.seg.Missing = int(e.Len - e.Offset - uint32(len(e.Data)))
	}
	a.out.Handle(&a.seg, ts)
}

// open starts the connection of e's first bytes: who is the client is judged
// from them, the addresses come from the socket (or stand in for it).
func (a *tlsAssembler) open(e tlsEvent, ts time.Time) *tlsConn {
	c := &tlsConn{fd: e.FD, last: ts}
	senderIsClient := looksLikeClientStart(e.Data)
	c.procIsServer = (e.Dir == tlsDirWrite) != senderIsClient
	local, remote := e.Local, e.Remote
	ok := local.IsValid() && remote.IsValid() && local.Port() != 0 && remote.Port() != 0
	if !ok && e.FD >= 0 && a.resolve != nil {
		local, remote, ok = a.resolve(e.PID, e.FD)
	}
	if ok {
		c.local, c.remote, c.tuple = local, remote, true
	} else {
		local, remote = syntheticAddrs(e.PID, e.Conn, c.procIsServer)
	}
	if c.procIsServer {
		c.server, c.client = local, remote
	} else {
		c.server, c.client = remote, local
	}
	// The client's SYN opens the flow in the tracker and says which side is
	// the server; its data starts at sequence 1, the server's too.
	c.next = [2]uint32{1, 1}
	a.seg = tcpstream.Segment{Src: c.client, Dst: c.server, SYN: true}
	a.out.Handle(&a.seg, ts)
	return c
}

// end closes both directions of c.
func (a *tlsAssembler) end(k connRef, c *tlsConn, ts time.Time) {
	a.seg = tcpstream.Segment{Src: c.client, Dst: c.server, Seq: c.next[toServer], FIN: true}
	a.out.Handle(&a.seg, ts)
	a.seg = tcpstream.Segment{Src: c.server, Dst: c.client, Seq: c.next[toClient], FIN: true}
	a.out.Handle(&a.seg, ts)
	delete(a.conns, k)
}

// reap ends the connections closed before closedBefore and drops those
// without events since before idleBefore (the tracker flushes their streams
// on its own idle timeout).
func (a *tlsAssembler) reap(closedBefore, idleBefore time.Time) {
	for k, c := range a.conns {
		switch {
		case !c.closed.IsZero() && c.closed.Before(closedBefore):
			a.end(k, c, c.closed)
		case c.last.Before(idleBefore):
			delete(a.conns, k)
		}
	}
}

// looksLikeClientStart reports whether b, the first plaintext bytes of a
// connection, were sent by its client: an HTTP/1.x request line or the HTTP/2
// preface start with a letter; a server's first bytes are a status line
// ("HTTP/") or an HTTP/2 frame (SETTINGS, binary).
func looksLikeClientStart(b []byte) bool {
	if len(b) == 0 || bytes.HasPrefix(b, []byte("HTTP/")) {
		return false
	}
	return b[0] >= 'A' && b[0] <= 'Z' || b[0] >= 'a' && b[0] <= 'z'
}

// syntheticAddrs stand in for a socket's addresses when they are unknown:
// IPv6 unique local addresses (fd00::/8) holding the process id and the
// connection's address in it; the server's port is 443, the client's 1.
func syntheticAddrs(pid uint32, conn uint64, procIsServer bool) (local, remote netip.AddrPort) {
	var b [16]byte
	b[0] = 0xfd
	binary.BigEndian.PutUint32(b[4:8], pid)
	binary.BigEndian.PutUint64(b[8:16], conn)
	addr := netip.AddrFrom16(b)
	srv, cli := netip.AddrPortFrom(addr, 443), netip.AddrPortFrom(addr, 1)
	if procIsServer {
		return srv, cli
	}
	return cli, srv
}

// httpsPublisher marks the exchanges it publishes as HTTPS: the plaintext
// was captured inside TLS.
type httpsPublisher struct{ tcpstream.Publisher }

// Emit implements tcpstream.Publisher.
func (p httpsPublisher) Emit(rec *mlv1.Exchange) error {
	if rec.Request != nil {
		rec.Request.Scheme = "https"
	}
	return p.Publisher.Emit(rec)
}
