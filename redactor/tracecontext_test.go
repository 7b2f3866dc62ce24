package redactor

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// traceIDs returns n trace-context ids of size bytes in hex as the proxy
// draws them (random), and the shapes detectors are most likely to take for
// data: all digits (a card or phone number), digits with few letters.
func traceIDs(r *rand.Rand, n, size int) []string {
	out := []string{
		"41111111111111111111111111111111"[:size*2],
		"00000000000000000000000000000001"[:size*2],
		"16125550123161255501231612555012"[:size*2],
	}
	for len(out) < n {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.UintN(256))
			if len(out)%2 == 0 {
				b[i] = byte(r.UintN(10))<<4 | byte(r.UintN(10)) // digits only
			}
		}
		out = append(out, hex.EncodeToString(b))
	}
	return out
}

// The redactor's defaults keep W3C trace context (traceparent, tracestate
// with the proxy's mirrorline entry) byte for byte: they are random ids, and
// the stub and the comparator join a service's egress calls to its inbound
// exchange through them after redaction.
func TestDefaultsKeepTraceContext(t *testing.T) {
	e := newEngine(t, Config{})
	r := rand.New(rand.NewPCG(18, 18))
	traces, spans, states := traceIDs(r, 300, 16), traceIDs(r, 300, 8), traceIDs(r, 300, 16)
	for i := range traces {
		tp := fmt.Sprintf("00-%s-%s-01", traces[i], spans[i])
		ts := "mirrorline=" + states[i] + ",congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
		ex := &mlv1.Exchange{Request: &mlv1.Request{Method: "POST", Url: "/charge", Headers: hdr("Traceparent", tp, "Tracestate", ts)},
			Response: &mlv1.Response{Status: 200, Headers: hdr("Traceparent", tp, "Tracestate", ts)}}
		if _, err := e.Redact(ex); err != nil {
			t.Fatal(err)
		}
		for _, hs := range [][]*mlv1.Header{ex.Request.Headers, ex.Response.Headers} {
			if v, _ := header(hs, "Traceparent"); v != tp {
				t.Fatalf("traceparent %q redacted to %q", tp, v)
			}
			if v, _ := header(hs, "Tracestate"); v != ts {
				t.Fatalf("tracestate %q redacted to %q", ts, v)
			}
		}
		if len(ex.Redactions) != 0 {
			t.Fatalf("redactions %v on trace context only", ex.Redactions)
		}
	}
}
