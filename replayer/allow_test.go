package replayer

import (
	"errors"
	"net/url"
	"testing"
)

func TestAllowlist(t *testing.T) {
	allow, err := NewAllowlist([]string{"shadow.internal", "api.staging:8443", "*.canary.svc", "*.pinned.svc:9000", "10.1.0.0/16", "[::1]:7000", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		target string
		want   bool
	}{
		{"http://shadow.internal", true},
		{"http://SHADOW.internal.:8080/base", true},
		{"https://shadow.internal", true},
		{"http://other.internal", false},
		{"http://evil-shadow.internal", false},
		{"http://shadow.internal.evil.com", false},
		{"https://api.staging:8443", true},
		{"https://api.staging", false}, // port 443
		{"http://api.staging:8443", true},
		{"http://v2.canary.svc", true},
		{"http://a.b.canary.svc:81", true},
		{"http://canary.svc", false}, // the wildcard is for subdomains only
		{"http://x.pinned.svc:9000", true},
		{"http://x.pinned.svc:9001", false},
		{"http://10.1.2.3:8080", true},
		{"http://10.2.0.1", false},
		{"http://[::1]:7000", true},
		{"http://[::1]:7001", false},
		{"http://192.0.2.7:1234", true},
		{"http://[::ffff:192.0.2.7]", true},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := allow.Allows(u); got != tc.want {
			t.Errorf("Allows(%s) = %v, want %v", tc.target, got, tc.want)
		}
	}
}

func TestAllowlistEntries(t *testing.T) {
	tests := []struct {
		entry string
		err   string
	}{
		{"shadow", ""},
		{"shadow:80", ""},
		{"*.svc", ""},
		{"10.0.0.0/8", ""},
		{"fd00::/8", ""},
		{"[fd00::1]", ""},
		{"  ", ""},
		{"http://shadow", "not a URL"},
		{"shadow:0", "port"},
		{"shadow:http", "port"},
		{"shadow:70000", "port"},
		{"*", "want host"},
		{"a.*.svc", "want host"},
		{"*svc", "want host"},
		{"10.0.0.0/33", "allow-target"},
		{"user@shadow", "not a URL"},
	}
	for _, tc := range tests {
		_, err := NewAllowlist([]string{tc.entry})
		if !errMatches(err, tc.err) {
			t.Errorf("NewAllowlist(%q): %v, want error containing %q", tc.entry, err, tc.err)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	fakeResolver(t, map[string][]string{"localhost": {"127.0.0.1", "::1"}, "shadow.localhost": {"127.0.0.1"}})
	list := func(e ...string) *Allowlist {
		a, err := NewAllowlist(e)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name       string
		target     string
		allow      *Allowlist
		configured string
		ok         bool
	}{
		{"no allowlist: loopback IP", "http://127.0.0.1:8082", nil, "", true},
		{"no allowlist: loopback range", "http://127.9.9.9", nil, "", true},
		{"no allowlist: localhost", "http://localhost:8082", nil, "", true},
		{"no allowlist: x.localhost", "http://shadow.localhost", nil, "", true},
		{"no allowlist: ::1", "http://[::1]:8082", nil, "", true},
		{"no allowlist: remote host given on the command line", "http://shadow.internal", nil, "", false},
		{"no allowlist: remote host from the config file", "http://shadow.internal/v2", nil, "http://Shadow.internal:80", true},
		{"no allowlist: config file names another host", "http://prod.internal", nil, "http://shadow.internal", false},
		{"no allowlist: config file names another scheme", "https://shadow.internal", nil, "http://shadow.internal", false},
		{"no allowlist: 0.0.0.0 is not loopback", "http://0.0.0.0:8080", nil, "", false},
		{"allowlist admits", "http://shadow.internal", list("shadow.internal"), "", true},
		{"allowlist excludes loopback too", "http://127.0.0.1:8082", list("shadow.internal"), "", false},
		{"allowlist excludes the configured target too", "http://prod.internal", list("shadow.internal"), "http://prod.internal", false},
		{"empty allowlist is no allowlist", "http://127.0.0.1", list(), "", true},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckTarget(u, tc.allow, tc.configured)
		if (err == nil) != tc.ok {
			t.Errorf("%s: CheckTarget(%s) = %v, want ok=%v", tc.name, tc.target, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrTargetNotAllowed) {
			t.Errorf("%s: error %v does not wrap ErrTargetNotAllowed", tc.name, err)
		}
	}
}
