package reqtarget

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		raw    string
		want   string // origin-form; "" when rejected
		host   string
		reason string
	}{
		// Accepted, kept as captured.
		{raw: "/", want: "/"},
		{raw: "/x", want: "/x"},
		{raw: "/a/b?c=d&e=%zz", want: "/a/b?c=d&e=%zz"},
		{raw: "/x?", want: "/x?"},
		{raw: "/users/@me", want: "/users/@me"},
		{raw: "/a:b/c", want: "/a:b/c"},
		{raw: "/caf%C3%A9", want: "/caf%C3%A9"},
		{raw: "/a%2Fb", want: "/a%2Fb"},
		{raw: "/a//b", want: "/a//b"},
		{raw: "/...", want: "/..."},
		{raw: "/.well-known/x", want: "/.well-known/x"},
		{raw: "/x?u=http://evil/&v=[a]", want: "/x?u=http://evil/&v=[a]"},
		{raw: "/x?v=a\\b", reason: ReasonBackslash},
		// Absolute-form: only path and query kept, host reported.
		{raw: "http://primary/x?y", want: "/x?y", host: "primary"},
		{raw: "HTTPS://primary:8443", want: "/", host: "primary:8443"},
		{raw: "http://primary?q", want: "/?q", host: "primary"},
		{raw: "http://10.0.0.1:80/x", want: "/x", host: "10.0.0.1:80"},
		{raw: "http://[::1]:80/x", want: "/x", host: "[::1]:80"},
		// Rejected.
		{raw: "", reason: ReasonEmpty},
		{raw: "*", reason: ReasonAsterisk},
		{raw: "evil:80", reason: ReasonNotOrigin},
		{raw: "evil.example:443", reason: ReasonNotOrigin},
		{raw: "x", reason: ReasonNotOrigin},
		{raw: "@evil.example/x", reason: ReasonNotOrigin},
		{raw: ".evil.example/x", reason: ReasonNotOrigin},
		{raw: "evil.localhost:80/x", reason: ReasonNotOrigin},
		{raw: "%2F%2Fevil/x", reason: ReasonNotOrigin},
		{raw: "http:@localhost/x", reason: ReasonNotOrigin},
		{raw: "http:/evil/x", reason: ReasonNotOrigin},
		{raw: "//evil/x", reason: ReasonDoubleSlash},
		{raw: "///evil/x", reason: ReasonDoubleSlash},
		{raw: "/%2F%2Fevil/x", reason: ReasonEncodedSlash},
		{raw: "/%2fevil/x", reason: ReasonEncodedSlash},
		{raw: "/%5Cevil", reason: ReasonEncodedSlash},
		{raw: "/a%00b", reason: ReasonEncodedSlash},
		{raw: "/a%0d%0aX-Injected:%201", reason: ReasonEncodedSlash},
		{raw: "\\\\evil\\x", reason: ReasonBackslash},
		{raw: "/\\evil", reason: ReasonBackslash},
		{raw: "/x#frag", reason: ReasonFragment},
		{raw: "/x y", reason: ReasonByte},
		{raw: "/x\ty", reason: ReasonByte},
		{raw: "/x\r\nHost: evil", reason: ReasonByte},
		{raw: "/x\x00", reason: ReasonByte},
		{raw: "/caf\xc3\xa9", reason: ReasonByte},
		{raw: "/\uff0f\uff0fevil", reason: ReasonByte},
		{raw: "/a%zzb", reason: ReasonEscape},
		{raw: "/a%2", reason: ReasonEscape},
		{raw: "/../admin", reason: ReasonDotSegment},
		{raw: "/a/./b", reason: ReasonDotSegment},
		{raw: "/a/..", reason: ReasonDotSegment},
		{raw: "/%2e%2e/admin", reason: ReasonDotSegment},
		{raw: "/%2E./admin", reason: ReasonDotSegment},
		{raw: "/..;/admin", reason: ReasonDotSegment},
		{raw: "/a/..%2fadmin", reason: ReasonDotSegment},
		{raw: "http://user@evil/x", reason: ReasonUserinfo},
		{raw: "http://user:pw@evil/x", reason: ReasonUserinfo},
		{raw: "http://primary@evil/x", reason: ReasonUserinfo},
		{raw: "http://evil/@x", want: "/@x", host: "evil"},
		{raw: "ftp://evil/x", reason: ReasonScheme},
		{raw: "javascript://evil/x", reason: ReasonScheme},
		{raw: "http:///x", reason: ReasonHost},
		{raw: "http://.evil/x", reason: ReasonHost},
		{raw: "http://evil:/x", reason: ReasonHost},
		{raw: "http://evil:8o/x", reason: ReasonHost},
		{raw: "http://ev%69l/x", reason: ReasonHost},
		{raw: "http://[]/x", reason: ReasonHost},
		{raw: "http://[::1/x", reason: ReasonHost},
		{raw: "http://primary//evil/x", reason: ReasonDoubleSlash},
		{raw: "http://primary/../x", reason: ReasonDotSegment},
	}
	for _, tc := range tests {
		got, err := Parse(tc.raw)
		if tc.reason != "" {
			var ue *Error
			if !errors.As(err, &ue) || ue.Reason != tc.reason || !errors.Is(err, ErrUnsafe) {
				t.Errorf("Parse(%q) = %q, %v; want rejected: %s", tc.raw, got.String(), err, tc.reason)
			}
			if err != nil && tc.raw != "" && strings.Contains(err.Error(), tc.raw) {
				t.Errorf("Parse(%q): error %q echoes the target", tc.raw, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want || got.Host != tc.host {
			t.Errorf("Parse(%q) = %q host %q, %v; want %q host %q", tc.raw, got.String(), got.Host, err, tc.want, tc.host)
		}
	}
}

func TestCheckRejectsConnect(t *testing.T) {
	for _, m := range []string{"CONNECT", "connect"} {
		for _, raw := range []string{"evil:443", "/", "http://evil/"} {
			if _, err := Check(m, raw); !errors.Is(err, ErrUnsafe) || !strings.HasSuffix(err.Error(), ReasonConnect) {
				t.Errorf("Check(%s, %q) = %v, want %s", m, raw, err, ReasonConnect)
			}
		}
	}
	if got, err := Check("OPTIONS", "/x"); err != nil || got.String() != "/x" {
		t.Errorf("Check(OPTIONS, /x) = %q, %v", got.String(), err)
	}
	if _, err := Check("OPTIONS", "*"); !errors.Is(err, ErrUnsafe) {
		t.Errorf("Check(OPTIONS, *) = %v, want unsafe", err)
	}
}

// FuzzParse: what Parse keeps parses to itself, so the replayer
// accepts every target a collector recorded.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"/x", "http://h/x?y", "@evil/x", "/%2F", "/..;/a", "*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("error %v does not wrap ErrUnsafe", err)
			}
			return
		}
		again, err := Parse(got.String())
		if err != nil || again.String() != got.String() || again.Host != "" {
			t.Fatalf("Parse(%q) = %q, which parses to %q host %q, %v", raw, got.String(), again.String(), again.Host, err)
		}
		if !strings.HasPrefix(got.Path, "/") || strings.HasPrefix(got.Path, "//") {
			t.Fatalf("Parse(%q) path %q", raw, got.Path)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("/api/v1/payments/12345/items?expand=lines&limit=50"); err != nil {
			b.Fatal(err)
		}
	}
}
