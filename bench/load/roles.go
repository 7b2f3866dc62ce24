package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	"github.com/mirrorline/mirrorline/broker"
)

// The harness runs its own servers as child processes of its own binary
// ("load role NAME ..."), so the primary, the shadow and the plain Go reverse
// proxy each get their own process, like mirrorline and nginx do. A child
// listens on 127.0.0.1:0, prints "ADDR host:port" on stdout, and exits when
// its stdin closes (the harness holds the other end) or on SIGTERM.

func runRole(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "load role: want app, goproxy or kafka")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	benchproc.Lifeline(cancel)
	if args[0] == "kafka" {
		// The fallback broker runs in its own process too, so that its memory
		// and GC do not disturb the load generator.
		emb, err := broker.StartEmbedded()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer emb.Close()
		fmt.Printf("ADDR %s\n", strings.Join(emb.Addrs(), ","))
		<-ctx.Done()
		return 0
	}
	var h http.Handler
	fs := flag.NewFlagSet("role "+args[0], flag.ContinueOnError)
	switch args[0] {
	case "app":
		name := fs.String("name", "app", "primary or shadow")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		h = newApp(*name)
	case "goproxy":
		primary := fs.String("primary", "", "URL of the primary")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		u, err := url.Parse(*primary)
		if err != nil || u.Host == "" {
			fmt.Fprintf(os.Stderr, "load role goproxy: bad -primary %q\n", *primary)
			return 2
		}
		h = benchproc.GoProxy(u)
	default:
		fmt.Fprintf(os.Stderr, "load role: unknown role %q\n", args[0])
		return 2
	}
	return benchproc.ServeRole(ctx, h)
}

// app is the primary and the shadow: a small payments-like API with a
// settable delay that counts the distinct benchmark requests of the current
// step and their delay since the load generator sent them.
type app struct {
	name  string
	delay atomic.Int64 // ns

	mu     sync.Mutex
	step   uint64
	seen   map[uint64]struct{}
	dups   int64
	stale  int64
	total  int64
	e2e    *hdrhistogram.Histogram
	lastAt time.Time
}

// appStats is what /_bench/stats returns.
type appStats struct {
	Step     uint64 `json:"step"`
	Total    int64  `json:"total"`    // requests of any step
	Distinct int64  `json:"distinct"` // distinct requests of this step
	Dups     int64  `json:"dups"`
	Stale    int64  `json:"stale"` // requests of earlier steps
	P50us    int64  `json:"p50_us"`
	P99us    int64  `json:"p99_us"`
	MaxUs    int64  `json:"max_us"`
	LastAtNs int64  `json:"last_at_ns"`
}

func newApp(name string) *app {
	return &app{name: name, seen: map[uint64]struct{}{}, e2e: newHist()}
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/_bench/ctl":
		d, err := time.ParseDuration(r.URL.Query().Get("delay"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.delay.Store(int64(d))
		return
	case "/_bench/reset":
		step, err := strconv.ParseUint(r.URL.Query().Get("step"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.step, a.seen, a.dups, a.stale, a.lastAt = step, map[uint64]struct{}{}, 0, 0, time.Time{}
		a.e2e.Reset()
		a.mu.Unlock()
		return
	case "/_bench/stats":
		a.mu.Lock()
		st := appStats{Step: a.step, Total: a.total, Distinct: int64(len(a.seen)), Dups: a.dups, Stale: a.stale,
			P50us: a.e2e.ValueAtQuantile(50), P99us: a.e2e.ValueAtQuantile(99), MaxUs: a.e2e.Max()}
		if !a.lastAt.IsZero() {
			st.LastAtNs = a.lastAt.UnixNano()
		}
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	now := time.Now()
	if v := r.Header.Get(benchHeader); v != "" {
		if step, seq, sent, ok := parseBenchHeader(v); ok {
			a.mu.Lock()
			a.total++
			if _, dup := a.seen[seq]; step != a.step {
				a.stale++
			} else if dup {
				a.dups++
			} else {
				a.seen[seq] = struct{}{}
				record(a.e2e, now.Sub(sent))
				a.lastAt = now
			}
			a.mu.Unlock()
		}
	}
	if d := time.Duration(a.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	benchproc.WriteAnswer(w, r, a.name)
}
