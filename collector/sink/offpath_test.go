package sink

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
)

// The mirroring proxy (nginx, Envoy) gets its 200 without waiting for the
// copy's encoding and produce: with them held, every copy on a keep-alive
// connection is answered; once released, every copy is published in order.
func TestSinkAnswersBeforeCaptureIsEncoded(t *testing.T) {
	gate := collectortest.NewGate()
	t.Cleanup(gate.Open) // a failing test must not leave the worker waiting
	em := collector.NewEmitter(gate, "svc", nil, nil)
	s, err := New(em)
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, s.Serve)
	hc := &http.Client{Timeout: 15 * time.Second}
	defer hc.CloseIdleConnections()
	const n = 3
	for i := range n {
		resp, err := hc.Post(fmt.Sprintf("http://%s/copy/%d", addr, i), "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatalf("copy %d with the capture held: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("copy %d: status %d, want 200", i, resp.StatusCode)
		}
	}
	gate.Open()
	collectortest.Flush(t, em)
	exs := gate.Exchanges(t)
	if len(exs) != n {
		t.Fatalf("%d copies published, want %d", len(exs), n)
	}
	for i, ex := range exs {
		if want := fmt.Sprintf("/copy/%d", i); ex.Request.Url != want || string(ex.Request.Body) != "body" {
			t.Fatalf("copy %d published as %s %q, want %s \"body\"", i, ex.Request.Url, ex.Request.Body, want)
		}
	}
}
