package redactor

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// testJWT builds a token from a header and claims (JSON texts) and a
// signature (any base64url text).
func testJWT(header, claims, sig string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)) + "." + sig
}

// splitUnsigned checks tok is "HEADER.CLAIMS." and returns the decoded header
// and claims.
func splitUnsigned(t *testing.T, tok string) (map[string]any, map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[2] != "" {
		t.Fatalf("token %q: want HEADER.CLAIMS. (signature dropped)", tok)
	}
	var hdr, claims map[string]any
	for i, dst := range []*map[string]any{&hdr, &claims} {
		if strings.ContainsRune(parts[i], '=') {
			t.Fatalf("segment %d has padding: %q", i, parts[i])
		}
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return hdr, claims
}

const (
	testJWTHeader = `{"alg":"RS256","typ":"JWT","kid":"prod-1","jku":"https://evil.example/keys","x5u":"https://evil.example/x5"}`
	testJWTClaims = `{"sub":"user-42","email":"zoe@example.org","tenant":"acme","iat":1700000000,"exp":1700000300,"note":"card 4111 1111 1111 1111"}`
)

func TestUnsignHeader(t *testing.T) {
	tok := testJWT(testJWTHeader, testJWTClaims, "c2lnbmF0dXJlLWJ5dGVz")
	padded := base64.URLEncoding.EncodeToString([]byte(testJWTHeader)) + "." +
		base64.URLEncoding.EncodeToString([]byte(testJWTClaims)) + "."
	cfg := Config{
		Headers:    map[string]Rule{"Authorization": {Action: ActionUnsign}, "X-Id-Token": {Action: ActionUnsign}},
		JSONFields: map[string]Rule{"**.email": {Action: ActionMask}},
	}
	e := newEngine(t, cfg)
	tests := []struct {
		name, header, value string
		wantScheme          string // "" for a bare token
		wantRemoved         bool
	}{
		{name: "bearer", header: "Authorization", value: "Bearer " + tok, wantScheme: "Bearer "},
		{name: "scheme case kept", header: "Authorization", value: "bEARER  " + tok, wantScheme: "bEARER  "},
		{name: "bare token", header: "X-Id-Token", value: tok},
		{name: "padded segments, empty signature", header: "Authorization", value: "Bearer " + padded, wantScheme: "Bearer "},
		{name: "not a jwt", header: "Authorization", value: "Bearer opaque-token-0123456789", wantRemoved: true},
		{name: "basic scheme", header: "Authorization", value: "Basic dXNlcjpwYXNz", wantRemoved: true},
		{name: "basic scheme with jwt", header: "Authorization", value: "Basic " + tok, wantRemoved: true},
		{name: "two segments", header: "Authorization", value: "Bearer eyJhbGciOiJIUzI1NiJ9.e30", wantRemoved: true},
		{name: "jwe five segments", header: "X-Id-Token", value: tok + ".YQ.YQ", wantRemoved: true},
		{name: "claims not an object", header: "X-Id-Token", value: testJWT(`{"alg":"HS256"}`, `["a"]`, "x"), wantRemoved: true},
		{name: "header not json", header: "X-Id-Token", value: testJWT(`alg`, `{}`, "x"), wantRemoved: true},
		{name: "claims bad base64", header: "X-Id-Token", value: "eyJhbGciOiJIUzI1NiJ9.!!!.x", wantRemoved: true},
		{name: "claims invalid json", header: "X-Id-Token", value: testJWT(`{"alg":"HS256"}`, `{"sub":`, "x"), wantRemoved: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/", Headers: hdr(tc.header, tc.value, "Accept", "*/*")}}
			res, err := e.Redact(ex)
			if err != nil {
				t.Fatal(err)
			}
			rule := "header:" + strings.ToLower(tc.header)
			if res.Redactions[rule] != 1 {
				t.Errorf("redactions[%s] = %d, want 1 (%v)", rule, res.Redactions[rule], res.Redactions)
			}
			v, ok := header(ex.Request.Headers, tc.header)
			if tc.wantRemoved {
				if ok {
					t.Fatalf("%s kept as %q, want it removed", tc.header, v)
				}
				return
			}
			if !ok {
				t.Fatalf("%s removed", tc.header)
			}
			if !strings.HasPrefix(v, tc.wantScheme) {
				t.Fatalf("value %q lost scheme %q", v, tc.wantScheme)
			}
			h, c := splitUnsigned(t, v[len(tc.wantScheme):])
			wantHdr := map[string]any{"alg": "RS256", "typ": "JWT", "kid": "prod-1"}
			if len(h) != len(wantHdr) {
				t.Errorf("header %v, want only %v", h, wantHdr)
			}
			for k, w := range wantHdr {
				if h[k] != w {
					t.Errorf("header[%s] = %v, want %v", k, h[k], w)
				}
			}
			if c["sub"] != "user-42" || c["tenant"] != "acme" || c["iat"] != float64(1700000000) {
				t.Errorf("claims lost: %v", c)
			}
			if c["email"] != maskText {
				t.Errorf("email claim %v, want masked by json_fields", c["email"])
			}
			if c["note"] != "card "+maskText {
				t.Errorf("note claim %v, want the card detector applied", c["note"])
			}
			if res.Redactions["json:**.email"] != 1 || res.Redactions["detector:card"] != 1 {
				t.Errorf("claim redactions not counted: %v", res.Redactions)
			}
		})
	}
}

func TestUnsignDefaultStillDropsAuthorization(t *testing.T) {
	tok := testJWT(testJWTHeader, testJWTClaims, "c2ln")
	e := newEngine(t, Config{})
	ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/", Headers: hdr("Authorization", "Bearer "+tok)}}
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := header(ex.Request.Headers, "Authorization"); ok {
		t.Fatalf("Authorization kept as %q by the defaults", v)
	}
	if res.Redactions["header:authorization"] != 1 {
		t.Errorf("redactions %v", res.Redactions)
	}
}

func TestUnsignDetector(t *testing.T) {
	tok := testJWT(testJWTHeader, testJWTClaims, "c2lnbmF0dXJl")
	e := newEngine(t, Config{Detectors: map[string]Rule{"jwt": {Action: ActionUnsign}}})
	body := `{"note":"token ` + tok + ` end","id_token":"x"}`
	got, res := redactBody(t, e, "application/json", body)
	var doc map[string]string
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	note := doc["note"]
	if !strings.HasPrefix(note, "token ") || !strings.HasSuffix(note, " end") {
		t.Fatalf("note %q", note)
	}
	_, c := splitUnsigned(t, strings.TrimSuffix(strings.TrimPrefix(note, "token "), " end"))
	if c["sub"] != "user-42" || c["email"] != maskText {
		t.Errorf("claims %v: want sub kept and the email detector applied", c)
	}
	if res.Redactions["detector:jwt"] != 1 || res.Redactions["detector:email"] != 1 {
		t.Errorf("redactions %v", res.Redactions)
	}

	// A five-segment JWE found by the detector is removed.
	got, _ = redactBody(t, e, "text/plain", "x "+tok+".YQ.YQ y")
	if got != "x  y" {
		t.Errorf("JWE: body %q, want the token removed", got)
	}
}

func TestUnsignFields(t *testing.T) {
	tok := testJWT(testJWTHeader, testJWTClaims, "c2ln")
	e := newEngine(t, Config{
		JSONFields:  map[string]Rule{"user.jwt": {Action: ActionUnsign}},
		FormFields:  map[string]Rule{"assertion": {Action: ActionUnsign}},
		QueryParams: map[string]Rule{"id_token": {Action: ActionUnsign}},
		Detectors:   map[string]Rule{"jwt": {Action: ActionOff}},
	})
	got, res := redactBody(t, e, "application/json", `{"user":{"jwt":"`+tok+`","kind":"a"},"x":1}`)
	var doc struct {
		User map[string]string `json:"user"`
	}
	if err := json.Unmarshal([]byte(got), &doc); err != nil {
		t.Fatalf("body %q: %v", got, err)
	}
	if _, c := splitUnsigned(t, doc.User["jwt"]); c["sub"] != "user-42" || c["email"] != maskText {
		t.Errorf("json claims %v", c)
	}
	if res.Redactions["json:user.jwt"] != 1 {
		t.Errorf("redactions %v", res.Redactions)
	}
	for _, body := range []string{`{"user":{"jwt":"opaque","kind":"a"}}`, `{"user":{"jwt":{"a":1},"kind":"a"}}`, `{"user":{"jwt":12,"kind":"a"}}`} {
		got, _ := redactBody(t, e, "application/json", body)
		if got != `{"user":{"kind":"a"}}` {
			t.Errorf("%s -> %s, want the member removed", body, got)
		}
	}

	got, _ = redactBody(t, e, "application/x-www-form-urlencoded", "assertion="+tok+"&grant=x")
	name, val, _ := strings.Cut(strings.Split(got, "&")[0], "=")
	if name != "assertion" {
		t.Fatalf("form %q", got)
	}
	if _, c := splitUnsigned(t, val); c["sub"] != "user-42" {
		t.Errorf("form claims %v", c)
	}
	if got, _ := redactBody(t, e, "application/x-www-form-urlencoded", "assertion=opaque&grant=x"); got != "grant=x" {
		t.Errorf("form with a non-JWT: %q, want the pair removed", got)
	}

	ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/cb?id_token=" + tok + "&state=s"}}
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	q := strings.SplitN(ex.Request.Url, "?", 2)[1]
	v, _, _ := strings.Cut(strings.TrimPrefix(q, "id_token="), "&")
	if _, c := splitUnsigned(t, v); c["sub"] != "user-42" {
		t.Errorf("query claims %v (url %q)", c, ex.Request.Url)
	}
}

func TestUnsignInvalidUse(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"email detector", Config{Detectors: map[string]Rule{"email": {Action: ActionUnsign}}}, `detectors["email"]`},
		{"bearer detector", Config{Detectors: map[string]Rule{"bearer": {Action: ActionUnsign}}}, `detectors["bearer"]`},
		{"secret names", Config{SecretNames: &Rule{Action: ActionUnsign}}, "secret_names"},
		{"kind", Config{Headers: map[string]Rule{"Authorization": {Action: ActionUnsign, Kind: "jwt"}}}, `headers["Authorization"].kind`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEngine(tc.cfg, WithHashKey(testKey))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "unsign") {
				t.Fatalf("err = %v, want one naming %s and unsign", err, tc.want)
			}
		})
	}
}

// TestUnsignNested: a token whose claims hold tokens is unsigned to a
// bounded depth; deeper ones are removed, never kept signed.
func TestUnsignNested(t *testing.T) {
	e := newEngine(t, Config{Detectors: map[string]Rule{"jwt": {Action: ActionUnsign}}})
	tok := testJWT(`{"alg":"HS256"}`, `{"sub":"deepest-claim"}`, "c2ln")
	for range 4 {
		tok = testJWT(`{"alg":"HS256"}`, `{"inner":"`+tok+`"}`, "c2ln")
	}
	got, _ := redactBody(t, e, "text/plain", tok)
	if strings.Contains(got, "c2ln") {
		t.Fatalf("a signature survived: %q", got)
	}
	for range 8 {
		h, c := splitUnsigned(t, got)
		if h["alg"] != "HS256" {
			t.Fatalf("header %v", h)
		}
		inner, _ := c["inner"].(string)
		if inner == "" {
			break
		}
		got = inner
	}
}

func TestUnsignYAML(t *testing.T) {
	dir := t.TempDir()
	load := func(y string) (*Engine, error) {
		p := dir + "/redact.yaml"
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p)
		if err != nil {
			return nil, err
		}
		return NewEngine(cfg, WithHashKey(testKey))
	}
	e, err := load("headers: {authorization: unsign}\ndetectors: {jwt: unsign}\n")
	if err != nil {
		t.Fatal(err)
	}
	tok := testJWT(testJWTHeader, testJWTClaims, "c2ln")
	ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/", Headers: hdr("Authorization", "Bearer "+tok, "Cookie", "a=b")}}
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	v, _ := header(ex.Request.Headers, "Authorization")
	if _, c := splitUnsigned(t, strings.TrimPrefix(v, "Bearer ")); c["sub"] != "user-42" {
		t.Errorf("claims %v", c)
	}
	if _, ok := header(ex.Request.Headers, "Cookie"); ok {
		t.Error("Cookie kept: the other default header rules must still apply")
	}
	if _, err := load("detectors: {email: unsign}\n"); err == nil || !strings.Contains(err.Error(), `detectors["email"]`) {
		t.Errorf("unsign on the email detector: %v, want an error naming the key", err)
	}
}
