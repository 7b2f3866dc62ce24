package route_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/replayer/route"
)

// TestTransformThenShadowURL runs the replayer's order: a route's transform
// on a copy of the captured request, then the replayer's URL building, which
// checks the rewritten request-target again. A rewrite that would leave the
// target (or its base path) is refused there, never sent; a safe rewrite
// lands on the target's host under its base path.
func TestTransformThenShadowURL(t *testing.T) {
	target, err := url.Parse("http://shadow.test:8080/base/")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		replace string // replacement of the whole decoded path
		in      string // captured request-target
		want    string // URL built; "" when refused as unsafe
		byApply bool   // refused by Apply already (as unsafe), not only by ShadowURL
	}{
		{name: "scheme-relative", replace: "//evil.example/", in: "/x"},
		{name: "scheme-relative from a group", replace: "/$1", in: "/p//evil.example/x"},
		{name: "dot-dot", replace: "/../x", in: "/x"},
		{name: "dot-dot from a group", replace: "/$1", in: "/p/../admin", byApply: true},
		{name: "dot segment with params", replace: "/a/..;x/b", in: "/x"},
		{name: "backslash", replace: "/\\evil.example/x", in: "/x"},
		{name: "CR LF", replace: "/x\r\nHost: evil.example", in: "/x"},
		{name: "NUL", replace: "/x\x00y", in: "/x"},
		{name: "absolute URL", replace: "http://evil.example/x", in: "/x", byApply: true},
		{name: "userinfo", replace: "@evil.example/x", in: "/x", byApply: true},
		{name: "empty", replace: "", in: "/x", byApply: true},
		{name: "safe", replace: "/v2/$1", in: "/p/a%20b?q=1", want: "http://shadow.test:8080/base/v2/a%20b?q=1"},
		{name: "encoded dots are literal", replace: "/%2e%2e/x", in: "/x", want: "http://shadow.test:8080/base/%252e%252e/x"},
		{name: "query-looking path stays a path", replace: "/x?admin=1#f", in: "/x?q", want: "http://shadow.test:8080/base/x%3Fadmin=1%23f?q"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := route.Transform{Path: &route.PathRewrite{Match: "^/(?:p/)?(.*)$", Replace: tt.replace}}.Compile()
			if err != nil {
				t.Fatal(err)
			}
			ex := &mlv1.Exchange{Id: "ex-1", Request: &mlv1.Request{Method: "GET", Url: tt.in}}
			applyErr := tr.Apply(ex.Request)
			u, err := replayer.ShadowURL(target, ex.Request.Method, ex.Request.Url)
			if tt.want != "" {
				if applyErr != nil || err != nil {
					t.Fatalf("Apply: %v; ShadowURL: %v", applyErr, err)
				}
				if u.String() != tt.want {
					t.Fatalf("URL %s, want %s", u, tt.want)
				}
				return
			}
			if tt.byApply {
				// A captured target that does not parse, or a path without
				// its leading "/": refused as unsafe, as the replayer would.
				if !errors.Is(applyErr, reqtarget.ErrUnsafe) {
					t.Fatalf("Apply error %v, want one wrapping reqtarget.ErrUnsafe", applyErr)
				}
				return
			}
			if applyErr != nil {
				t.Fatalf("Apply: %v", applyErr)
			}
			if !errors.Is(err, reqtarget.ErrUnsafe) {
				t.Fatalf("rewritten target %q: ShadowURL = %v, %v; want an error wrapping reqtarget.ErrUnsafe", ex.Request.Url, u, err)
			}
			if strings.Contains(err.Error(), "evil") {
				t.Fatalf("ShadowURL error %q holds the request-target", err)
			}
			if _, err := replayer.BuildRequest(context.Background(), target, ex, false); !errors.Is(err, reqtarget.ErrUnsafe) {
				t.Fatalf("BuildRequest error %v, want one wrapping reqtarget.ErrUnsafe", err)
			}
		})
	}
}
