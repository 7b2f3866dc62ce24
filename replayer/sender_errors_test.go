package replayer

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// A failed send records the transport error in the shadow response without
// the request URL (captured path and query) Go's client quotes, and keeps
// what the comparator classifies errors by.
func TestSendErrorOmitsRequestURL(t *testing.T) {
	const secret = "4111111111111111"
	ex := &mlv1.Exchange{Id: "e1", Request: &mlv1.Request{Method: "POST", Url: "/cards/" + secret + "?number=" + secret + "&x=%1b%5b2J"}}

	closed, hang := deadTargets(t)

	tests := []struct {
		name, target string
		opts         []Option
		want         string // what the comparator's error class needs
	}{
		{"connection refused", closed, nil, "refused"},
		{"timeout", hang.URL, []Option{Timeout(200 * time.Millisecond)}, "Timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSender(tc.target, 1, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := s.Send(context.Background(), ex)
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetError() == "" || resp.GetStatus() != 0 {
				t.Fatalf("response %+v, want a failed send", resp)
			}
			for _, bad := range []string{secret, "/cards", "number=", "%1b"} {
				if strings.Contains(resp.GetError(), bad) {
					t.Errorf("error text %q holds %q of the request URL", resp.GetError(), bad)
				}
			}
			if !strings.Contains(resp.GetError(), tc.want) || !strings.HasPrefix(resp.GetError(), "Post: ") {
				t.Errorf("error text %q lacks %q or the operation", resp.GetError(), tc.want)
			}
		})
	}
}

// deadTargets returns the URL of a loopback port nothing listens on and a
// server that takes requests and never answers (until the test ends).
func deadTargets(t *testing.T) (closed string, hang *httptest.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed = "http://" + ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	hang = httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	return closed, hang
}
