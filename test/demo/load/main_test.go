package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mirrorline/mirrorline/test/demo/payments/app"
)

func luhnValid(s string) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return len(s) >= 12 && sum%10 == 0
}

func TestTestCardsAreLuhnValid(t *testing.T) {
	for _, c := range testCards {
		if !luhnValid(c) {
			t.Errorf("%s is not Luhn-valid", c)
		}
	}
	if luhnValid("4111111111111112") {
		t.Errorf("luhnValid accepts an invalid number")
	}
}

func TestGeneratorIsDeterministic(t *testing.T) {
	a, b, c := newGenerator(7), newGenerator(7), newGenerator(8)
	differs := false
	for i := range 200 {
		ja, jb, jc := a.next(), b.next(), c.next()
		if !reflect.DeepEqual(ja, jb) {
			t.Fatalf("job %d differs for the same seed:\n%+v\n%+v", i, ja, jb)
		}
		differs = differs || !reflect.DeepEqual(ja, jc)
	}
	if !differs {
		t.Errorf("seeds 7 and 8 generate the same sequence")
	}
}

func TestGeneratorMix(t *testing.T) {
	const n = 5000
	g := newGenerator(1)
	kinds := map[string]int{}
	var auth, cookie, nonASCII int
	for range n {
		j := g.next()
		kinds[j.kind]++
		if j.header.Get("User-Agent") == "" || len(j.header.Get("X-Request-Id")) != 36 {
			t.Fatalf("missing User-Agent or X-Request-Id: %v", j.header)
		}
		if v := j.header.Get("Authorization"); v != "" {
			auth++
			if parts := strings.Split(strings.TrimPrefix(v, "Bearer "), "."); len(parts) != 3 || !strings.HasPrefix(v, "Bearer ey") {
				t.Fatalf("not a JWT: %q", v)
			}
		}
		if j.header.Get("Cookie") != "" {
			cookie++
		}
		switch j.kind {
		case kindPostPayment:
			var body struct {
				Amount   int64
				Currency string
				Card     struct{ Number, Expiry, Holder string }
				Customer struct{ ID, Email, Phone, Address string }
			}
			if err := json.Unmarshal(j.body, &body); err != nil {
				t.Fatalf("POST body %q: %v", j.body, err)
			}
			if body.Amount <= 0 || body.Currency == "" || !luhnValid(body.Card.Number) || body.Card.Expiry == "" ||
				body.Customer.Email == "" || body.Customer.Phone == "" || body.Customer.Address == "" {
				t.Fatalf("incomplete POST body %s", j.body)
			}
			if !isASCII(body.Customer.Address) {
				nonASCII++
			}
			if j.method != http.MethodPost || j.pathQuery != "/payments" || j.header.Get("Content-Type") != "application/json" {
				t.Fatalf("bad POST job %+v", j)
			}
		case kindGetPayment:
			if j.method != http.MethodGet || !strings.HasPrefix(j.pathQuery, "/payments/") || j.body != nil {
				t.Fatalf("bad GET payment job %+v", j)
			}
		case kindGetUser:
			u, err := url.Parse(j.pathQuery)
			if err != nil || j.method != http.MethodGet || !strings.HasPrefix(u.Path, "/users/") ||
				u.Query().Get("include") != "profile" || !strings.Contains(u.Query().Get("email"), "@") {
				t.Fatalf("bad GET user job %+v", j)
			}
		default:
			t.Fatalf("unknown kind %q", j.kind)
		}
	}
	within := func(name string, got int, lo, hi float64) {
		if f := float64(got) / n; f < lo || f > hi {
			t.Errorf("%s fraction = %.3f, want [%.2f, %.2f]", name, f, lo, hi)
		}
	}
	within("POST /payments", kinds[kindPostPayment], 0.57, 0.63)
	within("GET /payments/{id}", kinds[kindGetPayment], 0.22, 0.28)
	within("GET /users/{id}", kinds[kindGetUser], 0.12, 0.18)
	within("Authorization", auth, 0.3, 0.7)
	within("Cookie", cookie, 0.15, 0.45)
	if nonASCII == 0 || nonASCII == kinds[kindPostPayment] {
		t.Errorf("want a mix of ASCII and non-ASCII addresses, got %d/%d non-ASCII", nonASCII, kinds[kindPostPayment])
	}
}

