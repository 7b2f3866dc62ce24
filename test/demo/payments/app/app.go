// Package app implements the bundled "payments" demo service used by
// `make demo` and by mirrorline's end-to-end tests.
//
// The service is a tiny, stateless payments API with two releases: v1
// behaves, v2 is deliberately regressed (it rejects non-ASCII customer
// addresses and has a slow latency tail). Every response carries fields that
// change on each call (ids, timestamps) so the comparator has noise to learn.
//
// Besides the API, the service exposes introspection endpoints under /_demo/
// (stats, the last requests received, reset) so tests can assert what a
// primary or shadow actually saw. Requests to /_demo/ are not recorded.
//
// Embed it in tests with httptest:
//
//	a := app.New(app.Config{Name: "shadow", Version: app.V2, Seed: 1})
//	srv := httptest.NewServer(a)
//	defer srv.Close()
//	... a.Stats(), a.Requests() ...
package app

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Supported release versions.
const (
	// V1 is the well-behaved release.
	V1 = "v1"
	// V2 is the regressed release: 422 on non-ASCII addresses, slow tail.
	V2 = "v2"
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultName         = "payments"
	DefaultMaxRequests  = 10000
	DefaultMaxBodyBytes = 1 << 20
)

// ShadowHeader marks a replayed (shadow) request; its value is "true".
const ShadowHeader = "X-Shadow-Request"

