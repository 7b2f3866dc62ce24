package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/test/demo/payments/app"
)

// TestDemoRulesKeepV2Regression redacts the demo's payment traffic with the
// redaction rules of examples/demo.yaml and sends each request, before and
// after redaction, to the regressed v2 payments service: the holder and
// address must be redacted, yet every request must get the same status (v2's
// 422 on a non-ASCII address still reproduces on the redacted copy).
func TestDemoRulesKeepV2Regression(t *testing.T) {
	data, err := os.ReadFile("../../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var demo struct {
		Redact struct {
			Rules redactor.Config `yaml:"rules"`
		} `yaml:"redact"`
	}
	if err := yaml.Unmarshal(data, &demo); err != nil {
		t.Fatalf("examples/demo.yaml: %v", err)
	}
	e, err := redactor.NewEngine(demo.Redact.Rules, redactor.WithHashKey([]byte("demo-hash-key-0123456789")))
	if err != nil {
		t.Fatal(err)
	}
	v2 := app.New(app.Config{Name: "shadow", Version: app.V2, Seed: 1, SlowTail: &app.SlowTail{}})
	status := func(body []byte) int {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/payments", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		v2.ServeHTTP(rec, req)
		return rec.Code
	}
	type payment struct {
		Card     struct{ Holder string }
		Customer struct{ Address string }
	}
	g := newGenerator(7)
	posts, rejected := 0, 0
	for range 400 {
		j := g.next()
		if j.kind != kindPostPayment {
			continue
		}
		posts++
		ex := &mlv1.Exchange{Request: &mlv1.Request{
			Method: http.MethodPost, Url: j.pathQuery, Body: j.body, BodySize: int64(len(j.body)),
			Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}},
		}}
		if _, err := e.Redact(ex); err != nil {
			t.Fatalf("redact: %v", err)
		}
		var before, after payment
		if json.Unmarshal(j.body, &before) != nil || json.Unmarshal(ex.Request.Body, &after) != nil {
			t.Fatalf("undecodable payment")
		}
		if after.Customer.Address == before.Customer.Address || after.Card.Holder == before.Card.Holder ||
			utf8.RuneCountInString(after.Customer.Address) != utf8.RuneCountInString(before.Customer.Address) {
			t.Fatalf("address or holder not shape-redacted: %q -> %q, %q -> %q",
				before.Customer.Address, after.Customer.Address, before.Card.Holder, after.Card.Holder)
		}
		want, got := status(j.body), status(ex.Request.Body)
		if got != want {
			t.Errorf("v2 answers %d to the redacted payment, %d to the original (address %q -> %q)",
				got, want, before.Customer.Address, after.Customer.Address)
		}
		if want == http.StatusUnprocessableEntity {
			rejected++
		}
	}
	if posts == 0 || rejected == 0 || rejected == posts {
		t.Fatalf("traffic mix: %d payments, %d rejected by v2", posts, rejected)
	}
	t.Logf("%d payments, %d rejected by v2 before and after redaction", posts, rejected)
}
