package credential

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
)

// TestUnsignThenResign is the authenticated-shadow recipe end to end: a
// production RS256 token goes through the redactor with
// headers: {authorization: unsign} and json_fields: {"**.email": mask}, then
// the replayer's Signer signs its claims with a test key.
func TestUnsignThenResign(t *testing.T) {
	testKeys(t)
	now := time.Unix(1_900_000_000, 0)
	prod := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"sub": "user-42", "email": "zoe@example.org", "plan": "gold", "iss": "https://prod.example",
		"iat": now.Add(-time.Hour).Unix(), "exp": now.Add(-time.Minute).Unix(),
	})
	prod.Header["kid"] = "prod-2026"
	prod.Header["jku"] = "https://keys.prod.example/jwks"
	prodTok, err := prod.SignedString(rsaKey2) // the production key
	if err != nil {
		t.Fatal(err)
	}
	prodSig := prodTok[strings.LastIndexByte(prodTok, '.')+1:]

	e, err := redactor.NewEngine(redactor.Config{
		Headers:    map[string]redactor.Rule{"authorization": {Action: redactor.ActionUnsign}},
		JSONFields: map[string]redactor.Rule{"**.email": {Action: redactor.ActionMask}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ex := &mlv1.Exchange{Request: &mlv1.Request{Method: "GET", Url: "/v1/me", Headers: []*mlv1.Header{
		{Name: "Authorization", Value: "Bearer " + prodTok}, {Name: "Cookie", Value: "session=abc"},
	}}}
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	var clean string
	for _, h := range ex.Request.Headers {
		if h.Name == "Cookie" {
			t.Errorf("Cookie kept: the defaults still apply")
		}
		if h.Name == "Authorization" {
			clean = h.Value
		}
	}
	if !strings.HasPrefix(clean, "Bearer ") || !strings.HasSuffix(clean, ".") || strings.Contains(clean, prodSig) {
		t.Fatalf("redacted Authorization %q: want Bearer HEADER.CLAIMS. without the signature", clean)
	}
	if strings.Contains(clean, "zoe") || res.Redactions["json:**.email"] != 1 {
		t.Fatalf("email claim not masked (redactions %v)", res.Redactions)
	}
	if _, err := jwt.Parse(strings.TrimPrefix(clean, "Bearer "), func(*jwt.Token) (any, error) { return &rsaKey2.PublicKey, nil }); err == nil {
		t.Fatal("the unsigned token verifies with the production key")
	}

	s, err := JWT{Alg: "RS256", KeyFile: writeFile(t, t.TempDir(), "test.pem", pkcs8(t, rsaKey)), KeyID: "test",
		Claims: map[string]any{"iss": "https://staging.example"}}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{"Authorization": {clean}}
	if ok, err := s.Apply(hdr, now); !ok || err != nil {
		t.Fatalf("Apply = %v, %v", ok, err)
	}
	claims, h := verify(t, strings.TrimPrefix(hdr.Get("Authorization"), "Bearer "), "RS256", &rsaKey.PublicKey, now)
	if claims["sub"] != "user-42" || claims["plan"] != "gold" || claims["email"] != "****" ||
		claims["iss"] != "https://staging.example" || claims["exp"] != float64(now.Add(DefaultTTL).Unix()) {
		t.Errorf("claims %v", claims)
	}
	if h["kid"] != "test" || h["jku"] != nil {
		t.Errorf("header %v", h)
	}
}
