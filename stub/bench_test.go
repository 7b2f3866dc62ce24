package stub

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// benchIndex holds parents parents of 4 recorded JSON charges each.
func benchIndex(b *testing.B, parents int) (*Index, []string) {
	ix := NewIndex(WithBounds(parents*4, 0))
	ids := make([]string, parents)
	for p := range parents {
		ids[p] = fmt.Sprintf("0190d1e2-a3b4-7c5d-8e9f-%012x", p)
		for i := range 4 {
			ix.Add(&mlv1.Exchange{Id: fmt.Sprint(p, "-", i), Kind: mlv1.Kind_KIND_EGRESS, ParentId: ids[p],
				Request:  &mlv1.Request{Method: "POST", Url: "/v1/charges", Host: "gw", Body: fmt.Appendf(nil, `{"amount":%d,"currency":"EUR","card":"tok_%d","meta":{"order":%d}}`, i*100, i, p)},
				Response: &mlv1.Response{Status: 201, Body: []byte(`{"id":"ch","status":"succeeded"}`)}})
		}
	}
	return ix, ids
}

// The index's matching alone: a call among 4 recorded calls of its parent
// in an index of 100000 calls.
func BenchmarkMatch(b *testing.B) {
	ix, ids := benchIndex(b, 25000)
	b.ResetTimer()
	for i := range b.N {
		p := ids[i%len(ids)]
		c := Call{Parent: p, Host: "gw", Method: "POST", Target: "/v1/charges", Body: fmt.Appendf(nil, `{"amount":%d,"currency":"EUR","card":"tok_%d","meta":{"order":1}}`, 300, 3)}
		if rec, _ := ix.Match(context.Background(), c, 0); rec == nil && i < len(ids) {
			b.Fatal("no match")
		}
	}
}

// A hit through HTTP on loopback, one connection.
func BenchmarkServeHit(b *testing.B) {
	ix, ids := benchIndex(b, 25000)
	s, err := NewServer(ix, "payments", WithWait(0))
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	cl := srv.Client()
	b.ResetTimer()
	for i := range b.N {
		hexID := strings.ReplaceAll(ids[i%len(ids)], "-", "")
		req, _ := http.NewRequest("POST", srv.URL+"/v1/charges", strings.NewReader(`{"amount":0,"currency":"EUR","card":"tok_0","meta":{"order":1}}`))
		req.Host = "gw"
		req.Header.Set("Tracestate", "mirrorline="+hexID)
		resp, err := cl.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
