package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one part of the process is ready; nil means ready.
type Check func(ctx context.Context) error

// Server serves /metrics, /healthz and /readyz, and Go's runtime profiles
// under /debug/pprof/ when Profiling is set.
type Server struct {
	Registry *prometheus.Registry
	// Profiling also serves net/http/pprof's handlers at /debug/pprof/
	// (CPU, heap, goroutine, mutex and block profiles, execution traces):
	// they show the program's code paths, sizes and stacks, never the
	// traffic it carries, but they are for an operator's network only.
	Profiling bool
	mu        sync.Mutex
	checks    map[string]Check
}

// NewServer returns a Server with a fresh registry holding the Go and process collectors.
func NewServer() *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{Registry: reg, checks: map[string]Check{}}
}

// AddCheck registers a readiness check under name.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

// Handler returns the HTTP handler of the endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	if s.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{Registry: s.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		s.mu.Lock()
		names := make([]string, 0, len(s.checks))
		for n := range s.checks {
			names = append(names, n)
		}
		checks := make(map[string]Check, len(s.checks))
		for n, c := range s.checks {
			checks[n] = c
		}
		s.mu.Unlock()
		sort.Strings(names)
		failed := false
		var body []byte
		for _, n := range names {
			if err := checks[n](ctx); err != nil {
				failed = true
				body = fmt.Appendf(body, "%s: not ready: %v\n", n, err)
			} else {
				body = fmt.Appendf(body, "%s: ok\n", n)
			}
		}
		if failed {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(body)
	})
	return mux
}

// Serve listens on addr and serves until ctx ends. An empty addr disables it.
// The bound address is sent on bound (if not nil) once listening.
func (s *Server) Serve(ctx context.Context, addr string, bound chan<- string) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	if bound != nil {
		bound <- ln.Addr().String()
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener serves on ln, which the caller bound (so a port in use fails
// before anything else starts), until ctx ends; it closes ln.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics serve: %w", err)
	}
	return nil
}
