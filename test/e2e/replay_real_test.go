package e2e

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// Replaying against a real service (issue 14): credentials, re-signed JWTs,
// routes, --safe, a middleware program and the circuit breaker, each through
// the mirrorline binary against the real broker and shadows on loopback.

// realShadow is a shadow service whose answer answer decides; it records
// every request it gets.
type realShadow struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newRealShadow(t *testing.T, answer func(r *http.Request, body []byte) int) *realShadow {
	t.Helper()
	s := &realShadow{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: b})
		s.mu.Unlock()
		w.WriteHeader(answer(r, b))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *realShadow) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.reqs...)
}

func (s *realShadow) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

// creq is a captured request.
type creq struct {
	method, url string
	headers     [][2]string
	body        string
}

// exchangeRecord returns the record of a captured exchange (answered 200 by
// the primary) on topic partition p, captured at at.
func exchangeRecord(t *testing.T, topic, id string, p int32, at time.Time, r creq) *kgo.Record {
	t.Helper()
	req := &mlv1.Request{Method: r.method, Url: r.url, Host: "primary.example", Proto: "HTTP/1.1", Body: []byte(r.body), BodySize: int64(len(r.body))}
	for _, h := range r.headers {
		req.Headers = append(req.Headers, &mlv1.Header{Name: h[0], Value: h[1]})
	}
	ex := &mlv1.Exchange{Id: id, ConnectionId: "conn-" + id, CaptureTimeNs: at.UnixNano(), Source: mlv1.Source_SOURCE_PROXY,
		Request: req, Response: &mlv1.Response{Status: 200}}
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(ex.ConnectionId), Value: b, Timestamp: at}
}

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// header returns the value of header name of a recorded request ("" when
// absent).
func header(hs []*mlv1.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) {
			return h.GetValue()
		}
	}
	return ""
}

// sameTarget compares two base URLs, ignoring a trailing slash.
func sameTarget(a, b string) bool { return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/") }

// window returns the window [t0, t0 + n*gap + 1s) of n records captured gap
// apart from t0.
func window(t0 time.Time, n int, gap time.Duration) (string, string) {
	return stamp(t0), stamp(t0.Add(time.Duration(n)*gap + time.Second))
}

// The shadow requires its own bearer token, which the redactor removed from
// the captured requests: replay.credentials reads it from a file and every
// request is accepted; without it every request is refused (401). The token
// never reaches a shadow record (its value there is masked) nor the
// replayer's output, debug logs included.
func TestReplayInjectsBearerCredentials(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	const secret, n, gap = "shadow-token-6f1c9a2e7b", 20, 10 * time.Millisecond
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range n {
		r := creq{method: "GET", url: fmt.Sprintf("/orders/%d?expand=items", i)}
		if i%2 == 1 {
			r = creq{method: "POST", url: "/orders", headers: [][2]string{{"Content-Type", "application/json"}}, body: fmt.Sprintf(`{"order":%d}`, i)}
		}
		recs = append(recs, exchangeRecord(t, topic, fmt.Sprintf("cred-%d", i), int32(i%2), t0.Add(time.Duration(i)*gap), r))
	}
	produceRecords(t, recs)
	shadow := newRealShadow(t, func(r *http.Request, _ []byte) int {
		if r.Header.Get("Authorization") == "Bearer "+secret {
			return http.StatusOK
		}
		return http.StatusUnauthorized
	})
	dir := t.TempDir()
	token := writeFile(t, dir, "shadow-token", secret+"\n") // as `echo TOKEN > file` writes it
	cfg := writeFile(t, dir, "replay.yaml", fmt.Sprintf(`service: %s
log_level: debug
replay:
  credentials:
    - {header: Authorization, file: %s, prefix: "Bearer "}
`, svc, token))
	from, to := window(t0, n, gap)

	out, code, sum := runReplay(t, "-c", cfg, "--target", shadow.URL, "--from", from, "--to", to, "--rate", "200/s", "--job", "with-credentials")
	if code != 0 || sum == nil || sum.Sent != n || sum.Status["2xx"] != n {
		t.Fatalf("with credentials: exit %d, report %+v, want %d sent, all 2xx\n%s", code, sum, n, out)
	}
	if strings.Contains(out, secret) {
		t.Fatalf("the replayer's output holds the credential:\n%s", out)
	}
	out, code, sum = runReplay(t, "--service", svc, "--target", shadow.URL, "--from", from, "--to", to, "--rate", "200/s", "--job", "without-credentials")
	if code == 2 || sum == nil || sum.Sent != n || sum.Status["4xx"] != n || sum.Status["2xx"] != 0 {
		t.Fatalf("without credentials: exit %d, report %+v, want %d sent, all 4xx\n%s", code, sum, n, out)
	}
	authorized := 0
	for _, r := range shadow.requests() {
		if r.Header.Get("Authorization") == "Bearer "+secret {
			authorized++
		}
	}
	if got := shadow.count(); got != 2*n || authorized != n {
		t.Fatalf("shadow got %d requests (want %d), %d with the token (want %d)", got, 2*n, authorized, n)
	}

	masked := 0
	for _, ex := range kafkatest.ReadExchanges(t, kafkaBrokers, broker.Topic(broker.Shadow, svc), 2*n, time.Minute) {
		b, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("shadow record %s holds the credential", ex.GetId())
		}
		if ex.GetReplay().GetJob() == "with-credentials" {
			if v := header(ex.GetRequest().GetHeaders(), "Authorization"); v != replayer.MaskedCredential {
				t.Fatalf("shadow record %s: Authorization %q, want %q", ex.GetId(), v, replayer.MaskedCredential)
			}
			masked++
		}
	}
	if masked != n {
		t.Fatalf("%d shadow records of the replay with credentials, want %d", masked, n)
	}
}

