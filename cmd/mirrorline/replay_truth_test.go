package main

import (
	"strings"
	"testing"
)

// A bad --max-error-rate is refused at once (exit 2, one line naming the
// flag), and live replays, which never end by themselves, do not take it.
func TestReplayMaxErrorRateValidation(t *testing.T) {
	t.Setenv("MIRRORLINE_BROKERS", "")
	base := []string{"replay", "--service", "s", "--no-progress", "--brokers", "127.0.0.1:1", "--metrics-addr", "", "--dry-run", "--from", "-1h"}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"above 1", append(base, "--max-error-rate", "1.5"), "max-error-rate: \"1.5\": an error rate is from 0 to 1"},
		{"above 100%", append(base, "--max-error-rate", "101%"), "max-error-rate: \"101%\": an error rate is from 0 to 1"},
		{"negative", append(base, "--max-error-rate", "-0.1"), "max-error-rate: \"-0.1\": an error rate is from 0 to 1"},
		{"not a number", append(base, "--max-error-rate", "some"), "max-error-rate: \"some\" is not an error rate like 0.05 or 5%"},
		{"progress interval 0", append(base, "--progress-interval", "0s"), "progress-interval: must be positive"},
		{"live", []string{"replay", "--live", "--service", "s", "--target", "http://127.0.0.1:9", "--brokers", "127.0.0.1:1", "--max-error-rate", "5%"}, "max-error-rate: only for window replays"},
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
