package route

import (
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// fuzzTransforms are applied to every fuzzed request: the path rewrites can
// produce "//", dot segments, control bytes and schemes from the captured
// path; the others touch headers, the query and a JSON body.
var fuzzTransforms = []Transform{
	{Path: &PathRewrite{Match: "^/p/(.*)$", Replace: "/$1"}},
	{Path: &PathRewrite{Match: "^/(.*)$", Replace: "$1"}},
	{Path: &PathRewrite{Match: "[a-z]+", Replace: "..//${0}"}, AddQuery: map[string]string{"shadow": "1"}},
	{Path: &PathRewrite{Match: "x", Replace: "\\"}},
	{AddQuery: map[string]string{"a b": "c&d=é#"}},
	{
		RemoveHeaders: []string{"X-Debug"},
		RenameHeaders: map[string]string{"X-Old": "X-New"},
		SetHeaders:    map[string]string{"X-Env": "shadow"},
		JSONDelete:    []string{"card", "user.email", "items.0"},
		JSONSet:       map[string]any{"user.tier": "test", "items.-1": map[string]any{"k": 1}},
	},
}

func FuzzTransformApply(f *testing.F) {
	seeds := []struct{ method, target, name, value, body string }{
		{"GET", "/p/x?a=1", "X-Old", "v", ""},
		{"GET", "/p//evil.example/x", "X-Debug", "1", ""},
		{"GET", "/p/../x", "Content-Type", "application/json", `{"card":1}`},
		{"POST", "http://primary/p/x?q", "Content-Type", "application/json", `{"user":{"email":"a","tier":"b"},"items":[1,2]}`},
		{"POST", "/x", "Content-Encoding", "gzip", `{"card":1}`},
		{"POST", "/caf%C3%A9/%2e%2e/x", "content-type", "text/plain", `{"card":1,"card":2}`},
		{"CONNECT", "evil.example:443", "Host", "x", ""},
		{"GET", "/a%2Fb/p/x", "X-New", "old", `[{"card":1}]`},
		{"GET", "/%0d%0a", "x-old", "a", ` "s" `},
		{"GET", "/http://evil.example/x", "X-Env", "prod", ""},
		{"GET", "/evil.example/x", "X-Env", "prod", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.name, s.value, []byte(s.body))
	}
	var compiled []*Transformer
	for i, tr := range fuzzTransforms {
		c, err := tr.Compile()
		if err != nil {
			f.Fatalf("fuzzTransforms[%d]: %v", i, err)
		}
		compiled = append(compiled, c)
	}
	f.Fuzz(func(t *testing.T, method, target, name, value string, body []byte) {
		in := &mlv1.Request{
			Method:   method,
			Url:      target,
			Headers:  []*mlv1.Header{{Name: name, Value: value}, {Name: "Content-Length", Value: "1"}},
			Body:     body,
			BodySize: int64(len(body)),
		}
		for i, tr := range compiled {
			r := proto.Clone(in).(*mlv1.Request)
			err := tr.Apply(r)
			again := proto.Clone(in).(*mlv1.Request)
			err2 := tr.Apply(again)
			if (err == nil) != (err2 == nil) || (err == nil && !proto.Equal(r, again)) {
				t.Fatalf("transform %d: Apply is not deterministic", i)
			}
			if err != nil {
				continue
			}
			if r.Url != in.Url || len(fuzzTransforms[i].AddQuery) > 0 {
				// A request-target Apply wrote: if the replayer accepts it,
				// it must be origin-form inside the path space.
				if rt, err := reqtarget.Check(r.Method, r.Url); err == nil {
					if !strings.HasPrefix(r.Url, "/") || strings.HasPrefix(r.Url, "//") || rt.Host != "" ||
						strings.HasPrefix(rt.DecodedPath(), "//") || strings.Contains(rt.DecodedPath(), "\\") {
						t.Fatalf("transform %d: %q -> accepted target %q leaves the path space", i, in.Url, r.Url)
					}
				}
			}
			if string(r.Body) != string(in.Body) {
				if !json.Valid(r.Body) || r.BodySize != int64(len(r.Body)) {
					t.Fatalf("transform %d: body changed to invalid JSON or BodySize %d for %d bytes", i, r.BodySize, len(r.Body))
				}
			}
			for _, h := range r.Headers {
				if strings.EqualFold(h.Name, "X-Debug") && len(fuzzTransforms[i].RemoveHeaders) > 0 {
					t.Fatalf("transform %d: X-Debug kept", i)
				}
				if strings.EqualFold(h.Name, "Content-Length") && string(r.Body) != string(in.Body) && h.Value != itoa(len(r.Body)) {
					t.Fatalf("transform %d: Content-Length %s for %d bytes", i, h.Value, len(r.Body))
				}
			}
		}
	})
}

// FuzzMatches checks that a path glob matching every path selects exactly
// the requests whose request-target parses, and that an exclusion of every
// path selects none, whatever the method, target and headers.
func FuzzMatches(f *testing.F) {
	for _, s := range [][2]string{{"GET", "/x"}, {"GET", "//evil/x"}, {"CONNECT", "h:443"}, {"get", "http://h/a%2Fb?q"}, {"POST", "/a/%2e%2e/b"}} {
		f.Add(s[0], s[1], "X-Tenant", "acme-1")
	}
	all, err := Match{Paths: []string{"/**"}, Headers: map[string]string{"x-tenant": "*"}}.Compile()
	if err != nil {
		f.Fatal(err)
	}
	none, err := Match{ExcludePaths: []string{"/**"}}.Compile()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, target, name, value string) {
		r := &mlv1.Request{Method: method, Url: target, Headers: []*mlv1.Header{{Name: name, Value: value}}}
		_, perr := reqtarget.Check(method, target)
		if got, want := all.Matches(r), perr == nil && strings.EqualFold(name, "X-Tenant"); got != want {
			t.Fatalf("Matches(%q %q, %q) = %v, want %v", method, target, name, got, want)
		}
		if none.Matches(r) {
			t.Fatalf("an exclusion of every path selected %q %q", method, target)
		}
	})
}