// b64 is the base64url (unpadded) encoding of JSON Web Tokens.
var b64 = base64.RawURLEncoding

// signRS256 returns a JWT of claims signed with key (RS256).
func signRS256(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64.EncodeToString(sig)
}

// verifyRS256 checks token's RS256 signature with pub and its exp, and
// returns its claims. It is written here, apart from the replayer's signer,
// so that the shadow's check shares no code with what it checks.
func verifyRS256(pub *rsa.PublicKey, token string, now time.Time) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%d segments", len(parts))
	}
	var hdr struct{ Alg string }
	hb, err := b64.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &hdr) != nil || hdr.Alg != "RS256" {
		return nil, fmt.Errorf("header is not RS256: %v", err)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	cb, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(cb, &claims); err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	exp, ok := claims["exp"].(float64)
	if !ok || time.Unix(int64(exp), 0).Before(now) {
		return nil, fmt.Errorf("exp %v is not in the future", claims["exp"])
	}
	return claims, nil
}

// Production tokens signed with the production key go through the redactor
// (authorization: unsign, "**.email": mask): the clean topic keeps their
// claims, the email masked, without a signature. The replayer re-signs them
// with the test key (replay.jwt) and the shadow, which trusts only the test
// key, accepts every request with the captured subject.
func TestReplayResignsJWT(t *testing.T) {
	svc, _ := replaySetup(t, 2)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}
	prodKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	testKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "test-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))

	const n, gap = 20, 10 * time.Millisecond
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	raw := broker.Topic(broker.Raw, svc)
	var recs []*kgo.Record
	for i := range n {
		tok := signRS256(t, prodKey, "prod", map[string]any{
			"sub": fmt.Sprintf("user-%d", i), "email": fmt.Sprintf("user-%d@example.com", i),
			"iss": "https://login.example", "exp": time.Now().Add(time.Hour).Unix(),
		})
		recs = append(recs, exchangeRecord(t, raw, fmt.Sprintf("jwt-%d", i), int32(i%2), t0.Add(time.Duration(i)*gap),
			creq{method: "GET", url: fmt.Sprintf("/users/user-%d", i), headers: [][2]string{{"Authorization", "Bearer " + tok}}}))
	}
	produceRecords(t, recs)
	redactCfg := writeFile(t, dir, "redact.yaml", fmt.Sprintf(`service: %s
redact:
  rules:
    headers: {authorization: unsign}
    json_fields: {"**.email": mask}
`, svc))
	startML(t, env, "redact", "-c", redactCfg, "--transactional-id", "redact-"+svc, "--metrics-addr", testproc.FreeAddr(t))

	// The clean topic holds the claims without a signature.
	clean := kafkatest.ReadExchanges(t, kafkaBrokers, broker.Topic(broker.Clean, svc), n, time.Minute, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for _, ex := range clean {
		auth := header(ex.GetRequest().GetHeaders(), "Authorization")
		tok, ok := strings.CutPrefix(auth, "Bearer ")
		if !ok || strings.Count(tok, ".") != 2 || !strings.HasSuffix(tok, ".") {
			t.Fatalf("clean record %s: Authorization %q, want \"Bearer HEADER.CLAIMS.\"", ex.GetId(), auth)
		}
		if _, err := verifyRS256(&prodKey.PublicKey, tok, time.Now()); err == nil {
			t.Fatalf("clean record %s holds a valid production signature", ex.GetId())
		}
		if strings.Contains(auth, "@example.com") {
			t.Fatalf("clean record %s: the email claim is not masked", ex.GetId())
		}
	}

	var bad sync.Map // request path -> why the shadow refused it
	shadow := newRealShadow(t, func(r *http.Request, _ []byte) int {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			bad.Store(r.URL.Path, "no bearer token")
			return http.StatusUnauthorized
		}
		claims, err := verifyRS256(&testKey.PublicKey, tok, time.Now())
		if err != nil {
			bad.Store(r.URL.Path, err.Error())
			return http.StatusUnauthorized
		}
		want := strings.TrimPrefix(r.URL.Path, "/users/")
		email, _ := claims["email"].(string)
		if claims["sub"] != want || claims["iss"] != "https://login.example" || email == "" || strings.Contains(email, "@") {
			bad.Store(r.URL.Path, fmt.Sprintf("sub %v (want %s), iss %v, email %q", claims["sub"], want, claims["iss"], email))
			return http.StatusForbidden
		}
		return http.StatusOK
	})
	replayCfg := writeFile(t, dir, "replay.yaml", fmt.Sprintf(`service: %s
log_level: debug
replay:
  jwt: {alg: RS256, key_file: %s, kid: test}
`, svc, keyFile))
	from, to := window(t0, n, gap)
	out, code, sum := runReplay(t, "-c", replayCfg, "--target", shadow.URL, "--from", from, "--to", to, "--rate", "200/s")
	bad.Range(func(k, v any) bool { t.Errorf("shadow refused %s: %s", k, v); return true })
	if code != 0 || sum == nil || sum.Sent != n || sum.Status["2xx"] != n {
		t.Fatalf("exit %d, report %+v, want %d sent, all 2xx\n%s", code, sum, n, out)
	}
	subjects := map[string]bool{}
	for _, r := range shadow.requests() {
		subjects[strings.TrimPrefix(r.URI, "/users/")] = true
	}
	if len(subjects) != n {
		t.Fatalf("the shadow saw %d subjects, want %d", len(subjects), n)
	}
	if pemKey, _ := os.ReadFile(keyFile); strings.Contains(out, strings.Split(string(pemKey), "\n")[1]) {
		t.Fatalf("the replayer's output holds the test key")
	}
	for _, ex := range kafkatest.ReadExchanges(t, kafkaBrokers, broker.Topic(broker.Shadow, svc), n, time.Minute) {
		if v := header(ex.GetRequest().GetHeaders(), "Authorization"); v != replayer.MaskedCredential {
			t.Fatalf("shadow record %s: Authorization %q, want %q", ex.GetId(), v, replayer.MaskedCredential)
		}
	}
}

