package comparator

import "testing"

func TestTemplatePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/payments", "/payments"},
		{"/users/42", "/users/{id}"},
		{"/users/c-123", "/users/{id}"},
		{"/payments/pay-42/refunds", "/payments/{id}/refunds"},
		{"/payments/3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab", "/payments/{id}"},
		{"/blobs/9f86d081884c7d659a2feaa0c55ad015", "/blobs/{id}"},
		{"/orders/01HZY3K6N3V9Q8W7X5Y4Z2A1B0", "/orders/{id}"},
		{"/api/v2/users/7/profile", "/api/v2/users/{id}/profile"},
		{"/api/v1.1/status", "/api/v1.1/status"},
		{"/oauth2/token", "/oauth2/token"},
		{"/users/zoe@example.com", "/users/{id}"},
		{"/%C3%BCmlaut/ok", "/{id}/ok"},
		{"/static/index.html", "/static/index.html"},
		{"/a//b/", "/a//b/"},
		{"/dates/2026-03-01", "/dates/{id}"},
	}
	for _, tc := range tests {
		if got := TemplatePath(tc.in); got != tc.want {
			t.Errorf("TemplatePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTemplaterEndpoint(t *testing.T) {
	tm, err := NewTemplater([]string{"GET /search/{term}", "/files/{path...}"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ method, target, want string }{
		{"GET", "/users/42?include=profile&email=x%40y", "GET /users/{id}"},
		{"post", "/payments", "POST /payments"},
		{"BREW", "/pot", "OTHER /pot"},
		{"GET", "/search/shoes", "GET /search/{term}"},
		{"POST", "/search/shoes", "POST /search/shoes"},
		{"PUT", "/files/a/b/c.txt", "PUT /files/{path...}"},
		{"GET", "http://example.com/users/7?x=1", "GET /users/{id}"},
		{"GET", "/users/7#frag", "GET /users/{id}"},
	}
	for _, tc := range tests {
		if got := tm.Endpoint(tc.method, tc.target); got != tc.want {
			t.Errorf("Endpoint(%s %s) = %q, want %q", tc.method, tc.target, got, tc.want)
		}
	}
}

func TestTemplaterCap(t *testing.T) {
	tm, _ := NewTemplater(nil, 2)
	for _, tc := range []struct{ path, want string }{
		{"/a", "GET /a"}, {"/b", "GET /b"}, {"/c", "GET (other)"}, {"/a", "GET /a"},
	} {
		if got := tm.Endpoint("GET", tc.path); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.path, got, tc.want)
		}
	}
}

func TestTemplaterBadTemplates(t *testing.T) {
	for _, bad := range []string{"users/{id}", "FETCH /x", "/a/{rest...}/b"} {
		if _, err := NewTemplater([]string{bad}, 0); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
