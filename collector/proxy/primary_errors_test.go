package proxy

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// rawPrimary answers every request on a connection with answer, then closes it.
func rawPrimary(t *testing.T, answer string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				_, _ = c.Write([]byte(answer))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// A primary answering bytes net/http cannot parse gets the client a 502; the
// log line and the captured exchange's error say what went wrong but do not
// quote the primary's bytes.
func TestPrimaryErrorsDoNotEchoResponseBytes(t *testing.T) {
	const secret = "4111111111111111"
	tests := []struct {
		name, answer string
		want         string // what the error still says
	}{
		{"not HTTP", secret + "\x1b[2J\r\n\r\n", "malformed HTTP response"},
		{"bad status code", "HTTP/1.1 " + secret + " OK\r\n\r\n", "malformed HTTP status code"},
		{"header line without colon", "HTTP/1.1 200 OK\r\nX-Card " + secret + "\r\n\r\n", "malformed MIME header"},
		{"bad content length", "HTTP/1.1 200 OK\r\nContent-Length: " + secret + "x\r\n\r\n", "bad Content-Length"},
		{"bad transfer encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: " + secret + "\r\n\r\n", "unsupported transfer encoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			lg := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Trace})
			prod := &collectortest.Recorder{}
			em := collector.NewEmitter(prod, "svc", nil, nil)
			p, err := New(rawPrimary(t, tc.answer), em, WithLogger(lg))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			p.ServeHTTP(rec, httptest.NewRequest("GET", "/pay", nil))
			if rec.Code != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", rec.Code)
			}
			collectortest.Flush(t, em)
			if len(prod.Records()) != 1 {
				t.Fatalf("%d records, want the exchange captured once", len(prod.Records()))
			}
			ex := &mlv1.Exchange{}
			if err := proto.Unmarshal(prod.Records()[0].Value, ex); err != nil {
				t.Fatal(err)
			}
			got := ex.GetResponse().GetError()
			if !strings.Contains(got, tc.want) || strings.Contains(got, secret) || strings.Contains(got, "x1b") {
				t.Errorf("recorded error %q: want a description without the primary's bytes", got)
			}
			if !strings.Contains(logs.String(), "primary unreachable") || strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "x1b") {
				t.Errorf("log %q: want the failure logged without the primary's bytes", logs.String())
			}
		})
	}
}
