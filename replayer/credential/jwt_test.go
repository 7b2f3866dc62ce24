package credential

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const testHS256Secret = "0123456789abcdef0123456789abcdef-hs256"

// verify parses tok with golang-jwt's parser at now, checking the signature
// with key and the alg, and returns its claims and header.
func verify(t *testing.T, tok, alg string, key any, now time.Time) (jwt.MapClaims, map[string]any) {
	t.Helper()
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{alg}), jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("re-signed token does not verify: %v", err)
	}
	return claims, parsed.Header
}

func TestSignerVerifies(t *testing.T) {
	testKeys(t)
	dir := t.TempDir()
	t.Setenv("MIRRORLINE_TEST_HS_SECRET", testHS256Secret)
	secretFile := writeFile(t, dir, "secret", []byte(testHS256Secret+"\n"))
	tests := []struct {
		name   string
		j      JWT
		verify any
	}{
		{"HS256 secret_file", JWT{Alg: "HS256", SecretFile: secretFile}, []byte(testHS256Secret)},
		{"HS256 secret_env", JWT{Alg: "HS256", SecretEnv: "MIRRORLINE_TEST_HS_SECRET"}, []byte(testHS256Secret)},
		{"RS256 PKCS#1", JWT{Alg: "RS256", KeyFile: writeFile(t, dir, "rsa1.pem", rsaPKCS1(rsaKey))}, &rsaKey.PublicKey},
		{"RS256 PKCS#8", JWT{Alg: "RS256", KeyFile: writeFile(t, dir, "rsa8.pem", pkcs8(t, rsaKey))}, &rsaKey.PublicKey},
		{"ES256 SEC 1", JWT{Alg: "ES256", KeyFile: writeFile(t, dir, "ec1.pem", ecSEC1(t, ecKey))}, &ecKey.PublicKey},
		{"ES256 PKCS#8", JWT{Alg: "ES256", KeyFile: writeFile(t, dir, "ec8.pem", pkcs8(t, ecKey))}, &ecKey.PublicKey},
	}
	// As the redactor leaves it: no signature, old times, a large integer
	// claim that must keep every digit.
	captured := unsignedJWT(`{"alg":"RS256","typ":"JWT","kid":"prod-key"}`,
		`{"sub":"user-42","email":"****","tenant":"acme","roles":["admin","dev"],"account":12345678901234567890,"iss":"https://prod.example","iat":1600000000,"nbf":1600000000,"exp":1600000300}`)
	now := time.Unix(1_900_000_000, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := tc.j
			j.KeyID, j.TTL = "test-kid", 2*time.Minute
			j.Claims = map[string]any{"iss": "https://staging.example", "aud": "shadow"}
			s, err := j.Compile()
			if err != nil {
				t.Fatal(err)
			}
			if s.HeaderName() != "Authorization" {
				t.Fatalf("HeaderName %q", s.HeaderName())
			}
			hdr := http.Header{"Authorization": {"bearer " + captured}}
			ok, err := s.Apply(hdr, now)
			if err != nil || !ok {
				t.Fatalf("Apply = %v, %v", ok, err)
			}
			v := hdr.Get("Authorization")
			if !strings.HasPrefix(v, "bearer ") {
				t.Fatalf("scheme not kept: %q", v)
			}
			claims, h := verify(t, strings.TrimPrefix(v, "bearer "), j.Alg, tc.verify, now)
			if h["kid"] != "test-kid" || h["typ"] != "JWT" || h["alg"] != j.Alg {
				t.Errorf("header %v", h)
			}
			for k, want := range map[string]any{
				"sub": "user-42", "email": "****", "tenant": "acme", "iss": "https://staging.example", "aud": "shadow",
				"exp": float64(now.Add(2 * time.Minute).Unix()), "iat": float64(now.Unix()), "nbf": float64(now.Unix()),
			} {
				if claims[k] != want {
					t.Errorf("claim %s = %v, want %v", k, claims[k], want)
				}
			}
			if roles, _ := claims["roles"].([]any); len(roles) != 2 {
				t.Errorf("roles %v", claims["roles"])
			}
			// The raw claims keep the big integer exactly.
			seg := strings.Split(strings.TrimPrefix(v, "bearer "), ".")[1]
			raw, _ := jwt.NewParser().DecodeSegment(seg)
			if !strings.Contains(string(raw), `"account":12345678901234567890`) {
				t.Errorf("large integer claim changed: %s", raw)
			}
			// Expired after the TTL.
			if _, err := jwt.Parse(strings.TrimPrefix(v, "bearer "), func(*jwt.Token) (any, error) { return tc.verify, nil },
				jwt.WithTimeFunc(func() time.Time { return now.Add(3 * time.Minute) })); !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("after the ttl: %v, want expired", err)
			}
		})
	}
}

