package h2stream

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// FuzzH2Conn feeds arbitrary frames after the client preface in both
// directions, in pieces: the Conn must never panic, never emit more than its
// limits allow, and never emit after it dropped the connection.
func FuzzH2Conn(f *testing.F) {
	seed := func(build func(s *script)) {
		s := newScript(f)
		build(s)
		var cb, sb bytes.Buffer
		for _, ch := range s.chunks {
			if ch.dir == cli {
				cb.Write(ch.data)
			} else {
				sb.Write(ch.data)
			}
		}
		f.Add(bytes.TrimPrefix(cb.Bytes(), []byte(Preface)), sb.Bytes(), uint8(0))
		f.Add(bytes.TrimPrefix(cb.Bytes(), []byte(Preface)), sb.Bytes(), uint8(3))
	}
	seed(func(s *script) {
		s.get(1, "/a")
		s.headers(srv, 1, false, ":status", "200")
		s.step(srv, func(f *http2.Framer) error { return f.WriteDataPadded(1, true, []byte("body"), []byte{0, 0}) })
	})
	seed(func(s *script) {
		s.headers(cli, 1, false, ":method", "POST", ":scheme", "http", ":authority", "o", ":path", "/o.v1.O/T", "content-type", "application/grpc")
		s.data(cli, 1, true, grpcMsg(false, "hello")+grpcMsg(true, "x"))
		b := s.block(srv, ":status", "200", "content-type", "application/grpc")
		s.step(srv, func(f *http2.Framer) error {
			if err := f.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:1]}); err != nil {
				return err
			}
			return f.WriteContinuation(1, true, b[1:])
		})
		s.data(srv, 1, false, grpcMsg(false, "ack"))
		s.headers(srv, 1, true, "grpc-status", "0")
		s.step(cli, func(f *http2.Framer) error { return f.WriteRSTStream(1, http2.ErrCodeCancel) })
	})
	f.Fuzz(func(t *testing.T, client, server []byte, split uint8) {
		const limit = 64
		var got []*mlv1.Exchange
		dropped := false
		c := New(func(ex *mlv1.Exchange) {
			if dropped {
				t.Fatal("exchange emitted after the connection was dropped")
			}
			got = append(got, ex)
		}, WithBodyLimit(limit), WithMaxHeaderBytes(512), WithMaxStreams(4), WithMaxTableSize(1024), WithMaxConnBytes(100))
		at := time.Unix(1, 0)
		feed := func(d httpstream.Direction, p []byte) {
			n := int(split%16) + 1
			if split == 0 {
				n = len(p)
			}
			for len(p) > 0 {
				k := min(n, len(p))
				c.Feed(d, p[:k], at)
				p = p[k:]
				at = at.Add(time.Millisecond)
				if c.Err() != nil {
					dropped = true
				}
				if c.kept > 100 || len(c.streams) > 4 {
					t.Fatalf("bounds: %d bytes kept, %d streams", c.kept, len(c.streams))
				}
			}
		}
		c.Feed(cli, []byte(Preface), at)
		// Interleave the two directions in halves.
		feed(cli, client[:len(client)/2])
		feed(srv, server[:len(server)/2])
		feed(cli, client[len(client)/2:])
		feed(srv, server[len(server)/2:])
		dropped = c.Err() != nil
		c.Close(at)
		if c.kept != 0 {
			t.Fatalf("%d bytes still counted after close", c.kept)
		}
		if len(got) > 64 {
			t.Fatalf("%d exchanges from %d bytes", len(got), len(client)+len(server))
		}
		for _, ex := range got {
			r := ex.Request
			if r == nil || r.Proto != Proto || r.Method == "" || strings.HasPrefix(r.Method, ":") {
				t.Fatalf("bad request %v", r)
			}
			if len(r.Body) > limit || len(ex.GetResponse().GetBody()) > limit {
				t.Fatal("body over the limit")
			}
			for _, ms := range [][]*mlv1.Message{r.Messages, ex.GetResponse().GetMessages()} {
				n := 0
				for _, m := range ms {
					n += len(m.Data)
				}
				if n > limit {
					t.Fatal("messages over the budget")
				}
			}
			if ex.Protocol != mlv1.Protocol_PROTOCOL_GRPC && (len(r.Messages) > 0 || len(ex.GetResponse().GetMessages()) > 0) {
				t.Fatal("messages in a non-gRPC exchange")
			}
		}
	})
}
