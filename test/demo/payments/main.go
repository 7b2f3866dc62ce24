// Command payments is the bundled demo "payments" service used by `make demo`
// and end-to-end tests. Run one instance as the primary (v1) and another as
// the shadow (v2, the regressed release):
//
//	payments --listen 127.0.0.1:18081 --name primary --version v1
//	payments --listen 127.0.0.1:18082 --name shadow --version v2
//
// With --gateway URL, POST /payments charges the card with the bundled card
// gateway (test/demo/gateway) first, propagating traceparent and tracestate.
//
// Endpoints: POST /payments, GET /payments/{id}, GET /users/{id}, GET /health,
// and the introspection endpoints GET /_demo/stats, GET /_demo/requests,
// POST /_demo/reset. See package app for details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mirrorline/mirrorline/test/demo/payments/app"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("payments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:18081", "address to listen on")
	name := fs.String("name", "primary", "instance name used in logs and stats")
	version := fs.String("version", app.V1, "release to emulate: v1 (good) or v2 (regressed)")
	seed := fs.Int64("seed", 1, "seed for the deterministic latency profile")
	maxReqs := fs.Int("max-requests", app.DefaultMaxRequests, "number of requests kept for /_demo/requests")
	gateway := fs.String("gateway", "", "base URL of the card gateway POST /payments charges (off when empty)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "payments: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if !app.ValidVersion(*version) {
		fmt.Fprintf(stderr, "payments: --version: must be %q or %q, got %q\n", app.V1, app.V2, *version)
		return 2
	}
	if *maxReqs <= 0 {
		fmt.Fprintf(stderr, "payments: --max-requests: must be positive, got %d\n", *maxReqs)
		return 2
	}

	if *gateway != "" {
		if u, err := url.Parse(*gateway); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fmt.Fprintf(stderr, "payments: --gateway: must be an http or https URL\n")
			return 2
		}
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "payments: %v\n", err)
		return 1
	}
	h := app.New(app.Config{Name: *name, Version: *version, Seed: *seed, Log: stderr, MaxRequests: *maxReqs, Gateway: *gateway})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "name=%s version=%s seed=%d listening on http://%s\n", *name, *version, *seed, ln.Addr())

	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "payments: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	stop()
	fmt.Fprintf(stderr, "name=%s shutting down\n", *name)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "payments: shutdown: %v\n", err)
		return 1
	}
	return 0
}