func TestSignerApplyCases(t *testing.T) {
	testKeys(t)
	dir := t.TempDir()
	key := writeFile(t, dir, "ec.pem", ecSEC1(t, ecKey))
	auth, err := JWT{Alg: "ES256", KeyFile: key}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	bare, err := JWT{Alg: "ES256", KeyFile: key, Header: "x-id-token"}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	signedElsewhere := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl"
	now := time.Unix(1_900_000_000, 0)
	tests := []struct {
		name    string
		s       *Signer
		hdr     http.Header
		wantOK  bool
		wantErr bool
		wantSub string
		prefix  string
	}{
		{name: "no header", s: auth, hdr: http.Header{}},
		{name: "basic scheme", s: auth, hdr: http.Header{"Authorization": {"Basic dXNlcjpwYXNz"}}},
		{name: "no scheme", s: auth, hdr: http.Header{"Authorization": {signedElsewhere}}},
		{name: "empty bearer", s: auth, hdr: http.Header{"Authorization": {"Bearer "}}},
		{name: "still signed", s: auth, hdr: http.Header{"Authorization": {"Bearer " + signedElsewhere}}, wantOK: true, wantSub: "u-1", prefix: "Bearer "},
		{name: "padded segments", s: auth, hdr: http.Header{"Authorization": {"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ==."}}, wantOK: true, wantSub: "u-1", prefix: "Bearer "},
		{name: "bare header", s: bare, hdr: http.Header{"X-Id-Token": {signedElsewhere}}, wantOK: true, wantSub: "u-1"},
		{name: "opaque token", s: auth, hdr: http.Header{"Authorization": {"Bearer opaque-secret-token"}}, wantErr: true},
		{name: "claims not base64", s: auth, hdr: http.Header{"Authorization": {"Bearer eyJhbGciOiJIUzI1NiJ9.%%secret%%.x"}}, wantErr: true},
		{name: "claims an array", s: auth, hdr: http.Header{"Authorization": {"Bearer " + unsignedJWT(`{"alg":"none"}`, `["secret"]`)}}, wantErr: true},
		{name: "claims not json", s: auth, hdr: http.Header{"Authorization": {"Bearer " + unsignedJWT(`{"alg":"none"}`, `secret-claims`)}}, wantErr: true},
		{name: "header not json", s: auth, hdr: http.Header{"Authorization": {"Bearer " + unsignedJWT(`secret`, `{}`)}}, wantErr: true},
		{name: "jwe", s: bare, hdr: http.Header{"X-Id-Token": {signedElsewhere + ".YQ.YQ"}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.hdr.Clone()
			ok, err := tc.s.Apply(tc.hdr, now)
			if tc.wantErr {
				if err == nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("Apply = %v, %v; want ErrMalformed", ok, err)
				}
				if v := before.Get(tc.s.HeaderName()); strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), strings.TrimPrefix(v, "Bearer ")) {
					t.Errorf("error %q echoes the token", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if ok != tc.wantOK {
				t.Fatalf("Apply ok = %v, want %v", ok, tc.wantOK)
			}
			if !ok {
				if got, want := tc.hdr.Get(tc.s.HeaderName()), before.Get(tc.s.HeaderName()); got != want {
					t.Errorf("header changed to %q from %q", got, want)
				}
				return
			}
			v := tc.hdr.Get(tc.s.HeaderName())
			if !strings.HasPrefix(v, tc.prefix) {
				t.Fatalf("value %q lost prefix %q", v, tc.prefix)
			}
			claims, _ := verify(t, strings.TrimPrefix(v, tc.prefix), "ES256", &ecKey.PublicKey, now)
			if claims["sub"] != tc.wantSub {
				t.Errorf("sub %v", claims["sub"])
			}
			if _, has := claims["nbf"]; has {
				t.Errorf("nbf added though the token had none")
			}
			if claims["exp"] != float64(now.Add(DefaultTTL).Unix()) {
				t.Errorf("exp %v, want now + default ttl", claims["exp"])
			}
		})
	}
}

