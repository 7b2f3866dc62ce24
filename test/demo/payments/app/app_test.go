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
	"time"
)

const validBody = `{"amount": 1250, "currency": "EUR", "card": {"number": "4111111111111111", "expiry": "12/29", "holder": "Zoë Müller"}, "customer": {"id": "c-123", "email": "zoe@example.com", "phone": "+49 30 1234567", "address": "Straße 1, Berlin"}}`

const asciiBody = `{"amount": 990, "currency": "USD", "card": {"number": "5555 5555 5555 4444", "expiry": "01/30"}, "customer": {"address": "221B Baker Street, London"}}`

// sleepRecorder is an injectable Config.Sleep that records instead of sleeping.
type sleepRecorder struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleepRecorder) sleep(_ context.Context, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delays = append(s.delays, d)
}

func (s *sleepRecorder) total() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.delays...)
}

var fixedNow = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// newApp returns an App that never really sleeps.
func newApp(t *testing.T, cfg Config) (*App, *sleepRecorder) {
	t.Helper()
	rec := &sleepRecorder{}
	cfg.Sleep = rec.sleep
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return fixedNow }
	}
	return New(cfg), rec
}

func do(t *testing.T, h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decode[T any](t *testing.T, w *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("decode %q: %v", w.Body.String(), err)
	}
	return v
}

