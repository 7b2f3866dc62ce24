package httpstream

import (
	"testing"
	"time"
)

// FuzzHTTPStream feeds arbitrary bytes in both directions, cut at arbitrary places
// and mixed with gaps and stream ends; the Conn must never panic, keep its bounds
// and emit exchanges in sequence.
func FuzzHTTPStream(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"), []byte{3, 5, 0x81, 7})
	f.Add([]byte(post3+get2), []byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"+ok2), []byte{1, 2, 3, 4, 0xC0, 9})
	f.Add([]byte("HEAD / HTTP/1.0\r\n\r\nGET /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"), []byte("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 417 No\r\n\r\nrest"), []byte{0xff, 0x40, 0x80})
	f.Add([]byte("CONNECT h:443 HTTP/1.1\r\n\r\n\x16\x03"), []byte("HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01"), []byte{})
	f.Fuzz(func(t *testing.T, client, server, ctl []byte) {
		const limit = 16
		var last uint64
		c := New(func(e *Exchange) {
			if e.Seq <= last {
				t.Fatalf("exchange seq %d after %d", e.Seq, last)
			}
			last = e.Seq
			if len(e.Request.Data) > limit || (e.Response != nil && len(e.Response.Data) > limit) {
				t.Fatalf("body over the limit")
			}
			_ = e.Record()
		}, WithBodyLimit(limit), WithMaxHeaderBytes(256), WithMaxPending(4))
		ts := time.Unix(1, 0)
		streams := [2][]byte{client, server}
		for i, b := range ctl {
			d := Direction(i & 1)
			ts = ts.Add(time.Microsecond)
			n := int(b & 0x3f)
			switch b >> 6 {
			case 0, 1: // feed n bytes
				if n > len(streams[d]) {
					n = len(streams[d])
				}
				c.Feed(d, streams[d][:n], ts)
				streams[d] = streams[d][n:]
			case 2: // gap of n bytes (63: unknown)
				g := int64(n)
				if n == 63 {
					g = -1
				}
				c.Gap(d, g, ts)
			case 3:
				c.End(d, ts)
			}
			if c.Pending() > 4 {
				t.Fatalf("%d pending requests", c.Pending())
			}
		}
		c.Feed(ClientToServer, streams[0], ts)
		c.Feed(ServerToClient, streams[1], ts)
		c.Close(ts)
		if c.Pending() != 0 {
			t.Fatalf("%d requests pending after Close", c.Pending())
		}
	})
}
