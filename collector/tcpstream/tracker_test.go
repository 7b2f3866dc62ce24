package tcpstream

import (
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/mirrorline/mirrorline/collector/h2stream"
	"github.com/mirrorline/mirrorline/collector/httpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func TestVPCTracker(t *testing.T) {
	type script struct {
		frames [][]byte
		opts   []TrackerOption
	}
	tests := []struct {
		name  string
		build func() script
		want  []string
		check func(t *testing.T, st *Stats, got []*mlv1.Exchange)
	}{
		{
			name: "keep-alive with a chunked response, in order",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40000", "10.0.0.2:8080")
				return script{frames: packettest.Cat(c.Handshake(), c.ClientData([]byte(packettest.ReqA), 0), c.ServerData([]byte(packettest.RespA), 0),
					c.ClientData([]byte(packettest.ReqB), 20), c.ServerData([]byte(packettest.RespB), 16), packettest.One(c.ClientFIN()), packettest.One(c.ServerFIN()), packettest.One(c.ClientAck()))}
			},
			want: []string{"GET /a  -> 200 one", "POST /b hello world -> 201 two!-three"},
			check: func(t *testing.T, st *Stats, got []*mlv1.Exchange) {
				if got[0].ConnectionId != got[1].ConnectionId || !strings.HasPrefix(got[0].ConnectionId, "vpc-") || got[0].Sequence != 1 || got[1].Sequence != 2 {
					t.Errorf("ids %q %q seqs %d %d", got[0].ConnectionId, got[1].ConnectionId, got[0].Sequence, got[1].Sequence)
				}
				if got[0].Source != mlv1.Source_SOURCE_VPC || got[0].Request.RemoteAddr != "10.0.0.1:40000" || got[0].Request.Host != "svc" {
					t.Errorf("record %v", got[0])
				}
				if st.StreamsEnded[EndFIN].Load() != 1 || st.StreamsActive.Load() != 0 || st.Gaps.Load() != 0 {
					t.Errorf("ended %d active %d gaps %d", st.StreamsEnded[EndFIN].Load(), st.StreamsActive.Load(), st.Gaps.Load())
				}
			},
		},
		{
			name: "out of order and retransmitted segments",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40001", "10.0.0.2:8080")
				hs := c.Handshake()
				req := c.ClientData([]byte(packettest.ReqB), 10) // 6 segments
				resp := c.ServerData([]byte(packettest.RespB), 12)
				frames := packettest.Cat(hs, [][]byte{req[2], req[0], req[4], req[6], req[0], req[1], req[3], req[5], req[5]},
					[][]byte{resp[1], resp[0]}, resp[3:], packettest.One(resp[2]), packettest.One(resp[2]))
				return script{frames: frames}
			},
			want: []string{"POST /b hello world -> 201 two!-three"},
			check: func(t *testing.T, st *Stats, _ []*mlv1.Exchange) {
				if st.Packets[ResultRetransmit].Load() != 3 || st.Gaps.Load() != 0 {
					t.Errorf("retransmits %d gaps %d", st.Packets[ResultRetransmit].Load(), st.Gaps.Load())
				}
			},
		},
		{
			name: "a segment missing from the capture, seen through the server's ACK",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40002", "10.0.0.2:8080")
				hs := c.Handshake()
				req := c.ClientData([]byte(packettest.ReqB), len(packettest.ReqB)-11) // head, then body
				first := c.ServerData([]byte(packettest.RespA), 0)
				reqA2 := c.ClientData([]byte(packettest.ReqA), 0)
				second := c.ServerData([]byte(packettest.RespA), 0)
				// The request's second segment (body bytes) never reaches the mirror.
				return script{frames: packettest.Cat(hs, packettest.One(req[0]), first, reqA2, second)}
			},
			want: []string{"POST /b  [req-cut] -> 200 one", "GET /a  -> 200 one"},
			check: func(t *testing.T, st *Stats, got []*mlv1.Exchange) {
				b := got[0].Request
				if st.Gaps.Load() != 1 || st.GapBytes.Load() != 11 || !b.BodyTruncated || b.BodySize != 11 {
					t.Errorf("gaps %d bytes %d truncated %v size %d", st.Gaps.Load(), st.GapBytes.Load(), b.BodyTruncated, b.BodySize)
				}
			},
		},
		{
			name: "a lost segment whose ACK was lost too waits for the gap timeout",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40003", "10.0.0.2:8080")
				hs := c.Handshake()
				req := c.ClientData([]byte(packettest.ReqA), 0)
				head, body, _ := strings.Cut(packettest.RespB, "\r\n\r\n")
				rh := c.ServerData([]byte(head+"\r\n\r\n"), 0)
				rb := c.ServerData([]byte(body), 4) // "4\r\nt" "wo!\r" "\n6\r\n" "-thr" ...
				return script{frames: packettest.Cat(hs, req, rh, rb[:3], rb[4:])}
			},
			want: []string{"GET /a  -> 201 two!ee [resp-cut]"},
			check: func(t *testing.T, st *Stats, got []*mlv1.Exchange) {
				if got[0].Response.Error != httpstream.ErrTextGap || st.Gaps.Load() != 1 {
					t.Errorf("error %q gaps %d", got[0].Response.Error, st.Gaps.Load())
				}
			},
		},
		{
			name: "packets cut by the mirror's packet length",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40004", "10.0.0.2:8080")
				hs := c.Handshake()
				req := c.ClientData([]byte(packettest.ReqA), 0)
				body := strings.Repeat("x", 300)
				head := "HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n"
				resp := c.ServerData([]byte(head+body), 0)
				resp[0] = packettest.Truncate(resp[0], 14+20+20+len(head)+100) // head and 100 body bytes
				return script{frames: packettest.Cat(hs, req, resp, req[:0], c.ClientData([]byte(packettest.ReqA), 0), c.ServerData([]byte(packettest.RespA), 0))}
			},
			want: []string{"GET /a  -> 200 " + strings.Repeat("x", 100) + " [resp-cut]", "GET /a  -> 200 one"},
			check: func(t *testing.T, st *Stats, got []*mlv1.Exchange) {
				if st.GapBytes.Load() != 200 || got[0].Response.BodySize != 300 {
					t.Errorf("gap bytes %d size %d", st.GapBytes.Load(), got[0].Response.BodySize)
				}
			},
		},
		{
			name: "no handshake seen, IPv6",
			build: func() script {
				c := packettest.NewConn("[fd00::1]:40005", "[fd00::2]:8080")
				c.Handshake()
				return script{frames: packettest.Cat(c.ClientData([]byte(packettest.ReqA), 0), c.ServerData([]byte(packettest.RespA), 0))}
			},
			want: []string{"GET /a  -> 200 one"},
		},
		{
			name: "port filter",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40006", "10.0.0.2:9090")
				return script{frames: packettest.Cat(c.Handshake(), c.ClientData([]byte(packettest.ReqA), 0)), opts: []TrackerOption{WithPorts(8080)}}
			},
			check: func(t *testing.T, st *Stats, _ []*mlv1.Exchange) {
				if st.Packets[ResultFiltered].Load() != 4 || st.Streams.Load() != 0 {
					t.Errorf("filtered %d streams %d", st.Packets[ResultFiltered].Load(), st.Streams.Load())
				}
			},
		},
		{
			name: "stream limit",
			build: func() script {
				a := packettest.NewConn("10.0.0.1:40007", "10.0.0.2:8080")
				b := packettest.NewConn("10.0.0.1:40008", "10.0.0.2:8080")
				return script{frames: packettest.Cat(a.Handshake(), b.Handshake(), b.ClientData([]byte(packettest.ReqA), 0), a.ClientData([]byte(packettest.ReqA), 0), a.ServerData([]byte(packettest.RespA), 0)),
					opts: []TrackerOption{WithMaxStreams(1)}}
			},
			want: []string{"GET /a  -> 200 one"},
			check: func(t *testing.T, st *Stats, _ []*mlv1.Exchange) {
				// b's SYN, SYN-ACK and data; its bare ACK opens nothing.
				if st.Packets[ResultStreamLimit].Load() != 3 || st.StreamsRejected.Load() != 3 {
					t.Errorf("stream limit %d rejected %d", st.Packets[ResultStreamLimit].Load(), st.StreamsRejected.Load())
				}
			},
		},
		{
			name: "per-stream buffer cap declares the hole lost",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40009", "10.0.0.2:8080")
				hs := c.Handshake()
				req := c.ClientData([]byte(packettest.ReqA), 0)
				resp := c.ServerData([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("y", 1000)), 100)
				return script{frames: packettest.Cat(hs, req, packettest.One(resp[0]), resp[2:]), opts: []TrackerOption{WithMaxStreamBuffer(500)}}
			},
			want: []string{"GET /a  -> 200 " + strings.Repeat("y", 1000-100) + " [resp-cut]"},
			check: func(t *testing.T, st *Stats, _ []*mlv1.Exchange) {
				if st.BufferOverflows.Load() != 1 || st.GapBytes.Load() != 100 || st.BufferedBytes.Load() != 0 {
					t.Errorf("overflows %d gap bytes %d buffered %d", st.BufferOverflows.Load(), st.GapBytes.Load(), st.BufferedBytes.Load())
				}
			},
		},
		{
			name: "RST ends the stream, request without response",
			build: func() script {
				c := packettest.NewConn("10.0.0.1:40010", "10.0.0.2:8080")
				hs := c.Handshake()
				req := c.ClientData([]byte(packettest.ReqA), 0)
				rst := packettest.Frame(c.Server, c.Client, 0x80000000, 0, packettest.Flags{RST: true}, nil)
				return script{frames: packettest.Cat(hs, req, packettest.One(rst))}
			},
			want: []string{"GET /a  -> none"},
			check: func(t *testing.T, st *Stats, _ []*mlv1.Exchange) {
				if st.StreamsEnded[EndRST].Load() != 1 {
					t.Errorf("rst ends %d", st.StreamsEnded[EndRST].Load())
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := tc.build()
			pub := &packettest.Collect{}
			st := &Stats{}
			tr := NewTracker(pub, append([]TrackerOption{WithStats(st), WithGapTimeout(time.Second), WithIdleTimeout(time.Minute)}, sc.opts...)...)
			dec := NewDecoder()
			ts := time.Unix(1700000000, 0)
			var seg Segment
			for i, fr := range sc.frames {
				ts = ts.Add(time.Millisecond)
				if err := dec.Decode(layers.LayerTypeEthernet, fr, &seg); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				tr.Handle(&seg, ts)
			}
			tr.Flush(ts.Add(2 * time.Second)) // past the gap timeout
			tr.Close(ts.Add(3 * time.Second))
			var got []string
			for _, ex := range pub.Got() {
				got = append(got, packettest.Summary(ex))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if st.StreamsActive.Load() != 0 || st.BufferedBytes.Load() != 0 {
				t.Errorf("after close: %d active, %d buffered", st.StreamsActive.Load(), st.BufferedBytes.Load())
			}
			if tc.check != nil {
				tc.check(t, st, pub.Got())
			}
		})
	}
}

