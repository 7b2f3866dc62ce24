package h2stream

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

// chunk is bytes of one direction fed at one time.
type chunk struct {
	dir  httpstream.Direction
	data []byte
	at   time.Time
}

// script writes both directions of a connection with http2.Framer and an
// HPACK encoder per direction; every step is one chunk, 1 ms after the
// previous one.
type script struct {
	tb     testing.TB
	buf    [2]bytes.Buffer
	fr     [2]*http2.Framer
	enc    [2]*hpack.Encoder
	hb     [2]bytes.Buffer
	chunks []chunk
	now    time.Time
}

const (
	cli = httpstream.ClientToServer
	srv = httpstream.ServerToClient
)

func newScript(tb testing.TB) *script {
	s := &script{tb: tb, now: t0}
	for d := range 2 {
		s.fr[d] = http2.NewFramer(&s.buf[d], nil)
		s.enc[d] = hpack.NewEncoder(&s.hb[d])
	}
	s.raw(cli, []byte(Preface))
	s.step(cli, func(f *http2.Framer) error { return f.WriteSettings() })
	s.step(srv, func(f *http2.Framer) error {
		return f.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	})
	s.step(cli, func(f *http2.Framer) error { return f.WriteSettingsAck() })
	s.step(srv, func(f *http2.Framer) error { return f.WriteSettingsAck() })
	return s
}

// raw adds data as one chunk of direction d.
func (s *script) raw(d httpstream.Direction, data []byte) {
	s.now = s.now.Add(time.Millisecond)
	s.chunks = append(s.chunks, chunk{d, append([]byte(nil), data...), s.now})
}

// step runs write on direction d's framer and adds what it wrote as a chunk.
func (s *script) step(d httpstream.Direction, write func(*http2.Framer) error) {
	s.tb.Helper()
	if err := write(s.fr[d]); err != nil {
		s.tb.Fatal(err)
	}
	s.raw(d, s.buf[d].Bytes())
	s.buf[d].Reset()
}

// block encodes fields with direction d's encoder.
func (s *script) block(d httpstream.Direction, fields ...string) []byte {
	s.hb[d].Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		if err := s.enc[d].WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]}); err != nil {
			s.tb.Fatal(err)
		}
	}
	return append([]byte(nil), s.hb[d].Bytes()...)
}

// headers writes a HEADERS frame with the whole block.
func (s *script) headers(d httpstream.Direction, id uint32, end bool, fields ...string) {
	b := s.block(d, fields...)
	s.step(d, func(f *http2.Framer) error {
		return f.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b, EndStream: end, EndHeaders: true})
	})
}

func (s *script) data(d httpstream.Direction, id uint32, end bool, p string) {
	s.step(d, func(f *http2.Framer) error { return f.WriteData(id, end, []byte(p)) })
}

func (s *script) get(id uint32, path string) {
	s.headers(cli, id, true, ":method", "GET", ":scheme", "https", ":authority", "svc.internal", ":path", path, "accept", "application/json", "x-b", "2", "x-a", "1")
}

// run feeds the chunks to a new Conn, each split in pieces of at most split
// bytes (0: whole), and returns what it emitted.
func run(chunks []chunk, split int, opts ...Option) (*Conn, []*mlv1.Exchange) {
	var got []*mlv1.Exchange
	c := New(func(ex *mlv1.Exchange) { got = append(got, ex) }, opts...)
	for _, ch := range chunks {
		p := ch.data
		for len(p) > 0 {
			n := len(p)
			if split > 0 {
				n = min(n, split)
			}
			c.Feed(ch.dir, p[:n], ch.at)
			p = p[n:]
		}
	}
	c.Close(t0.Add(time.Hour))
	return c, got
}

