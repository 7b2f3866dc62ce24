package ebpf

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
)

// tev is a TLS event as the BPF program reports it.
type tev struct {
	pid           uint32
	conn          uint64
	fd            int32
	dir           uint8
	data          string
	len           int // bytes the call moved; 0: len(data)
	offset        int
	last          bool
	local, remote string // "" : unknown
}

// record encodes e like struct tls_event (tls.bpf.c).
func (e tev) record() []byte {
	b := make([]byte, tlsEventSize+len(e.data))
	n := e.len
	if n == 0 {
		n = len(e.data)
	}
	binary.NativeEndian.PutUint64(b[8:], e.conn)
	binary.NativeEndian.PutUint32(b[16:], e.pid)
	binary.NativeEndian.PutUint32(b[20:], uint32(e.fd))
	binary.NativeEndian.PutUint32(b[24:], uint32(n))
	binary.NativeEndian.PutUint32(b[28:], uint32(e.offset))
	binary.NativeEndian.PutUint32(b[32:], uint32(len(e.data)))
	b[36] = e.dir
	b[37] = tlsLibOpenSSL
	if e.last || e.offset+len(e.data) == n {
		b[38] = 1
	}
	if e.local != "" {
		l, r := netip.MustParseAddrPort(e.local), netip.MustParseAddrPort(e.remote)
		if l.Addr().Is4() {
			a, c := l.Addr().As4(), r.Addr().As4()
			copy(b[40:], a[:])
			copy(b[56:], c[:])
			binary.NativeEndian.PutUint16(b[76:], 2)
		} else {
			a, c := l.Addr().As16(), r.Addr().As16()
			copy(b[40:], a[:])
			copy(b[56:], c[:])
			binary.NativeEndian.PutUint16(b[76:], 10)
		}
		binary.NativeEndian.PutUint16(b[72:], l.Port())
		binary.NativeEndian.PutUint16(b[74:], r.Port())
	}
	copy(b[tlsEventSize:], e.data)
	return b
}

const (
	tlsReq  = "GET /a?b=1 HTTP/1.1\r\nHost: shop\r\n\r\n"
	tlsResp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
)