func TestSignerCompileErrors(t *testing.T) {
	testKeys(t)
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	const shortSecret = "short-secret-value"
	short := writeFile(t, dir, "short", []byte(shortSecret))
	rsaFile := writeFile(t, dir, "rsa.pem", rsaPKCS1(rsaKey))
	ecFile := writeFile(t, dir, "ec.pem", ecSEC1(t, ecKey))
	t.Setenv("MIRRORLINE_TEST_SHORT", shortSecret)
	tests := []struct {
		name string
		j    JWT
		want string
	}{
		{"unknown alg", JWT{Alg: "none"}, "jwt alg"},
		{"HS512", JWT{Alg: "HS512", SecretFile: short}, "jwt alg"},
		{"short secret file", JWT{Alg: "HS256", SecretFile: short}, "secret_file " + short + ": HS256 secret is 18 bytes"},
		{"short secret env", JWT{Alg: "HS256", SecretEnv: "MIRRORLINE_TEST_SHORT"}, "secret_env MIRRORLINE_TEST_SHORT"},
		{"HS256 no secret", JWT{Alg: "HS256"}, "secret_file or secret_env"},
		{"HS256 with key_file", JWT{Alg: "HS256", KeyFile: rsaFile}, "key_file"},
		{"HS256 both secrets", JWT{Alg: "HS256", SecretFile: short, SecretEnv: "X"}, "exclusive"},
		{"RS256 no key", JWT{Alg: "RS256"}, "key_file: required"},
		{"RS256 with secret", JWT{Alg: "RS256", KeyFile: rsaFile, SecretEnv: "X"}, "takes key_file"},
		{"RS256 1024 bits", JWT{Alg: "RS256", KeyFile: writeFile(t, dir, "small.pem", rsaPKCS1(small))}, "1024 bits"},
		{"RS256 given an EC key", JWT{Alg: "RS256", KeyFile: ecFile}, "not a PEM RSA private key"},
		{"RS256 missing file", JWT{Alg: "RS256", KeyFile: filepath.Join(dir, "nope.pem")}, "nope.pem"},
		{"RS256 garbage", JWT{Alg: "RS256", KeyFile: writeFile(t, dir, "junk.pem", []byte(shortSecret))}, "not a PEM RSA private key"},
		{"ES256 P-384", JWT{Alg: "ES256", KeyFile: writeFile(t, dir, "p384.pem", ecSEC1(t, p384))}, "P-256"},
		{"ES256 given an RSA key", JWT{Alg: "ES256", KeyFile: rsaFile}, "not a PEM EC private key"},
		{"exp in claims", JWT{Alg: "ES256", KeyFile: ecFile, Claims: map[string]any{"exp": 1}}, "exp is set from ttl"},
		{"negative ttl", JWT{Alg: "ES256", KeyFile: ecFile, TTL: -time.Second}, "ttl"},
		{"bad header name", JWT{Alg: "ES256", KeyFile: ecFile, Header: "X:Token"}, "not a valid header name"},
		{"kid with newline", JWT{Alg: "ES256", KeyFile: ecFile, KeyID: "a\nb"}, "kid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.j.Compile()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Compile error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), shortSecret) || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error %q leaks the key", err)
			}
		})
	}
}

// TestSignerKeyRotation: a key file replaced by a rename is used once
// checked; a replacement that does not parse fails Apply (never signs with
// nothing) until a good key is back.
func TestSignerKeyRotation(t *testing.T) {
	testKeys(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "key.pem", rsaPKCS1(rsaKey))
	s, err := JWT{Alg: "RS256", KeyFile: p}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Unix(1_900_000_000, 0)}
	s.file.now = clk.now
	s.file.next.Store(0)
	tok := unsignedJWT(`{"alg":"RS256"}`, `{"sub":"u-1"}`)
	sign := func() (string, error) {
		hdr := http.Header{"Authorization": {"Bearer " + tok}}
		_, err := s.Apply(hdr, clk.now())
		return strings.TrimPrefix(hdr.Get("Authorization"), "Bearer "), err
	}
	replace := func(data []byte) {
		tmp := writeFile(t, dir, "key.pem.tmp", data)
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := sign()
	if err != nil {
		t.Fatal(err)
	}
	verify(t, got, "RS256", &rsaKey.PublicKey, clk.now())

	replace(pkcs8(t, rsaKey2))
	clk.add(CheckInterval)
	got, err = sign()
	if err != nil {
		t.Fatal(err)
	}
	verify(t, got, "RS256", &rsaKey2.PublicKey, clk.now())

	replace([]byte("not a key"))
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("Check = %v, want an error naming the key file", err)
	}
	if _, err := sign(); err == nil {
		t.Fatal("Apply signed with a broken key file")
	}
	replace(rsaPKCS1(rsaKey))
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	got, err = sign()
	if err != nil {
		t.Fatal(err)
	}
	verify(t, got, "RS256", &rsaKey.PublicKey, clk.now())
}