// summary is a compact text of an exchange for table tests.
func summary(ex *mlv1.Exchange) string {
	r := ex.Request
	var b strings.Builder
	fmt.Fprintf(&b, "#%d %s %s %s %s://%s%s", ex.Sequence, ex.Protocol, r.Method, r.Proto, r.Scheme, r.Host, r.Url)
	for _, h := range r.Headers {
		fmt.Fprintf(&b, " %s=%s", h.Name, h.Value)
	}
	fmt.Fprintf(&b, " body=%q/%d", r.Body, r.BodySize)
	if r.BodyTruncated || r.BodyIncomplete {
		fmt.Fprintf(&b, " cut=%v,%v", r.BodyTruncated, r.BodyIncomplete)
	}
	for _, h := range r.Trailers {
		fmt.Fprintf(&b, " trailer:%s=%s", h.Name, h.Value)
	}
	for _, m := range r.Messages {
		fmt.Fprintf(&b, " msg(%q,%v,@%s)", m.Data, m.Compressed, time.Duration(m.OffsetNs))
	}
	if r.MessagesTruncated {
		b.WriteString(" msgs-cut")
	}
	resp := ex.Response
	if resp == nil {
		b.WriteString(" -> none")
		return b.String()
	}
	fmt.Fprintf(&b, " -> %d", resp.Status)
	for _, h := range resp.Headers {
		fmt.Fprintf(&b, " %s=%s", h.Name, h.Value)
	}
	fmt.Fprintf(&b, " body=%q/%d", resp.Body, resp.BodySize)
	if resp.BodyTruncated {
		b.WriteString(" cut")
	}
	for _, h := range resp.Trailers {
		fmt.Fprintf(&b, " trailer:%s=%s", h.Name, h.Value)
	}
	for _, m := range resp.Messages {
		fmt.Fprintf(&b, " msg(%q,%v,@%s)", m.Data, m.Compressed, time.Duration(m.OffsetNs))
	}
	if resp.MessagesTruncated {
		b.WriteString(" msgs-cut")
	}
	if resp.Error != "" {
		fmt.Fprintf(&b, " error=%q", resp.Error)
	}
	fmt.Fprintf(&b, " latency=%s", time.Duration(resp.LatencyNs))
	return b.String()
}

// grpcMsg frames a gRPC message.
func grpcMsg(compressed bool, data string) string {
	var p [5]byte
	if compressed {
		p[0] = 1
	}
	binary.BigEndian.PutUint32(p[1:], uint32(len(data)))
	return string(p[:]) + data
}

const getWant = "PROTOCOL_HTTP2 GET HTTP/2.0 https://svc.internal/a accept=application/json x-b=2 x-a=1 body=\"\"/0"

