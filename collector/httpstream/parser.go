package httpstream

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

type pstate int

const (
	stHead       pstate = iota // reading a start line and headers
	stScan                     // lost our place: look for the next start line
	stBody                     // Content-Length body
	stChunkSize                // chunk-size line
	stChunkData                // chunk data
	stChunkEnd                 // CRLF after chunk data
	stTrailer                  // trailer section of a chunked body
	stUntilClose               // response body delimited by the end of the stream
	stTunnel                   // protocol switched: ignore everything
)

// maxChunkLine bounds a chunk-size line (with extensions).
const maxChunkLine = 4096

// maxChunkSize bounds one chunk's declared size (1 TiB) so sums cannot overflow.
const maxChunkSize = 1 << 40

// parser reads one direction of a connection.
type parser struct {
	c         *Conn
	dir       Direction
	state     pstate
	head      []byte // head (or chunk/trailer line) being assembled
	lineStart int    // start of the current line in head
	headStart time.Time
	remain    int64 // bytes left of a Content-Length body or chunk
	body      *Body
	end       *time.Time
	cur       *entry    // request being read, or the request the response answers
	orphan    *Response // response being read that answers no request
	tail      []byte    // last bytes seen while scanning, for starts split over calls
	lostSync  bool      // the stream lost its place since its last message head
	inSync    bool
	eof       bool
}

func (p *parser) feed(data []byte, ts time.Time) {
	for len(data) > 0 && !p.eof {
		switch p.state {
		case stTunnel:
			return
		case stScan:
			data = p.scan(data, ts)
		case stHead:
			data = p.feedHead(data, ts)
		case stBody, stChunkData:
			n := min(int64(len(data)), p.remain)
			p.addBody(data[:n])
			*p.end = ts
			data = data[n:]
			p.consumed(n, ts)
		case stUntilClose:
			p.addBody(data)
			*p.end = ts
			data = nil
		case stChunkSize, stChunkEnd, stTrailer:
			var line []byte
			var ok bool
			line, data, ok = p.readLine(data)
			if !ok {
				continue
			}
			*p.end = ts
			p.onChunkLine(line, ts)
		}
	}
}

// consumed takes n bytes of a Content-Length body or chunk off remain; the body
// or chunk ends when none are left.
func (p *parser) consumed(n int64, ts time.Time) {
	p.remain -= n
	switch {
	case p.remain > 0:
	case p.state == stBody:
		p.finish(ts)
	default:
		p.state = stChunkEnd
	}
}

// readLine assembles a line of chunk framing; ok reports a complete line (without
// its CRLF), valid until the next call.
func (p *parser) readLine(data []byte) (line, rest []byte, ok bool) {
	limit := maxChunkLine
	if p.state == stTrailer {
		limit = p.c.cfg.maxHead
	}
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		if len(p.head)+len(data) > limit {
			p.badFraming(true)
			return nil, nil, false
		}
		p.head = append(p.head, data...)
		return nil, nil, false
	}
	if len(p.head)+i > limit {
		p.badFraming(false)
		return nil, data[i+1:], false
	}
	p.head = append(p.head, data[:i]...)
	line = bytes.TrimSuffix(p.head, []byte{'\r'})
	p.head = p.head[:0]
	return line, data[i+1:], true
}

func (p *parser) onChunkLine(line []byte, ts time.Time) {
	switch p.state {
	case stChunkEnd:
		if len(line) != 0 {
			p.badFraming(false)
			return
		}
		p.state = stChunkSize
	case stTrailer:
		if len(bytes.TrimSpace(line)) == 0 {
			p.finish(ts)
		}
	case stChunkSize:
		line, _, _ = bytes.Cut(line, []byte{';'}) // no chunk extensions
		s := strings.TrimSpace(string(line))
		size, err := strconv.ParseUint(s, 16, 64)
		if err != nil || s == "" || size > maxChunkSize {
			p.badFraming(false)
			return
		}
		if size == 0 {
			p.state = stTrailer
			return
		}
		p.state, p.remain = stChunkData, int64(size)
	}
}

// badFraming ends the current message as incomplete after malformed chunk
// framing and resynchronises: at the next line when midLine, else right here.
func (p *parser) badFraming(midLine bool) {
	p.c.cfg.stats.ParseErrors.Add(1)
	p.head = p.head[:0]
	if p.body != nil {
		p.body.Incomplete = true
	}
	p.finish(time.Time{})
	if midLine {
		p.state = stScan
	}
	p.lostSync = true
}