func TestCreatePayment(t *testing.T) {
	tests := []struct {
		name      string
		version   string
		body      string
		wantCode  int
		wantError string // expected "error" field, if any
		wantLast4 string
	}{
		{"v1 accepts non-ASCII address", V1, validBody, http.StatusCreated, "", "1111"},
		{"v2 rejects non-ASCII address", V2, validBody, http.StatusUnprocessableEntity, "invalid address", ""},
		{"v2 accepts ASCII address", V2, asciiBody, http.StatusCreated, "", "4444"},
		{"v2 accepts missing customer", V2, `{"amount":1,"currency":"EUR","card":{"number":"378282246310005","expiry":"02/28"}}`, http.StatusCreated, "", "0005"},
		{"v1 accepts CJK address", V1, `{"amount":1,"currency":"JPY","card":{"number":"378282246310005","expiry":"02/28"},"customer":{"address":"東京都千代田区"}}`, http.StatusCreated, "", "0005"},
		{"v2 rejects CJK address", V2, `{"amount":1,"currency":"JPY","card":{"number":"378282246310005","expiry":"02/28"},"customer":{"address":"東京都千代田区"}}`, http.StatusUnprocessableEntity, "invalid address", ""},
		{"bad JSON", V1, `{"amount": 12`, http.StatusBadRequest, "invalid JSON", ""},
		{"bad JSON on v2", V2, `not json`, http.StatusBadRequest, "invalid JSON", ""},
		{"trailing data", V1, validBody + `{}`, http.StatusBadRequest, "invalid JSON: trailing data", ""},
		{"empty body", V1, ``, http.StatusBadRequest, "invalid JSON", ""},
		{"wrong type", V1, `{"amount":"12","currency":"EUR","card":{"number":"4111111111111111","expiry":"12/29"}}`, http.StatusBadRequest, "invalid JSON", ""},
		{"missing amount", V1, `{"currency":"EUR","card":{"number":"4111111111111111","expiry":"12/29"}}`, http.StatusBadRequest, "missing or invalid field: amount", ""},
		{"zero amount", V1, `{"amount":0,"currency":"EUR","card":{"number":"4111111111111111","expiry":"12/29"}}`, http.StatusBadRequest, "missing or invalid field: amount", ""},
		{"missing currency", V1, `{"amount":5,"card":{"number":"4111111111111111","expiry":"12/29"}}`, http.StatusBadRequest, "missing or invalid field: currency", ""},
		{"missing card", V1, `{"amount":5,"currency":"EUR"}`, http.StatusBadRequest, "missing or invalid field: card", ""},
		{"bad card number", V1, `{"amount":5,"currency":"EUR","card":{"number":"41x1","expiry":"12/29"}}`, http.StatusBadRequest, "missing or invalid field: card.number", ""},
		{"missing expiry", V1, `{"amount":5,"currency":"EUR","card":{"number":"4111111111111111"}}`, http.StatusBadRequest, "missing or invalid field: card.expiry", ""},
		{"bad expiry month", V1, `{"amount":5,"currency":"EUR","card":{"number":"4111111111111111","expiry":"13/29"}}`, http.StatusBadRequest, "missing or invalid field: card.expiry", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := newApp(t, Config{Version: tc.version})
			w := do(t, a, http.MethodPost, "/payments", tc.body, map[string]string{"Content-Type": "application/json"})
			if w.Code != tc.wantCode {
				t.Fatalf("status = %d, want %d (body %s)", w.Code, tc.wantCode, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tc.wantError != "" {
				got := decode[map[string]string](t, w)
				if got["error"] != tc.wantError {
					t.Errorf("error = %q, want %q", got["error"], tc.wantError)
				}
				return
			}
			got := decode[PaymentResponse](t, w)
			if got.Status != "authorized" || got.CardLast4 != tc.wantLast4 || got.Amount <= 0 || got.Currency == "" {
				t.Errorf("response = %+v", got)
			}
			if len(got.ID) != 36 {
				t.Errorf("id = %q, want a UUID", got.ID)
			}
			if ts, err := time.Parse(time.RFC3339Nano, got.CreatedAt); err != nil || !ts.Equal(fixedNow) {
				t.Errorf("created_at = %q (%v), want %s", got.CreatedAt, err, fixedNow.Format(time.RFC3339Nano))
			}
		})
	}
}

func TestPaymentEchoesAmountAndCurrency(t *testing.T) {
	a, _ := newApp(t, Config{})
	got := decode[PaymentResponse](t, do(t, a, http.MethodPost, "/payments", validBody, nil))
	if got.Amount != 1250 || got.Currency != "EUR" {
		t.Errorf("got %+v", got)
	}
}

// TestNoiseFields checks which fields change on every call (noise) and which
// are deterministic, across calls and across v1/v2 instances.
func TestNoiseFields(t *testing.T) {
	v1, _ := newApp(t, Config{Version: V1, Now: time.Now})
	v2, _ := newApp(t, Config{Version: V2, Now: time.Now, Seed: 7})

	p1 := decode[PaymentResponse](t, do(t, v1, http.MethodPost, "/payments", asciiBody, nil))
	p2 := decode[PaymentResponse](t, do(t, v2, http.MethodPost, "/payments", asciiBody, nil))
	if p1.ID == p2.ID {
		t.Errorf("payment ids should differ per call: %q", p1.ID)
	}
	p1.ID, p2.ID, p1.CreatedAt, p2.CreatedAt = "", "", "", ""
	if p1 != p2 {
		t.Errorf("apart from noise, v1 %+v != v2 %+v", p1, p2)
	}

	g1 := decode[Payment](t, do(t, v1, http.MethodGet, "/payments/pay-42", "", nil))
	g2 := decode[Payment](t, do(t, v2, http.MethodGet, "/payments/pay-42", "", nil))
	if g1.ID != "pay-42" || g1.Amount <= 0 || g1.Status == "" || g1.Currency == "" {
		t.Errorf("payment = %+v", g1)
	}
	if _, err := time.Parse(time.RFC3339Nano, g1.FetchedAt); err != nil {
		t.Errorf("fetched_at: %v", err)
	}
	g1.FetchedAt, g2.FetchedAt = "", ""
	if g1 != g2 {
		t.Errorf("payment not deterministic: %+v vs %+v", g1, g2)
	}
	if other := decode[Payment](t, do(t, v1, http.MethodGet, "/payments/pay-43", "", nil)); other.Amount == g1.Amount && other.Status == g1.Status && other.Currency == g1.Currency {
		t.Errorf("different ids should usually differ: %+v vs %+v", other, g1)
	}

	u1 := decode[User](t, do(t, v1, http.MethodGet, "/users/c-123?include=profile&email=someone%40example.com", "", nil))
	u2 := decode[User](t, do(t, v2, http.MethodGet, "/users/c-123?include=profile&email=someone%40example.com", "", nil))
	if u1.ID != "c-123" || u1.Name == "" || u1.Profile == nil || u1.RequestID == "" {
		t.Fatalf("user = %+v", u1)
	}
	if u1.RequestID == u2.RequestID {
		t.Errorf("request_id should differ per call")
	}
	if u1.Name != u2.Name || *u1.Profile != *u2.Profile {
		t.Errorf("user not deterministic: %+v vs %+v", u1, u2)
	}
	if u := decode[User](t, do(t, v1, http.MethodGet, "/users/c-123", "", nil)); u.Profile != nil {
		t.Errorf("profile without include=profile: %+v", u)
	}
	if strings.Contains(do(t, v1, http.MethodGet, "/users/c-123?email=someone%40example.com", "", nil).Body.String(), "someone") {
		t.Errorf("query email echoed in the response")
	}
}

func TestRoutes(t *testing.T) {
	a, _ := newApp(t, Config{})
	tests := []struct {
		method, target string
		want           int
	}{
		{http.MethodGet, "/health", http.StatusOK},
		{http.MethodHead, "/health", http.StatusOK},
		{http.MethodGet, "/payments/abc", http.StatusOK},
		{http.MethodGet, "/users/u1", http.StatusOK},
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodDelete, "/payments/abc", http.StatusMethodNotAllowed},
		{http.MethodGet, "/payments", http.StatusMethodNotAllowed},
		{http.MethodGet, "/_demo/stats", http.StatusOK},
		{http.MethodPost, "/_demo/stats", http.StatusMethodNotAllowed},
		{http.MethodGet, "/_demo/requests?limit=x", http.StatusBadRequest},
		{http.MethodGet, "/_demo/requests?shadow=maybe", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			if w := do(t, a, tc.method, tc.target, "", nil); w.Code != tc.want {
				t.Errorf("status = %d, want %d", w.Code, tc.want)
			}
		})
	}
}