func TestConn(t *testing.T) {
	cases := []struct {
		name  string
		build func(s *script)
		opts  []Option
		want  []string
		drop  int // expected drop reason, -1: none
	}{
		{
			name: "get",
			build: func(s *script) {
				s.get(1, "/a")
				s.headers(srv, 1, false, ":status", "200", "content-type", "text/plain", "x-z", "z")
				s.data(srv, 1, false, "hello ")
				s.data(srv, 1, true, "world")
			},
			want: []string{"#1 " + getWant + " -> 200 content-type=text/plain x-z=z body=\"hello world\"/11 latency=3ms"},
			drop: -1,
		},
		{
			name: "continuation and padding",
			build: func(s *script) {
				b := s.block(cli, ":method", "POST", ":scheme", "http", ":authority", "svc", ":path", "/p", "x-long", strings.Repeat("v", 100), "x-after", "yes")
				s.step(cli, func(f *http2.Framer) error {
					if err := f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10], PadLength: 7,
						Priority: http2.PriorityParam{StreamDep: 0, Weight: 15}}); err != nil {
						return err
					}
					if err := f.WriteContinuation(1, false, b[10:50]); err != nil {
						return err
					}
					return f.WriteContinuation(1, true, b[50:])
				})
				s.step(cli, func(f *http2.Framer) error { return f.WriteDataPadded(1, false, []byte("abc"), make([]byte, 200)) })
				s.step(cli, func(f *http2.Framer) error { return f.WriteDataPadded(1, true, []byte("def"), nil) })
				s.step(srv, func(f *http2.Framer) error {
					return f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: s.block(srv, ":status", "201"), EndHeaders: true, PadLength: 3})
				})
				s.step(srv, func(f *http2.Framer) error { return f.WriteDataPadded(1, true, []byte("ok"), []byte{0, 0}) })
			},
			want: []string{"#1 PROTOCOL_HTTP2 POST HTTP/2.0 http://svc/p x-long=" + strings.Repeat("v", 100) + " x-after=yes body=\"abcdef\"/6 -> 201 body=\"ok\"/2 latency=4ms"},
			drop: -1,
		},
		{
			name: "trailers both ways",
			build: func(s *script) {
				s.headers(cli, 1, false, ":method", "POST", ":scheme", "http", ":authority", "svc", ":path", "/up", "te", "trailers")
				s.data(cli, 1, false, "part")
				s.headers(cli, 1, true, "x-checksum", "abc")
				s.headers(srv, 1, false, ":status", "200")
				s.data(srv, 1, false, "done")
				s.headers(srv, 1, true, "x-result", "ok", "x-count", "1")
			},
			want: []string{"#1 PROTOCOL_HTTP2 POST HTTP/2.0 http://svc/up te=trailers body=\"part\"/4 trailer:x-checksum=abc -> 200 body=\"done\"/4 trailer:x-result=ok trailer:x-count=1 latency=5ms"},
			drop: -1,
		},
		{
			name: "interleaved streams end out of order",
			build: func(s *script) {
				s.get(1, "/a")
				s.get(3, "/b")
				s.headers(srv, 3, false, ":status", "200")
				s.headers(srv, 1, false, ":status", "404")
				s.data(srv, 1, false, "one-")
				s.data(srv, 3, true, "three")
				s.data(srv, 1, true, "one")
			},
			want: []string{
				"#2 " + strings.Replace(getWant, "/a", "/b", 1) + " -> 200 body=\"three\"/5 latency=4ms",
				"#1 " + getWant + " -> 404 body=\"one-one\"/7 latency=6ms",
			},
			drop: -1,
		},
		{
			name: "reset before the response is published cut",
			build: func(s *script) {
				s.headers(cli, 1, false, ":method", "POST", ":scheme", "http", ":authority", "svc", ":path", "/slow")
				s.data(cli, 1, false, "abc")
				s.step(cli, func(f *http2.Framer) error { return f.WriteRSTStream(1, http2.ErrCodeCancel) })
				s.get(3, "/a")
				s.headers(srv, 3, false, ":status", "200")
				s.step(cli, func(f *http2.Framer) error { return f.WriteRSTStream(3, http2.ErrCodeCancel) })
			},
			want: []string{
				"#1 PROTOCOL_HTTP2 POST HTTP/2.0 http://svc/slow body=\"abc\"/3 cut=true,true -> 0 body=\"\"/0 error=\"stream reset: CANCEL\" latency=0s",
				"#2 " + getWant + " -> 200 body=\"\"/0 cut error=\"stream reset: CANCEL\" latency=0s",
			},
			drop: -1,
		},
		{
			name: "reset after the response changes nothing",
			build: func(s *script) {
				s.headers(cli, 1, false, ":method", "POST", ":scheme", "http", ":authority", "svc", ":path", "/early")
				s.headers(srv, 1, true, ":status", "413")
				s.step(srv, func(f *http2.Framer) error { return f.WriteRSTStream(1, http2.ErrCodeNo) })
			},
			want: []string{"#1 PROTOCOL_HTTP2 POST HTTP/2.0 http://svc/early body=\"\"/0 cut=true,true -> 413 body=\"\"/0 latency=1ms"},
			drop: -1,
		},
		{
			name: "connection end cuts open streams",
			build: func(s *script) {
				s.get(1, "/a")
				s.get(3, "/b")
				s.headers(srv, 3, false, ":status", "200")
				s.data(srv, 3, false, "par")
			},
			want: []string{
				"#1 " + getWant + " -> none",
				"#2 " + strings.Replace(getWant, "/a", "/b", 1) + " -> 200 body=\"par\"/3 cut error=\"connection ended before the stream ended\" latency=0s",
			},
			drop: -1,
		},
		{
			name: "dynamic table size updates",
			build: func(s *script) {
				// The server allows a larger table; the client's encoder
				// grows to it, and later shrinks it (both signalled in
				// the blocks).
				s.step(srv, func(f *http2.Framer) error {
					return f.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 16384})
				})
				s.enc[cli].SetMaxDynamicTableSizeLimit(16384)
				s.enc[cli].SetMaxDynamicTableSize(16384)
				for i := uint32(0); i < 3; i++ {
					s.headers(cli, 1+2*i, true, ":method", "GET", ":scheme", "http", ":authority", "svc", ":path", "/t", "x-big", strings.Repeat("b", 5000))
					s.headers(srv, 1+2*i, true, ":status", "204")
					if i == 1 {
						s.enc[cli].SetMaxDynamicTableSize(100)
					}
				}
			},
			want: []string{
				"#1 PROTOCOL_HTTP2 GET HTTP/2.0 http://svc/t x-big=" + strings.Repeat("b", 5000) + " body=\"\"/0 -> 204 body=\"\"/0 latency=1ms",
				"#2 PROTOCOL_HTTP2 GET HTTP/2.0 http://svc/t x-big=" + strings.Repeat("b", 5000) + " body=\"\"/0 -> 204 body=\"\"/0 latency=1ms",
				"#3 PROTOCOL_HTTP2 GET HTTP/2.0 http://svc/t x-big=" + strings.Repeat("b", 5000) + " body=\"\"/0 -> 204 body=\"\"/0 latency=1ms",
			},
			drop: -1,
		},
		{
			name: "table size over the bound drops the connection",
			build: func(s *script) {
				s.step(srv, func(f *http2.Framer) error {
					return f.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 1 << 20})
				})
				s.enc[cli].SetMaxDynamicTableSizeLimit(1 << 20)
				s.enc[cli].SetMaxDynamicTableSize(1 << 20)
				s.get(1, "/a")
			},
			opts: []Option{WithMaxTableSize(8192)},
			drop: DropHPACK,
		},
		{
			name: "grpc messages and trailers",
			build: func(s *script) {
				s.headers(cli, 1, false, ":method", "POST", ":scheme", "http", ":authority", "orders", ":path", "/orders.v1.Orders/Track",
					"content-type", "application/grpc", "te", "trailers", "x-tenant", "t1")
				// A message split across frames, two in one frame.
				m1, m2, m3 := grpcMsg(false, "first"), grpcMsg(true, "zz"), grpcMsg(false, "")
				s.data(cli, 1, false, m1[:3])
				s.data(cli, 1, false, m1[3:])
				s.headers(srv, 1, false, ":status", "200", "content-type", "application/grpc")
				s.data(srv, 1, false, grpcMsg(false, "ack1"))
				s.data(cli, 1, false, m2+m3)
				s.data(cli, 1, true, "")
				s.data(srv, 1, false, grpcMsg(false, "ack2"))
				s.headers(srv, 1, true, "grpc-status", "0", "grpc-message", "", "x-orders-version", "v1")
			},
			want: []string{"#1 PROTOCOL_GRPC POST HTTP/2.0 http://orders/orders.v1.Orders/Track content-type=application/grpc te=trailers x-tenant=t1 body=\"\"/22" +
				" msg(\"first\",false,@1ms) msg(\"zz\",true,@5ms) msg(\"\",false,@5ms)" +
				" -> 200 content-type=application/grpc body=\"\"/18 trailer:grpc-status=0 trailer:grpc-message= trailer:x-orders-version=v1" +
				" msg(\"ack1\",false,@4ms) msg(\"ack2\",false,@7ms) latency=8ms"},
			drop: -1,
		},
		{
			name: "grpc trailers-only answer",
			build: func(s *script) {
				s.headers(cli, 1, false, ":method", "POST", ":scheme", "http", ":authority", "orders", ":path", "/orders.v1.Orders/GetOrder", "content-type", "application/grpc")
				s.data(cli, 1, true, grpcMsg(false, ""))
				s.headers(srv, 1, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "3", "grpc-message", "order id is required")
			},
			want: []string{"#1 PROTOCOL_GRPC POST HTTP/2.0 http://orders/orders.v1.Orders/GetOrder content-type=application/grpc body=\"\"/5 msg(\"\",false,@1ms)" +
				" -> 200 content-type=application/grpc grpc-status=3 grpc-message=order id is required body=\"\"/0 latency=2ms"},
			drop: -1,
		},
		{
			name: "grpc answered by a proxy's error page",
			build: func(s *script) {
				s.headers(cli, 1, false, ":method", "POST", ":scheme", "http", ":authority", "orders", ":path", "/o.v1.O/Get", "content-type", "application/grpc")
				s.data(cli, 1, true, grpcMsg(false, "q"))
				s.headers(srv, 1, false, ":status", "502", "content-type", "text/html")
				s.data(srv, 1, true, "<h1>bad gateway</h1>")
			},
			want: []string{"#1 PROTOCOL_GRPC POST HTTP/2.0 http://orders/o.v1.O/Get content-type=application/grpc body=\"\"/6 msg(\"q\",false,@1ms)" +
				" -> 502 content-type=text/html body=\"<h1>bad gateway</h1>\"/20 latency=3ms"},
			drop: -1,
		},
		{
			name: "interim response then final",
			build: func(s *script) {
				s.headers(cli, 1, false, ":method", "PUT", ":scheme", "http", ":authority", "svc", ":path", "/big", "expect", "100-continue")
				s.headers(srv, 1, false, ":status", "100")
				s.data(cli, 1, true, "x")
				s.headers(srv, 1, true, ":status", "204")
			},
			want: []string{"#1 PROTOCOL_HTTP2 PUT HTTP/2.0 http://svc/big expect=100-continue body=\"x\"/1 -> 204 body=\"\"/0 latency=3ms"},
			drop: -1,
		},
		{
			name: "body limit",
			build: func(s *script) {
				s.get(1, "/a")
				s.headers(srv, 1, false, ":status", "200")
				s.data(srv, 1, true, "0123456789")
			},
			opts: []Option{WithBodyLimit(4)},
			want: []string{"#1 " + getWant + " -> 200 body=\"0123\"/10 cut latency=2ms"},
			drop: -1,
		},
		{
			name: "connection budget",
			build: func(s *script) {
				for _, id := range []uint32{1, 3, 5} {
					s.headers(cli, id, false, ":method", "POST", ":scheme", "http", ":authority", "svc", ":path", "/up")
					s.data(cli, id, false, "0123456789")
				}
				s.headers(srv, 1, true, ":status", "200")
				s.data(cli, 1, true, "more")
				s.headers(cli, 7, false, ":method", "POST", ":scheme", "http", ":authority", "o", ":path", "/o.v1.O/Up", "content-type", "application/grpc")
				s.data(cli, 7, false, grpcMsg(false, "abc")+grpcMsg(false, "de"))
				s.data(cli, 7, true, grpcMsg(false, "f"))
				s.headers(srv, 7, true, ":status", "200", "content-type", "application/grpc", "grpc-status", "0")
			},
			opts: []Option{WithBodyLimit(10), WithMaxConnBytes(25)},
			want: []string{
				"#1 PROTOCOL_HTTP2 POST HTTP/2.0 http://svc/up body=\"0123456789\"/14 cut=true,false -> 200 body=\"\"/0 latency=6ms",
				"#4 PROTOCOL_GRPC POST HTTP/2.0 http://o/o.v1.O/Up content-type=application/grpc body=\"\"/21 msg(\"abc\",false,@1ms) msgs-cut" +
					" -> 200 content-type=application/grpc grpc-status=0 body=\"\"/0 latency=3ms",
				"#2 PROTOCOL_HTTP2 POST HTTP/2.0 http://svc/up body=\"0123456789\"/10 cut=true,true -> none",
				"#3 PROTOCOL_HTTP2 POST HTTP/2.0 http://svc/up body=\"01234\"/10 cut=true,true -> none",
			},
			drop: -1,
		},
		{
			name: "header list over the limit skips the stream, keeps the table",
			build: func(s *script) {
				s.headers(cli, 1, true, ":method", "GET", ":scheme", "http", ":authority", "svc", ":path", "/huge", "x-huge", strings.Repeat("h", 300))
				s.headers(srv, 1, true, ":status", "200")
				s.headers(cli, 3, true, ":method", "GET", ":scheme", "http", ":authority", "svc", ":path", "/small")
				s.headers(srv, 3, true, ":status", "200")
			},
			opts: []Option{WithMaxHeaderBytes(256)},
			want: []string{"#1 PROTOCOL_HTTP2 GET HTTP/2.0 http://svc/small body=\"\"/0 -> 200 body=\"\"/0 latency=1ms"},
			drop: -1,
		},
		{
			name: "stream limit",
			build: func(s *script) {
				s.get(1, "/a")
				s.get(3, "/b")
				s.headers(srv, 3, true, ":status", "200")
				s.headers(srv, 1, true, ":status", "200")
			},
			opts: []Option{WithMaxStreams(1)},
			want: []string{"#1 " + getWant + " -> 200 body=\"\"/0 latency=3ms"},
			drop: -1,
		},
		{
			name: "server push is consumed, not captured",
			build: func(s *script) {
				s.get(1, "/a")
				b := s.block(srv, ":method", "GET", ":scheme", "https", ":authority", "svc.internal", ":path", "/style.css")
				s.step(srv, func(f *http2.Framer) error {
					return f.WritePushPromise(http2.PushPromiseParam{StreamID: 1, PromiseID: 2, BlockFragment: b, EndHeaders: true, PadLength: 2})
				})
				s.headers(srv, 1, true, ":status", "200", "x-after-push", "1")
			},
			want: []string{"#1 " + getWant + " -> 200 x-after-push=1 body=\"\"/0 latency=2ms"},
			drop: -1,
		},
		{
			name: "ping, window update, priority, goaway and unknown frames are consumed",
			build: func(s *script) {
				s.step(cli, func(f *http2.Framer) error { return f.WritePing(false, [8]byte{1}) })
				s.step(srv, func(f *http2.Framer) error { return f.WritePing(true, [8]byte{1}) })
				s.get(1, "/a")
				s.step(cli, func(f *http2.Framer) error { return f.WritePriority(1, http2.PriorityParam{Weight: 1}) })
				s.step(srv, func(f *http2.Framer) error { return f.WriteWindowUpdate(0, 1000) })
				s.step(srv, func(f *http2.Framer) error { return f.WriteRawFrame(0xfa, 0, 1, []byte("extension")) })
				s.headers(srv, 1, true, ":status", "200")
				s.step(srv, func(f *http2.Framer) error { return f.WriteGoAway(1, http2.ErrCodeNo, []byte("bye")) })
			},
			want: []string{"#1 " + getWant + " -> 200 body=\"\"/0 latency=4ms"},
			drop: -1,
		},
		{
			name: "not a preface",
			build: func(s *script) {
				s.chunks[0].data = []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				s.get(1, "/a")
			},
			drop: DropBadPreface,
		},
		{
			name: "frame inside a header block",
			build: func(s *script) {
				b := s.block(cli, ":method", "GET", ":scheme", "http", ":authority", "svc", ":path", "/a")
				s.step(cli, func(f *http2.Framer) error {
					return f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:2]})
				})
				s.data(cli, 1, true, "x")
			},
			drop: DropMalformed,
		},
		{
			name: "data on stream 0",
			build: func(s *script) {
				s.get(1, "/a")
				s.raw(srv, []byte{0, 0, 1, 0, 0, 0, 0, 0, 0, 'x'})
			},
			drop: DropMalformed,
		},
		{
			name: "padding longer than the frame",
			build: func(s *script) {
				s.get(1, "/a")
				s.headers(srv, 1, false, ":status", "200")
				s.raw(srv, []byte{0, 0, 2, 0, 0x8, 0, 0, 0, 1, 5, 'x'})
			},
			drop: DropMalformed,
		},
		{
			name: "frame over the size limit",
			build: func(s *script) {
				s.get(1, "/a")
				s.headers(srv, 1, false, ":status", "200")
				s.data(srv, 1, true, strings.Repeat("d", 2000))
			},
			opts: []Option{WithMaxFrameSize(1024)},
			drop: DropMalformed,
		},
		{
			name: "garbage header block",
			build: func(s *script) {
				s.step(cli, func(f *http2.Framer) error {
					return f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0xff, 0xff, 0xff, 0xff, 0xff}, EndHeaders: true})
				})
			},
			drop: DropHPACK,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScript(t)
			tc.build(s)
			for _, split := range []int{0, 1, 7} {
				stats := &Stats{}
				c, got := run(s.chunks, split, append([]Option{WithStats(stats)}, tc.opts...)...)
				var sums []string
				for _, ex := range got {
					sums = append(sums, summary(ex))
				}
				if strings.Join(sums, "\n") != strings.Join(tc.want, "\n") {
					t.Fatalf("split %d: got\n%s\nwant\n%s", split, strings.Join(sums, "\n"), strings.Join(tc.want, "\n"))
				}
				for r := range numDrops {
					want := uint64(0)
					if r == tc.drop {
						want = 1
					}
					if n := stats.Dropped[r].Load(); n != want {
						t.Errorf("split %d: dropped %s = %d, want %d (err %v)", split, DropNames[r], n, want, c.Err())
					}
				}
			}
		})
	}
}

