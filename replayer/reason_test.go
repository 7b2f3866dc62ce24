package replayer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Real failures of a replayed request are classified by ErrorReason through
// the Sender: each case provokes the failure on loopback (the DNS case asks
// for a name under .invalid, which never resolves).
func TestSendReasonRealFailures(t *testing.T) {
	ex := &mlv1.Exchange{Id: "e1", Request: &mlv1.Request{Method: "GET", Url: "/x"}}

	closed, hang := deadTargets(t)

	// Takes the connection and closes it without a word.
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	t.Cleanup(hangup.Close)

	// Promises 1000 bytes, sends 10, closes.
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write([]byte("0123456789"))
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(cut.Close)

	status := func(code int) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
		t.Cleanup(s.Close)
		return s
	}
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	plain := status(200)

	tests := []struct {
		name, target string
		timeout      time.Duration
		want         string
	}{
		{"refused: nothing listens", closed, 0, ReasonRefused},
		{"timeout: target never answers", hang.URL, 200 * time.Millisecond, ReasonTimeout},
		{"dns: name does not resolve", "http://nonexistent.invalid", 0, ReasonDNS},
		{"tls: certificate not trusted", tlsSrv.URL, 0, ReasonTLS},
		{"tls: https to a plain http server", "https://" + plain.Listener.Addr().String(), 0, ReasonTLS},
		{"reset: connection closed before a response", hangup.URL, 0, ReasonReset},
		{"reset: connection closed mid-body", cut.URL, 0, ReasonReset},
		{"5xx: 503", status(503).URL, 0, Reason5xx},
		{"5xx: 500", status(500).URL, 0, Reason5xx},
		{"no error: 404", status(404).URL, 0, ""},
		{"no error: 200", plain.URL, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []Option{Timeout(10 * time.Second)}
			if tc.timeout > 0 {
				opts = []Option{Timeout(tc.timeout)}
			}
			s, err := NewSender(tc.target, 1, opts...)
			if err != nil {
				t.Fatal(err)
			}
			resp, reason, err := s.SendReason(context.Background(), ex)
			if err != nil {
				t.Fatal(err)
			}
			if reason != tc.want {
				t.Errorf("reason %q, want %q (response status %d, error %q)", reason, tc.want, resp.GetStatus(), resp.GetError())
			}
		})
	}
}

// ErrorReason looks at types and errno values however deeply they are
// wrapped; anything it does not know is "other", never "".
func TestErrorReasonWrapped(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: err}}
	}
	tests := []struct {
		name   string
		err    error
		status int
		want   string
	}{
		{"nil, 200", nil, 200, ""},
		{"nil, 499", nil, 499, ""},
		{"nil, 500", nil, 500, Reason5xx},
		{"nil, 599", nil, 599, Reason5xx},
		{"ECONNREFUSED", op(syscall.ECONNREFUSED), 0, ReasonRefused},
		{"ECONNRESET", op(syscall.ECONNRESET), 0, ReasonReset},
		{"EPIPE", op(syscall.EPIPE), 0, ReasonReset},
		{"unexpected EOF", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), 200, ReasonReset},
		{"deadline", fmt.Errorf("do: %w", context.DeadlineExceeded), 0, ReasonTimeout},
		{"i/o deadline", op(os.ErrDeadlineExceeded), 0, ReasonTimeout},
		{"dns", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, 0, ReasonDNS},
		{"dns timeout is dns", &net.DNSError{Err: "timeout", Name: "x.invalid", IsTimeout: true}, 0, ReasonDNS},
		{"tls alert", fmt.Errorf("handshake: %w", tls.AlertError(40)), 0, ReasonTLS},
		{"tls record header", fmt.Errorf("handshake: %w", tls.RecordHeaderError{Msg: "bad"}), 0, ReasonTLS},
		{"scheme mismatch", fmt.Errorf("do: %w", http.ErrSchemeMismatch), 0, ReasonTLS},
		{"dial not target", fmt.Errorf("dial: %w", ErrDialNotTarget), 0, ReasonOther},
		{"unknown", errors.New("something"), 0, ReasonOther},
		{"unknown with a 503", errors.New("something"), 503, ReasonOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorReason(tc.err, tc.status); got != tc.want {
				t.Errorf("ErrorReason(%v, %d) = %q, want %q", tc.err, tc.status, got, tc.want)
			}
		})
	}
}

func TestParseErrorRate(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr string
	}{
		{"0", 0, ""},
		{"0.05", 0.05, ""},
		{"1", 1, ""},
		{"5%", 0.05, ""},
		{" 50 % ", 0.5, ""},
		{"100%", 1, ""},
		{"0%", 0, ""},
		{"", 0, "is not an error rate"},
		{"x", 0, "is not an error rate"},
		{"5%%", 0, "is not an error rate"},
		{"NaN", 0, "is not an error rate"},
		{"-0.1", 0, "from 0 to 1"},
		{"1.5", 0, "from 0 to 1"},
		{"150%", 0, "from 0 to 1"},
		{"-1%", 0, "from 0 to 1"},
	}
	for _, tc := range tests {
		got, err := ParseErrorRate(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseErrorRate(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseErrorRate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