func isASCII(s string) bool { return utf8.ValidString(s) && len([]rune(s)) == len(s) }

func noSleep(context.Context, time.Duration) {}

// TestRunAgainstDemoService runs the load script against in-process demo
// services; rate 0 means no pacing, and the services never really sleep.
func TestRunAgainstDemoService(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		rate     float64
		n        int
		want4xx  bool
		wantCode int
	}{
		{"v1 all succeed", app.V1, 0, 300, false, 0},
		{"v2 rejects some", app.V2, 0, 300, true, 0},
		{"paced by ticker", app.V1, 5000, 20, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := app.New(app.Config{Version: tc.version, Sleep: noSleep})
			srv := httptest.NewServer(a)
			defer srv.Close()
			cfg := config{target: srv.URL, n: tc.n, rate: tc.rate, concurrency: 4, seed: 1, timeout: 10 * time.Second}
			var stderr bytes.Buffer
			s := run(context.Background(), cfg, srv.Client(), &stderr)
			if s.sent != tc.n || s.errors != 0 || s.interrupted {
				t.Fatalf("summary %+v, stderr %s", s, stderr.String())
			}
			if got := s.classes[2] + s.classes[4]; got != tc.n {
				t.Errorf("2xx+4xx = %d, want %d", got, tc.n)
			}
			if (s.classes[4] > 0) != tc.want4xx {
				t.Errorf("4xx = %d, want4xx %v", s.classes[4], tc.want4xx)
			}
			st := a.Stats()
			if st.Total != uint64(tc.n) || st.Shadow != 0 {
				t.Errorf("service stats %+v", st)
			}
			if st.Routes["POST /payments"] != uint64(s.byKind[kindPostPayment]) ||
				st.Routes["GET /payments/{id}"] != uint64(s.byKind[kindGetPayment]) ||
				st.Routes["GET /users/{id}"] != uint64(s.byKind[kindGetUser]) {
				t.Errorf("service routes %v vs load kinds %v", st.Routes, s.byKind)
			}
			line := s.String(cfg.target)
			for _, want := range []string{"sent=", "2xx=", "4xx=", "errors=0", "duration=", "rate="} {
				if !strings.Contains(line, want) || strings.Contains(line, "\n") {
					t.Errorf("summary line %q lacks %q", line, want)
				}
			}
		})
	}
}

func TestMainRunExitCodes(t *testing.T) {
	a := app.New(app.Config{Sleep: noSleep})
	srv := httptest.NewServer(a)
	defer srv.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"ok", []string{"--target", srv.URL, "--n", "30", "--rate", "0"}, 0, "sent=30 "},
		{"transport errors", []string{"--target", deadURL, "--n", "3", "--rate", "0", "--timeout", "2s"}, 1, "errors=3"},
		{"bad target", []string{"--target", "ftp://x"}, 2, ""},
		{"bad concurrency", []string{"--concurrency", "0"}, 2, ""},
		{"bad n", []string{"--n", "-1"}, 2, ""},
		{"unknown flag", []string{"--nope"}, 2, ""},
		{"stray arg", []string{"extra"}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := mainRun(context.Background(), tc.args, &stdout, &stderr); code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stdout %q stderr %q", code, tc.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantOut) {
				t.Errorf("stdout %q lacks %q", stdout.String(), tc.wantOut)
			}
			if tc.wantCode == 2 && stderr.Len() == 0 {
				t.Errorf("no error message for bad flags")
			}
			if strings.Contains(stderr.String(), "example") {
				t.Errorf("stderr leaks request data: %s", stderr.String())
			}
		})
	}
}

func TestInterruptedRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := run(ctx, config{target: "http://127.0.0.1:1", n: 10, rate: 0, concurrency: 2, timeout: time.Second}, http.DefaultClient, io.Discard)
	if !s.interrupted || s.errors != 0 {
		t.Errorf("summary %+v", s)
	}
}