func TestVPCTrackerIdleFlush(t *testing.T) {
	pub := &packettest.Collect{}
	tr := NewTracker(pub, WithIdleTimeout(time.Minute))
	c := packettest.NewConn("10.0.0.1:40100", "10.0.0.2:8080")
	dec := NewDecoder()
	var seg Segment
	t0 := time.Unix(1700000000, 0)
	for _, fr := range packettest.Cat(c.Handshake(), c.ClientData([]byte(packettest.ReqA), 0)) {
		if err := dec.Decode(layers.LayerTypeEthernet, fr, &seg); err != nil {
			t.Fatal(err)
		}
		tr.Handle(&seg, t0)
	}
	tr.Flush(t0.Add(59 * time.Second))
	if tr.Active() != 1 || len(pub.Got()) != 0 {
		t.Fatalf("flushed too early: %d active, %d published", tr.Active(), len(pub.Got()))
	}
	tr.Flush(t0.Add(61 * time.Second))
	if tr.Active() != 0 || len(pub.Got()) != 1 || pub.Got()[0].Response != nil || tr.Stats().StreamsEnded[EndIdle].Load() != 1 {
		t.Fatalf("after idle timeout: %d active, %d published", tr.Active(), len(pub.Got()))
	}
	if got, want := pub.Got()[0].CaptureTimeNs, t0.UnixNano(); got != want {
		t.Fatalf("capture time %d, want %d", got, want)
	}
}

