package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// runCLI runs the command line args as main does and returns its exit code
// and what it wrote to stderr. A command that does not end within a minute
// fails the test.
func runCLI(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = w
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		read <- string(b)
	}()
	done := make(chan int, 1)
	go func() { done <- run(args) }()
	var code int
	select {
	case code = <-done:
	case <-time.After(time.Minute):
		os.Stderr = stderr
		t.Fatalf("mirrorline %s: still running after a minute; want it refused at once", strings.Join(args, " "))
	}
	os.Stderr = stderr
	w.Close()
	return code, <-read
}

// Bad replay settings are refused at once: exit code 2 and one line naming
// the flag or key, instead of a replay without timeouts, an ignored rate cap,
// or Kafka's UNSUPPORTED_VERSION for a window before the epoch.
func TestReplayValidation(t *testing.T) {
	t.Setenv("MIRRORLINE_BROKERS", "")
	file := func(name, yaml string) string { return writeTemp(t, name, yaml) }
	liveTimeout := file("live-timeout.yaml", "service: s\nreplay:\n  target: http://127.0.0.1:9\n  timeout: 0s\n")
	liveRate := file("live-rate.yaml", "service: s\nreplay:\n  target: http://127.0.0.1:9\n  max_rate: \"-5/s\"\n")
	liveZero := file("live-zero.yaml", "service: s\nreplay:\n  target: http://127.0.0.1:9\n  max_rate: \"0/s\"\n")
	base := []string{"--brokers", "127.0.0.1:1", "--metrics-addr", ""}
	// with returns a fresh slice of the args cmd, base and more.
	with := func(cmd []string, more ...string) []string {
		return append(append(append([]string(nil), cmd...), base...), more...)
	}
	window := []string{"replay", "--service", "s", "--no-progress"}
	live := []string{"replay", "--live", "--service", "s", "--target", "http://127.0.0.1:9"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"window from before the epoch (relative)", with(window, "--dry-run", "--from", "-1000000h"), "from: -1000000h is 19"},
		{"window from before the epoch (relative) names the epoch", with(window, "--dry-run", "--from", "-1000000h"), "before 1970-01-01T00:00:00Z"},
		{"window from before the epoch (RFC 3339)", with(window, "--dry-run", "--from", "1969-12-31T23:59:59Z", "--to", "1970-01-01T00:00:01Z"), "from: 1969-12-31T23:59:59Z is 1969-12-31T23:59:59Z, before 1970-01-01T00:00:00Z"},
		{"window relative beyond a duration", with(window, "--dry-run", "--from", "-3000000h"), "from: \"-3000000h\": relative time"},
		{"window to before from", with(window, "--dry-run", "--from", "-1h", "--to", "-2h"), "from: "},
		{"window to in the future", with(window, "--dry-run", "--from", "-1h", "--to", "+1h"), "is in the future"},
		{"window timeout 0", with(window, "--from", "-1h", "--target", "http://127.0.0.1:9", "--timeout", "0s"), "timeout: must be positive, got 0s"},
		{"window timeout negative", with(window, "--from", "-1h", "--target", "http://127.0.0.1:9", "--timeout", "-5s"), "timeout: must be positive, got -5s"},
		{"window max-rate negative", with(window, "--dry-run", "--from", "-1h", "--max-rate", "-5/s"), "max-rate: \"-5/s\": rate must be above 0/s"},
		{"window rate negative", with(window, "--dry-run", "--from", "-1h", "--rate", "-5/s"), "rate: \"-5/s\": rate must be above 0/s"},
		{"live timeout 0", with(live, "--timeout", "0s"), "timeout: must be positive, got 0s"},
		{"live timeout negative", with(live, "--timeout", "-1ms"), "timeout: must be positive, got -1ms"},
		{"live replay.timeout 0", with([]string{"replay", "--live", "-c", liveTimeout}), "timeout: must be positive, got 0s (replay.timeout, --timeout)"},
		{"live replay.max_rate negative", with([]string{"replay", "--live", "-c", liveRate}), "max-rate: \"-5/s\": rate must be above 0/s and at most 10000000/s (replay.max_rate, --max-rate)"},
		{"live replay.max_rate zero", with([]string{"replay", "--live", "-c", liveZero}), "max-rate: \"0/s\": rate must be above 0/s"},
		{"compare report since before the epoch", with([]string{"compare", "report", "--service", "s"}, "--since", "1000000h"), "since: 1000000h is 19"},
		{"compare report since 1900", with([]string{"compare", "report", "--service", "s"}, "--since", "1900-01-01T00:00:00Z"), "before 1970-01-01T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCLI(t, tc.args...)
			if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Fatalf("mirrorline %s: exit %d, stderr %q; want exit 2 and one line with %q", strings.Join(tc.args, " "), code, out, tc.want)
			}
		})
	}
}