// Config configures a demo service instance. The zero value is a usable v1
// service named "payments" with seed 0.
type Config struct {
	// Name identifies the instance in logs and stats ("primary", "shadow").
	Name string
	// Version is V1 (default when empty) or V2. New panics on anything else;
	// use ValidVersion to check user input first.
	Version string
	// Seed drives the deterministic latency decisions.
	Seed int64
	// SlowTail overrides the latency profile; nil means DefaultSlowTail(Version).
	SlowTail *SlowTail
	// Sleep applies a delay; nil means SleepContext. Tests inject a function
	// that records the delay instead of sleeping.
	Sleep func(ctx context.Context, d time.Duration)
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Log receives one line per request (name, method, path, status, shadow,
	// duration); never bodies, queries or header values. nil disables logging.
	Log io.Writer
	// MaxRequests bounds the ring of recorded requests; 0 means
	// DefaultMaxRequests.
	MaxRequests int
	// MaxBodyBytes bounds request bodies; larger bodies get 413 and are
	// recorded truncated. 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Gateway is the base URL of the card gateway ("http://127.0.0.1:18090");
	// when set, POST /payments charges the card with POST {Gateway}/charge
	// (propagating traceparent and tracestate) before answering, and answers
	// 502 when the gateway fails. Empty: no gateway call.
	Gateway string
	// Client makes the gateway calls; nil means a client of its own.
	Client *http.Client
}

// ValidVersion reports whether v names a supported release.
func ValidVersion(v string) bool { return v == V1 || v == V2 }

// Request is one request as received by the service (the /_demo/requests
// element type).
type Request struct {
	// Seq is the 1-based arrival sequence number since start or last reset.
	Seq uint64 `json:"seq"`
	// Method is the HTTP method.
	Method string `json:"method"`
	// Path is the decoded URL path.
	Path string `json:"path"`
	// RawQuery is the encoded query string without '?'.
	RawQuery string `json:"raw_query"`
	// Host is the Host header (Go keeps it out of Headers).
	Host string `json:"host"`
	// Headers are the request headers in canonical form.
	Headers map[string][]string `json:"headers"`
	// Body is the request body (truncated to MaxBodyBytes).
	Body string `json:"body"`
	// BodyTruncated is set when the body exceeded MaxBodyBytes.
	BodyTruncated bool `json:"body_truncated,omitempty"`
	// Shadow reports whether X-Shadow-Request: true was present.
	Shadow bool `json:"shadow"`
	// Route is the matched "METHOD /template" (see Stats.Routes).
	Route string `json:"route"`
	// ReceivedAt is when the request arrived.
	ReceivedAt time.Time `json:"received_at"`
}

// Stats are the request counters of an instance (the /_demo/stats body).
// /_demo/ requests are not counted.
type Stats struct {
	// Name and Version echo the Config.
	Name    string `json:"name"`
	Version string `json:"version"`
	// Total counts all requests.
	Total uint64 `json:"total"`
	// Shadow counts requests carrying X-Shadow-Request: true.
	Shadow uint64 `json:"shadow"`
	// Routes counts requests per "METHOD /path-template", e.g.
	// "POST /payments", "GET /payments/{id}", "GET /users/{id}",
	// "GET /health"; unmatched requests count as "METHOD (unmatched)".
	Routes map[string]uint64 `json:"routes"`
	// ShadowRoutes is Routes restricted to shadow requests.
	ShadowRoutes map[string]uint64 `json:"shadow_routes"`
}

// App is a demo service instance. It implements http.Handler.
type App struct {
	cfg   Config
	tail  SlowTail
	api   *http.ServeMux
	ctl   *http.ServeMux
	logMu sync.Mutex

	mu    sync.Mutex
	seq   uint64
	stats Stats
	ring  []Request // circular buffer of capacity cfg.MaxRequests
	head  int       // index of the oldest record when len(ring) == cap
}

// New returns a demo service configured by cfg. It panics if cfg.Version is
// neither empty, V1 nor V2.
func New(cfg Config) *App {
	cfg.Version = cmp.Or(cfg.Version, V1)
	cfg.Name = cmp.Or(cfg.Name, DefaultName)
	if !ValidVersion(cfg.Version) {
		panic(fmt.Sprintf("app: unknown version %q (want %q or %q)", cfg.Version, V1, V2))
	}
	if cfg.Sleep == nil {
		cfg.Sleep = SleepContext
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = DefaultMaxRequests
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	cfg.Gateway = strings.TrimRight(cfg.Gateway, "/")
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	a := &App{cfg: cfg, tail: DefaultSlowTail(cfg.Version)}
	if cfg.SlowTail != nil {
		a.tail = *cfg.SlowTail
	}
	a.resetLocked()

	a.api = http.NewServeMux()
	a.api.HandleFunc("POST /payments", a.delayed(a.createPayment))
	a.api.HandleFunc("GET /payments/{id}", a.delayed(a.getPayment))
	a.api.HandleFunc("GET /users/{id}", a.delayed(a.getUser))
	a.api.HandleFunc("GET /health", a.health)

	a.ctl = http.NewServeMux()
	a.ctl.HandleFunc("GET /_demo/stats", a.handleStats)
	a.ctl.HandleFunc("GET /_demo/requests", a.handleRequests)
	a.ctl.HandleFunc("POST /_demo/reset", a.handleReset)
	return a
}

// Name returns the configured instance name.
func (a *App) Name() string { return a.cfg.Name }

// Version returns the configured release version.
func (a *App) Version() string { return a.cfg.Version }

// Decide returns the latency decision the instance applies to the request with
// sequence number seq.
func (a *App) Decide(seq uint64) Decision { return a.tail.Decide(a.cfg.Seed, seq) }

// Stats returns a snapshot of the request counters.
func (a *App) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Routes = maps.Clone(a.stats.Routes)
	s.ShadowRoutes = maps.Clone(a.stats.ShadowRoutes)
	return s
}

// Requests returns the recorded requests, oldest first (at most
// Config.MaxRequests).
func (a *App) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Request, 0, len(a.ring))
	out = append(out, a.ring[a.head:]...)
	out = append(out, a.ring[:a.head]...)
	return out
}

// Reset clears the counters, the recorded requests and the sequence number
// (so latency decisions repeat from the start).
func (a *App) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resetLocked()
}

