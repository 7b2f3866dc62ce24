package tcpstream

import (
	"bytes"
	"time"

	"github.com/mirrorline/mirrorline/collector/h2stream"
	"github.com/mirrorline/mirrorline/collector/httpstream"
)

// parser is what a connection's reassembled bytes are handed to:
// httpstream.Conn for HTTP/1.x, h2stream.Conn for HTTP/2.
type parser interface {
	Feed(d httpstream.Direction, data []byte, ts time.Time)
	Gap(d httpstream.Direction, n int64, ts time.Time)
	End(d httpstream.Direction, ts time.Time)
	Close(ts time.Time)
}

// maxSniff bounds the bytes a connection may carry before its protocol is
// known: the server may speak first (an HTTP/2 server sends its SETTINGS
// without waiting for the client's preface).
const maxSniff = 4 << 10

// sniffed is one piece of data seen before the protocol was known.
type sniffed struct {
	dir  httpstream.Direction
	data []byte
	ts   time.Time
}

// sniff chooses a connection's parser from its first bytes and hands it
// everything seen so far, in order: the client preface means HTTP/2; an
// HTTP/2 frame header where a request or the preface should be means an
// HTTP/2 connection joined after its preface, whose header compression
// state is unknown: it is counted and skipped; anything else is HTTP/1.x.
type sniff struct {
	newHTTP1 func() parser
	newH2    func() parser
	midway   func()
	p        parser
	seen     []sniffed
	client   []byte // the client's first bytes (at most the preface's length)
	size     int
}

// Feed implements parser.
func (s *sniff) Feed(d httpstream.Direction, data []byte, ts time.Time) {
	if s.p != nil {
		s.p.Feed(d, data, ts)
		return
	}
	if d == httpstream.ClientToServer && len(s.seen) == 0 {
		// The usual case: the client speaks first and its first bytes decide.
		if p := s.classify(data, false); p != nil {
			s.choose(p)
			p.Feed(d, data, ts)
			return
		}
	}
	s.seen = append(s.seen, sniffed{d, bytes.Clone(data), ts})
	s.size += len(data)
	if d == httpstream.ClientToServer && len(s.client) < len(h2stream.Preface) {
		n := min(len(data), len(h2stream.Preface)-len(s.client))
		s.client = append(s.client, data[:n]...)
	}
	switch {
	case len(s.client) > 0:
		if p := s.classify(s.client, len(s.client) == len(h2stream.Preface) || s.size > maxSniff); p != nil {
			s.choose(p)
		}
	case s.size > maxSniff:
		// The server said a lot and the client nothing: judge by the server.
		var srv []byte
		for _, x := range s.seen {
			srv = append(srv, x.data[:min(len(x.data), 9-len(srv))]...)
		}
		if looksLikeFrame(srv) {
			s.choose(s.skipped())
		} else {
			s.choose(s.newHTTP1())
		}
	}
}

// classify returns the parser for a connection whose client sent b first,
// or nil to wait for more bytes (full: no more are coming to decide).
func (s *sniff) classify(b []byte, full bool) parser {
	pre := h2stream.Preface
	switch {
	case len(b) >= len(pre) && string(b[:len(pre)]) == pre:
		return s.newH2()
	case len(b) < len(pre) && pre[:len(b)] == string(b) && !full:
		return nil // the preface so far
	case isTokenStart(b[0]):
		return s.newHTTP1() // a request line starts with a method
	case len(b) < 9 && !full:
		return nil
	case looksLikeFrame(b):
		return s.skipped()
	}
	return s.newHTTP1()
}

// isTokenStart reports whether c may start an HTTP/1.x method.
func isTokenStart(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// frameRules are, by frame type, the flags it may carry, whether it is on
// stream 0 (1), on a stream (2) or either (3), and its fixed length (-1:
// any, -6: a multiple of 6).
var frameRules = [...]struct {
	flags  byte
	stream byte
	length int
}{
	0x0: {0x01 | 0x08, 2, -1},               // DATA: END_STREAM, PADDED
	0x1: {0x01 | 0x04 | 0x08 | 0x20, 2, -1}, // HEADERS: END_STREAM, END_HEADERS, PADDED, PRIORITY
	0x2: {0, 2, 5},                          // PRIORITY
	0x3: {0, 2, 4},                          // RST_STREAM
	0x4: {0x01, 1, -6},                      // SETTINGS: ACK
	0x5: {0x04 | 0x08, 2, -1},               // PUSH_PROMISE: END_HEADERS, PADDED
	0x6: {0x01, 1, 8},                       // PING: ACK
	0x7: {0, 1, -1},                         // GOAWAY
	0x8: {0, 3, 4},                          // WINDOW_UPDATE
	0x9: {0x04, 2, -1},                      // CONTINUATION: END_HEADERS
}

// looksLikeFrame reports whether b starts with a plausible HTTP/2 frame
// header: a known type with its flags, stream and length rules, a clear
// reserved bit. The type is the 4th byte: a space or a letter in an HTTP/1.x
// request line, a digit or '.' in "HTTP/1.1". TLS records (0x14-0x17, 0x03)
// are not frames.
func looksLikeFrame(b []byte) bool {
	if len(b) < 9 || int(b[3]) >= len(frameRules) || b[5]&0x80 != 0 || (b[0] >= 0x14 && b[0] <= 0x17 && b[1] == 0x03) {
		return false
	}
	r := frameRules[b[3]]
	length := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	onStream := b[5]|b[6]|b[7]|b[8] != 0
	switch {
	case b[4]&^r.flags != 0,
		r.stream == 1 && onStream, r.stream == 2 && !onStream,
		r.length >= 0 && length != r.length, r.length == -6 && length%6 != 0:
		return false
	}
	return true
}

// skipped counts an HTTP/2 connection joined midway and returns a parser
// that ignores it.
func (s *sniff) skipped() parser {
	s.midway()
	return discard{}
}

// choose hands p what was seen so far.
func (s *sniff) choose(p parser) {
	s.p = p
	for _, x := range s.seen {
		p.Feed(x.dir, x.data, x.ts)
	}
	s.seen, s.client = nil, nil
}

// decide chooses with what was seen when no more bytes may come first.
func (s *sniff) decide() {
	if s.p != nil {
		return
	}
	if len(s.client) > 0 {
		if p := s.classify(s.client, true); p != nil {
			s.choose(p)
			return
		}
	}
	s.choose(s.newHTTP1())
}

// Gap implements parser: missing bytes before the protocol is known leave
// HTTP/1.x parsing (which resynchronises) as the only choice.
func (s *sniff) Gap(d httpstream.Direction, n int64, ts time.Time) {
	s.decide()
	s.p.Gap(d, n, ts)
}

// End implements parser.
func (s *sniff) End(d httpstream.Direction, ts time.Time) {
	s.decide()
	s.p.End(d, ts)
}

// Close implements parser.
func (s *sniff) Close(ts time.Time) {
	s.decide()
	s.p.Close(ts)
}

// discard is the parser of a connection that is not parsed.
type discard struct{}

func (discard) Feed(httpstream.Direction, []byte, time.Time) {}
func (discard) Gap(httpstream.Direction, int64, time.Time)   {}
func (discard) End(httpstream.Direction, time.Time)          {}
func (discard) Close(time.Time)                              {}