// replay.routes: /admin/** is skipped, /v2/** goes to shadow B rewritten
// (a header set, /v2/x -> /x), the rest to the replay target A. Each shadow
// gets exactly its requests; the skipped ones are counted as filtered; the
// shadow records name the target each request went to and the request-target
// it was sent with.
func TestReplayRoutesFanOut(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	const n = 30 // 10 of each kind
	now := time.Now()
	var recs []*kgo.Record
	want := map[string]string{} // id -> request-target sent
	for i := range n {
		id := fmt.Sprintf("route-%d", i)
		var url string
		switch i % 3 {
		case 0:
			url, want[id] = fmt.Sprintf("/v2/items/%d?page=2", i), fmt.Sprintf("/items/%d?page=2", i)
		case 1:
			url, want[id] = fmt.Sprintf("/v1/items/%d", i), fmt.Sprintf("/v1/items/%d", i)
		case 2:
			url = fmt.Sprintf("/admin/users/%d", i)
		}
		recs = append(recs, exchangeRecord(t, topic, id, int32(i%2), now, creq{method: "GET", url: url}))
	}
	produceRecords(t, recs)
	ok := func(*http.Request, []byte) int { return http.StatusOK }
	a, b := newRealShadow(t, ok), newRealShadow(t, ok)
	cfg := writeFile(t, t.TempDir(), "replay.yaml", fmt.Sprintf(`service: %s
replay:
  routes:
    - name: no-admin
      match: {paths: ["/admin/**"]}
      action: skip
    - name: v2
      match: {paths: ["/v2/**"]}
      target: %s
      transform:
        set_headers: {X-Route: v2}
        path: {match: "^/v2/(.*)$", replace: "/$1"}
`, svc, b.URL))
	metrics := testproc.FreeAddr(t)
	out := startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}, "replay", "--live", "-c", cfg, "--target", a.URL,
		"--group", "routes-"+svc, "--start", "earliest", "--metrics-addr", metrics)

	filtered := func() float64 {
		v, _ := metricValue(metrics, "mirrorline_replayer_dropped_total", "reason", "filtered")
		return v
	}
	testproc.Eventually(t, 60*time.Second, "10 requests at each shadow and 10 filtered", func() bool {
		return a.count() >= 10 && b.count() >= 10 && filtered() >= 10
	})
	shadowRecs := kafkatest.ReadExchanges(t, kafkaBrokers, broker.Topic(broker.Shadow, svc), 20, time.Minute)
	if a.count() != 10 || b.count() != 10 || filtered() != 10 {
		t.Fatalf("A got %d, B got %d, filtered %v; want 10, 10, 10\n%s", a.count(), b.count(), filtered(), out)
	}
	for _, r := range a.requests() {
		if !strings.HasPrefix(r.URI, "/v1/items/") || r.Header.Get("X-Route") != "" {
			t.Errorf("A got %s %s (X-Route %q), want only /v1/items/* unchanged", r.Method, r.URI, r.Header.Get("X-Route"))
		}
	}
	for _, r := range b.requests() {
		if !strings.HasPrefix(r.URI, "/items/") || !strings.HasSuffix(r.URI, "?page=2") || r.Header.Get("X-Route") != "v2" {
			t.Errorf("B got %s %s (X-Route %q), want /items/*?page=2 with X-Route v2", r.Method, r.URI, r.Header.Get("X-Route"))
		}
	}
	for _, ex := range shadowRecs {
		id := ex.GetId()
		target := a.URL
		if strings.HasPrefix(want[id], "/items/") {
			target = b.URL
		}
		if want[id] == "" || !sameTarget(ex.GetReplay().GetTarget(), target) || ex.GetRequest().GetUrl() != want[id] {
			t.Errorf("shadow record %s: target %q, request-target %q; want %q, %q", id, ex.GetReplay().GetTarget(), ex.GetRequest().GetUrl(), target, want[id])
		}
		if target == b.URL && header(ex.GetRequest().GetHeaders(), "X-Route") != "v2" {
			t.Errorf("shadow record %s lacks the header the route set", id)
		}
	}
}

