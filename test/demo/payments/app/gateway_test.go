package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	gateway "github.com/mirrorline/mirrorline/test/demo/gateway/app"
)

// recordingGateway is the demo card gateway with the calls it received.
type recordingGateway struct {
	*httptest.Server
	gw    *gateway.Gateway
	mu    sync.Mutex
	calls []*http.Request
	body  []string
}

func newRecordingGateway(t *testing.T) *recordingGateway {
	t.Helper()
	g := &recordingGateway{gw: gateway.New(gateway.Config{})}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.calls, g.body = append(g.calls, r.Clone(context.Background())), append(g.body, string(data))
		g.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(data))
		g.gw.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// TestPaymentChargesGateway: with a gateway, POST /payments charges it
// (v1 in cents, v2 in units: the downstream regression), propagating the
// trace context, and answers as without a gateway.
func TestPaymentChargesGateway(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const ts = "mirrorline=0af7651916cd43dd8448eb211c80319c,congo=t61rcWkgMzE"
	tests := []struct {
		version, wantBody string
	}{
		{V1, `{"amount_cents":1250,"currency":"EUR"}`},
		{V2, `{"amount_cents":12.5,"currency":"EUR"}`},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			g := newRecordingGateway(t)
			a, _ := newApp(t, Config{Name: "primary", Version: tc.version, Gateway: g.URL + "/"})
			rec := do(t, a, "POST", "/payments", asciiBody, map[string]string{"traceparent": tp, "tracestate": ts})
			if rec.Code != http.StatusCreated {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var pr PaymentResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &pr); err != nil || pr.Amount != 990 || pr.Status != "authorized" {
				t.Errorf("response %s (%v)", rec.Body, err)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if len(g.calls) != 1 {
				t.Fatalf("%d gateway calls, want 1", len(g.calls))
			}
			c := g.calls[0]
			want := strings.Replace(tc.wantBody, "1250", "990", 1)
			want = strings.Replace(want, "12.5", "9.9", 1)
			want = strings.Replace(want, "EUR", "USD", 1)
			if c.Method != "POST" || c.URL.Path != "/charge" || g.body[0] != want {
				t.Errorf("call %s %s %s, want POST /charge %s", c.Method, c.URL.Path, g.body[0], want)
			}
			if c.Header.Get("traceparent") != tp || c.Header.Get("tracestate") != ts || c.Header.Get(InstanceHeader) != "primary" {
				t.Errorf("headers %v: trace context or instance not propagated", c.Header)
			}
			if s := g.gw.Stats(); s.Instances["primary"] != 1 {
				t.Errorf("gateway stats %+v", s)
			}
		})
	}
}

// TestPaymentWithoutGateway: no gateway configured, no call and the same
// answer; a v2 rejection never charges; a failing gateway gives 502.
func TestPaymentWithoutGateway(t *testing.T) {
	g := newRecordingGateway(t)
	a, _ := newApp(t, Config{Version: V1})
	if rec := do(t, a, "POST", "/payments", asciiBody, nil); rec.Code != http.StatusCreated {
		t.Fatalf("status %d", rec.Code)
	}
	b, _ := newApp(t, Config{Version: V2, Gateway: g.URL})
	if rec := do(t, b, "POST", "/payments", validBody, nil); rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("v2 non-ASCII address: status %d", rec.Code)
	}
	if s := g.gw.Stats(); s.Total != 0 {
		t.Errorf("gateway called %d times, want 0", s.Total)
	}
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Mirrorline-Stub", "miss")
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()
	c, _ := newApp(t, Config{Version: V1, Gateway: down.URL})
	rec := do(t, c, "POST", "/payments", asciiBody, nil)
	if rec.Code != http.StatusBadGateway || strings.TrimSpace(rec.Body.String()) != `{"error":"card gateway error"}` {
		t.Errorf("failing gateway: %d %s", rec.Code, rec.Body)
	}
}