func (p *parser) addBody(b []byte) {
	if len(b) == 0 {
		return
	}
	body := p.body
	body.Size += int64(len(b))
	if room := max(p.c.cfg.bodyLimit-int64(len(body.Data)), 0); int64(len(b)) > room {
		b, body.Truncated = b[:room], true
	}
	body.Data = append(body.Data, b...)
}

// feedHead consumes head lines from data and returns what follows the head.
func (p *parser) feedHead(data []byte, ts time.Time) []byte {
	maxHead := p.c.cfg.maxHead
	for len(data) > 0 {
		if len(p.head) == 0 {
			p.headStart = ts
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(p.head)+len(data) > maxHead {
				p.loseSync()
				p.state = stScan
				return nil
			}
			p.head = append(p.head, data...)
			return nil
		}
		if len(p.head)+i+1 > maxHead {
			// Too long a head: drop it and look for a start line after this line.
			p.loseSync()
			data = data[i+1:]
			continue
		}
		p.head = append(p.head, data[:i+1]...)
		data = data[i+1:]
		line := trimEOL(p.head[p.lineStart:])
		if p.lineStart == 0 {
			switch {
			case len(line) == 0:
				p.head = p.head[:0] // empty lines between messages are allowed
			case p.validStart(line):
				p.inSync = true
				p.lineStart = len(p.head)
			default:
				// A message may start inside the line (after a body that did
				// not end with a line break).
				off := p.rescan(p.head)
				if off < 0 {
					p.loseSync()
					break
				}
				if p.inSync {
					p.c.cfg.stats.ParseErrors.Add(1)
				}
				p.lostSync = true
				p.head = p.head[:copy(p.head, p.head[off:])]
				p.inSync = true
				p.lineStart = len(p.head)
			}
			continue
		}
		if len(line) != 0 {
			p.lineStart = len(p.head)
			continue
		}
		head := p.head
		p.head, p.lineStart = p.head[:0], 0
		if p.dir == ClientToServer {
			p.onRequestHead(head, ts)
		} else {
			p.onResponseHead(head, ts)
		}
		return data
	}
	return nil
}

// loseSync drops the head being assembled: the stream is not where a message starts.
func (p *parser) loseSync() {
	p.head, p.lineStart = p.head[:0], 0
	if p.inSync {
		p.c.cfg.stats.ParseErrors.Add(1)
	}
	p.inSync = false
	p.lostSync = true
}