// --safe replays the GET, HEAD and OPTIONS requests and none of the others,
// which are counted as filtered.
func TestReplaySafeSendsNoPOST(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	methods := []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"}
	const n, gap = 28, 10 * time.Millisecond // 4 of each
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range n {
		r := creq{method: methods[i%len(methods)], url: fmt.Sprintf("/accounts/%d", i)}
		if r.method == "POST" || r.method == "PUT" || r.method == "PATCH" {
			r.headers, r.body = [][2]string{{"Content-Type", "application/json"}}, `{"balance":0}`
		}
		recs = append(recs, exchangeRecord(t, topic, fmt.Sprintf("safe-%d", i), int32(i%2), t0.Add(time.Duration(i)*gap), r))
	}
	produceRecords(t, recs)
	shadow := newRealShadow(t, func(*http.Request, []byte) int { return http.StatusOK })
	from, to := window(t0, n, gap)
	out, code, sum := runReplay(t, "--safe", "--service", svc, "--target", shadow.URL, "--from", from, "--to", to, "--rate", "200/s")
	const safe, unsafe = 12, 16
	if code != 0 || sum == nil || sum.Sent != safe || sum.Skipped[replayer.DropFiltered] != unsafe {
		t.Fatalf("exit %d, report %+v; want %d sent, %d filtered\n%s", code, sum, safe, unsafe, out)
	}
	got := map[string]int{}
	for _, r := range shadow.requests() {
		got[r.Method]++
	}
	if got["GET"] != 4 || got["HEAD"] != 4 || got["OPTIONS"] != 4 || len(got) != 3 {
		t.Fatalf("the shadow saw %v, want 4 GET, 4 HEAD, 4 OPTIONS and nothing else", got)
	}
}