func (a *App) resetLocked() {
	a.seq = 0
	a.stats = Stats{
		Name:         a.cfg.Name,
		Version:      a.cfg.Version,
		Routes:       map[string]uint64{},
		ShadowRoutes: map[string]uint64{},
	}
	a.ring = make([]Request, 0, min(a.cfg.MaxRequests, 1024))
	a.head = 0
}

type seqKey struct{}

// ServeHTTP records and counts the request, then serves it.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	defer func() { a.logRequest(r, rw.status(), time.Since(start)) }()

	if strings.HasPrefix(r.URL.Path, "/_demo/") {
		a.ctl.ServeHTTP(rw, r)
		return
	}

	body, truncated, readErr := readBody(r.Body, a.cfg.MaxBodyBytes)
	r.Body = io.NopCloser(bytes.NewReader(body))
	_, pattern := a.api.Handler(r)
	route := r.Method + " (unmatched)"
	if _, tmpl, ok := strings.Cut(pattern, " "); ok && pattern != "" {
		route = r.Method + " " + tmpl
	}
	rec := Request{
		Method:        r.Method,
		Path:          r.URL.Path,
		RawQuery:      r.URL.RawQuery,
		Host:          r.Host,
		Headers:       map[string][]string(r.Header.Clone()),
		Body:          string(body),
		BodyTruncated: truncated,
		Shadow:        IsShadow(r),
		Route:         route,
		ReceivedAt:    a.cfg.Now(),
	}
	if rec.Headers == nil {
		rec.Headers = map[string][]string{}
	}
	seq := a.record(rec)

	switch {
	case truncated:
		writeError(rw, http.StatusRequestEntityTooLarge, "body too large")
		return
	case readErr != nil:
		writeError(rw, http.StatusBadRequest, "cannot read body")
		return
	}
	a.api.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), seqKey{}, seq)))
}

// IsShadow reports whether r carries X-Shadow-Request: true.
func IsShadow(r *http.Request) bool {
	return strings.EqualFold(strings.TrimSpace(r.Header.Get(ShadowHeader)), "true")
}

// record counts rec and appends it to the ring; it returns rec's sequence number.
func (a *App) record(rec Request) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	rec.Seq = a.seq
	a.stats.Total++
	a.stats.Routes[rec.Route]++
	if rec.Shadow {
		a.stats.Shadow++
		a.stats.ShadowRoutes[rec.Route]++
	}
	if len(a.ring) < a.cfg.MaxRequests {
		a.ring = append(a.ring, rec)
	} else {
		a.ring[a.head] = rec
		a.head = (a.head + 1) % len(a.ring)
	}
	return rec.Seq
}

// delayed wraps h with the instance's deterministic latency profile.
func (a *App) delayed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if seq, ok := r.Context().Value(seqKey{}).(uint64); ok {
			if d := a.Decide(seq); d.Delay > 0 {
				a.cfg.Sleep(r.Context(), d.Delay)
			}
		}
		h(w, r)
	}
}

func readBody(body io.Reader, limit int64) (b []byte, truncated bool, err error) {
	if body == nil {
		return nil, false, nil
	}
	b, err = io.ReadAll(io.LimitReader(body, limit+1))
	if int64(len(b)) > limit {
		return b[:limit], true, err
	}
	return b, false, err
}

// logRequest writes one logfmt line; never bodies, queries or header values.
func (a *App) logRequest(r *http.Request, status int, d time.Duration) {
	if a.cfg.Log == nil {
		return
	}
	line := fmt.Sprintf("name=%s version=%s method=%s path=%q status=%d shadow=%t duration=%s\n",
		a.cfg.Name, a.cfg.Version, r.Method, r.URL.Path, status, IsShadow(r), d.Round(time.Microsecond))
	a.logMu.Lock()
	defer a.logMu.Unlock()
	_, _ = io.WriteString(a.cfg.Log, line)
}

// statusWriter remembers the response status for logging.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
