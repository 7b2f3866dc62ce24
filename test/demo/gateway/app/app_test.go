package app

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCharge(t *testing.T) {
	tests := []struct {
		name, instance, body string
		status               int
		want                 string
	}{
		{name: "authorized", instance: "primary", body: `{"amount_cents":1250,"currency":"EUR"}`, status: 200,
			want: `{"authorization_id":"auth-1","status":"approved","amount_cents":1250,"currency":"EUR"}`},
		{name: "amount as sent", instance: "shadow", body: `{"amount_cents":12.5,"currency":"EUR"}`, status: 200,
			want: `{"authorization_id":"auth-1","status":"approved","amount_cents":12.5,"currency":"EUR"}`},
		{name: "no instance", body: `{"amount_cents":1,"currency":"EUR"}`, status: 200},
		{name: "invalid JSON", instance: "primary", body: `{`, status: 400, want: `{"error":"invalid JSON"}`},
		{name: "trailing data", instance: "primary", body: `{"amount_cents":1,"currency":"EUR"}x`, status: 400},
		{name: "no amount", instance: "primary", body: `{"currency":"EUR"}`, status: 400, want: `{"error":"missing or invalid field: amount_cents"}`},
		{name: "negative amount", instance: "primary", body: `{"amount_cents":-1,"currency":"EUR"}`, status: 400},
		{name: "bad currency", instance: "primary", body: `{"amount_cents":1,"currency":"E"}`, status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := New(Config{NewID: func() string { return "auth-1" }})
			req := httptest.NewRequest("POST", "/charge", strings.NewReader(tc.body))
			if tc.instance != "" {
				req.Header.Set(InstanceHeader, tc.instance)
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.want != "" && strings.TrimSpace(rec.Body.String()) != tc.want {
				t.Errorf("body %s, want %s", rec.Body, tc.want)
			}
			inst := tc.instance
			if inst == "" {
				inst = "unknown"
			}
			// Every call counts, valid or not: a call reaching the gateway is the side effect.
			if s := g.Stats(); s.Total != 1 || s.Instances[inst] != 1 {
				t.Errorf("stats %+v, want 1 call by %s", s, inst)
			}
		})
	}
}

func TestStatsEndpoint(t *testing.T) {
	g := New(Config{})
	srv := httptest.NewServer(g)
	defer srv.Close()
	for _, inst := range []string{"primary", "primary", "shadow"} {
		req, _ := http.NewRequest("POST", srv.URL+"/charge", strings.NewReader(`{"amount_cents":1,"currency":"EUR"}`))
		req.Header.Set(InstanceHeader, inst)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get := func(method, path string) string {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	if got, want := get("GET", "/_demo/stats"), `{"total":3,"instances":{"primary":2,"shadow":1}}`; got != want {
		t.Errorf("stats %s, want %s", got, want)
	}
	get("POST", "/_demo/reset")
	if got, want := get("GET", "/_demo/stats"), `{"total":0,"instances":{}}`; got != want {
		t.Errorf("after reset %s, want %s", got, want)
	}
}