// The selection flags of `replay` (--method, --path, --exclude-path,
// --header-match) together: exactly the requests all of them select are
// sent, the others are counted as filtered.
func TestReplaySelectFlags(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	const n, gap = 48, 10 * time.Millisecond
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	methods := []string{"GET", "POST", "DELETE"}
	paths := []string{"/api/orders/%d", "/api/internal/jobs/%d", "/health/%d", "/api/v2/orders/%d"}
	tenants := []string{"acme-eu", "globex"}
	var recs []*kgo.Record
	want := map[string]bool{} // request-targets the flags select
	for i := range n {
		m, url, tenant := methods[i%3], fmt.Sprintf(paths[(i/3)%4], i), tenants[(i/12)%2]
		if m != "DELETE" && strings.HasPrefix(url, "/api/") && !strings.HasPrefix(url, "/api/internal/") && strings.HasPrefix(tenant, "acme") {
			want[m+" "+url] = true
		}
		recs = append(recs, exchangeRecord(t, topic, fmt.Sprintf("sel-%d", i), int32(i%2), t0.Add(time.Duration(i)*gap),
			creq{method: m, url: url, headers: [][2]string{{"X-Tenant", tenant}}}))
	}
	produceRecords(t, recs)
	shadow := newRealShadow(t, func(*http.Request, []byte) int { return http.StatusOK })
	from, to := window(t0, n, gap)
	out, code, sum := runReplay(t, "--service", svc, "--target", shadow.URL, "--from", from, "--to", to, "--rate", "500/s",
		"--method", "GET,POST", "--path", "/api/**", "--exclude-path", "/api/internal/**", "--header-match", "X-Tenant: acme*")
	if len(want) == 0 || code != 0 || sum == nil || sum.Sent != int64(len(want)) || sum.Skipped[replayer.DropFiltered] != int64(n-len(want)) {
		t.Fatalf("exit %d, report %+v; want %d sent, %d filtered\n%s", code, sum, len(want), n-len(want), out)
	}
	for _, r := range shadow.requests() {
		if !want[r.Method+" "+r.URI] {
			t.Errorf("the shadow got %s %s, which the flags do not select", r.Method, r.URI)
		}
	}
}

// requirePython skips the test when python3 is not installed.
func requirePython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
}

