package route

import (
	"strings"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// req builds a captured request; headers are name, value pairs.
func req(method, target string, headers ...string) *mlv1.Request {
	r := &mlv1.Request{Method: method, Url: target}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers = append(r.Headers, &mlv1.Header{Name: headers[i], Value: headers[i+1]})
	}
	return r
}

func TestMatchCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Match
		want string // "" when Compile must succeed
	}{
		{name: "zero", m: Match{}},
		{name: "all parts", m: Match{Methods: []string{"get", "PATCH"}, Paths: []string{"/v2/**", "*/x", "/{a,b}/*"}, ExcludePaths: []string{"/admin/**"}, Headers: map[string]string{"X-Tenant": "acme*"}}},
		{name: "method with space", m: Match{Methods: []string{"GET", "G T"}}, want: `methods[1]: "G T" is not a method (a token)`},
		{name: "empty method", m: Match{Methods: []string{""}}, want: `methods[0]: "" is not a method`},
		{name: "bad path glob", m: Match{Paths: []string{"/ok", "[a"}}, want: `paths[1]: "[a" is not a valid glob`},
		{name: "unclosed alternative", m: Match{Paths: []string{"/{a,b"}}, want: `paths[0]: "/{a,b" is not a valid glob`},
		{name: "relative path glob", m: Match{Paths: []string{"api/**"}}, want: `paths[0]: "api/**" never matches: a path starts with "/"`},
		{name: "empty path glob", m: Match{Paths: []string{""}}, want: `paths[0]: "" never matches`},
		{name: "bad exclude glob", m: Match{ExcludePaths: []string{"/x/[z"}}, want: `exclude_paths[0]: "/x/[z" is not a valid glob`},
		{name: "relative exclude glob", m: Match{ExcludePaths: []string{"admin"}}, want: `exclude_paths[0]: "admin" never matches`},
		{name: "bad header name", m: Match{Headers: map[string]string{"X Tenant": "a"}}, want: `headers["X Tenant"]: not a valid header name`},
		{name: "header name with colon", m: Match{Headers: map[string]string{"X-A:": "a"}}, want: `headers["X-A:"]: not a valid header name`},
		{name: "header twice", m: Match{Headers: map[string]string{"X-A": "a", "x-a": "b"}}, want: `headers["x-a"]: the same header as "X-A"`},
		{name: "header glob with CR", m: Match{Headers: map[string]string{"X-A": "a\rb"}}, want: `headers["X-A"]: the glob holds a control character at byte 1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.m.Compile()
			if tt.want == "" {
				if err != nil || c == nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile accepted %+v, want error %q", tt.m, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestMatcherMatches(t *testing.T) {
	v2 := Match{Methods: []string{"get"}, Paths: []string{"/v2/**"}}
	tests := []struct {
		name string
		m    Match
		req  *mlv1.Request
		want bool
	}{
		{name: "zero selects all", m: Match{}, req: req("DELETE", "/x"), want: true},
		{name: "zero selects unparseable", m: Match{}, req: req("GET", "//evil/x"), want: true},
		{name: "method case-insensitive", m: Match{Methods: []string{"get"}}, req: req("GET", "/"), want: true},
		{name: "method captured lower case", m: Match{Methods: []string{"POST"}}, req: req("post", "/"), want: true},
		{name: "method other", m: Match{Methods: []string{"GET", "HEAD"}}, req: req("POST", "/"), want: false},
		{name: "safe methods", m: Match{Methods: SafeMethods}, req: req("OPTIONS", "/"), want: true},
		{name: "safe methods refuse PUT", m: Match{Methods: SafeMethods}, req: req("PUT", "/"), want: false},
		{name: "double star across segments", m: v2, req: req("GET", "/v2/a/b/c?x=1"), want: true},
		{name: "double star matches the prefix itself", m: v2, req: req("GET", "/v2"), want: true},
		{name: "double star other prefix", m: v2, req: req("GET", "/v1/a"), want: false},
		{name: "double star needs a segment boundary", m: v2, req: req("GET", "/v2x/a"), want: false},
		{name: "method and path both needed", m: v2, req: req("POST", "/v2/a"), want: false},
		{name: "star within a segment", m: Match{Paths: []string{"/users/*"}}, req: req("GET", "/users/42"), want: true},
		{name: "star not across segments", m: Match{Paths: []string{"/users/*"}}, req: req("GET", "/users/42/orders"), want: false},
		{name: "question mark", m: Match{Paths: []string{"/v?/x"}}, req: req("GET", "/v3/x"), want: true},
		{name: "class", m: Match{Paths: []string{"/v[12]/x"}}, req: req("GET", "/v3/x"), want: false},
		{name: "alternatives", m: Match{Paths: []string{"/{a,b}/x"}}, req: req("GET", "/b/x"), want: true},
		{name: "glob on decoded path", m: Match{Paths: []string{"/café/*"}}, req: req("GET", "/caf%C3%A9/1"), want: true},
		{name: "decoded space", m: Match{Paths: []string{"/a b"}}, req: req("GET", "/a%20b"), want: true},
		{name: "query is not part of the path", m: Match{Paths: []string{"/x"}}, req: req("GET", "/x?a=/y"), want: true},
		{name: "absolute-form target", m: Match{Paths: []string{"/x/*"}}, req: req("GET", "http://primary:8080/x/1"), want: true},
		{name: "any path glob", m: Match{Paths: []string{"/nope", "/x/**"}}, req: req("GET", "/x/1"), want: true},
		{name: "exclude wins", m: Match{Paths: []string{"/**"}, ExcludePaths: []string{"/admin/**"}}, req: req("GET", "/admin/users"), want: false},
		{name: "exclude elsewhere", m: Match{Paths: []string{"/**"}, ExcludePaths: []string{"/admin/**"}}, req: req("GET", "/public"), want: true},
		{name: "exclude alone", m: Match{ExcludePaths: []string{"/health"}}, req: req("GET", "/health"), want: false},
		{name: "exclude alone other path", m: Match{ExcludePaths: []string{"/health"}}, req: req("GET", "/x"), want: true},
		{name: "unparseable target matches no glob", m: Match{Paths: []string{"/**"}}, req: req("GET", "//evil/x"), want: false},
		{name: "unparseable target not selected by an exclude", m: Match{ExcludePaths: []string{"/admin/**"}}, req: req("GET", "/a/../admin/x"), want: false},
		{name: "CONNECT matches no glob", m: Match{Paths: []string{"**"}}, req: req("CONNECT", "/x"), want: false},
		{name: "header name case-insensitive", m: Match{Headers: map[string]string{"x-tenant": "acme*"}}, req: req("GET", "/", "X-Tenant", "acme-eu"), want: true},
		{name: "header value glob whole value", m: Match{Headers: map[string]string{"X-Tenant": "acme"}}, req: req("GET", "/", "X-Tenant", "acme-eu"), want: false},
		{name: "header value case-sensitive", m: Match{Headers: map[string]string{"X-Tenant": "acme*"}}, req: req("GET", "/", "X-Tenant", "ACME"), want: false},
		{name: "header any value", m: Match{Headers: map[string]string{"X-Tenant": "acme*"}}, req: req("GET", "/", "X-Tenant", "other", "x-tenant", "acme"), want: true},
		{name: "header missing", m: Match{Headers: map[string]string{"X-Tenant": "*"}}, req: req("GET", "/", "X-Other", "acme"), want: false},
		{name: "header star matches empty value", m: Match{Headers: map[string]string{"X-Tenant": "*"}}, req: req("GET", "/", "X-Tenant", ""), want: true},
		{name: "every header needed", m: Match{Headers: map[string]string{"A": "1", "B": "2"}}, req: req("GET", "/", "A", "1"), want: false},
		{name: "every header present", m: Match{Headers: map[string]string{"A": "1", "B": "2"}}, req: req("GET", "/", "b", "2", "a", "1"), want: true},
		{name: "Host is the request's host", m: Match{Headers: map[string]string{"host": "api.*"}}, req: &mlv1.Request{Method: "GET", Url: "/", Host: "api.example"}, want: true},
		{name: "Host other", m: Match{Headers: map[string]string{"Host": "api.*"}}, req: &mlv1.Request{Method: "GET", Url: "/", Host: "www.example"}, want: false},
		{name: "Host not taken from the headers", m: Match{Headers: map[string]string{"Host": "api.*"}}, req: req("GET", "/", "Host", "api.example"), want: false},
		{name: "header with unparseable target", m: Match{Headers: map[string]string{"A": "1"}}, req: req("GET", "*", "A", "1"), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.m.Compile()
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if got := c.Matches(tt.req); got != tt.want {
				t.Fatalf("Matches(%s %s) = %v, want %v", tt.req.Method, tt.req.Url, got, tt.want)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, s string
		want    bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything at all", true},
		{"acme*", "acme", true},
		{"acme*", "acme-eu", true},
		{"acme*", "xacme", false},
		{"*acme", "x-acme", true},
		{"*acme*", "the acme co", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a?c", "abbc", false},
		{"?", "é", true},    // one character, two bytes
		{"??", "é", false},  // not two
		{"?", "\xff", true}, // one byte of a value that is not UTF-8
		{"a*b*c", "a-b-b-c", true},
		{"a*b*c", "a-b-b-", false},
		{"Bearer *", "Bearer abc.def", true},
		{"[a]", "[a]", true}, // no classes: brackets are literal
		{"[a]", "a", false},
		{"**", "x", true},
	}
	for _, tt := range tests {
		if got := globMatch(tt.glob, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.glob, tt.s, got, tt.want)
		}
	}
}

func TestGlobMatchLongValue(t *testing.T) {
	// The backtracking is bounded: a pathological glob on a long value
	// finishes (quadratic at worst, not exponential).
	v := strings.Repeat("a", 8192)
	if globMatch("*a*a*a*a*a*a*a*a*b", v) {
		t.Fatal("matched a value without b")
	}
}

func TestParseHeaderMatch(t *testing.T) {
	tests := []struct {
		in         string
		name, glob string
		err        string
	}{
		{in: "X-Tenant: acme*", name: "X-Tenant", glob: "acme*"},
		{in: "X-Tenant=acme*", name: "X-Tenant", glob: "acme*"},
		{in: "  x-tenant  :   acme  ", name: "x-tenant", glob: "acme"},
		{in: "Authorization: Bearer *", name: "Authorization", glob: "Bearer *"},
		{in: "X-Url: http://a/*", name: "X-Url", glob: "http://a/*"},         // only the first ':' separates
		{in: "X-Eq=a=b", name: "X-Eq", glob: "a=b"},                          // only the first '=' separates
		{in: "X-Empty:", name: "X-Empty", glob: ""},                          // the empty value
		{in: "X-Tenant", err: `want "Name: glob" or "Name=glob"`},            // no separator
		{in: ": acme", err: `"" is not a valid header name`},                 // no name
		{in: "X Tenant: acme", err: `"X Tenant" is not a valid header name`}, // not a token
		{in: "X-A: a\nb", err: "control character"},
	}
	for _, tt := range tests {
		name, glob, err := ParseHeaderMatch(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseHeaderMatch(%q) error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || name != tt.name || glob != tt.glob {
			t.Errorf("ParseHeaderMatch(%q) = %q, %q, %v, want %q, %q", tt.in, name, glob, err, tt.name, tt.glob)
		}
	}
}

func BenchmarkMatches(b *testing.B) {
	c, err := Match{
		Methods:      []string{"GET", "POST"},
		Paths:        []string{"/v1/**", "/v2/users/*/orders"},
		ExcludePaths: []string{"/v2/admin/**"},
		Headers:      map[string]string{"X-Tenant": "acme*"},
	}.Compile()
	if err != nil {
		b.Fatal(err)
	}
	r := req("GET", "/v2/users/42/orders?page=3", "Accept", "application/json", "User-Agent", "bench", "X-Tenant", "acme-eu")
	b.ReportAllocs()
	for b.Loop() {
		if !c.Matches(r) {
			b.Fatal("not matched")
		}
	}
}
