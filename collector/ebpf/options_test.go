package ebpf

import (
	"testing"
	"time"
)

// A zero poll interval takes the default; the TCP and the TLS capture accept
// and refuse the same ones.
func TestPollIntervalDefaults(t *testing.T) {
	for _, tc := range []struct {
		in, want time.Duration
		ok       bool
	}{
		{0, DefaultPollInterval, true},
		{MinPollInterval, MinPollInterval, true},
		{MinPollInterval - 1, 0, false},
		{MaxPollInterval, MaxPollInterval, true},
		{MaxPollInterval + 1, 0, false},
		{-1, 0, false},
	} {
		c := Config{Ports: []uint16{80}, PollInterval: tc.in}
		err := c.defaults()
		if (err == nil) != tc.ok || tc.ok && c.PollInterval != tc.want {
			t.Errorf("Config poll %v: got %v, %v", tc.in, c.PollInterval, err)
		}
		tl := TLSConfig{PIDs: []int{1}, PollInterval: tc.in}
		err = tl.defaults()
		if (err == nil) != tc.ok || tc.ok && tl.PollInterval != tc.want {
			t.Errorf("TLSConfig poll %v: got %v, %v", tc.in, tl.PollInterval, err)
		}
	}
}
