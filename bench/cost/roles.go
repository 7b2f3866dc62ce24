package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

// The harness runs its peers as child processes of its own binary
// ("cost role NAME ..."), so each gets its own CPU account in /proc: the
// primary and the shadow (app), a plain Go reverse proxy (goproxy), a plain
// Go HTTP server that reads each request and answers 200 (receiver, the
// sink's floor in Go) and a vegeta sender (vegeta, the live replayer's
// peer). A child prints "ADDR x" once ready, and exits when its stdin
// closes (the harness holds the other end) or on SIGTERM.

func runRole(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "cost role: want app, goproxy, receiver or vegeta")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fs := flag.NewFlagSet("role "+args[0], flag.ContinueOnError)
	var h http.Handler
	switch args[0] {
	case "vegeta":
		target := fs.String("target", "", "URL to send to")
		n := fs.Int("n", 0, "requests to send")
		rate := fs.Int("rate", 0, "requests per second")
		if err := fs.Parse(args[1:]); err != nil || *n <= 0 || *rate <= 0 || *target == "" {
			fmt.Fprintln(os.Stderr, "cost role vegeta: want -target, -n and -rate")
			return 2
		}
		return vegetaRole(*target, *n, *rate)
	case "app":
		name := fs.String("name", "app", "primary or shadow")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		h = newApp(*name)
	case "receiver":
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		h = http.HandlerFunc(receive)
	case "goproxy":
		primary := fs.String("primary", "", "URL of the primary")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		u, err := url.Parse(*primary)
		if err != nil || u.Host == "" {
			fmt.Fprintln(os.Stderr, "cost role goproxy: bad -primary")
			return 2
		}
		h = benchproc.GoProxy(u)
	default:
		fmt.Fprintf(os.Stderr, "cost role: unknown role %q\n", args[0])
		return 2
	}
	benchproc.Lifeline(cancel)
	return benchproc.ServeRole(ctx, h)
}

// vegetaRole waits for "go" on stdin, sends n requests at rate to target
// with vegeta (as the live replayer would send n records), prints "DONE
// ok errors" and waits for stdin to close.
func vegetaRole(target string, n, rate int) int {
	fmt.Println("ADDR -")
	in := bufio.NewScanner(os.Stdin)
	if !in.Scan() || strings.TrimSpace(in.Text()) != "go" {
		return 0
	}
	ok, bad, _ := attack(context.Background(), target, n, rate, 64)
	fmt.Printf("DONE %d %d\n", ok, bad)
	for in.Scan() {
	}
	return 0
}

// attack sends n requests to base at rate per second (an open model: vegeta
// paces them whatever the answers), alternately GET /payments/ID?expand=card
// and POST /payments with benchproc.PaymentJSON, and returns how many got a 2xx answer and how
// many did not.
func attack(ctx context.Context, base string, n, rate, workers int) (ok, bad int, firstErr string) {
	base = strings.TrimSuffix(base, "/")
	hdr := http.Header{"Content-Type": []string{"application/json"}}
	var i atomic.Int64
	targeter := func(t *vegeta.Target) error {
		k := i.Add(1)
		if k > int64(n) {
			return vegeta.ErrNoTargets
		}
		if k%2 == 0 {
			t.Method, t.URL, t.Body, t.Header = http.MethodPost, base+"/payments", []byte(benchproc.PaymentJSON), hdr
		} else {
			t.Method, t.URL, t.Body, t.Header = http.MethodGet, fmt.Sprintf("%s/payments/p-%d?expand=card", base, k), nil, nil
		}
		return nil
	}
	a := vegeta.NewAttacker(vegeta.Workers(uint64(workers)), vegeta.KeepAlive(true), vegeta.Timeout(10*time.Second),
		vegeta.Connections(workers), vegeta.MaxBody(0))
	defer a.Stop()
	for res := range a.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, 0, "cost") {
		if res.Error == vegeta.ErrNoTargets.Error() {
			continue // the end of the targets, not a request
		}
		if res.Code >= 200 && res.Code < 300 {
			ok++
		} else {
			if bad == 0 {
				firstErr = fmt.Sprintf("%d %s", res.Code, res.Error)
			}
			bad++
		}
		if ctx.Err() != nil {
			a.Stop()
		}
	}
	return ok, bad, firstErr
}

// receive is all a mirror receiver must do, and nothing of what the sink
// does with it: read the copy's body to its end (so the connection can be
// reused) and answer 200 with no body, as the sink answers.
func receive(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
}

// app is the primary and the shadow: a small payments-like API that counts
// the requests it answered (GET /_cost/count).
type app struct {
	name string
	n    atomic.Int64
}

func newApp(name string) *app { return &app{name: name} }

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_cost/count" {
		fmt.Fprintf(w, "%d\n", a.n.Load())
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	a.n.Add(1)
	benchproc.WriteAnswer(w, r, a.name)
}