func TestStatsCountShadowRequests(t *testing.T) {
	a, _ := newApp(t, Config{Name: "shadow", Version: V2})
	shadow := map[string]string{ShadowHeader: "true"}
	reqs := []struct {
		method, target, body string
		hdr                  map[string]string
	}{
		{http.MethodPost, "/payments", validBody, shadow},
		{http.MethodPost, "/payments", asciiBody, nil},
		{http.MethodGet, "/payments/a", "", shadow},
		{http.MethodGet, "/payments/b", "", shadow},
		{http.MethodGet, "/users/u?include=profile", "", nil},
		{http.MethodGet, "/health", "", map[string]string{ShadowHeader: "false"}},
		{http.MethodGet, "/missing", "", map[string]string{ShadowHeader: "TRUE"}},
		// Introspection requests are not counted.
		{http.MethodGet, "/_demo/stats", "", shadow},
		{http.MethodGet, "/_demo/requests", "", nil},
	}
	for _, r := range reqs {
		do(t, a, r.method, r.target, r.body, r.hdr)
	}
	want := Stats{
		Name: "shadow", Version: V2, Total: 7, Shadow: 4,
		Routes: map[string]uint64{
			"POST /payments": 2, "GET /payments/{id}": 2, "GET /users/{id}": 1,
			"GET /health": 1, "GET (unmatched)": 1,
		},
		ShadowRoutes: map[string]uint64{"POST /payments": 1, "GET /payments/{id}": 2, "GET (unmatched)": 1},
	}
	checkStats := func(t *testing.T, got Stats) {
		t.Helper()
		if got.Name != want.Name || got.Version != want.Version || got.Total != want.Total || got.Shadow != want.Shadow ||
			!equalCounts(got.Routes, want.Routes) || !equalCounts(got.ShadowRoutes, want.ShadowRoutes) {
			t.Errorf("stats = %+v\nwant    %+v", got, want)
		}
	}
	checkStats(t, a.Stats())
	checkStats(t, decode[Stats](t, do(t, a, http.MethodGet, "/_demo/stats", "", nil)))

	// The snapshot is a copy.
	s := a.Stats()
	s.Routes["POST /payments"] = 99
	checkStats(t, a.Stats())

	if w := do(t, a, http.MethodPost, "/_demo/reset", "", nil); w.Code != http.StatusOK {
		t.Fatalf("reset status %d", w.Code)
	}
	if s := a.Stats(); s.Total != 0 || s.Shadow != 0 || len(s.Routes) != 0 || len(a.Requests()) != 0 {
		t.Errorf("after reset: %+v, %d requests", s, len(a.Requests()))
	}
}

