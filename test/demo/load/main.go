// Command load is the bundled load script for the demo "payments" service.
// It sends a realistic, seeded mix of requests carrying synthetic personal
// data (test card numbers, emails, phones, non-ASCII addresses, bearer
// tokens, cookies) so the redactor, replayer and comparator have something
// to chew on:
//
//	load --target http://127.0.0.1:8080 --n 300 --rate 50 --concurrency 8 --seed 1
//
// Mix: 60% POST /payments, 25% GET /payments/{id}, 15% GET /users/{id}?
// include=profile&email=... . Requests are paced by a ticker (open model):
// one request is released per tick regardless of how many are in flight, and
// at most --concurrency are sent at once. --rate 0 sends as fast as possible.
//
// It prints one summary line to stdout and exits 1 if any request failed at
// the transport level (2 on bad flags).
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := mainRun(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config holds the parsed flags.
type config struct {
	target      string
	n           int
	rate        float64
	concurrency int
	seed        int64
	timeout     time.Duration
}

func mainRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if err.Error() != "" {
			fmt.Fprintf(stderr, "load: %v\n", err)
		}
		return 2
	}
	client := &http.Client{
		Timeout: cfg.timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        cfg.concurrency,
			MaxIdleConnsPerHost: cfg.concurrency,
			IdleConnTimeout:     30 * time.Second,
		},
		// Report redirects as 3xx instead of following them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s := run(ctx, cfg, client, stderr)
	fmt.Fprintln(stdout, s.String(cfg.target))
	if s.interrupted {
		fmt.Fprintln(stderr, "load: interrupted")
		return 1
	}
	if s.errors > 0 {
		return 1
	}
	return 0
}

type silentError struct{}

func (silentError) Error() string { return "" }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.target, "target", "http://127.0.0.1:8080", "base URL to send requests to (the proxy in front of the primary)")
	fs.IntVar(&cfg.n, "n", 300, "number of requests to send")
	fs.Float64Var(&cfg.rate, "rate", 50, "requests per second (open model); 0 = as fast as possible")
	fs.IntVar(&cfg.concurrency, "concurrency", 8, "maximum requests in flight")
	fs.Int64Var(&cfg.seed, "seed", 1, "seed for the request mix and synthetic data")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Second, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, silentError{} // flag already printed the error
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case cfg.n < 0:
		return cfg, fmt.Errorf("--n: must be >= 0, got %d", cfg.n)
	case cfg.rate < 0:
		return cfg, fmt.Errorf("--rate: must be >= 0, got %g", cfg.rate)
	case cfg.concurrency < 1:
		return cfg, fmt.Errorf("--concurrency: must be >= 1, got %d", cfg.concurrency)
	case cfg.timeout <= 0:
		return cfg, fmt.Errorf("--timeout: must be > 0, got %s", cfg.timeout)
	}
	u, err := url.Parse(cfg.target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("--target: want an http(s) URL, got %q", cfg.target)
	}
	cfg.target = strings.TrimRight(cfg.target, "/")
	return cfg, nil
}

// summary aggregates the outcome of a run.
type summary struct {
	sent        int
	classes     [6]int // index = status/100; 0 unused
	errors      int
	byKind      map[string]int
	latencies   []time.Duration
	duration    time.Duration
	interrupted bool
}

// String renders the one-line summary.
func (s *summary) String(target string) string {
	rate := 0.0
	if s.duration > 0 {
		rate = float64(s.sent) / s.duration.Seconds()
	}
	lat := slices.Clone(s.latencies)
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("load: target=%s sent=%d 2xx=%d 3xx=%d 4xx=%d 5xx=%d errors=%d post_payment=%d get_payment=%d get_user=%d duration=%s rate=%.1f/s p50=%s p99=%s",
		target, s.sent, s.classes[2], s.classes[3], s.classes[4], s.classes[5], s.errors,
		s.byKind[kindPostPayment], s.byKind[kindGetPayment], s.byKind[kindGetUser],
		s.duration.Round(time.Millisecond), rate, pct(0.50), pct(0.99))
}

