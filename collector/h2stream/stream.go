package h2stream

import (
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Error texts put in Response.error of cut exchanges.
const (
	errTextClosed = "connection ended before the stream ended"
	errTextGap    = "capture gap: connection bytes missing"
	// ErrTextResetPrefix starts the error text of a stream reset before its
	// response ended; the HTTP/2 error code's name follows.
	ErrTextResetPrefix = "stream reset: "
)

// Proto is the proto of HTTP/2 requests and responses in records.
const Proto = "HTTP/2.0"

// stream is one HTTP/2 stream being followed.
type stream struct {
	id       uint32
	seq      uint64
	start    time.Time
	grpc     bool
	req      side
	resp     side
	method   string
	path     string
	host     string
	scheme   string
	status   int
	haveResp bool // the final response head was seen
}

// side is what one direction of a stream carried.
type side struct {
	headers   []*mlv1.Header
	trailers  []*mlv1.Header
	body      []byte
	size      int64
	truncated bool
	gap       bool
	over      bool  // over the connection's budget: no more data kept
	kept      int64 // bytes counted in Conn.kept
	ended     bool
	end       time.Time
	framer    *grpcwire.Framer
}

func (s *stream) side(d httpstream.Direction) *side {
	if d == httpstream.ServerToClient {
		return &s.resp
	}
	return &s.req
}

// requestBlock handles a header block from the client.
func (c *Conn) requestBlock(b *block) {
	if s := c.streams[b.sid]; s != nil {
		// Trailers of the request.
		if s.req.ended || !b.endStream || b.over {
			c.skip(s, skipReason(b))
			return
		}
		s.req.trailers = regular(b.fields)
		c.endSide(b.sid, httpstream.ClientToServer, b.ts)
		return
	}
	if b.sid%2 == 0 || b.sid <= c.lastID {
		return // a stream closed or skipped already
	}
	c.lastID = b.sid
	if b.over {
		c.cfg.stats.Skipped[SkipHeaderLimit].Add(1)
		return
	}
	s := &stream{id: b.sid, start: b.ts, scheme: "http"}
	for _, f := range b.fields {
		if !strings.HasPrefix(f.Name, ":") {
			continue
		}
		switch f.Name {
		case ":method":
			s.method = f.Value
		case ":path":
			s.path = f.Value
		case ":authority":
			s.host = f.Value
		case ":scheme":
			s.scheme = f.Value
		}
	}
	switch {
	case s.method == "" || (s.path == "" && s.method != "CONNECT"):
		c.cfg.stats.Skipped[SkipMalformed].Add(1)
		return
	case len(c.streams) >= c.cfg.maxStreams:
		c.cfg.stats.Skipped[SkipStreamLimit].Add(1)
		return
	}
	s.req.headers = regular(b.fields)
	if s.grpc = grpcwire.IsGRPC(contentType(s.req.headers)); s.grpc {
		limit := int(min(c.cfg.bodyLimit, 1<<31-1))
		s.req.framer = grpcwire.NewFramer(limit, limit)
		s.resp.framer = grpcwire.NewFramer(limit, limit)
	}
	c.seq++
	s.seq = c.seq
	c.streams[b.sid] = s
	if b.endStream {
		c.endSide(b.sid, httpstream.ClientToServer, b.ts)
	}
}

// responseBlock handles a header block from the server.
func (c *Conn) responseBlock(b *block) {
	s := c.streams[b.sid]
	if s == nil {
		return
	}
	if b.over {
		c.skip(s, SkipHeaderLimit)
		return
	}
	if s.haveResp {
		// Trailers of the response.
		if s.resp.ended || !b.endStream {
			c.skip(s, SkipMalformed)
			return
		}
		s.resp.trailers = regular(b.fields)
		c.endSide(b.sid, httpstream.ServerToClient, b.ts)
		return
	}
	status := 0
	for _, f := range b.fields {
		if f.Name == ":status" {
			n, err := strconv.Atoi(f.Value)
			if err != nil || len(f.Value) != 3 || n < 100 {
				break
			}
			status = n
		}
	}
	switch {
	case status == 0:
		c.skip(s, SkipMalformed)
		return
	case status < 200:
		if b.endStream {
			c.skip(s, SkipMalformed)
		}
		return // an interim response (100 Continue, 103 Early Hints)
	}
	s.status, s.haveResp = status, true
	s.resp.headers = regular(b.fields)
	if s.grpc && !grpcwire.IsGRPC(contentType(s.resp.headers)) {
		// Not a gRPC answer (a proxy's error page): its body is kept as is.
		s.resp.framer = nil
	}
	if b.endStream {
		c.endSide(b.sid, httpstream.ServerToClient, b.ts)
	}
}

func contentType(hs []*mlv1.Header) string {
	for _, h := range hs {
		if h.Name == "content-type" {
			return h.Value
		}
	}
	return ""
}

func skipReason(b *block) int {
	if b.over {
		return SkipHeaderLimit
	}
	return SkipMalformed
}

// regular returns the fields that are not pseudo-headers, in order.
func regular(fields []hpack.HeaderField) []*mlv1.Header {
	var out []*mlv1.Header
	for _, f := range fields {
		if !strings.HasPrefix(f.Name, ":") {
			out = append(out, &mlv1.Header{Name: f.Name, Value: f.Value})
		}
	}
	return out
}

// data handles a piece of a DATA frame's data of h's current stream.
func (c *Conn) data(h *half, p []byte, ts time.Time) {
	s := c.streams[h.sid]
	if s == nil {
		return
	}
	sd := s.side(h.dir)
	if sd.ended || (h.dir == httpstream.ServerToClient && !s.haveResp) {
		c.skip(s, SkipMalformed)
		return
	}
	sd.size += int64(len(p))
	if sd.gap || sd.over {
		return // what follows a gap cannot be placed in the messages
	}
	budget := max(c.cfg.connBytes-c.kept, 0)
	if sd.framer != nil {
		if int64(len(p)) > budget {
			// The connection holds enough: this direction's messages end
			// here (flagged), as after a gap.
			sd.over = true
			c.cfg.stats.OverBudget.Add(1)
			p = p[:budget]
		}
		sd.framer.Feed(p, max(h.ts.Sub(s.start), 0).Nanoseconds())
		sd.kept += int64(len(p)) // prefixes too: a bound, not a count
		c.kept += int64(len(p))
		return
	}
	limitRoom := max(c.cfg.bodyLimit-int64(len(sd.body)), 0)
	room := min(limitRoom, budget)
	if int64(len(p)) > room {
		sd.truncated = true
		if budget < limitRoom {
			sd.over = true
			c.cfg.stats.OverBudget.Add(1)
		}
		p = p[:room]
	}
	sd.body = append(sd.body, p...)
	sd.kept += int64(len(p))
	c.kept += int64(len(p))
}

// endSide ends direction d of stream id; a stream ended both ways is
// published.
func (c *Conn) endSide(id uint32, d httpstream.Direction, ts time.Time) {
	s := c.streams[id]
	if s == nil {
		return
	}
	sd := s.side(d)
	if sd.ended {
		return
	}
	sd.ended, sd.end = true, ts
	if s.req.ended && s.resp.ended {
		c.publish(s, "")
	}
}

// reset handles RST_STREAM with code on h's current stream.
func (c *Conn) reset(h *half, code http2.ErrCode) {
	s := c.streams[h.sid]
	if s == nil {
		return
	}
	if s.resp.ended {
		// The server answered in full, then reset a request it did not
		// need to read any more (or the client gave up after the answer).
		c.publish(s, "")
		return
	}
	c.publish(s, ErrTextResetPrefix+code.String())
}

// skip forgets stream s without publishing it.
func (c *Conn) skip(s *stream, reason int) {
	c.forget(s)
	c.cfg.stats.Skipped[reason].Add(1)
}

// forget drops s from the open streams and gives back its bytes.
func (c *Conn) forget(s *stream) {
	delete(c.streams, s.id)
	c.kept -= s.req.kept + s.resp.kept
	s.req.kept, s.resp.kept = 0, 0
}

// publish emits s and forgets it. why, when set, is why it was cut short.
func (c *Conn) publish(s *stream, why string) {
	c.forget(s)
	c.cfg.stats.Exchanges.Add(1)
	if why != "" {
		c.cfg.stats.Cut.Add(1)
	}
	if c.emit != nil {
		c.emit(s.record(why))
	}
}

// record builds the exchange of s.
func (s *stream) record(why string) *mlv1.Exchange {
	ex := &mlv1.Exchange{
		Sequence:      s.seq,
		CaptureTimeNs: s.start.UnixNano(),
		Protocol:      mlv1.Protocol_PROTOCOL_HTTP2,
		Request: &mlv1.Request{
			Method:   s.method,
			Url:      s.path,
			Host:     s.host,
			Proto:    Proto,
			Scheme:   s.scheme,
			Headers:  s.req.headers,
			Trailers: s.req.trailers,
		},
	}
	if s.start.IsZero() {
		ex.CaptureTimeNs = 0
	}
	if s.grpc {
		ex.Protocol = mlv1.Protocol_PROTOCOL_GRPC
	}
	r := ex.Request
	cut := !s.req.ended || s.req.gap
	r.BodySize = s.req.size
	if s.req.framer != nil {
		r.Messages, r.MessagesTruncated = finish(s.req.framer, cut || s.req.over)
	} else {
		r.Body = s.req.body
		r.BodyTruncated = s.req.truncated || cut
	}
	r.BodyIncomplete = cut
	if r.BodyIncomplete && s.req.framer != nil {
		r.BodyTruncated = true
	}
	if !s.haveResp {
		if why != "" && strings.HasPrefix(why, ErrTextResetPrefix) {
			ex.Response = &mlv1.Response{Error: why, Proto: Proto}
		}
		return ex
	}
	cut = !s.resp.ended || s.resp.gap
	resp := &mlv1.Response{
		Status:   int32(s.status),
		Headers:  s.resp.headers,
		Trailers: s.resp.trailers,
		BodySize: s.resp.size,
		Proto:    Proto,
	}
	if s.resp.framer != nil {
		resp.Messages, resp.MessagesTruncated = finish(s.resp.framer, cut || s.resp.over)
		resp.BodyTruncated = cut
	} else {
		resp.Body = s.resp.body
		resp.BodyTruncated = s.resp.truncated || cut
	}
	switch {
	case s.resp.gap:
		resp.Error = errTextGap
	case cut && why != "":
		resp.Error = why
	}
	if s.resp.ended && !s.start.IsZero() {
		resp.LatencyNs = max(s.resp.end.Sub(s.start), 0).Nanoseconds()
	}
	ex.Response = resp
	return ex
}

// finish returns the messages of a direction; cut says it did not end.
func finish(f *grpcwire.Framer, cut bool) ([]*mlv1.Message, bool) {
	msgs, truncated, _, err := f.Finish()
	return msgs, truncated || cut || err != nil
}