// TestConnStats checks the skip counters of the cases above that skip.
func TestConnStats(t *testing.T) {
	s := newScript(t)
	s.headers(cli, 1, true, ":method", "GET", ":scheme", "http", ":authority", "svc", ":path", "/huge", "x-huge", strings.Repeat("h", 500))
	s.get(3, "/a")
	s.get(5, "/b")
	b := s.block(srv, ":method", "GET", ":scheme", "https", ":authority", "svc.internal", ":path", "/style.css")
	s.step(srv, func(f *http2.Framer) error {
		return f.WritePushPromise(http2.PushPromiseParam{StreamID: 3, PromiseID: 2, BlockFragment: b, EndHeaders: true})
	})
	s.headers(cli, 7, true, ":scheme", "http", ":path", "/no-method")
	stats := &Stats{}
	_, got := run(s.chunks, 0, WithStats(stats), WithMaxHeaderBytes(400), WithMaxStreams(1))
	if len(got) != 1 || got[0].Request.Url != "/a" || got[0].Response != nil {
		t.Fatalf("got %d exchanges, want /a unanswered", len(got))
	}
	want := [numSkips]uint64{SkipStreamLimit: 1, SkipHeaderLimit: 1, SkipPush: 1, SkipMalformed: 1}
	for i := range want {
		if n := stats.Skipped[i].Load(); n != want[i] {
			t.Errorf("skipped %s = %d, want %d", SkipNames[i], n, want[i])
		}
	}
	if n := stats.Cut.Load(); n != 1 {
		t.Errorf("cut = %d, want 1", n)
	}
}

