package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
)

// The capture's encoding and produce are not on the client's path: with
// them held (a producer that does not return), every answer still reaches
// the client whole, small ones with a Content-Length (which Go's server sends
// only once the handler returns) and chunked ones (whose end it writes only
// then); once released, every exchange is published.
func TestProxyAnswersBeforeCaptureIsEncoded(t *testing.T) {
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			w.WriteHeader(http.StatusOK)
			for range 3 {
				_, _ = io.WriteString(w, strings.Repeat("c", 100))
				http.NewResponseController(w).Flush()
			}
			return
		}
		_, _ = io.WriteString(w, "small answer")
	}))
	t.Cleanup(primary.Close)
	gate := collectortest.NewGate()
	t.Cleanup(gate.Open) // a failing test must not leave the worker waiting
	em := collector.NewEmitter(gate, "svc", nil, nil)
	p, err := New(primary.URL, em)
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, p.Serve)
	hc := &http.Client{Timeout: 15 * time.Second}
	defer hc.CloseIdleConnections()
	cases := []struct{ path, want string }{
		{"/small", "small answer"},
		{"/chunked", strings.Repeat("c", 300)},
		{"/small", "small answer"}, // same connection, after a held capture
	}
	for _, tc := range cases {
		resp, err := hc.Get("http://" + addr + tc.path)
		if err != nil {
			t.Fatalf("GET %s with the capture held: %v", tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != tc.want {
			t.Fatalf("GET %s with the capture held: %q, %v; want %q", tc.path, b, err, tc.want)
		}
	}
	gate.Open()
	collectortest.Flush(t, em)
	exs := gate.Exchanges(t)
	if len(exs) != len(cases) {
		t.Fatalf("%d exchanges published, want %d", len(exs), len(cases))
	}
	for i, ex := range exs {
		if ex.Request.Url != cases[i].path || string(ex.Response.Body) != cases[i].want || ex.Id == "" || ex.Sequence != uint64(i+1) {
			t.Fatalf("exchange %d: %s seq %d id %q body %q; want %s seq %d with an id and its answer",
				i, ex.Request.Url, ex.Sequence, ex.Id, ex.Response.Body, cases[i].path, i+1)
		}
	}
}
