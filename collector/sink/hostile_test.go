package sink

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
)

// Mirrored copies that do not arrive whole are answered with an error and not
// published; whole ones still are.
func TestSinkRefusesBrokenCopies(t *testing.T) {
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "svc", m, nil)
	s, err := New(em, WithLimits(collector.Limits{BodyTimeout: 300 * time.Millisecond, MinBodyRate: 1024}))
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := collectortest.Serve(t, s.Serve)
	for _, tc := range []struct {
		name       string
		raw        string
		closeWrite bool
		stall      bool // keep the connection open without sending the rest
		status     int
		reason     string
	}{
		{"short body", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("a", 431), true, false, 400, collector.DropIncompleteBody},
		{"malformed chunked", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", false, false, 400, collector.DropBadFraming},
		{"stalled body", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab", false, true, 408, collector.DropBodyTimeout},
		{"whole copy", "POST /ok HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false, false, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srvAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(c, tc.raw)
			if tc.closeWrite {
				_ = c.(*net.TCPConn).CloseWrite()
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.reason != "" {
				if got := testutil.ToFloat64(m.Dropped.WithLabelValues(tc.reason)); got != 1 {
					t.Fatalf("dropped{%s} = %v, want 1", tc.reason, got)
				}
			}
		})
	}
	collectortest.Flush(t, em)
	pub := rec.Exchanges(t)
	if len(pub) != 1 || pub[0].Request.Url != "/ok" || string(pub[0].Request.Body) != "hello" {
		var urls []string
		for _, ex := range pub {
			urls = append(urls, fmt.Sprintf("%s %q", ex.Request.Url, ex.Request.Body))
		}
		t.Fatalf("published %v, want only /ok with its whole body", urls)
	}
}
