package main

import (
	"runtime/debug"
	"testing"
)

// The proxy sets its own garbage collector target unless GOGC is set in its
// environment, which then decides.
func TestProxyGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(old) })
	for _, tc := range []struct {
		env      map[string]string
		want     int
		wantFrom string
	}{
		{nil, proxyGCPercent, "default"},
		{map[string]string{"GOMEMLIMIT": "1GiB"}, proxyGCPercent, "default"},
		{map[string]string{"GOGC": "150"}, 150, "GOGC"},
	} {
		if v, ok := tc.env["GOGC"]; ok && v == "150" {
			debug.SetGCPercent(150) // as the runtime does from GOGC at start
		} else {
			debug.SetGCPercent(100)
		}
		got, from := proxyGC(func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
		if got != tc.want || from != tc.wantFrom {
			t.Errorf("env %v: target %d from %s, want %d from %s", tc.env, got, from, tc.want, tc.wantFrom)
		}
		if now := debug.SetGCPercent(100); now != tc.want {
			t.Errorf("env %v: runtime's target %d, want %d", tc.env, now, tc.want)
		}
	}
}
