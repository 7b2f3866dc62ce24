package main

import (
	"net"
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "42 (mirrorline) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0", 2 * time.Second, true},
		{"name with spaces and parens", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0", 70 * time.Millisecond, true},
		{"short", "7 (x) R 1 2", 0, false},
		{"no name", "7 x R", 0, false},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 a 4", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStatCPU(tc.stat)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("parseStatCPU = %v, %v; want %v, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

// The process listening on a loopback port is found (here: this test).
func TestListenerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := listenerPID(ln.Addr().String()); got != os.Getpid() {
		t.Fatalf("listenerPID = %d, want %d", got, os.Getpid())
	}
	if got := listenerPID("not an address"); got != 0 {
		t.Fatalf("listenerPID(bad) = %d, want 0", got)
	}
}
