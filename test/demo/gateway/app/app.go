// Package app implements the bundled "card gateway" demo dependency: the
// service the demo payments app charges cards with (POST /charge). It is the
// side effect mirroring must never trigger from a shadow, so it counts the
// calls it receives per calling instance (the X-Demo-Instance header the
// payments app sends: "primary", "shadow") and exposes the counts on
// GET /_demo/stats; POST /_demo/reset clears them.
//
// Embed it in tests with httptest:
//
//	g := app.New(app.Config{})
//	srv := httptest.NewServer(g)
//	defer srv.Close()
//	... g.Stats().Instances["shadow"] ...
package app

import (
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strconv"
	"sync"

	"github.com/google/uuid"
)

// InstanceHeader names the caller's instance ("primary", "shadow"); calls
// without it count as "unknown".
const InstanceHeader = "X-Demo-Instance"

// maxBody bounds a /charge request body.
const maxBody = 64 << 10

// Config configures a gateway. The zero value is usable.
type Config struct {
	// NewID returns authorization ids; nil means random UUIDs.
	NewID func() string
}

// Charge is the POST /charge body.
type Charge struct {
	// AmountCents is the amount in minor units; required, > 0.
	AmountCents *json.Number `json:"amount_cents"`
	// Currency is an ISO 4217 code; required.
	Currency string `json:"currency"`
}

// Authorization is the 200 body of POST /charge.
type Authorization struct {
	AuthorizationID string      `json:"authorization_id"`
	Status          string      `json:"status"`
	AmountCents     json.Number `json:"amount_cents"`
	Currency        string      `json:"currency"`
}

// Stats are the gateway's call counters (the /_demo/stats body).
type Stats struct {
	// Total counts POST /charge calls, Instances by X-Demo-Instance.
	Total     uint64            `json:"total"`
	Instances map[string]uint64 `json:"instances"`
}

// Gateway is a card gateway instance. It implements http.Handler.
type Gateway struct {
	cfg   Config
	mux   *http.ServeMux
	mu    sync.Mutex
	stats Stats
}

// New returns a gateway configured by cfg.
func New(cfg Config) *Gateway {
	if cfg.NewID == nil {
		cfg.NewID = uuid.NewString
	}
	g := &Gateway{cfg: cfg, stats: Stats{Instances: map[string]uint64{}}}
	g.mux = http.NewServeMux()
	g.mux.HandleFunc("POST /charge", g.charge)
	g.mux.HandleFunc("GET /_demo/stats", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, g.Stats()) })
	g.mux.HandleFunc("POST /_demo/reset", func(w http.ResponseWriter, _ *http.Request) {
		g.Reset()
		writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	})
	g.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return g
}

// ServeHTTP serves the gateway's endpoints.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

// Stats returns a snapshot of the counters.
func (g *Gateway) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.stats
	s.Instances = maps.Clone(g.stats.Instances)
	return s
}

// Reset clears the counters.
func (g *Gateway) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stats = Stats{Instances: map[string]uint64{}}
}

// charge counts the call (whatever its body: a shadow call reaching the
// gateway is the side effect to see), then authorizes a valid charge.
func (g *Gateway) charge(w http.ResponseWriter, r *http.Request) {
	inst := r.Header.Get(InstanceHeader)
	if inst == "" || len(inst) > 32 {
		inst = "unknown"
	}
	g.mu.Lock()
	g.stats.Total++
	g.stats.Instances[inst]++
	g.mu.Unlock()

	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.UseNumber()
	var c Charge
	if err := dec.Decode(&c); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON")
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid JSON: trailing data")
		return
	}
	if c.AmountCents == nil {
		writeError(w, http.StatusBadRequest, "missing or invalid field: amount_cents")
		return
	}
	if n, err := c.AmountCents.Float64(); err != nil || n <= 0 {
		writeError(w, http.StatusBadRequest, "missing or invalid field: amount_cents")
		return
	}
	if len(c.Currency) != 3 {
		writeError(w, http.StatusBadRequest, "missing or invalid field: currency")
		return
	}
	writeJSON(w, http.StatusOK, Authorization{AuthorizationID: g.cfg.NewID(), Status: "approved", AmountCents: *c.AmountCents, Currency: c.Currency})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
