package httpstream

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// step is one event on a connection: bytes, a gap, or the end of a direction.
type step struct {
	dir  Direction
	data string
	gap  int64 // with data "": a gap of this many bytes (-1 unknown)
	end  bool
}

func c2s(s string) step { return step{dir: ClientToServer, data: s} }
func s2c(s string) step { return step{dir: ServerToClient, data: s} }

// want describes one expected exchange compactly.
type want struct {
	req      string // "METHOD target body"
	resp     string // "status body" or "" for no response
	reqFlags string // letters: t truncated, g gap, i incomplete
	rspFlags string
}

func flags(b Body) string {
	s := ""
	if b.Truncated {
		s += "t"
	}
	if b.Gap {
		s += "g"
	}
	if b.Incomplete {
		s += "i"
	}
	return s
}

func describe(ex *Exchange) want {
	w := want{
		req:      strings.TrimSpace(fmt.Sprintf("%s %s %s", ex.Request.Method, ex.Request.Target, ex.Request.Data)),
		reqFlags: flags(ex.Request.Body),
	}
	if ex.Response != nil {
		w.resp = strings.TrimSpace(fmt.Sprintf("%d %s", ex.Response.Status, ex.Response.Data))
		w.rspFlags = flags(ex.Response.Body)
	}
	return w
}

// run plays steps into a new Conn, splitting every data step into pieces of at
// most split bytes (0: whole), and returns the exchanges.
func run(t *testing.T, steps []step, split int, opts ...Option) ([]*Exchange, *Stats) {
	t.Helper()
	var got []*Exchange
	st := &Stats{}
	c := New(func(e *Exchange) { got = append(got, e) }, append(opts, WithStats(st))...)
	ts := time.Unix(1700000000, 0)
	for _, s := range steps {
		ts = ts.Add(time.Millisecond)
		switch {
		case s.end:
			c.End(s.dir, ts)
		case s.data == "":
			c.Gap(s.dir, s.gap, ts)
		default:
			b := []byte(s.data)
			for len(b) > 0 {
				n := len(b)
				if split > 0 && n > split {
					n = split
				}
				c.Feed(s.dir, b[:n], ts)
				b = b[n:]
			}
		}
	}
	c.Close(ts.Add(time.Millisecond))
	return got, st
}

const (
	get1  = "GET /a?x=1 HTTP/1.1\r\nHost: api.example\r\nAccept: */*\r\nX-B: 1\r\n\r\n"
	get2  = "GET /b HTTP/1.1\r\nHost: api.example\r\n\r\n"
	ok5   = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
	ok2   = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
	post3 = "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
)

