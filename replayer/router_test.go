package replayer

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer/breaker"
	"github.com/mirrorline/mirrorline/replayer/credential"
	"github.com/mirrorline/mirrorline/replayer/route"
)

// hit is one request a test shadow received.
type hit struct {
	method, path, query, auth, env string
	body                           string
}

// hitServer is a shadow that records what it receives and answers status.
type hitServer struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []hit
	status int
}

func newHitServer(t *testing.T) *hitServer {
	t.Helper()
	s := &hitServer{status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		buf := make([]byte, 512)
		for {
			n, err := r.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		s.mu.Lock()
		s.hits = append(s.hits, hit{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization"), env: r.Header.Get("X-Env"), body: b.String()})
		status := s.status
		s.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *hitServer) got() []hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]hit(nil), s.hits...)
}

func (s *hitServer) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

func exchange(id, method, target, body string, headers ...string) *mlv1.Exchange {
	req := &mlv1.Request{Method: method, Url: target, Body: []byte(body), BodySize: int64(len(body))}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Headers = append(req.Headers, &mlv1.Header{Name: headers[i], Value: headers[i+1]})
	}
	return &mlv1.Exchange{Id: id, Service: "svc", Request: req, Response: &mlv1.Response{Status: 200}}
}

func newTestRouter(t *testing.T, def string, r Routing, opts ...Option) *Router {
	t.Helper()
	s, err := NewSender(def, 2)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRouter(s, r, func(target string) (*Sender, error) { return NewSender(target, 2) }, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// Routes: the first match wins; a skip route and --safe skip (filtered);
// a route with a target of its own sends there, rewritten; the shadow
// record's request is what was sent.
func TestRouterRoutes(t *testing.T) {
	a, b := newHitServer(t), newHitServer(t)
	rt := newTestRouter(t, a.URL, Routing{Routes: []RouteConfig{
		{Name: "admin", Match: route.Match{Paths: []string{"/admin/**"}}, Action: ActionSkip},
		{Name: "v2", Match: route.Match{Paths: []string{"/v2/**"}}, Target: b.URL, Transform: route.Transform{
			SetHeaders: map[string]string{"X-Env": "shadow"},
			Path:       &route.PathRewrite{Match: "^/v2/(.*)$", Replace: "/$1"},
			AddQuery:   map[string]string{"shadow": "1"},
		}},
	}})
	ctx := context.Background()
	cases := []struct {
		ex     *mlv1.Exchange
		skip   string
		target string
	}{
		{ex: exchange("1", "GET", "/v1/users?x=1", "")},
		{ex: exchange("2", "POST", "/v2/orders", `{"a":1}`), target: b.URL},
		{ex: exchange("3", "GET", "/admin/users", ""), skip: DropFiltered},
	}
	for _, tc := range cases {
		out, err := rt.Replay(ctx, tc.ex)
		if tc.skip != "" {
			var sk *Skipped
			if !errors.As(err, &sk) || sk.Reason != tc.skip {
				t.Fatalf("%s: err %v, want skipped %s", tc.ex.Id, err, tc.skip)
			}
			if got := rt.Selects(tc.ex); got != tc.skip {
				t.Fatalf("%s: Selects %q, want %q", tc.ex.Id, got, tc.skip)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.ex.Id, err)
		}
		want := cmpOr(tc.target, a.URL)
		if out.Target != want || out.Response.GetStatus() != 200 {
			t.Fatalf("%s: sent to %s (status %d), want %s", tc.ex.Id, out.Target, out.Response.GetStatus(), want)
		}
	}
	ha, hb := a.got(), b.got()
	if len(ha) != 1 || ha[0].path != "/v1/users" || ha[0].query != "x=1" || ha[0].env != "" {
		t.Fatalf("shadow A got %+v", ha)
	}
	if len(hb) != 1 || hb[0].path != "/orders" || hb[0].query != "shadow=1" || hb[0].env != "shadow" || hb[0].body != `{"a":1}` {
		t.Fatalf("shadow B got %+v", hb)
	}
	out, err := rt.Replay(ctx, exchange("4", "GET", "/v2/x", ""))
	if err != nil {
		t.Fatal(err)
	}
	if out.Sent == nil || out.Sent.Url != "/x?shadow=1" || out.Route != "v2" {
		t.Fatalf("shadow record request %+v (route %q), want the rewritten /x?shadow=1 of route v2", out.Sent, out.Route)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// --safe and replay.select: what is not selected is skipped (filtered).
func TestRouterSelection(t *testing.T) {
	a := newHitServer(t)
	rt := newTestRouter(t, a.URL, Routing{Safe: true, Select: route.Match{ExcludePaths: []string{"/health"}}})
	for i, m := range []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"} {
		_, err := rt.Replay(context.Background(), exchange(m, m, "/x", ""))
		safe := i < 3
		if safe && err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if sk := (*Skipped)(nil); !safe && (!errors.As(err, &sk) || sk.Reason != DropFiltered) {
			t.Fatalf("%s: err %v, want filtered", m, err)
		}
	}
	if _, err := rt.Replay(context.Background(), exchange("h", "GET", "/health", "")); !errors.As(err, new(*Skipped)) {
		t.Fatalf("excluded path: err %v, want skipped", err)
	}
	for _, h := range a.got() {
		if h.method != "GET" && h.method != "HEAD" && h.method != "OPTIONS" {
			t.Fatalf("--safe sent a %s", h.method)
		}
	}
	if n := len(a.got()); n != 3 {
		t.Fatalf("%d requests sent, want 3", n)
	}
}

// A rewrite that would leave the target is refused by the check every
// request-target passes before a URL is built: nothing is sent.
func TestRouterRewriteCannotLeaveTarget(t *testing.T) {
	a := newHitServer(t)
	for _, repl := range []string{"//evil.example/x", "/../../etc/passwd", "http://evil.example/"} {
		rt := newTestRouter(t, a.URL, Routing{Routes: []RouteConfig{{Transform: route.Transform{Path: &route.PathRewrite{Match: "^.*$", Replace: repl}}}}})
		_, err := rt.Replay(context.Background(), exchange("1", "GET", "/x", ""))
		if err == nil {
			t.Fatalf("rewrite to %q was sent", repl)
		}
	}
	if n := len(a.got()); n != 0 {
		t.Fatalf("%d requests reached the target", n)
	}
}

// Credentials are set from a file, and the shadow record masks them.
func TestRouterCredentialsMasked(t *testing.T) {
	a := newHitServer(t)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	rt := newTestRouter(t, a.URL, Routing{Credentials: []credential.Header{{Name: "Authorization", File: file, Prefix: "Bearer "}}}, WithMetrics(m))
	out, err := rt.Replay(context.Background(), exchange("1", "GET", "/x", ""))
	if err != nil {
		t.Fatal(err)
	}
	if h := a.got(); len(h) != 1 || h[0].auth != "Bearer s3cret-token" {
		t.Fatalf("shadow got %+v", h)
	}
	if out.Sent == nil {
		t.Fatal("no sent request recorded")
	}
	for _, h := range out.Sent.Headers {
		if strings.Contains(h.Value, "s3cret") {
			t.Fatalf("shadow record holds the credential in %s", h.Name)
		}
		if h.Name == "Authorization" && h.Value != MaskedCredential {
			t.Fatalf("Authorization recorded as %q", h.Value)
		}
	}
	if got := testutil.ToFloat64(m.Credentials.WithLabelValues("Authorization", "set")); got != 1 {
		t.Fatalf("credentials_total{set} = %v", got)
	}
}

// The breaker: a failing target trips it, records are then skipped
// (breaker_open) without reaching the target, and it closes again once
// probes succeed.
func TestRouterBreakerSkips(t *testing.T) {
	a := newHitServer(t)
	a.setStatus(500)
	rt := newTestRouter(t, a.URL, Routing{Breaker: breaker.Config{ErrorRate: 0.5, MinRequests: 4, Window: time.Minute, OpenFor: time.Hour, Probes: 1}})
	ctx := context.Background()
	skipped := 0
	for i := range 20 {
		_, err := rt.Replay(ctx, exchange("x", "GET", "/x", ""))
		var sk *Skipped
		if errors.As(err, &sk) && sk.Reason == DropBreakerOpen {
			skipped++
		} else if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if sent := len(a.got()); sent != 4 || skipped != 16 {
		t.Fatalf("sent %d and skipped %d, want the breaker to open after 4 failures (16 skipped)", sent, skipped)
	}
}

// A window replay does not schedule what routing would skip; the summary
// counts it.
func TestWindowSkipsUnselected(t *testing.T) {
	a := newHitServer(t)
	rt := newTestRouter(t, a.URL, Routing{Safe: true})
	its := []Item{}
	for i, m := range []string{"GET", "POST", "GET", "DELETE"} {
		its = append(its, Item{Topic: "t", Offset: int64(i), Capture: time.Unix(0, 0).Add(time.Duration(i) * time.Millisecond), Exchange: exchange(m, m, "/x", "")})
	}
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(1000), time.Unix(0, 0), 1, 0), rt)
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Scheduled != 2 || sum.Sent != 2 || sum.Skipped[DropFiltered] != 2 {
		t.Fatalf("scheduled %d sent %d skipped %v, want 2, 2, filtered 2", sum.Scheduled, sum.Sent, sum.Skipped)
	}
}
