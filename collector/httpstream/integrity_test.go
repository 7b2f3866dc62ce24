package httpstream

import (
	"strings"
	"testing"
)

// The records of the capture-integrity cases: a body cut short or with broken
// chunk framing is flagged incomplete (so never replayed as complete), an
// upgrade keeps its 101 and the tunnel is not parsed as HTTP, and an HTTP/2
// preface is not taken for a request.
func TestRecordIntegrity(t *testing.T) {
	type rec struct {
		method, url      string
		incomplete, trun bool
		status           int32
	}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []rec
	}{
		{"431 of 1000 declared bytes, then the client leaves",
			[]step{c2s("POST /pay HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("a", 431)), {dir: ClientToServer, end: true}},
			[]rec{{"POST", "/pay", true, true, 0}}},
		{"malformed chunk size, answered 400",
			[]step{c2s("POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), s2c("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")},
			[]rec{{"POST", "/pay", true, true, 400}}},
		{"chunked body cut before its last chunk",
			[]step{c2s("POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), {dir: ClientToServer, end: true}},
			[]rec{{"POST", "/pay", true, true, 0}}},
		{"complete chunked body",
			[]step{c2s("POST /pay HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), s2c("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")},
			[]rec{{"POST", "/pay", false, false, 201}}},
		{"websocket upgrade: 101, then frames that look like HTTP",
			[]step{c2s("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), s2c("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
				c2s("GET /inside-the-tunnel HTTP/1.1\r\nHost: h\r\n\r\n"), s2c("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")},
			[]rec{{"GET", "/ws", false, false, 101}}},
		{"HTTP/2 prior-knowledge preface",
			[]step{c2s("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := run(t, tc.steps, 0)
			if len(got) != len(tc.want) {
				t.Fatalf("%d exchanges, want %d", len(got), len(tc.want))
			}
			for i, ex := range got {
				r := ex.Record()
				g := rec{r.Request.Method, r.Request.Url, r.Request.BodyIncomplete, r.Request.BodyTruncated, r.Response.GetStatus()}
				if g != tc.want[i] {
					t.Errorf("record %d: %+v, want %+v", i, g, tc.want[i])
				}
			}
		})
	}
}
