package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad compare flags and configuration are one line naming the key, exit 2.
func TestCompareCLIUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unknown := cfg("unknown.yaml", "service: s\ncompare:\n  join_windw: 1m\n")
	ratio := cfg("ratio.yaml", "service: s\ncompare:\n  noise:\n    volatile_ratio: 3\n")
	path := cfg("path.yaml", "service: s\ncompare:\n  ignore:\n    json_paths: [\"a..b\"]\n")
	noKey := cfg("nokey.yaml", "service: s\nredact:\n  rules:\n    hash_key_env: MIRRORLINE_TEST_NO_SUCH_KEY\n    json_fields:\n      card.number: fake\n")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"compare", "-c", unknown}, "join_windw"},
		{[]string{"compare", "-c", ratio, "--brokers", "127.0.0.1:1"}, "compare.noise.volatile_ratio"},
		{[]string{"compare", "-c", path, "--brokers", "127.0.0.1:1"}, "compare.ignore.json_paths[0]"},
		{[]string{"compare", "-c", noKey, "--brokers", "127.0.0.1:1"}, "redact.rules"},
		{[]string{"compare", "--service", "s"}, "missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)"},
		{[]string{"compare", "--brokers", "127.0.0.1:1"}, "missing setting: service (--service, service:, MIRRORLINE_SERVICE)"},
		{[]string{"compare", "--service", "s", "--brokers", "127.0.0.1:1", "--start", "middle"}, "compare.start"},
		{[]string{"compare", "--service", "s", "--brokers", "127.0.0.1:1", "--prime", "yesterday"}, "compare.prime"},
		{[]string{"compare", "--service", "s", "--brokers", "127.0.0.1:1", "--join-window", "soon"}, "join-window"},
		{[]string{"compare", "--service", "s", "--brokers", "127.0.0.1:1", "--endpoint", "users/{id}"}, "compare.endpoints[0]"},
		{[]string{"compare", "report", "--service", "s", "--brokers", "127.0.0.1:1", "--since", "last week"}, "since"},
		{[]string{"compare", "report", "--service", "s", "--brokers", "127.0.0.1:1", "--top", "0"}, "top"},
		{[]string{"compare", "--service", "s", "--brokers", "127.0.0.1:1", "--job", "replay-1", "--secondary"}, "compare.shadow_job"},
		{[]string{"compare", "--service", "s", "--brokers", "127.0.0.1:1", "--descriptor-set", filepath.Join(dir, "missing.pb")}, "grpc.descriptor_sets"},
		{[]string{"compare", "--service", "s", "--brokers", "127.0.0.1:1", "--descriptor-set", path}, "grpc.descriptor_sets"},
	}
	for _, tc := range tests {
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line with %q", tc.args, code, out, tc.want)
		}
	}
}