// The assembler turns plaintext calls into the connection's two byte streams
// between its client and server, whichever side the process is.
func TestTLSAssembler(t *testing.T) {
	big := strings.Repeat("p", 20000)
	post := "POST /pay HTTP/1.1\r\nHost: shop\r\nContent-Length: 20000\r\n\r\n"
	for _, tc := range []struct {
		name   string
		events []tev
		check  func(t *testing.T, got []*mlv1.Exchange)
	}{
		{
			name: "server process: reads the request, writes the response",
			events: []tev{
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirRead, data: tlsReq, local: "127.0.0.1:443", remote: "127.0.0.1:50000"},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirWrite, data: tlsResp, local: "127.0.0.1:443", remote: "127.0.0.1:50000"},
			},
			check: func(t *testing.T, got []*mlv1.Exchange) {
				if len(got) != 1 || got[0].Request.RemoteAddr != "127.0.0.1:50000" || got[0].Request.Url != "/a?b=1" ||
					got[0].Request.Scheme != "https" || string(got[0].Response.GetBody()) != "ok" {
					t.Fatalf("%v", got)
				}
			},
		},
		{
			name: "client process: writes the request, reads the response",
			events: []tev{
				{pid: 8, conn: 0x20, fd: 3, dir: tlsDirWrite, data: tlsReq, local: "10.0.0.2:41000", remote: "10.0.0.9:443"},
				{pid: 8, conn: 0x20, fd: 3, dir: tlsDirRead, data: tlsResp[:10], local: "10.0.0.2:41000", remote: "10.0.0.9:443"},
				{pid: 8, conn: 0x20, fd: 3, dir: tlsDirRead, data: tlsResp[10:], local: "10.0.0.2:41000", remote: "10.0.0.9:443"},
			},
			check: func(t *testing.T, got []*mlv1.Exchange) {
				if len(got) != 1 || got[0].Request.RemoteAddr != "10.0.0.2:41000" || got[0].Response.GetStatus() != 200 {
					t.Fatalf("%v", got)
				}
			},
		},
		{
			name: "a call longer than a record comes in chunks",
			events: []tev{
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirRead, data: post, local: "[::1]:443", remote: "[::1]:50001"},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirRead, data: big[:16384], len: 20000},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirRead, data: big[16384:], len: 20000, offset: 16384},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirWrite, data: tlsResp},
			},
			check: func(t *testing.T, got []*mlv1.Exchange) {
				if len(got) != 1 || got[0].Request.RemoteAddr != "[::1]:50001" || string(got[0].Request.Body) != big {
					t.Fatalf("%d exchanges", len(got))
				}
			},
		},
		{
			name: "socket unknown: stand-in addresses",
			events: []tev{
				{pid: 9, conn: 0xabc, fd: -1, dir: tlsDirRead, data: tlsReq},
				{pid: 9, conn: 0xabc, fd: -1, dir: tlsDirWrite, data: tlsResp},
			},
			check: func(t *testing.T, got []*mlv1.Exchange) {
				if len(got) != 1 || got[0].Request.RemoteAddr != "[fd00:0:0:9::abc]:1" {
					t.Fatalf("%v", got)
				}
			},
		},
		{
			name: "a connection's address reused by the next on another socket",
			events: []tev{
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirRead, data: tlsReq, local: "127.0.0.1:443", remote: "127.0.0.1:50000"},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirWrite, data: tlsResp, local: "127.0.0.1:443", remote: "127.0.0.1:50000"},
				{pid: 7, conn: 0x10, dir: tlsDirClose},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirRead, data: tlsReq, local: "127.0.0.1:443", remote: "127.0.0.1:50002"},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirWrite, data: tlsResp, local: "127.0.0.1:443", remote: "127.0.0.1:50002"},
			},
			check: func(t *testing.T, got []*mlv1.Exchange) {
				if len(got) != 2 || got[0].ConnectionId == got[1].ConnectionId || got[1].Request.RemoteAddr != "127.0.0.1:50002" ||
					got[0].Sequence != 1 || got[1].Sequence != 1 {
					t.Fatalf("%v", got)
				}
			},
		},
		{
			name: "data reported after the close event still belongs to the connection",
			events: []tev{
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirRead, data: tlsReq, local: "127.0.0.1:443", remote: "127.0.0.1:50000"},
				{pid: 7, conn: 0x10, dir: tlsDirClose},
				{pid: 7, conn: 0x10, fd: 5, dir: tlsDirWrite, data: tlsResp, local: "127.0.0.1:443", remote: "127.0.0.1:50000"},
			},
			check: func(t *testing.T, got []*mlv1.Exchange) {
				if len(got) != 1 || got[0].Response.GetStatus() != 200 {
					t.Fatalf("%v", got)
				}
			},
		},
		{
			name: "two processes with the same SSL* address are two connections",
			events: []tev{
				{pid: 1, conn: 0x10, fd: -1, dir: tlsDirRead, data: tlsReq},
				{pid: 2, conn: 0x10, fd: -1, dir: tlsDirRead, data: tlsReq},
				{pid: 2, conn: 0x10, fd: -1, dir: tlsDirWrite, data: tlsResp},
				{pid: 1, conn: 0x10, fd: -1, dir: tlsDirWrite, data: tlsResp},
			},
			check: func(t *testing.T, got []*mlv1.Exchange) {
				if len(got) != 2 || got[0].ConnectionId == got[1].ConnectionId || got[0].Response == nil || got[1].Response == nil {
					t.Fatalf("%v", got)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &packettest.Collect{}
			tr := tcpstream.NewTracker(httpsPublisher{pub})
			a := newTLSAssembler(tr, nil)
			ts := time.Unix(1700000000, 0)
			for i, e := range tc.events {
				ev, err := parseTLSEvent(e.record())
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				ts = ts.Add(time.Millisecond)
				a.handle(ev, ts)
			}
			a.reap(ts.Add(time.Hour), time.Time{})
			tr.Close(ts.Add(time.Second))
			tc.check(t, pub.Got())
		})
	}
}

func TestParseTLSEventRefuses(t *testing.T) {
	good := tev{pid: 1, conn: 2, fd: 3, dir: tlsDirRead, data: "abc"}.record()
	if _, err := parseTLSEvent(good); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string][]byte{
		"short head":         good[:tlsEventSize-1],
		"chunk past the end": good[:len(good)-1],
		"chunk past the call": func() []byte {
			b := append([]byte(nil), good...)
			binary.NativeEndian.PutUint32(b[28:], 1) // offset 1 + 3 bytes > len 3
			return b
		}(),
		"unknown direction": func() []byte {
			b := append([]byte(nil), good...)
			b[36] = 9
			return b
		}(),
	} {
		if _, err := parseTLSEvent(raw); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestLooksLikeClientStart(t *testing.T) {
	for in, want := range map[string]bool{
		"GET / HTTP/1.1\r\n":       true,
		"PRI * HTTP/2.0\r\n":       true,
		"post /x HTTP/1.1":         true,
		"HTTP/1.1 200 OK\r\n":      false,
		"\x00\x00\x12\x04\x00\x00": false, // an HTTP/2 SETTINGS frame
		"":                         false,
	} {
		if got := looksLikeClientStart([]byte(in)); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}