func equalCounts(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRequestsRecorded drives the handler over real HTTP, as an end-to-end
// test would, and checks /_demo/requests returns exactly what was sent.
func TestRequestsRecorded(t *testing.T) {
	a, _ := newApp(t, Config{Name: "shadow"})
	srv := httptest.NewServer(a)
	defer srv.Close()

	send := func(method, path, body string, hdr http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header = hdr
		req.Host = "shadow.internal:8080"
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	send(http.MethodPost, "/payments", validBody, http.Header{
		"Content-Type":     {"application/json"},
		"Authorization":    {"Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"},
		"X-Shadow-Request": {"true"},
		"X-Mirrorline-Id":  {"ex-1"},
		"X-Multi":          {"a", "b"},
	})
	send(http.MethodGet, "/users/c-123?include=profile&email=someone%40example.com", "", http.Header{"Cookie": {"session=s3cr3t"}})

	resp, err := srv.Client().Get(srv.URL + "/_demo/requests")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []Request
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d requests, want 2: %+v", len(got), got)
	}
	p, u := got[0], got[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"post seq", p.Seq, uint64(1)},
		{"post method", p.Method, http.MethodPost},
		{"post path", p.Path, "/payments"},
		{"post query", p.RawQuery, ""},
		{"post host", p.Host, "shadow.internal:8080"},
		{"post body", p.Body, validBody},
		{"post shadow", p.Shadow, true},
		{"post route", p.Route, "POST /payments"},
		{"post auth", strings.Join(p.Headers["Authorization"], ","), "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"},
		{"post mirrorline id", strings.Join(p.Headers["X-Mirrorline-Id"], ","), "ex-1"},
		{"post multi", strings.Join(p.Headers["X-Multi"], ","), "a,b"},
		{"post received", p.ReceivedAt.Equal(fixedNow), true},
		{"user seq", u.Seq, uint64(2)},
		{"user method", u.Method, http.MethodGet},
		{"user path", u.Path, "/users/c-123"},
		{"user query", u.RawQuery, "include=profile&email=someone%40example.com"},
		{"user body", u.Body, ""},
		{"user shadow", u.Shadow, false},
		{"user route", u.Route, "GET /users/{id}"},
		{"user cookie", strings.Join(u.Headers["Cookie"], ","), "session=s3cr3t"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Filters.
	for _, tc := range []struct {
		query    string
		wantSeqs []uint64
	}{
		{"", []uint64{1, 2}},
		{"?limit=1", []uint64{2}},
		{"?limit=0", []uint64{}},
		{"?limit=10", []uint64{1, 2}},
		{"?shadow=true", []uint64{1}},
		{"?shadow=false", []uint64{2}},
		{"?shadow=false&limit=1", []uint64{2}},
	} {
		reqs := decode[[]Request](t, do(t, a, http.MethodGet, "/_demo/requests"+tc.query, "", nil))
		var seqs []uint64
		for _, r := range reqs {
			seqs = append(seqs, r.Seq)
		}
		if len(seqs) != len(tc.wantSeqs) || (len(seqs) > 0 && !equalSeqs(seqs, tc.wantSeqs)) {
			t.Errorf("%q: seqs = %v, want %v", tc.query, seqs, tc.wantSeqs)
		}
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRequestRingIsBounded(t *testing.T) {
	a, _ := newApp(t, Config{MaxRequests: 3})
	for range 7 {
		do(t, a, http.MethodGet, "/health", "", nil)
	}
	got := a.Requests()
	if len(got) != 3 || got[0].Seq != 5 || got[1].Seq != 6 || got[2].Seq != 7 {
		t.Errorf("ring = %+v, want seqs 5,6,7", got)
	}
	if a.Stats().Total != 7 {
		t.Errorf("total = %d, want 7", a.Stats().Total)
	}
	if a.cfg.MaxRequests != 3 || New(Config{}).cfg.MaxRequests != DefaultMaxRequests {
		t.Errorf("MaxRequests defaults wrong")
	}
}

func TestBodyTooLarge(t *testing.T) {
	a, _ := newApp(t, Config{MaxBodyBytes: 10})
	w := do(t, a, http.MethodPost, "/payments", validBody, nil)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", w.Code)
	}
	r := a.Requests()[0]
	if !r.BodyTruncated || r.Body != validBody[:10] {
		t.Errorf("record = %+v", r)
	}
}

func TestLogsCarryNoPII(t *testing.T) {
	var buf bytes.Buffer
	a, _ := newApp(t, Config{Name: "primary", Log: &buf})
	do(t, a, http.MethodPost, "/payments", validBody, map[string]string{"Authorization": "Bearer secret-token", ShadowHeader: "true"})
	do(t, a, http.MethodGet, "/users/c-9?email=someone%40example.com", "", map[string]string{"Cookie": "sid=cookie-value"})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per request, got %q", buf.String())
	}
	for _, want := range []string{"name=primary", "method=POST", `path="/payments"`, "status=201", "shadow=true"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %q lacks %q", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], "shadow=false") || !strings.Contains(lines[1], "status=200") {
		t.Errorf("line %q", lines[1])
	}
	for _, secret := range []string{"zoe@example.com", "4111", "Müller", "Straße", "secret-token", "Bearer", "someone", "cookie-value", "email="} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log leaks %q: %s", secret, buf.String())
		}
	}
}

