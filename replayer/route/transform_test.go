package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func TestTransformCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		t    Transform
		want string // "" when Compile must succeed
	}{
		{name: "zero", t: Transform{}},
		{name: "all steps", t: Transform{
			RemoveHeaders: []string{"X-Debug"},
			RenameHeaders: map[string]string{"X-Old": "X-New"},
			SetHeaders:    map[string]string{"X-Env": "shadow", "X-Tab": "a\tb"[:1]},
			Path:          &PathRewrite{Match: "^/v1/(.*)$", Replace: "/v2/$1"},
			AddQuery:      map[string]string{"shadow": "1"},
			JSONDelete:    []string{"card", "items.0.id", `a\.b`},
			JSONSet:       map[string]any{"user.tier": "test", "n": 3, "o": map[string]any{"k": []any{1, "x"}}},
		}},
		{name: "remove bad name", t: Transform{RemoveHeaders: []string{"X-A", "X A"}}, want: `remove_headers[1]: "X A" is not a valid header name`},
		{name: "rename bad old name", t: Transform{RenameHeaders: map[string]string{"X:A": "X-B"}}, want: `rename_headers["X:A"]: not a valid header name`},
		{name: "rename bad new name", t: Transform{RenameHeaders: map[string]string{"X-A": "X\nB"}}, want: `rename_headers["X-A"]: "X\nB" is not a valid header name`},
		{name: "rename empty new name", t: Transform{RenameHeaders: map[string]string{"X-A": ""}}, want: `rename_headers["X-A"]: "" is not a valid header name`},
		{name: "rename to Host", t: Transform{RenameHeaders: map[string]string{"X-Host": "host"}}, want: `rename_headers["X-Host"]: "host" is written by the replayer or never forwarded`},
		{name: "rename chain", t: Transform{RenameHeaders: map[string]string{"A": "B", "B": "C"}}, want: `rename_headers["A"]: "B" is renamed too`},
		{name: "rename swap", t: Transform{RenameHeaders: map[string]string{"A": "b", "B": "A"}}, want: `is renamed too`},
		{name: "rename to itself", t: Transform{RenameHeaders: map[string]string{"x-a": "X-A"}}, want: `rename_headers["x-a"]: "X-A" is renamed too`},
		{name: "rename two to one", t: Transform{RenameHeaders: map[string]string{"A": "C", "B": "c"}}, want: `rename_headers["B"]: "c" is already the new name of "A"`},
		{name: "set bad name", t: Transform{SetHeaders: map[string]string{"X(A)": "1"}}, want: `set_headers["X(A)"]: not a valid header name`},
		{name: "set CRLF", t: Transform{SetHeaders: map[string]string{"X-A": "1\r\nX-Evil: 2"}}, want: `set_headers["X-A"]: the value holds a control character`},
		{name: "set LF", t: Transform{SetHeaders: map[string]string{"X-A": "1\n"}}, want: `control character`},
		{name: "set NUL", t: Transform{SetHeaders: map[string]string{"X-A": "a\x00"}}, want: `control character`},
		{name: "set DEL", t: Transform{SetHeaders: map[string]string{"X-A": "a\x7f"}}, want: `control character`},
		{name: "set tab", t: Transform{SetHeaders: map[string]string{"X-A": "a\tb"}}, want: `control character`},
		{name: "remove Host", t: Transform{RemoveHeaders: []string{"host"}}, want: `remove_headers[0]: Host is the request's authority`},
		{name: "rename Host", t: Transform{RenameHeaders: map[string]string{"Host": "X-Host"}}, want: `rename_headers["Host"]: Host is the request's authority`},
		{name: "set Host", t: Transform{SetHeaders: map[string]string{"Host": "x"}}, want: `set_headers["Host"]: written by the replayer`},
		{name: "set twice", t: Transform{SetHeaders: map[string]string{"X-A": "1", "x-a": "2"}}, want: `set_headers["x-a"]: the same header as "X-A"`},
		{name: "set Content-Length", t: Transform{SetHeaders: map[string]string{"Content-Length": "0"}}, want: `set_headers["Content-Length"]: written by the replayer or never forwarded`},
		{name: "set Transfer-Encoding", t: Transform{SetHeaders: map[string]string{"transfer-encoding": "chunked"}}, want: `never forwarded`},
		{name: "path empty match", t: Transform{Path: &PathRewrite{Replace: "/x"}}, want: `path.match: empty`},
		{name: "path bad regexp", t: Transform{Path: &PathRewrite{Match: "^/v1/(.*$", Replace: "/x"}}, want: `path.match: "^/v1/(.*$" does not compile`},
		{name: "query empty name", t: Transform{AddQuery: map[string]string{"": "1"}}, want: `add_query: a parameter name is empty`},
		{name: "json delete empty", t: Transform{JSONDelete: []string{"a", ""}}, want: `json_delete[1]: empty path`},
		{name: "json delete empty key", t: Transform{JSONDelete: []string{"a..b"}}, want: `json_delete[0]: path "a..b" has an empty key`},
		{name: "json delete leading dot", t: Transform{JSONDelete: []string{".a"}}, want: `has an empty key`},
		{name: "json delete trailing dot", t: Transform{JSONDelete: []string{"a."}}, want: `has an empty key`},
		{name: "json delete query", t: Transform{JSONDelete: []string{"items.#.id"}}, want: `json_delete[0]: path "items.#.id": '#' is a gjson query character`},
		{name: "json delete modifier", t: Transform{JSONDelete: []string{"@reverse"}}, want: `'@' is a gjson query character`},
		{name: "json delete wildcard", t: Transform{JSONDelete: []string{"user.*"}}, want: `'*' is a gjson query character`},
		{name: "json delete pipe", t: Transform{JSONDelete: []string{"a|b"}}, want: `'|' is a gjson query character`},
		{name: "json delete lone backslash", t: Transform{JSONDelete: []string{`a\`}}, want: `ends with a lone backslash`},
		{name: "json set empty", t: Transform{JSONSet: map[string]any{"": 1}}, want: `json_set[""]: empty path`},
		{name: "json set query", t: Transform{JSONSet: map[string]any{"a.?b": 1}}, want: `json_set["a.?b"]: path "a.?b": '?' is a gjson query character`},
		{name: "json set value not JSON", t: Transform{JSONSet: map[string]any{"a": math.NaN()}}, want: `json_set["a"]: the value is not JSON`},
		{name: "json set value YAML map with non-string keys", t: Transform{JSONSet: map[string]any{"a": map[any]any{1: 2}}}, want: `json_set["a"]: the value is not JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.t.Compile()
			if tt.want == "" {
				if err != nil || c == nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile accepted %+v, want error %q", tt.t, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// headerList renders headers as "Name: value" lines, in order.
func headerList(r *mlv1.Request) string {
	var b strings.Builder
	for _, h := range r.Headers {
		b.WriteString(h.Name + ": " + h.Value + "\n")
	}
	return b.String()
}

func mustCompile(t testing.TB, tr Transform) *Transformer {
	t.Helper()
	c, err := tr.Compile()
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

func TestTransformApplyHeaders(t *testing.T) {
	tests := []struct {
		name string
		t    Transform
		in   []string
		want string
	}{
		{name: "remove every value, any case", t: Transform{RemoveHeaders: []string{"x-debug"}},
			in: []string{"X-Debug", "1", "Accept", "*/*", "X-DEBUG", "2"}, want: "Accept: */*\n"},
		{name: "remove absent", t: Transform{RemoveHeaders: []string{"X-Debug"}},
			in: []string{"Accept", "*/*"}, want: "Accept: */*\n"},
		{name: "rename keeps values and places", t: Transform{RenameHeaders: map[string]string{"x-old": "X-New"}},
			in: []string{"X-Old", "1", "Accept", "*/*", "x-old", "2"}, want: "X-New: 1\nAccept: */*\nX-New: 2\n"},
		{name: "rename replaces the new name's values", t: Transform{RenameHeaders: map[string]string{"X-Old": "X-New"}},
			in: []string{"x-new", "stale", "X-Old", "1"}, want: "X-New: 1\n"},
		{name: "rename absent keeps the new name", t: Transform{RenameHeaders: map[string]string{"X-Old": "X-New"}},
			in: []string{"X-New", "kept"}, want: "X-New: kept\n"},
		{name: "set adds", t: Transform{SetHeaders: map[string]string{"X-Env": "shadow"}},
			in: []string{"Accept", "*/*"}, want: "Accept: */*\nX-Env: shadow\n"},
		{name: "set replaces every value in the first place", t: Transform{SetHeaders: map[string]string{"X-Env": "shadow"}},
			in: []string{"A", "1", "x-env", "prod", "B", "2", "X-ENV", "eu"}, want: "A: 1\nX-Env: shadow\nB: 2\n"},
		{name: "set empty value", t: Transform{SetHeaders: map[string]string{"X-Env": ""}},
			in: nil, want: "X-Env: \n"},
		{name: "order: remove, rename, set", t: Transform{
			RemoveHeaders: []string{"X-New"},
			RenameHeaders: map[string]string{"X-Old": "X-New"},
			SetHeaders:    map[string]string{"X-Old": "set"},
		}, in: []string{"X-New", "removed", "X-Old", "renamed"}, want: "X-New: renamed\nX-Old: set\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("GET", "/x", tt.in...)
			if err := mustCompile(t, tt.t).Apply(r); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := headerList(r); got != tt.want {
				t.Fatalf("headers\n%s\nwant\n%s", got, tt.want)
			}
			if r.Url != "/x" {
				t.Fatalf("Url changed to %q", r.Url)
			}
		})
	}
}

func TestTransformApplyTarget(t *testing.T) {
	v1v2 := &PathRewrite{Match: "^/v1/(.*)$", Replace: "/v2/$1"}
	tests := []struct {
		name   string
		t      Transform
		method string
		in     string
		want   string // Url after Apply; "" when Apply must fail
		unsafe bool   // the error wraps reqtarget.ErrUnsafe
		err    string
	}{
		{name: "rewrite keeps the query", t: Transform{Path: v1v2}, in: "/v1/users/42?a=1&b=%zz", want: "/v2/users/42?a=1&b=%zz"},
		{name: "rewrite keeps an empty query", t: Transform{Path: v1v2}, in: "/v1/x?", want: "/v2/x?"},
		{name: "no match leaves the target as captured", t: Transform{Path: v1v2}, in: "/v3/caf%c3%a9?q", want: "/v3/caf%c3%a9?q"},
		{name: "no match leaves absolute-form", t: Transform{Path: v1v2}, in: "http://primary/v3/x", want: "http://primary/v3/x"},
		{name: "rewrite of absolute-form gives origin-form", t: Transform{Path: v1v2}, in: "http://primary:8080/v1/x?y=1", want: "/v2/x?y=1"},
		{name: "rewrite on the decoded path, encoded again", t: Transform{Path: v1v2}, in: "/v1/caf%C3%A9/a%20b", want: "/v2/caf%C3%A9/a%20b"},
		{name: "decoded question mark stays in the path", t: Transform{Path: v1v2}, in: "/v1/a%3Fb?q=1", want: "/v2/a%3Fb?q=1"},
		{name: "decoded hash stays in the path", t: Transform{Path: v1v2}, in: "/v1/a%23b", want: "/v2/a%23b"},
		{name: "replacement is encoded", t: Transform{Path: &PathRewrite{Match: "^/x$", Replace: "/a b/ü?#%"}}, in: "/x?q", want: "/a%20b/%C3%BC%3F%23%25?q"},
		{name: "first match only", t: Transform{Path: &PathRewrite{Match: "a", Replace: "b"}}, in: "/a/a", want: "/b/a"},
		{name: "named group", t: Transform{Path: &PathRewrite{Match: "^/u/(?P<id>[0-9]+)$", Replace: "/users/${id}"}}, in: "/u/7", want: "/users/7"},
		{name: "same result keeps the capture", t: Transform{Path: &PathRewrite{Match: "^/(a)", Replace: "/$1"}}, in: "/a%2Fb", want: "/a%2Fb"},
		{name: "encoded slash not rewritten", t: Transform{Path: v1v2}, in: "/v1/a%2Fb", err: "encoded slash"},
		{name: "rewrite to a relative path refused", t: Transform{Path: &PathRewrite{Match: "^/v1/", Replace: ""}}, in: "/v1/evil.example/x", unsafe: true, err: `does not start with "/"`},
		{name: "rewrite to a scheme refused", t: Transform{Path: &PathRewrite{Match: "^/.*$", Replace: "http://evil.example/"}}, in: "/x", unsafe: true},
		{name: "unparseable target", t: Transform{Path: v1v2}, in: "//evil/v1/x", unsafe: true},
		{name: "CONNECT", t: Transform{AddQuery: map[string]string{"a": "1"}}, method: "CONNECT", in: "/x", unsafe: true},
		{name: "add query", t: Transform{AddQuery: map[string]string{"shadow": "1"}}, in: "/x", want: "/x?shadow=1"},
		{name: "add query after the captured one", t: Transform{AddQuery: map[string]string{"shadow": "1"}}, in: "/x?a=1&shadow=0", want: "/x?a=1&shadow=0&shadow=1"},
		{name: "add query to an empty query", t: Transform{AddQuery: map[string]string{"shadow": "1"}}, in: "/x?", want: "/x?shadow=1"},
		{name: "add query encodes, sorted by name", t: Transform{AddQuery: map[string]string{"z": "a&b=c", "a b": "é#"}}, in: "/x", want: "/x?a+b=%C3%A9%23&z=a%26b%3Dc"},
		{name: "add query to absolute-form gives origin-form", t: Transform{AddQuery: map[string]string{"s": "1"}}, in: "https://primary/x", want: "/x?s=1"},
		{name: "rewrite then query", t: Transform{Path: v1v2, AddQuery: map[string]string{"s": "1"}}, in: "/v1/x?a", want: "/v2/x?a&s=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			r := req(method, tt.in)
			err := mustCompile(t, tt.t).Apply(r)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Apply accepted, Url %q", r.Url)
				}
				if tt.unsafe != errors.Is(err, reqtarget.ErrUnsafe) {
					t.Fatalf("Apply error %v: wraps ErrUnsafe %v, want %v", err, !tt.unsafe, tt.unsafe)
				}
				if !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Apply error %q, want it to contain %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "evil") {
					t.Fatalf("Apply error %q holds the request-target", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if r.Url != tt.want {
				t.Fatalf("Url %q, want %q", r.Url, tt.want)
			}
			if _, err := reqtarget.Check(method, r.Url); err != nil {
				t.Fatalf("rewritten target %q refused: %v", r.Url, err)
			}
		})
	}
}

func TestTransformApplyJSON(t *testing.T) {
	del := Transform{JSONDelete: []string{"card", "user.email"}}
	set := Transform{JSONSet: map[string]any{"user.tier": "test", "flags.shadow": true}}
	tests := []struct {
		name    string
		t       Transform
		headers []string
		body    string
		trunc   bool
		want    string // body after Apply; "" when Apply must fail with ErrNotJSON
		err     string // when Apply must fail with another error: what it says
		empty   bool   // the body is empty and stays so, without error
	}{
		{name: "delete keeps order and other members", t: del, headers: []string{"Content-Type", "application/json"},
			body: `{"b":1,"card":"4111","user":{"email":"a@b","id":7},"a":[1,2]}`, want: `{"b":1,"user":{"id":7},"a":[1,2]}`},
		{name: "same key in different objects", t: del, body: `{"card":1,"user":{"card":2,"email":3},"items":[{"card":4},{"card":5}]}`,
			want: `{"user":{"card":2},"items":[{"card":4},{"card":5}]}`},
		{name: "key equal to a value", t: del, body: `{"a":"card","card":"a","b":["card"]}`, want: `{"a":"card","b":["card"]}`},
		{name: "delete absent changes nothing", t: del, headers: []string{"Content-Type", "application/json"},
			body: `{"x":1}`, want: `{"x":1}`},
		{name: "delete array element", t: Transform{JSONDelete: []string{"items.0.id"}}, headers: []string{"Content-Type", "application/json"},
			body: `{"items":[{"id":1,"n":2},{"id":3}]}`, want: `{"items":[{"n":2},{"id":3}]}`},
		{name: "delete escaped dot", t: Transform{JSONDelete: []string{`a\.b`}}, headers: []string{"Content-Type", "application/json"},
			body: `{"a.b":1,"a":{"b":2}}`, want: `{"a":{"b":2}}`},
		{name: "set replaces and creates", t: set, headers: []string{"Content-Type", "application/json; charset=utf-8"},
			body: `{"user":{"tier":"gold","id":7}}`, want: `{"user":{"tier":"test","id":7},"flags":{"shadow":true}}`},
		{name: "set structured value", t: Transform{JSONSet: map[string]any{"o": map[string]any{"k": []any{1, "x"}}}},
			headers: []string{"Content-Type", "application/json"}, body: `{}`, want: `{"o":{"k":[1,"x"]}}`},
		{name: "delete then set", t: Transform{JSONDelete: []string{"a"}, JSONSet: map[string]any{"a": 2}},
			headers: []string{"Content-Type", "application/json"}, body: `{"a":1,"b":1}`, want: `{"b":1,"a":2}`},
		{name: "plus json media type", t: set, headers: []string{"Content-Type", "application/vnd.api+json"},
			body: `{}`, want: `{"flags":{"shadow":true},"user":{"tier":"test"}}`}, // new members sorted by path
		{name: "any type slash json", t: del, headers: []string{"content-type", "TEXT/JSON"},
			body: `{"card":1}`, want: `{}`},
		{name: "no content type, body parses", t: del, body: `{"card":1,"x":2}`, want: `{"x":2}`},
		{name: "identity encoding", t: del, headers: []string{"Content-Encoding", "identity", "Content-Type", "application/json"},
			body: `{"card":1}`, want: `{}`},
		{name: "no content type, body does not parse", t: del, body: `card=1`},
		{name: "form body", t: del, headers: []string{"Content-Type", "application/x-www-form-urlencoded"}, body: `{"card":1}`},
		{name: "two content types, one not JSON", t: del, headers: []string{"Content-Type", "application/json", "Content-Type", "text/plain"}, body: `{"card":1}`},
		{name: "content type does not parse", t: del, headers: []string{"Content-Type", "application/json; ="}, body: `{"card":1}`},
		{name: "JSON type, body does not parse", t: del, headers: []string{"Content-Type", "application/json"}, body: `{"card":`},
		{name: "empty body left as is", t: set, headers: []string{"Content-Type", "application/json"}, body: ``, empty: true},
		{name: "no body, form type, left as is", t: del, headers: []string{"Content-Type", "text/plain"}, body: ``, empty: true},
		{name: "empty body cut at capture", t: del, body: ``, trunc: true},
		{name: "gzip", t: del, headers: []string{"Content-Type", "application/json", "Content-Encoding", "gzip"}, body: `{"card":1}`},
		{name: "identity then gzip", t: del, headers: []string{"Content-Encoding", "identity, gzip"}, body: `{"card":1}`},
		{name: "truncated at capture", t: del, headers: []string{"Content-Type", "application/json"}, body: `{"card":1}`, trunc: true},
		{name: "set in a scalar body", t: set, headers: []string{"Content-Type", "application/json"}, body: `"text"`},
		{name: "set in null", t: set, body: ` null`},
		{name: "delete in a number", t: del, body: `5`},
		{name: "set in an array", t: set, body: `[1,2]`, err: `transform json_set "flags.shadow": cannot set array element`},
		{name: "duplicate key", t: del, body: `{"card":1,"card":2}`},
		{name: "duplicate key with escapes", t: del, body: `{"card":1,"c\u0061rd":2}`},
		{name: "duplicate nested object", t: del, body: `{"user":{"email":1},"x":[{"a":1}],"user":{"email":2}}`},
		{name: "duplicate in an array element", t: set, body: `{"items":[{"id":1,"id":2}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("POST", "/x", tt.headers...)
			r.Headers = append(r.Headers, &mlv1.Header{Name: "Content-Length", Value: "999"})
			r.Body, r.BodySize, r.BodyTruncated = []byte(tt.body), 999, tt.trunc
			err := mustCompile(t, tt.t).Apply(r)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Apply error %v, want %q", err, tt.err)
				}
				return
			}
			if tt.want == "" && !tt.empty {
				if !errors.Is(err, ErrNotJSON) {
					t.Fatalf("Apply error %v, want ErrNotJSON", err)
				}
				if tt.body != "" && strings.Contains(err.Error(), tt.body) {
					t.Fatalf("Apply error %q holds the body", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(r.Body) != tt.want {
				t.Fatalf("body %s, want %s", r.Body, tt.want)
			}
			wantSize, wantCL := int64(999), "999" // unchanged when the body is
			if tt.want != tt.body {
				wantSize, wantCL = int64(len(tt.want)), itoa(len(tt.want))
			}
			if r.BodySize != wantSize {
				t.Fatalf("BodySize %d, want %d", r.BodySize, wantSize)
			}
			if cl := r.Headers[len(r.Headers)-1].Value; cl != wantCL {
				t.Fatalf("Content-Length %s, want %s", cl, wantCL)
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestNilTransformerAndMatcher(t *testing.T) {
	r := req("GET", "/x", "A", "1")
	var tr *Transformer
	if err := tr.Apply(r); err != nil || r.Url != "/x" || headerList(r) != "A: 1\n" {
		t.Fatalf("nil Transformer: %v, %v", err, r)
	}
	var m *Matcher
	if !m.Matches(r) {
		t.Fatal("nil Matcher does not select")
	}
}

func TestTransformEmpty(t *testing.T) {
	if !(Transform{}).Empty() {
		t.Fatal("zero Transform not Empty")
	}
	if (Transform{AddQuery: map[string]string{"a": "1"}}).Empty() {
		t.Fatal("Transform with add_query Empty")
	}
	// The zero transformer changes nothing.
	r := req("POST", "http://primary/x?a", "A", "1")
	r.Body = []byte("not json")
	if err := mustCompile(t, Transform{}).Apply(r); err != nil {
		t.Fatal(err)
	}
	if r.Url != "http://primary/x?a" || headerList(r) != "A: 1\n" || string(r.Body) != "not json" {
		t.Fatalf("zero transform changed the request: %v", r)
	}
}

func BenchmarkApply(b *testing.B) {
	c := mustCompile(b, Transform{
		RemoveHeaders: []string{"X-Debug"},
		RenameHeaders: map[string]string{"X-Old": "X-New"},
		SetHeaders:    map[string]string{"X-Env": "shadow"},
		Path:          &PathRewrite{Match: "^/v1/(.*)$", Replace: "/v2/$1"},
		AddQuery:      map[string]string{"shadow": "1"},
		JSONDelete:    []string{"card"},
		JSONSet:       map[string]any{"user.tier": "test"},
	})
	body := []byte(`{"user":{"id":42,"name":"x","tier":"gold"},"card":"4111111111111111","items":[{"id":1},{"id":2}]}`)
	b.ReportAllocs()
	for b.Loop() {
		r := req("POST", "/v1/users/42/orders?page=3", "Content-Type", "application/json", "X-Debug", "1", "X-Old", "a", "Accept", "*/*")
		r.Body = body
		if err := c.Apply(r); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDupKeys(t *testing.T) {
	tests := []struct {
		json string
		want bool
	}{
		{`{}`, false},
		{`[]`, false},
		{`{"a":1,"b":2}`, false},
		{`{"a":1,"a":2}`, true},
		{`{"a":{"a":{"a":1}}}`, false},
		{`[{"a":1},{"a":2}]`, false},
		{`[{"a":1,"a":2}]`, true},
		{`{"a":"a","b":"a"}`, false},
		{`{"a":["a","a"]}`, false},
		{`{"a\"":1,"a":2}`, false},
		{`{"a\"":1,"a\u0022":2}`, true},
		{`{"\\":1,"\u005c":2}`, true},
		{`{"x":"\\","x\\":1}`, false},
		{`{"k":true,"n":null,"m":-1.5e3,"k":false}`, true},
		{` { "a" : 1 , "b" : { "c" : [ 1 , 2 ] } , "a" : 3 } `, true},
		{`{"a":{},"b":{},"c":[[],{}]}`, false},
		{`{"a":1,"b":{"x":1},"a":{}}`, true},
	}
	for _, tt := range tests {
		if got := dupKeys([]byte(tt.json)); got != tt.want {
			t.Errorf("dupKeys(%s) = %v, want %v", tt.json, got, tt.want)
		}
		if got := dupKeysDecoder([]byte(tt.json)); got != tt.want {
			t.Errorf("reference dupKeysDecoder(%s) = %v, want %v", tt.json, got, tt.want)
		}
	}
}

// FuzzDupKeys checks the one-pass scanner against encoding/json's tokens.
func FuzzDupKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"a":"\"a\""},{"b":[1,{"c":2,"c":3}]}]`, `{"\u0061":1,"a":2}`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			return
		}
		if got, want := dupKeys(b), dupKeysDecoder(b); got != want {
			t.Fatalf("dupKeys(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

// dupKeysDecoder is dupKeys written with encoding/json's Decoder.Token:
// slower, and the reference the fuzz test compares with.
func dupKeysDecoder(b []byte) bool {
	type frame struct {
		keys      map[string]bool // nil for an array
		expectKey bool
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if k, ok := tok.(string); ok && top != nil && top.keys != nil && top.expectKey {
			if top.keys[k] {
				return true
			}
			top.keys[k], top.expectKey = true, false
			continue
		}
		if top != nil && top.keys != nil {
			top.expectKey = true
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, expectKey: true})
		case json.Delim('['):
			stack = append(stack, &frame{})
		}
	}
}

// TestTransformDocExample is the example of the transform reference.
func TestTransformDocExample(t *testing.T) {
	tr := mustCompile(t, Transform{
		RemoveHeaders: []string{"X-Debug"},
		RenameHeaders: map[string]string{"X-Old": "X-New"},
		SetHeaders:    map[string]string{"X-Env": "shadow"},
		Path:          &PathRewrite{Match: "^/v1/(.*)$", Replace: "/v2/${1}"},
		AddQuery:      map[string]string{"shadow": "1"},
		JSONDelete:    []string{"card", "user.email"},
		JSONSet:       map[string]any{"user.tier": "test", "flags.shadow": true},
	})
	r := req("POST", "/v1/orders?page=2", "X-Old", "a", "X-Debug", "1", "Content-Type", "application/json")
	r.Body = []byte(`{"card":"4111111111111111","user":{"email":"a@b","tier":"gold"}}`)
	if err := tr.Apply(r); err != nil {
		t.Fatal(err)
	}
	if r.Url != "/v2/orders?page=2&shadow=1" {
		t.Errorf("Url %q", r.Url)
	}
	if got, want := headerList(r), "X-New: a\nContent-Type: application/json\nX-Env: shadow\n"; got != want {
		t.Errorf("headers\n%s\nwant\n%s", got, want)
	}
	if got, want := string(r.Body), `{"user":{"tier":"test"},"flags":{"shadow":true}}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
}
