package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/mirrorline/mirrorline/broker"
)

// controlIn returns the first control character of s other than its line
// breaks, or "".
func controlIn(s string) string {
	for _, r := range s {
		if r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)) {
			return string(r)
		}
	}
	return ""
}

// The one-line error main prints cannot drive the terminal, whatever the
// error quotes.
func TestErrorLineIsTerminalSafe(t *testing.T) {
	t.Setenv("MIRRORLINE_BROKERS", "")
	path := t.TempDir() + "/\x1b]52;c;cHduZWQ=\a\x1b[2J\u202e.yaml"
	code, out := runCLI(t, "lag", "-c", path)
	if code != 2 || !strings.Contains(out, `\x1b]52;c;cHduZWQ=\x07\x1b[2J\u202e.yaml`) {
		t.Fatalf("exit %d, stderr %q; want exit 2 and the file name escaped", code, out)
	}
	if c := controlIn(out); c != "" || strings.Count(out, "\n") != 1 {
		t.Fatalf("stderr holds %q or more than one line: %q", c, out)
	}
}

// `lag` prints group ids (any string a Kafka client chose) escaped.
func TestPrintLagEscapesGroups(t *testing.T) {
	var perr error
	out := captureStdout(t, func() {
		perr = printLag([]broker.PartitionLag{
			{Group: "mirrorline-\x1b[2J\x1b]8;;http://evil.example/\x1b\\x", Topic: "mirror.clean.s", Committed: 1, End: 2, Records: 1},
			{Group: "mirrorline-\u202eevil", Topic: "mirror.clean.s", Partition: 1, Err: errors.New("fetch\x1b[31m failed\nagain")},
		})
	})
	if perr != nil {
		t.Fatal(perr)
	}
	if c := controlIn(out); c != "" {
		t.Fatalf("lag output holds %q:\n%s", c, out)
	}
	if strings.Count(out, "\n") != 3 || !strings.Contains(out, `mirrorline-\x1b[2J\x1b]8;;http://evil.example/\x1b\x`) || !strings.Contains(out, `mirrorline-\u202eevil`) {
		t.Fatalf("lag output:\n%s", out)
	}
}