// TestTrackerHTTP2 checks the choice of a connection's parser by its first
// bytes: HTTP/2 from the preface (also when the server's SETTINGS were
// captured first), an HTTP/2 connection joined midway counted and skipped,
// HTTP/1.x beside them.
func TestTrackerHTTP2(t *testing.T) {
	tests := []struct {
		name     string
		frames   func() [][]byte
		want     []string
		midway   uint64
		h2Conns  uint64
		checkRec func(t *testing.T, got []*mlv1.Exchange)
	}{
		{
			name: "from the preface, server speaks first",
			frames: func() [][]byte {
				c := packettest.NewConn("10.0.0.1:41000", "10.0.0.2:8080")
				h := packettest.NewH2()
				return packettest.Cat(c.Handshake(), c.ServerData(h.ServerStart(), 0), c.ClientData(h.ClientStart(), 10),
					c.ClientData(h.Request(1, "GET", "svc", "/one"), 0), c.ClientData(h.Request(3, "GET", "svc", "/two"), 0),
					c.ServerData(h.Response(3, "200", "second"), 7), c.ServerData(h.Response(1, "404", ""), 0),
					packettest.One(c.ClientFIN()), packettest.One(c.ServerFIN()))
			},
			want:    []string{"GET /two  -> 200 second", "GET /one  -> 404 "},
			h2Conns: 1,
			checkRec: func(t *testing.T, got []*mlv1.Exchange) {
				if got[0].Sequence != 2 || got[1].Sequence != 1 || got[0].ConnectionId != got[1].ConnectionId ||
					got[0].Protocol != mlv1.Protocol_PROTOCOL_HTTP2 || got[0].Request.Proto != "HTTP/2.0" ||
					got[0].Request.Host != "svc" || got[0].Request.RemoteAddr != "10.0.0.1:41000" || !strings.HasPrefix(got[0].ConnectionId, "vpc-") {
					t.Errorf("records %v", got)
				}
			},
		},
		{
			name: "joined midway",
			frames: func() [][]byte {
				c := packettest.NewConn("10.0.0.1:41001", "10.0.0.2:8080")
				h := packettest.NewH2()
				h.ClientStart()
				h.ServerStart()
				return packettest.Cat(c.ClientData(h.Request(5, "GET", "svc", "/late"), 0), c.ServerData(h.Response(5, "200", "x"), 0))
			},
			midway: 1,
		},
		{
			name: "joined midway, only the server's frames seen",
			frames: func() [][]byte {
				c := packettest.NewConn("10.0.0.1:41002", "10.0.0.2:8080")
				h := packettest.NewH2()
				h.Request(1, "GET", "svc", "/big")
				return c.ServerData(h.Response(1, "200", strings.Repeat("b", 5000)), 1000)
			},
			midway: 1,
		},
		{
			name: "HTTP/1.1 beside, starting with P",
			frames: func() [][]byte {
				c := packettest.NewConn("10.0.0.1:41003", "10.0.0.2:8080")
				return packettest.Cat(c.Handshake(), c.ClientData([]byte(packettest.ReqB), 1), c.ServerData([]byte(packettest.RespA), 0),
					packettest.One(c.ClientFIN()), packettest.One(c.ServerFIN()))
			},
			want: []string{"POST /b hello world -> 200 one"},
		},
		{
			name: "TLS is not HTTP/2 joined midway",
			frames: func() [][]byte {
				c := packettest.NewConn("10.0.0.1:41005", "10.0.0.2:8080")
				hello := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
				return packettest.Cat(c.Handshake(), c.ClientData(append(hello, make([]byte, 505)...), 0))
			},
		},
		{
			name: "a preface cut short, a talkative server: bounded",
			frames: func() [][]byte {
				c := packettest.NewConn("10.0.0.1:41006", "10.0.0.2:8080")
				return packettest.Cat(c.Handshake(), c.ClientData([]byte("PRI * HTTP/2.0\r\n"), 0), c.ServerData(make([]byte, 10000), 1000),
					c.ClientData([]byte("\r\nSM\r\n\r\n"), 0))
			},
		},
		{
			name: "a preface cut short is not HTTP/2",
			frames: func() [][]byte {
				c := packettest.NewConn("10.0.0.1:41004", "10.0.0.2:8080")
				return packettest.Cat(c.Handshake(), c.ClientData([]byte("PRI * HTTP/2.0\r\n"), 0), packettest.One(c.ClientFIN()), packettest.One(c.ServerFIN()))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &packettest.Collect{}
			st := &Stats{}
			tr := NewTracker(pub, WithStats(st), WithPorts(8080))
			dec := NewDecoder()
			ts := time.Unix(1700000000, 0)
			var seg Segment
			for i, fr := range tc.frames() {
				ts = ts.Add(time.Millisecond)
				if err := dec.Decode(layers.LayerTypeEthernet, fr, &seg); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				tr.Handle(&seg, ts)
			}
			tr.Close(ts.Add(time.Second))
			var got []string
			for _, ex := range pub.Got() {
				got = append(got, packettest.Summary(ex))
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if n := st.H2.Dropped[h2stream.DropMidstream].Load(); n != tc.midway {
				t.Errorf("midway drops %d, want %d", n, tc.midway)
			}
			if n := st.H2.Connections.Load(); n != tc.h2Conns {
				t.Errorf("HTTP/2 connections %d, want %d", n, tc.h2Conns)
			}
			if tc.checkRec != nil {
				tc.checkRec(t, pub.Got())
			}
		})
	}
}