// The example middleware (examples/middleware/rewrite.py) sets X-Middleware
// on every request and drops those under /drop: the shadow sees exactly the
// others, with the header; the dropped ones are counted. A middleware that
// exits at once makes the replay, live or window, fail, naming its exit
// status.
func TestReplayPythonMiddleware(t *testing.T) {
	requirePython(t)
	example, err := filepath.Abs(filepath.Join("..", "..", "examples", "middleware", "rewrite.py"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(example); err != nil {
		t.Fatalf("the example middleware: %v", err)
	}
	svc, topic := replaySetup(t, 2)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}
	const n = 20
	now := time.Now()
	var recs []*kgo.Record
	for i := range n {
		url := fmt.Sprintf("/items/%d", i)
		if i%4 == 0 {
			url = fmt.Sprintf("/drop/%d", i)
		}
		recs = append(recs, exchangeRecord(t, topic, fmt.Sprintf("mw-%d", i), int32(i%2), now, creq{method: "GET", url: url}))
	}
	produceRecords(t, recs)
	shadow := newRealShadow(t, func(*http.Request, []byte) int { return http.StatusOK })
	metrics := testproc.FreeAddr(t)
	// The per-request time limit is generous: on a loaded machine the
	// interpreter (behind a version manager's shim) may take seconds to
	// start, and a request not answered in time is not sent.
	cfg := writeFile(t, t.TempDir(), "replay.yaml", fmt.Sprintf("replay:\n  middleware: {command: [python3, %q], timeout: 60s}\n", example))
	out := startML(t, env, "replay", "--live", "-c", cfg, "--service", svc, "--target", shadow.URL, "--group", "mw-"+svc, "--start", "earliest",
		"--metrics-addr", metrics)
	dropped := func() float64 {
		v, _ := metricValue(metrics, "mirrorline_replayer_dropped_total", "reason", replayer.DropMiddleware)
		return v
	}
	testproc.Eventually(t, 90*time.Second, "15 requests at the shadow and 5 dropped by the middleware", func() bool {
		return shadow.count() >= 15 && dropped() >= 5
	})
	if shadow.count() != 15 || dropped() != 5 {
		t.Fatalf("shadow got %d (want 15), dropped{middleware} %v (want 5)\n%s", shadow.count(), dropped(), out)
	}
	for _, r := range shadow.requests() {
		if strings.HasPrefix(r.URI, "/drop") || r.Header.Get("X-Middleware") != "python" {
			t.Errorf("shadow got %s with X-Middleware %q; want no /drop and X-Middleware python", r.URI, r.Header.Get("X-Middleware"))
		}
	}

	for _, ex := range kafkatest.ReadExchanges(t, kafkaBrokers, broker.Topic(broker.Shadow, svc), 15, time.Minute) {
		if header(ex.GetRequest().GetHeaders(), "X-Middleware") != "python" {
			t.Errorf("shadow record %s: the request as sent lacks the middleware's header", ex.GetId())
		}
	}

	// A middleware that exits at once, live and in a window replay (its
	// records sent at 2/s: the replay would outlast the middleware's
	// restarts, and stops when they are spent).
	exits := writeFile(t, t.TempDir(), "exit3.py", "import sys\nsys.exit(3)\n")
	mw := "python3 " + exits
	dead := newRealShadow(t, func(*http.Request, []byte) int { return http.StatusOK })
	svc2, topic2 := replaySetup(t, 1)
	t0 := now.Add(-10 * time.Minute).Truncate(time.Millisecond)
	recs = nil
	for i := range n {
		recs = append(recs, exchangeRecord(t, topic2, fmt.Sprintf("mw-dead-%d", i), 0, t0.Add(time.Duration(i)*time.Millisecond), creq{method: "GET", url: "/items/w"}))
	}
	produceRecords(t, recs)
	for _, args := range [][]string{
		{"replay", "--metrics-addr=", "--live", "--service", svc2, "--target", dead.URL, "--group", "mw-dead-" + svc2, "--start", "earliest", "--middleware", mw},
		{"replay", "--metrics-addr=", "--service", svc2, "--target", dead.URL, "--from", stamp(t0), "--to", stamp(t0.Add(time.Second)), "--rate", "2/s", "--middleware", mw},
	} {
		out, code, err := execML(args...)
		if err != nil {
			t.Fatal(err)
		}
		if code <= 0 || !strings.Contains(out, "middleware failed") || !strings.Contains(out, "exit status 3") {
			t.Errorf("%v: exit %d; want it to fail (exit > 0) naming the middleware's exit status 3\n%s", args, code, out)
		}
	}
	if dead.count() != 0 {
		t.Fatalf("the shadow got %d requests past a middleware that never answered", dead.count())
	}
}

// The full path: clients -> mirrorline proxy -> primary (always 200), the
// captures through the redactor to a live replayer with a circuit breaker in
// front of a shadow that first fails every request. The breaker opens (state
// 2, records dropped as breaker_open); once the shadow answers 200 again it
// closes (state 0) and requests reach it again. Every client request got the
// primary's 200 throughout.
func TestReplayBreakerTripsAndRecovers(t *testing.T) {
	svc, _ := replaySetup(t, 2)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "primary")
	}))
	t.Cleanup(primary.Close)
	var failing atomic.Bool
	var recovered atomic.Int64 // 2xx answered after the shadow recovered
	failing.Store(true)
	shadow := newRealShadow(t, func(*http.Request, []byte) int {
		if failing.Load() {
			return http.StatusInternalServerError
		}
		recovered.Add(1)
		return http.StatusOK
	})
	cfg := writeFile(t, t.TempDir(), "replay.yaml", fmt.Sprintf(`service: %s
replay:
  breaker: {error_rate: 0.5, window: 2s, min_requests: 10, open_for: 1s, probes: 2}
`, svc))
	metrics := testproc.FreeAddr(t)
	replayOut := startML(t, env, "replay", "--live", "-c", cfg, "--target", shadow.URL, "--group", "breaker-"+svc, "--start", "earliest", "--metrics-addr", metrics)
	startML(t, env, "redact", "--service", svc, "--transactional-id", "redact-"+svc, "--metrics-addr", testproc.FreeAddr(t))
	proxyAddr := testproc.FreeAddr(t)
	startML(t, env, "proxy", "--service", svc, "--listen", proxyAddr, "--primary", primary.URL, "--metrics-addr", testproc.FreeAddr(t))
	testproc.Eventually(t, 30*time.Second, "proxy answering", func() bool {
		resp, err := http.Get("http://" + proxyAddr + "/warmup")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	// Clients: one request every 20 ms until the test ends.
	var sent, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := &http.Client{Timeout: 10 * time.Second}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			sent.Add(1)
			resp, err := client.Get(fmt.Sprintf("http://%s/items/%d", proxyAddr, i))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, fmt.Sprintf("request %d: %v", i, err))
			}
		}
	}()
	stopClients := sync.OnceFunc(func() { close(stop); <-done })
	t.Cleanup(stopClients)

	state := func() float64 {
		v, ok := metricValue(metrics, "mirrorline_replayer_breaker_state", "target", shadow.URL)
		if !ok {
			return -1
		}
		return v
	}
	openDrops := func() float64 {
		v, _ := metricValue(metrics, "mirrorline_replayer_dropped_total", "reason", replayer.DropBreakerOpen)
		return v
	}
	testproc.Eventually(t, 60*time.Second, "the breaker open (state 2) and records dropped as breaker_open", func() bool {
		return state() == 2 && openDrops() > 0
	})
	failedAtShadow := shadow.count()
	failing.Store(false)
	testproc.Eventually(t, 60*time.Second, "the breaker closed (state 0) and requests reaching the shadow again", func() bool {
		return state() == 0 && recovered.Load() >= 10
	})
	stopClients()
	if f := failed.Load(); f != 0 || sent.Load() == 0 {
		t.Fatalf("%d of %d client requests through the proxy failed: %v", f, sent.Load(), firstFailure.Load())
	}
	if e, err := scrapeMetrics(metrics); err == nil {
		var trans []string
		for _, s := range e.find("mirrorline_replayer_breaker_transitions_total") {
			trans = append(trans, fmt.Sprintf("%s=%v", s.labels["state"], s.value))
		}
		slices.Sort(trans)
		t.Logf("%d client requests, all 200; %d failed at the shadow before the breaker held them back, %v dropped as breaker_open, %d answered after recovery; transitions %v",
			sent.Load(), failedAtShadow, openDrops(), recovered.Load(), trans)
	}
	if strings.Contains(replayOut.String(), "panic") {
		t.Fatalf("replayer output:\n%s", replayOut)
	}
}