func TestSlowTailDecision(t *testing.T) {
	const n = 100_000
	tests := []struct {
		name         string
		version      string
		seed         int64
		minSlow      float64
		maxSlow      float64
		maxFastDelay time.Duration
	}{
		{"v1 only jitter", V1, 1, 0, 0, 2 * time.Millisecond},
		{"v2 about 3 percent", V2, 1, 0.025, 0.035, 2 * time.Millisecond},
		{"v2 other seed", V2, 42, 0.025, 0.035, 2 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tail := DefaultSlowTail(tc.version)
			slow := 0
			var sawJitter bool
			for seq := uint64(1); seq <= n; seq++ {
				d := tail.Decide(tc.seed, seq)
				if d != tail.Decide(tc.seed, seq) {
					t.Fatalf("seq %d: not deterministic", seq)
				}
				if d.Jitter < 0 || d.Jitter > tc.maxFastDelay {
					t.Fatalf("seq %d: jitter %s out of range", seq, d.Jitter)
				}
				sawJitter = sawJitter || d.Jitter > 0
				if d.Slow {
					slow++
					if extra := d.Delay - d.Jitter; extra < 40*time.Millisecond || extra > 60*time.Millisecond {
						t.Fatalf("seq %d: slow-tail extra %s not in [40ms, 60ms]", seq, extra)
					}
				} else if d.Delay != d.Jitter {
					t.Fatalf("seq %d: fast request delay %s != jitter %s", seq, d.Delay, d.Jitter)
				}
			}
			if !sawJitter {
				t.Errorf("no jitter at all")
			}
			if frac := float64(slow) / n; frac < tc.minSlow || frac > tc.maxSlow {
				t.Errorf("slow fraction = %.4f, want [%.3f, %.3f]", frac, tc.minSlow, tc.maxSlow)
			}
		})
	}

	t.Run("seed selects the subset", func(t *testing.T) {
		tail := DefaultSlowTail(V2)
		subset := func(seed int64) []uint64 {
			var s []uint64
			for seq := uint64(1); seq <= 2000; seq++ {
				if tail.Decide(seed, seq).Slow {
					s = append(s, seq)
				}
			}
			return s
		}
		a, b, c := subset(1), subset(1), subset(2)
		if !equalSeqs(a, b) {
			t.Errorf("same seed, different subsets")
		}
		if equalSeqs(a, c) {
			t.Errorf("different seeds, same subset %v", a)
		}
		if len(a) == 0 {
			t.Errorf("no slow requests in 2000")
		}
	})

	t.Run("custom profile", func(t *testing.T) {
		always := SlowTail{Fraction: 1, Min: 5 * time.Millisecond, Max: 5 * time.Millisecond}
		if d := always.Decide(3, 9); !d.Slow || d.Delay != 5*time.Millisecond {
			t.Errorf("got %+v", d)
		}
		if d := (SlowTail{}).Decide(3, 9); d.Slow || d.Delay != 0 {
			t.Errorf("zero profile: %+v", d)
		}
	})
}