func TestConn(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		opts  []Option
		want  []want
		check func(t *testing.T, got []*Exchange, st *Stats)
	}{
		{
			name:  "single GET",
			steps: []step{c2s(get1), s2c(ok5)},
			want:  []want{{req: "GET /a?x=1", resp: "200 hello"}},
			check: func(t *testing.T, got []*Exchange, _ *Stats) {
				r := got[0].Request
				if r.Host != "api.example" || len(r.Headers) != 2 || r.Headers[0].Name != "Accept" || r.Headers[1] != (Header{"X-B", "1"}) || r.Proto != "HTTP/1.1" {
					t.Errorf("request head: %+v", r)
				}
				if got[0].Seq != 1 || got[0].Latency() != time.Millisecond {
					t.Errorf("seq %d latency %s", got[0].Seq, got[0].Latency())
				}
			},
		},
		{
			name:  "keep-alive",
			steps: []step{c2s(get1), s2c(ok5), c2s(post3), s2c(ok2)},
			want:  []want{{req: "GET /a?x=1", resp: "200 hello"}, {req: "POST /p abc", resp: "200 hi"}},
			check: func(t *testing.T, got []*Exchange, _ *Stats) {
				if got[1].Seq != 2 {
					t.Errorf("second seq %d", got[1].Seq)
				}
			},
		},
		{
			name:  "pipelined",
			steps: []step{c2s(get1 + post3 + get2), s2c(ok5 + ok2), s2c("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")},
			want:  []want{{req: "GET /a?x=1", resp: "200 hello"}, {req: "POST /p abc", resp: "200 hi"}, {req: "GET /b", resp: "404"}},
		},
		{
			name: "chunked response with extension and trailer",
			steps: []step{c2s(get2), s2c("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n"), c2s(get2), s2c(ok2)},
			want: []want{{req: "GET /b", resp: "200 hello, world"}, {req: "GET /b", resp: "200 hi"}},
		},
		{
			name:  "chunked request",
			steps: []step{c2s("POST /u HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), s2c(ok2)},
			want:  []want{{req: "POST /u abc", resp: "200 hi"}},
		},
		{
			name: "100-continue",
			steps: []step{c2s("PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
				s2c("HTTP/1.1 100 Continue\r\n\r\n"), c2s("data"), s2c("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")},
			want: []want{{req: "PUT /f data", resp: "201"}},
		},
		{
			name: "expect refused: body never sent",
			steps: []step{c2s("PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
				s2c("HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n\r\n"), c2s(get2), s2c(ok2)},
			want: []want{{req: "PUT /f", resp: "417"}, {req: "GET /b", resp: "200 hi"}},
		},
		{
			name:  "HEAD, 204 and 304 have no body",
			steps: []step{c2s("HEAD /h HTTP/1.1\r\n\r\n" + get2 + get2), s2c("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"), c2s(get1), s2c(ok5)},
			want:  []want{{req: "HEAD /h", resp: "200"}, {req: "GET /b", resp: "204"}, {req: "GET /b", resp: "304"}, {req: "GET /a?x=1", resp: "200 hello"}},
		},
		{
			name:  "body limit",
			steps: []step{c2s(post3), s2c(ok5)},
			opts:  []Option{WithBodyLimit(2)},
			want:  []want{{req: "POST /p ab", resp: "200 he", reqFlags: "t", rspFlags: "t"}},
			check: func(t *testing.T, got []*Exchange, _ *Stats) {
				if got[0].Request.Size != 3 || got[0].Response.Size != 5 {
					t.Errorf("sizes %d %d", got[0].Request.Size, got[0].Response.Size)
				}
			},
		},
		{
			name:  "gap inside a Content-Length body",
			steps: []step{c2s(get1), s2c("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel"), {dir: ServerToClient, gap: 4}, s2c("rld"), c2s(get2), s2c(ok2)},
			want:  []want{{req: "GET /a?x=1", resp: "200 helrld", rspFlags: "g"}, {req: "GET /b", resp: "200 hi"}},
			check: func(t *testing.T, got []*Exchange, st *Stats) {
				if got[0].Response.Size != 10 || st.GapBytes.Load() != 4 || st.Gaps.Load() != 1 {
					t.Errorf("size %d, gap bytes %d", got[0].Response.Size, st.GapBytes.Load())
				}
			},
		},
		{
			name:  "gap inside a chunk",
			steps: []step{c2s(get2), s2c("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nab"), {dir: ServerToClient, gap: 5}, s2c("xyz\r\n0\r\n\r\n")},
			want:  []want{{req: "GET /b", resp: "200 abxyz", rspFlags: "g"}},
		},
		{
			name: "request gap past the message resyncs on the next request",
			steps: []step{c2s("POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\na"), {dir: ClientToServer, gap: 40}, c2s("ore garbage\r\n" + get2),
				s2c(ok5), s2c(ok2)},
			want: []want{{req: "POST /p a", reqFlags: "gi", resp: "200 hello"}, {req: "GET /b", resp: "200 hi"}},
		},
		{
			name: "response lost in a gap",
			steps: []step{c2s(get1), s2c("HTTP/1.1 200 OK\r\nContent-Le"), {dir: ServerToClient, gap: -1},
				c2s(get2), s2c("ngth: 2\r\n\r\nxx" + ok2)},
			want: []want{{req: "GET /a?x=1"}, {req: "GET /b", resp: "200 hi"}},
		},
		{
			name:  "response delimited by close",
			steps: []step{c2s("GET / HTTP/1.0\r\n\r\n"), s2c("HTTP/1.0 200 OK\r\n\r\nall of it"), {dir: ServerToClient, end: true}},
			want:  []want{{req: "GET /", resp: "200 all of it"}},
		},
		{
			name:  "stream ends inside a body",
			steps: []step{c2s(get2), s2c("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")},
			want:  []want{{req: "GET /b", resp: "200 abc", rspFlags: "i"}},
		},
		{
			name:  "no response",
			steps: []step{c2s(get1 + get2)},
			want:  []want{{req: "GET /a?x=1"}, {req: "GET /b"}},
			check: func(t *testing.T, got []*Exchange, st *Stats) {
				if !got[0].ResponseLost || st.Unanswered.Load() != 2 {
					t.Errorf("lost %v unanswered %d", got[0].ResponseLost, st.Unanswered.Load())
				}
			},
		},
		{
			name:  "orphan response is dropped",
			steps: []step{s2c(ok5), c2s(get2), s2c(ok2)},
			want:  []want{{req: "GET /b", resp: "200 hi"}},
			check: func(t *testing.T, _ []*Exchange, st *Stats) {
				if st.Orphans.Load() != 1 {
					t.Errorf("orphans %d", st.Orphans.Load())
				}
			},
		},
		{
			name:  "mid-stream start",
			steps: []step{c2s("ue\r\n\r\n" + get2), s2c("lo, world\r\n" + ok2)},
			want:  []want{{req: "GET /b", resp: "200 hi"}},
		},
		{
			name:  "upgrade stops parsing",
			steps: []step{c2s("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), s2c("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"), c2s("GET / HTTP/1.1\r\n\r\n")},
			want:  []want{{req: "GET /ws", resp: "101"}},
			check: func(t *testing.T, _ []*Exchange, st *Stats) {
				if st.Tunnels.Load() != 1 {
					t.Errorf("tunnels %d", st.Tunnels.Load())
				}
			},
		},
		{
			name:  "malformed chunk size resyncs",
			steps: []step{c2s(get2), s2c("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), c2s(get2), s2c(ok2)},
			want:  []want{{req: "GET /b", resp: "200", rspFlags: "i"}, {req: "GET /b", resp: "200 hi"}},
		},
		{
			name:  "obsolete folding and bare LF",
			steps: []step{c2s("GET /f HTTP/1.1\nX-Long: a\n  b\nHost: h\n\n"), s2c("HTTP/1.1 200 OK\nContent-Length: 1\n\nz")},
			want:  []want{{req: "GET /f", resp: "200 z"}},
			check: func(t *testing.T, got []*Exchange, _ *Stats) {
				if h := got[0].Request.Headers; len(h) != 1 || h[0].Value != "a b" || got[0].Request.Host != "h" {
					t.Errorf("headers %+v host %q", h, got[0].Request.Host)
				}
			},
		},
		{
			name:  "too deep a pipeline",
			steps: []step{c2s(get2 + get2 + get2)},
			opts:  []Option{WithMaxPending(2)},
			want:  []want{{req: "GET /b"}, {req: "GET /b"}, {req: "GET /b"}},
		},
	}
	for _, tc := range tests {
		for _, split := range []int{0, 1, 7} {
			t.Run(fmt.Sprintf("%s/split=%d", tc.name, split), func(t *testing.T) {
				got, st := run(t, tc.steps, split, tc.opts...)
				if len(got) != len(tc.want) {
					for _, g := range got {
						t.Logf("got %+v", describe(g))
					}
					t.Fatalf("got %d exchanges, want %d", len(got), len(tc.want))
				}
				for i, g := range got {
					if d := describe(g); d != tc.want[i] {
						t.Errorf("exchange %d: got %+v, want %+v", i, d, tc.want[i])
					}
				}
				if tc.check != nil {
					tc.check(t, got, st)
				}
			})
		}
	}
}

func TestRecord(t *testing.T) {
	got, _ := run(t, []step{c2s(post3), s2c("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel"), {dir: ServerToClient, gap: 7}}, 0)
	rec := got[0].Record()
	if rec.Sequence != 1 || rec.Request.Method != "POST" || rec.Request.Url != "/p" || rec.Request.Host != "h" || string(rec.Request.Body) != "abc" || rec.Request.BodyTruncated {
		t.Fatalf("request %v", rec.Request)
	}
	if rec.CaptureTimeNs != got[0].Request.Start.UnixNano() || rec.Response.LatencyNs <= 0 {
		t.Fatalf("times %d %d", rec.CaptureTimeNs, rec.Response.LatencyNs)
	}
	if !rec.Response.BodyTruncated || rec.Response.Error != ErrTextGap || rec.Response.BodySize != 10 {
		t.Fatalf("response %v", rec.Response)
	}
}
