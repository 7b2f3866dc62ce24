package collector

import (
	"bytes"
	"testing"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func framed(n, size int) []byte {
	var b []byte
	for range n {
		b = grpcwire.AppendFrame(b, &mlv1.Message{Data: bytes.Repeat([]byte{'m'}, size)})
	}
	return b
}

func TestMessageCapture(t *testing.T) {
	cases := []struct {
		name          string
		body          []byte
		limit         int64
		budget        int
		msgs          int  // messages kept
		lastTruncated bool // the last kept one cut
		truncated     bool // messages_truncated
	}{
		{name: "within limits", body: framed(3, 10), limit: 100, budget: 1000, msgs: 3},
		{name: "a message over the body limit is cut", body: framed(2, 50), limit: 20, budget: 1000, msgs: 2, lastTruncated: true},
		// 1-byte messages are 6 framed bytes: a budget of 600 reads 100 of them.
		{name: "many tiny messages stop at the budget", body: framed(100_000, 1), limit: 100, budget: 600, msgs: 100, truncated: true},
		{name: "empty messages count too", body: framed(100_000, 0), limit: 100, budget: 500, msgs: 100, truncated: true},
		{name: "bad compressed flag", body: append(framed(1, 3), 7, 0, 0, 0, 1, 'x'), limit: 100, budget: 1000, msgs: 1, truncated: true},
		{name: "cut inside a prefix", body: framed(2, 3)[:11], limit: 100, budget: 1000, msgs: 1, truncated: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewMessageCapture(tc.limit, tc.budget)
			// Fed in uneven parts, as a body arrives.
			for p, off := tc.body, int64(0); len(p) > 0; off++ {
				n := min(len(p), 7)
				c.Feed(p[:n], off)
				p = p[n:]
			}
			msgs, truncated, size := c.Result()
			if len(msgs) != tc.msgs || truncated != tc.truncated || size != int64(len(tc.body)) {
				t.Fatalf("%d messages, truncated %v, %d bytes; want %d, %v, %d", len(msgs), truncated, size, tc.msgs, tc.truncated, len(tc.body))
			}
			if got := msgs[len(msgs)-1].Truncated; got != tc.lastTruncated {
				t.Fatalf("last message truncated %v, want %v", got, tc.lastTruncated)
			}
			var prev int64
			for i, m := range msgs {
				if m.OffsetNs < prev || int64(len(m.Data)) > tc.limit {
					t.Fatalf("message %d: offset %d after %d, %d bytes kept", i, m.OffsetNs, prev, len(m.Data))
				}
				prev = m.OffsetNs
			}
		})
	}
}
