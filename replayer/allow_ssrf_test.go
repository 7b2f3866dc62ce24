package replayer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"testing"
)

// fakeResolver answers IsLoopback's lookups from names until the test ends;
// other names do not resolve.
func fakeResolver(t *testing.T, names map[string][]string) {
	t.Helper()
	old := lookupNetIP
	lookupNetIP = func(_ context.Context, _, host string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, a := range names[host] {
			out = append(out, netip.MustParseAddr(a))
		}
		if len(out) == 0 {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return out, nil
	}
	t.Cleanup(func() { lookupNetIP = old })
}

// TestCheckTargetResolvesLocalhostNames: without an allowlist, a name under
// .localhost is admitted only when every address it resolves to is loopback;
// its spelling admits nothing.
func TestCheckTargetResolvesLocalhostNames(t *testing.T) {
	fakeResolver(t, map[string][]string{
		"localhost":         {"127.0.0.1", "::1"},
		"shadow.localhost":  {"127.0.0.1"},
		"evil.localhost":    {"203.0.113.5"},
		"mixed.localhost":   {"127.0.0.1", "203.0.113.5"},
		"mapped.localhost":  {"::ffff:127.0.0.1"},
		"private.localhost": {"10.0.0.1"},
	})
	tests := []struct {
		target string
		ok     bool
	}{
		{"http://localhost:8082", true},
		{"http://shadow.localhost", true},
		{"http://SHADOW.localhost.:8080", true},
		{"http://mapped.localhost", true},
		{"http://evil.localhost", false},
		{"http://mixed.localhost", false},
		{"http://private.localhost", false},
		{"http://unresolvable.localhost", false},
		{"http://a.b.evil.localhost", false},
		{"http://127.0.0.1.evil.localhost", false},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckTarget(u, nil, "")
		if (err == nil) != tc.ok {
			t.Errorf("CheckTarget(%s) = %v, want ok=%v", tc.target, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrTargetNotAllowed) {
			t.Errorf("CheckTarget(%s): %v does not wrap ErrTargetNotAllowed", tc.target, err)
		}
	}
}

// TestSenderLocalhostNameDialsLoopbackOnly: a *.localhost target is connected
// to only on loopback addresses, whatever its name resolves to when dialled.
func TestSenderLocalhostNameDialsLoopbackOnly(t *testing.T) {
	d := &net.Dialer{}
	dial := dialOnly("shadow.localhost:80", d)
	if d.Control == nil {
		t.Fatal("no address check on the dialer of a .localhost target")
	}
	if err := d.Control("tcp4", "203.0.113.5:80", nil); !errors.Is(err, ErrDialNotTarget) {
		t.Errorf("connect to 203.0.113.5: %v, want ErrDialNotTarget", err)
	}
	if err := d.Control("tcp4", "127.0.0.1:80", nil); err != nil {
		t.Errorf("connect to 127.0.0.1: %v", err)
	}
	if _, err := dial(context.Background(), "tcp", "evil.localhost:80"); !errors.Is(err, ErrDialNotTarget) {
		t.Errorf("dial evil.localhost: %v, want ErrDialNotTarget", err)
	}
}