// Patterns a message start contains, used to find one while scanning.
var (
	responseStarts = [][]byte{[]byte("HTTP/1.")}
	requestStarts  = [][]byte{[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("DELETE "), []byte("HEAD "),
		[]byte("PATCH "), []byte("OPTIONS "), []byte("CONNECT "), []byte("TRACE ")}
)

// maxStartPattern is the length of the longest pattern.
const maxStartPattern = 8

// findStart returns the index of the first start pattern in b, or -1.
func (p *parser) findStart(b []byte) int {
	best, pats := -1, requestStarts
	if p.dir == ServerToClient {
		pats = responseStarts
	}
	for _, pat := range pats {
		lim := b
		if best >= 0 {
			lim = b[:min(len(b), best+len(pat))]
		}
		if i := bytes.Index(lim, pat); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// rescan returns the offset (> 0) inside line where a valid start line begins,
// or -1.
func (p *parser) rescan(line []byte) int {
	for off := 1; off < len(line); {
		i := p.findStart(line[off:])
		if i < 0 {
			return -1
		}
		off += i
		if p.validStart(trimEOL(line[off:])) {
			return off
		}
		off++
	}
	return -1
}

// scan looks for where the next message starts: a start pattern, or else the
// beginning of the next line. It returns the data from there on.
func (p *parser) scan(data []byte, ts time.Time) []byte {
	if len(p.tail) > 0 {
		comb := append(append([]byte(nil), p.tail...), data[:min(len(data), maxStartPattern)]...)
		if k := p.findStart(comb); k >= 0 && k < len(p.tail) {
			p.head = append(p.head[:0], p.tail[k:]...)
			p.headStart = ts
			p.tail = p.tail[:0]
			p.state = stHead
			return data
		}
	}
	region, _, line := bytes.Cut(data, []byte{'\n'})
	k := p.findStart(region)
	if k < 0 && !line {
		p.tail = append(p.tail, data[max(0, len(data)-(maxStartPattern-1)):]...)
		if len(p.tail) > maxStartPattern-1 {
			p.tail = p.tail[len(p.tail)-(maxStartPattern-1):]
		}
		return nil
	}
	if k < 0 {
		k = len(region) + 1 // no start pattern: the next line
	}
	p.tail = p.tail[:0]
	p.state = stHead
	return data[k:]
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

func (p *parser) validStart(line []byte) bool {
	if p.dir == ServerToClient {
		_, _, _, ok := parseStatusLine(line)
		return ok
	}
	_, _, _, ok := parseRequestLine(line)
	return ok
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isToken reports whether every byte of b is a token character (RFC 9110).
func isToken(b []byte) bool {
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

func validProto(b []byte) bool {
	return len(b) == 8 && string(b[:7]) == "HTTP/1." && b[7] >= '0' && b[7] <= '9'
}

func parseRequestLine(line []byte) (method, target, proto string, ok bool) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 || sp1 > 32 || !isToken(line[:sp1]) {
		return "", "", "", false
	}
	rest := line[sp1+1:]
	sp2 := bytes.LastIndexByte(rest, ' ')
	if sp2 <= 0 || !validProto(rest[sp2+1:]) {
		return "", "", "", false
	}
	tgt := rest[:sp2]
	for _, c := range tgt {
		if c <= ' ' || c == 0x7f {
			return "", "", "", false
		}
	}
	return string(line[:sp1]), string(tgt), string(rest[sp2+1:]), true
}

func parseStatusLine(line []byte) (proto string, status int, reason string, ok bool) {
	if len(line) < 12 || !validProto(line[:8]) || line[8] != ' ' {
		return "", 0, "", false
	}
	code := line[9:12]
	for _, c := range code {
		if c < '0' || c > '9' {
			return "", 0, "", false
		}
	}
	if len(line) > 12 && line[12] != ' ' {
		return "", 0, "", false
	}
	st := int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if st < 100 {
		return "", 0, "", false
	}
	if len(line) > 13 {
		reason = string(line[13:])
	}
	return string(line[:8]), st, reason, true
}

// framing is what a head says about its body.
type framing struct {
	headers       []Header
	host          string
	contentLength int64 // -1: none
	chunked       bool
	otherTE       bool
	badLength     bool
	expect        bool
}

// parseHeaders reads the header lines of head (start line excluded). Malformed
// lines are skipped; obsolete line folding is joined.
func parseHeaders(lines [][]byte, keepHost bool) framing {
	f := framing{contentLength: -1}
	for _, l := range lines {
		l = trimEOL(l)
		if len(l) == 0 {
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if n := len(f.headers); n > 0 {
				f.headers[n-1].Value += " " + strings.TrimSpace(string(l))
			}
			continue
		}
		i := bytes.IndexByte(l, ':')
		if i <= 0 || !isToken(l[:i]) {
			continue
		}
		h := Header{Name: string(l[:i]), Value: strings.TrimSpace(string(l[i+1:]))}
		switch {
		case strings.EqualFold(h.Name, "Host"):
			if f.host == "" {
				f.host = h.Value
			}
			if !keepHost {
				continue
			}
		case strings.EqualFold(h.Name, "Content-Length"):
			for _, v := range strings.Split(h.Value, ",") {
				n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				if err != nil || n < 0 || (f.contentLength >= 0 && n != f.contentLength) {
					f.badLength = true
					break
				}
				f.contentLength = n
			}
		case strings.EqualFold(h.Name, "Transfer-Encoding"):
			codings := strings.Split(h.Value, ",")
			last := strings.ToLower(strings.TrimSpace(codings[len(codings)-1]))
			if last == "chunked" {
				f.chunked, f.otherTE = true, false
			} else if last != "" {
				f.chunked, f.otherTE = false, true
			}
		case strings.EqualFold(h.Name, "Expect"):
			f.expect = strings.EqualFold(h.Value, "100-continue")
		}
		f.headers = append(f.headers, h)
	}
	return f
}

func (p *parser) onRequestHead(head []byte, ts time.Time) {
	lines := bytes.SplitAfter(head, []byte("\n"))
	method, target, proto, _ := parseRequestLine(trimEOL(lines[0]))
	f := parseHeaders(lines[1:], false)
	r := &Request{Method: method, Target: target, Proto: proto, Host: f.host, Headers: f.headers, Start: p.headStart, End: ts}
	p.lostSync = false
	e := p.c.addRequest(r, f.expect)
	p.cur, p.body, p.end = e, &r.Body, &r.End
	switch {
	case f.badLength || (f.otherTE && !f.chunked):
		// A server answers 400 and closes; we cannot tell where the body ends.
		r.Incomplete = true
		p.finish(ts)
		p.c.cfg.stats.ParseErrors.Add(1)
	case f.chunked:
		p.state = stChunkSize
	case f.contentLength > 0:
		p.state, p.remain = stBody, f.contentLength
	default:
		p.finish(ts)
	}
}

func (p *parser) onResponseHead(head []byte, ts time.Time) {
	lines := bytes.SplitAfter(head, []byte("\n"))
	proto, status, reason, _ := parseStatusLine(trimEOL(lines[0]))
	if status < 200 && status != 101 {
		// Interim response (100 Continue, 103 Early Hints): not the answer.
		return
	}
	f := parseHeaders(lines[1:], true)
	r := &Response{Status: status, Reason: reason, Proto: proto, Headers: f.headers, Start: p.headStart, End: ts}
	e := p.c.pairResponse(p.headStart, p.lostSync)
	p.lostSync = false
	method := "GET"
	if e == nil {
		p.orphan = r
	} else {
		e.ex.Response = r
		method = e.ex.Request.Method
		p.c.bodyNotSent(e)
	}
	p.cur, p.body, p.end = e, &r.Body, &r.End
	switch {
	case status == 101 || (method == "CONNECT" && status < 300):
		p.finish(ts)
		p.c.startTunnel()
	case method == "HEAD" || status == 204 || status == 304:
		p.finish(ts)
	case f.chunked:
		p.state = stChunkSize
	case f.otherTE:
		p.state = stUntilClose
	case f.badLength:
		r.Incomplete = true
		p.c.cfg.stats.ParseErrors.Add(1)
		p.finish(ts)
	case f.contentLength == 0:
		p.finish(ts)
	case f.contentLength > 0:
		p.state, p.remain = stBody, f.contentLength
	default:
		p.state = stUntilClose
	}
}

// bodyNotSent handles a final response to a request that announced
// "Expect: 100-continue" and has not sent a byte of its body: the client will not
// send it, so the request ends here and its parser looks for the next request.
func (c *Conn) bodyNotSent(e *entry) {
	rp := &c.req
	if !e.expect || e.reqDone || rp.cur != e || e.ex.Request.Size != 0 {
		return
	}
	if rp.state != stBody && (rp.state != stChunkSize || len(rp.head) != 0) {
		return
	}
	e.reqDone = true
	rp.cur, rp.body, rp.end = nil, nil, nil
	rp.state, rp.remain = stHead, 0
}

// startTunnel stops parsing the connection after a protocol switch.
func (c *Conn) startTunnel() {
	c.tunnel = true
	c.cfg.stats.Tunnels.Add(1)
	for _, p := range []*parser{&c.req, &c.resp} {
		if p.cur != nil && p.state != stHead {
			p.finish(time.Time{})
		}
		p.state = stTunnel
		p.head = nil
	}
	for _, e := range c.pending {
		e.reqDone = true
		e.lose()
	}
}

// finish ends the current message at ts (zero: keep the time of its last byte).
func (p *parser) finish(ts time.Time) {
	if p.end != nil && !ts.IsZero() {
		*p.end = ts
	}
	switch {
	case p.cur != nil && p.dir == ClientToServer:
		p.cur.reqDone = true
	case p.cur != nil:
		p.cur.respDone = true
	case p.orphan != nil:
		p.c.cfg.stats.Orphans.Add(1)
	}
	p.cur, p.orphan, p.body, p.end = nil, nil, nil, nil
	p.state, p.remain = stHead, 0
}

// abandon forgets the message being read without completing it (its exchange was
// given up); the rest of its bytes are still consumed by the current state.
func (p *parser) abandon() {
	p.cur = nil
	if p.body != nil {
		b := *p.body
		p.body = &b
		end := *p.end
		p.end = &end
	}
}

func (p *parser) gap(n int64, ts time.Time) {
	switch p.state {
	case stTunnel:
		return
	case stUntilClose:
		p.body.Gap = true
		p.body.Size += max(n, 0)
		return
	case stBody, stChunkData:
		p.body.Gap = true
		if n >= 0 && n <= p.remain {
			p.body.Size += n
			p.consumed(n, ts)
			return
		}
		p.body.Size += p.remain
		p.body.Incomplete = true
		p.finish(ts)
	case stChunkSize, stChunkEnd, stTrailer:
		p.body.Gap = true
		if p.state != stTrailer {
			p.body.Incomplete = true
		}
		p.finish(ts)
	case stHead, stScan:
	}
	p.head, p.lineStart = p.head[:0], 0
	p.tail = p.tail[:0]
	p.state = stScan
	p.inSync = false
	p.lostSync = true
}

func (p *parser) endStream(ts time.Time) {
	if p.eof {
		return
	}
	switch p.state {
	case stUntilClose, stTrailer:
		p.finish(ts)
	case stBody, stChunkData, stChunkSize, stChunkEnd:
		p.body.Incomplete = true
		p.finish(ts)
	}
	p.head = nil
	p.eof = true
}