// TestConnGap: bytes missing inside a DATA payload flag the stream and
// parsing goes on; missing anywhere else, the connection is dropped and
// what was open is published cut.
func TestConnGap(t *testing.T) {
	s := newScript(t)
	s.get(1, "/a")
	s.headers(srv, 1, false, ":status", "200")
	s.data(srv, 1, false, "0123456789")
	s.data(srv, 1, true, "tail")
	s.get(3, "/b")
	s.headers(srv, 3, false, ":status", "200")
	var got []*mlv1.Exchange
	stats := &Stats{}
	c := New(func(ex *mlv1.Exchange) { got = append(got, ex) }, WithStats(stats))
	for i, ch := range s.chunks {
		if ch.dir == srv && bytes.HasSuffix(ch.data, []byte("0123456789")) && i > 0 {
			// The capture lost 4 bytes in the middle of the payload.
			c.Feed(ch.dir, ch.data[:9+3], ch.at)
			c.Gap(ch.dir, 4, ch.at)
			c.Feed(ch.dir, ch.data[9+7:], ch.at)
			continue
		}
		c.Feed(ch.dir, ch.data, ch.at)
	}
	c.Gap(srv, 3, t0.Add(time.Minute)) // between frames
	c.Feed(srv, []byte("more"), t0.Add(time.Minute))
	c.Close(t0.Add(time.Hour))
	var sums []string
	for _, ex := range got {
		sums = append(sums, summary(ex))
	}
	want := []string{
		"#1 " + getWant + " -> 200 body=\"012\"/10 cut error=\"capture gap: connection bytes missing\" latency=3ms",
		"#2 " + strings.Replace(getWant, "/a", "/b", 1) + " -> 200 body=\"\"/0 cut error=\"capture gap: connection bytes missing\" latency=0s",
	}
	if strings.Join(sums, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(sums, "\n"), strings.Join(want, "\n"))
	}
	if n := stats.Dropped[DropGap].Load(); n != 1 {
		t.Errorf("dropped h2_gap = %d, want 1", n)
	}
}