// TestHandlerAppliesDecision checks the handler sleeps exactly Decide(seq) for
// API requests (through the injected Sleep, so nothing really sleeps) and that
// a reset replays the same decisions.
func TestHandlerAppliesDecision(t *testing.T) {
	for _, version := range []string{V1, V2} {
		t.Run(version, func(t *testing.T) {
			a, rec := newApp(t, Config{Version: version, Seed: 1})
			const n = 300
			run := func() []time.Duration {
				for i := range n {
					switch i % 3 {
					case 0:
						do(t, a, http.MethodPost, "/payments", asciiBody, nil)
					case 1:
						do(t, a, http.MethodGet, "/payments/x", "", nil)
					default:
						do(t, a, http.MethodGet, "/users/y", "", nil)
					}
				}
				do(t, a, http.MethodGet, "/health", "", nil) // never delayed
				return rec.total()
			}
			first := run()
			var want []time.Duration
			slow := 0
			for seq := uint64(1); seq <= n; seq++ {
				d := a.Decide(seq)
				if d.Slow {
					slow++
				}
				if d.Delay > 0 {
					want = append(want, d.Delay)
				}
			}
			if len(first) != len(want) {
				t.Fatalf("%d sleeps, want %d", len(first), len(want))
			}
			for i := range want {
				if first[i] != want[i] {
					t.Fatalf("sleep %d = %s, want %s", i, first[i], want[i])
				}
			}
			if version == V1 && slow != 0 {
				t.Errorf("v1 has %d slow requests", slow)
			}
			if version == V2 && slow == 0 {
				t.Errorf("v2 has no slow request in %d", n)
			}

			a.Reset()
			rec.delays = nil
			second := run()
			if len(second) != len(first) {
				t.Fatalf("after reset: %d sleeps, want %d", len(second), len(first))
			}
			for i := range first {
				if first[i] != second[i] {
					t.Fatalf("after reset sleep %d = %s, want %s", i, second[i], first[i])
				}
			}
		})
	}
}

func TestSleepContextHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { SleepContext(ctx, time.Hour); close(done) }()
	<-done // would hang (and time out the test) if cancellation were ignored
	SleepContext(context.Background(), 0)
}

func TestNewRejectsUnknownVersion(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("New did not panic on version v3")
		}
	}()
	New(Config{Version: "v3"})
}

func TestDefaults(t *testing.T) {
	a := New(Config{})
	if a.Name() != DefaultName || a.Version() != V1 {
		t.Errorf("name %q version %q", a.Name(), a.Version())
	}
	if !ValidVersion(V1) || !ValidVersion(V2) || ValidVersion("") || ValidVersion("v3") {
		t.Errorf("ValidVersion")
	}
}

func TestConcurrentRequests(t *testing.T) {
	a, _ := newApp(t, Config{Version: V2, MaxRequests: 50})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			hdr := map[string]string{}
			if i%2 == 0 {
				hdr[ShadowHeader] = "true"
			}
			do(t, a, http.MethodPost, "/payments", validBody, hdr)
			_ = a.Stats()
			_ = a.Requests()
		})
	}
	wg.Wait()
	if s := a.Stats(); s.Total != 200 || s.Shadow != 100 || s.Routes["POST /payments"] != 200 {
		t.Errorf("stats = %+v", s)
	}
	if n := len(a.Requests()); n != 50 {
		t.Errorf("ring len = %d, want 50", n)
	}
}
