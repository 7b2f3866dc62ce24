package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The harness runs its peers as child processes of its own binary
// ("cost role NAME ..."), so each gets its own CPU account in /proc: the
// primary and the shadow (app), a plain Go reverse proxy (goproxy) and a
// vegeta sender (vegeta, the live replayer's peer). A child prints "ADDR x"
// once ready, and exits when its stdin closes (the harness holds the other
// end) or on SIGTERM.

func runRole(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "cost role: want app, goproxy or vegeta")
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
		h = goProxy(u)
	default:
		fmt.Fprintf(os.Stderr, "cost role: unknown role %q\n", args[0])
		return 2
	}
	// Lifeline: the harness keeps our stdin open; EOF means it is gone.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 3*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
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

// benchBody is the POST body of the benchmark traffic, the same ~1 KB
// payments request with synthetic personal data as bench/load and the
// redactor's benchmark, so the redactor does real work.
const benchBody = `{
  "payment_id": "pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B",
  "merchant": {"id": "mch_8842", "name": "Café Zürich GmbH", "mcc": "5812", "country": "CH"},
  "amount": {"value": 1249.90, "currency": "CHF"},
  "customer": {
    "id": "cus_4411", "email": "zoe.angstrom@example.org", "name": "Zoë Ångström",
    "phone": "+41 44 668 18 00", "locale": "de-CH"
  },
  "card": {"number": "4111 1111 1111 1111", "exp_month": 12, "exp_year": 2029, "cvv": "123", "brand": "visa"},
  "billing_address": {"line1": "Bahnhofstrasse 1", "city": "Zürich", "postal_code": "8001", "country": "CH"},
  "items": [
    {"sku": "SKU-1001", "title": "Espresso beans 1kg", "qty": 2, "unit_price": 24.50},
    {"sku": "SKU-2002", "title": "Milk frother", "qty": 1, "unit_price": 89.00}
  ],
  "metadata": {"order_ref": "ORD-2024-000123", "channel": "web", "created_at": "2024-01-15T10:20:30Z"},
  "capture": true, "three_ds": {"version": "2.2.0", "status": "authenticated"}
}`

// attack sends n requests to base at rate per second (an open model: vegeta
// paces them whatever the answers), alternately GET /payments/ID?expand=card
// and POST /payments with benchBody, and returns how many got a 2xx answer and how
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
			t.Method, t.URL, t.Body, t.Header = http.MethodPost, base+"/payments", []byte(benchBody), hdr
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

// goProxy is a plain httputil.ReverseProxy with the transport settings of
// mirrorline's proxy collector and no capture.
func goProxy(primary *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(primary)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		},
	}
}

const getAnswer = `{"id":"p-1","status":"captured","amount":{"value":1249.90,"currency":"CHF"},"merchant":"mch_8842","created_at":"2024-01-15T10:20:30Z","links":{"self":"/payments/p-1","refunds":"/payments/p-1/refunds"}}`
const postAnswer = `{"id":"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B","status":"authorized","risk":{"score":12,"decision":"accept"}}`

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
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Served-By", a.name)
	if r.Method == http.MethodPost {
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, postAnswer)
		return
	}
	_, _ = io.WriteString(w, getAnswer)
}