// TestConnGapGRPC: bytes missing inside a gRPC message leave the messages
// before it and flag the direction; the next stream is parsed whole.
func TestConnGapGRPC(t *testing.T) {
	s := newScript(t)
	call := func(id uint32) {
		s.headers(cli, id, false, ":method", "POST", ":scheme", "http", ":authority", "o", ":path", "/o.v1.O/List", "content-type", "application/grpc")
		s.data(cli, id, true, grpcMsg(false, "q"))
		s.headers(srv, id, false, ":status", "200", "content-type", "application/grpc")
		s.data(srv, id, false, grpcMsg(false, "one")+grpcMsg(false, "two-lost"))
		s.data(srv, id, false, grpcMsg(false, "three"))
		s.headers(srv, id, true, "grpc-status", "0")
	}
	call(1)
	call(3)
	var got []*mlv1.Exchange
	c := New(func(ex *mlv1.Exchange) { got = append(got, ex) })
	gapped := false
	for _, ch := range s.chunks {
		if i := bytes.Index(ch.data, []byte("two-lost")); i >= 0 && !gapped {
			gapped = true
			c.Feed(ch.dir, ch.data[:i+2], ch.at)
			c.Gap(ch.dir, 4, ch.at)
			c.Feed(ch.dir, ch.data[i+6:], ch.at)
			continue
		}
		c.Feed(ch.dir, ch.data, ch.at)
	}
	c.Close(t0.Add(time.Hour))
	if c.Err() != nil || len(got) != 2 {
		t.Fatalf("%d exchanges, err %v", len(got), c.Err())
	}
	first, second := got[0].Response, got[1].Response
	if !first.MessagesTruncated || len(first.Messages) != 2 || string(first.Messages[0].Data) != "one" || !first.Messages[1].Truncated ||
		first.Error != "capture gap: connection bytes missing" || got[0].Request.MessagesTruncated {
		t.Errorf("gapped call: %s", summary(got[0]))
	}
	if second.MessagesTruncated || len(second.Messages) != 3 || string(second.Messages[2].Data) != "three" || second.Error != "" {
		t.Errorf("next call: %s", summary(got[1]))
	}
}