// run sends cfg.n requests and returns the summary. Transport errors are
// counted; the first few are printed to stderr (without URLs or payloads).
func run(ctx context.Context, cfg config, client *http.Client, stderr io.Writer) *summary {
	s := &summary{byKind: map[string]int{}}
	gen := newGenerator(cfg.seed)
	jobs := make(chan job, max(cfg.n, 1))
	start := time.Now()

	var interval time.Duration
	if cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.rate)
	}
	go func() {
		defer close(jobs)
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		for i := range cfg.n {
			if i > 0 && tick != nil {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			} else if ctx.Err() != nil {
				return
			}
			jobs <- gen.next()
		}
	}()

	var mu sync.Mutex
	var wg sync.WaitGroup
	printed := 0
	for range cfg.concurrency {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue // drain
				}
				t0 := time.Now()
				code, err := send(ctx, client, cfg.target, j)
				d := time.Since(t0)
				mu.Lock()
				s.sent++
				s.byKind[j.kind]++
				if err != nil {
					if ctx.Err() == nil {
						s.errors++
						if printed < 5 {
							printed++
							fmt.Fprintf(stderr, "load: %s %s: %v\n", j.method, j.route, err)
						}
					}
				} else {
					s.latencies = append(s.latencies, d)
					if c := code / 100; c >= 1 && c <= 5 {
						s.classes[c]++
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	s.duration = time.Since(start)
	s.interrupted = ctx.Err() != nil
	return s
}

// send performs one request and returns the response status code.
func send(ctx context.Context, client *http.Client, target string, j job) (int, error) {
	var body io.Reader
	if j.body != nil {
		body = strings.NewReader(string(j.body))
	}
	req, err := http.NewRequestWithContext(ctx, j.method, target+j.pathQuery, body)
	if err != nil {
		return 0, err
	}
	for k, vs := range j.header {
		req.Header[k] = vs
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL: its query carries (synthetic) PII
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Request kinds of the mix.
const (
	kindPostPayment = "post_payment"
	kindGetPayment  = "get_payment"
	kindGetUser     = "get_user"
)

// job is one generated request.
type job struct {
	kind      string
	method    string
	route     string // path template, safe to print
	pathQuery string
	header    http.Header
	body      []byte
}

// Synthetic data. Card numbers are the well-known Luhn-valid test numbers.
var (
	testCards = []string{
		"4111111111111111", // Visa
		"5555555555554444", // Mastercard
		"378282246310005",  // Amex
		"4012888888881881", // Visa
		"6011111111111117", // Discover
		"5105105105105100", // Mastercard
	}
	holders = []string{
		"Zoë Müller", "José Álvarez", "Anna Kowalska", "山田太郎",
		"John Smith", "Ngozi Okafor", "Søren Kierkegaard", "Émilie Durand",
	}
	emails = []string{
		"zoe@example.com", "jose.alvarez@example.org", "anna.k@example.net",
		"taro.yamada@example.jp", "john.smith@example.com", "ngozi@example.com",
		"someone@example.com", "emilie+shop@example.fr",
	}
	phones = []string{
		"+49 30 1234567", "+48 42 555 0101", "+81 3-1234-5678",
		"+44 20 7946 0958", "+1 650-555-0100", "+33 1 23 45 67 89",
	}
	addresses = []string{
		"Straße des 17. Juni 1, 10623 Berlin",
		"ul. Piotrkowska 12, 90-001 Łódź",
		"東京都千代田区丸の内1-1",
		"Ørstedsgade 7, 1400 København",
		"221B Baker Street, London",
		"1600 Amphitheatre Pkwy, Mountain View, CA",
		"5 Rue de Rivoli, 75001 Paris",
		"Calle Mayor 3, 28013 Madrid",
		"Keizersgracht 123, Amsterdam",
		"42 Main St, Springfield",
	}
	currencies = []string{"EUR", "EUR", "EUR", "USD", "GBP", "PLN", "JPY"}
	userAgents = []string{
		"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		"payments-android/3.14.1 (Pixel 8; Android 14)",
		"mirrorline-demo-load/1.0",
	}
)

// generator produces a deterministic request sequence for a seed.
type generator struct {
	rng *rand.Rand
}

func newGenerator(seed int64) *generator {
	return &generator{rng: rand.New(rand.NewPCG(uint64(seed), 0x6d6972726f726c69))}
}

func pick[T any](g *generator, xs []T) T { return xs[g.rng.IntN(len(xs))] }

// bytes returns n seeded (not crypto-random) bytes.
func (g *generator) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.rng.UintN(256))
	}
	return b
}

// uuid returns a seeded version 4 UUID.
func (g *generator) uuid() string {
	u := uuid.UUID(g.bytes(16))
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}

// next returns the next request of the mix.
func (g *generator) next() job {
	idx := g.rng.IntN(len(holders))
	name, email := holders[idx], emails[idx]
	customerID := "c-" + strconv.Itoa(100+g.rng.IntN(900))
	h := http.Header{}
	h.Set("User-Agent", pick(g, userAgents))
	h.Set("X-Request-Id", g.uuid())
	h.Set("Accept", "application/json")
	if g.rng.IntN(100) < 50 {
		h.Set("Authorization", "Bearer "+g.jwt(customerID, name, email))
	}
	if g.rng.IntN(100) < 30 {
		h.Set("Cookie", "session_id="+hex.EncodeToString(g.bytes(16))+"; user_email="+url.QueryEscape(email)+"; theme=dark")
	}

	var j job
	switch r := g.rng.IntN(100); {
	case r < 60:
		body := map[string]any{
			"amount":   100 + g.rng.IntN(50000),
			"currency": pick(g, currencies),
			"card": map[string]string{
				"number": pick(g, testCards),
				"expiry": fmt.Sprintf("%02d/%02d", 1+g.rng.IntN(12), 26+g.rng.IntN(6)),
				"holder": name,
			},
			"customer": map[string]string{
				"id":      customerID,
				"email":   email,
				"phone":   pick(g, phones),
				"address": pick(g, addresses),
			},
		}
		b, _ := json.Marshal(body)
		h.Set("Content-Type", "application/json")
		j = job{kind: kindPostPayment, method: http.MethodPost, route: "/payments", pathQuery: "/payments", body: b}
	case r < 85:
		j = job{kind: kindGetPayment, method: http.MethodGet, route: "/payments/{id}", pathQuery: "/payments/" + g.uuid()}
	default:
		q := url.Values{"include": {"profile"}, "email": {email}}
		j = job{kind: kindGetUser, method: http.MethodGet, route: "/users/{id}", pathQuery: "/users/" + customerID + "?" + q.Encode()}
	}
	j.header = h
	return j
}

// jwt returns a syntactically valid, unsigned-in-spirit fake JWT whose
// payload carries personal data (for the redactor to find).
func (g *generator) jwt(sub, name, email string) string {
	enc := base64.RawURLEncoding
	hdr := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	iat := 1_750_000_000 + g.rng.Int64N(10_000_000)
	claims, _ := json.Marshal(map[string]any{"sub": sub, "name": name, "email": email, "iat": iat, "exp": iat + 3600})
	return hdr + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(g.bytes(32))
}
