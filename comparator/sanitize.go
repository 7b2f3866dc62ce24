package comparator

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TerminalSafe returns s with every character a terminal could act on shown
// as a visible escape instead: C0 control characters (\t, \n and \r as
// such, the others as \xNN, so ESC starting a CSI or OSC sequence becomes
// \x1b and the sequence is inert text), DEL, C1 control characters (\u0080
// to \u009f, which some terminals take as CSI or OSC), the bidirectional
// embedding, override, isolate and mark characters (\u202e, \u2066, ...,
// which reorder what is displayed), the line and paragraph separators, and
// bytes that are not UTF-8 (\xNN). Everything else is kept as is; a string
// without such characters is returned unchanged.
//
// Captured data (paths, header names and values, body snippets, diff values)
// is hostile: every text output of it goes through TerminalSafe, one line at
// a time, so it can neither drive the terminal nor forge report lines.
func TerminalSafe(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c < utf8.RuneSelf {
			switch e, ok := c0Escapes[c]; {
			case c >= 0x20 && c < 0x7f:
				b.WriteByte(c)
			case ok:
				b.WriteString(e)
			default: // other C0 controls and DEL
				fmt.Fprintf(&b, `\x%02x`, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, c)
		case unsafeRune(r, n):
			fmt.Fprintf(&b, `\u%04x`, r) // every unsafe rune is in the BMP
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// c0Escapes are the C0 controls TerminalSafe shows as Go escapes.
var c0Escapes = map[byte]string{'\t': `\t`, '\n': `\n`, '\r': `\r`}

// TerminalSafeLines is TerminalSafe for multi-line text: each line is made
// safe and the lines stay separated by \n.
func TerminalSafeLines(s string) string {
	if !strings.Contains(s, "\n") {
		return TerminalSafe(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = TerminalSafe(l)
	}
	return strings.Join(lines, "\n")
}

// unsafeRune reports whether the decoded rune r (n bytes) is a C1 control,
// a bidirectional control, a line or paragraph separator, or an invalid byte.
func unsafeRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true
	case r == '\u2028' || r == '\u2029':
		return true
	}
	return unicode.Is(unicode.Bidi_Control, r)
}

// safeCopy returns a copy of rep whose strings that come from captured or
// recorded data are TerminalSafe, for the text and HTML reports. Detail
// keeps its line breaks; every other string becomes one line.
func (rep *Report) safeCopy() *Report {
	out := *rep
	out.Service = TerminalSafe(rep.Service)
	out.Job = TerminalSafe(rep.Job)
	out.Verdicts = safeKeys(rep.Verdicts)
	out.Endpoints = safeEach(rep.Endpoints, func(e EndpointReport) EndpointReport {
		e.Endpoint = TerminalSafe(e.Endpoint)
		e.Verdicts = safeKeys(e.Verdicts)
		e.Fields = safeEach(e.Fields, safeField)
		e.Noise = safeEach(e.Noise, safeField)
		e.Downstream = safeEach(e.Downstream, safeField)
		e.StatusTransitions = safeKeys(e.StatusTransitions)
		e.Reasons = safeKeys(e.Reasons)
		if e.Example != nil {
			ex := *e.Example
			ex.ID = TerminalSafe(ex.ID)
			ex.Differences = safeEach(ex.Differences, safeField)
			e.Example = &ex
		}
		e.Latency.Summary = TerminalSafe(e.Latency.Summary)
		return e
	})
	return &out
}

// safeEach returns a new slice of safe(x) for each x of xs (nil for nil).
func safeEach[T any](xs []T, safe func(T) T) []T {
	if xs == nil {
		return nil
	}
	out := make([]T, len(xs))
	for i, x := range xs {
		out[i] = safe(x)
	}
	return out
}

func safeField(f FieldReport) FieldReport {
	f.Field = TerminalSafe(f.Field)
	f.Kind = TerminalSafe(f.Kind)
	f.Primary = TerminalSafe(f.Primary)
	f.Shadow = TerminalSafe(f.Shadow)
	f.Detail = TerminalSafeLines(f.Detail)
	f.ExampleID = TerminalSafe(f.ExampleID)
	f.Reason = TerminalSafe(f.Reason)
	f.Fields = safeEach(f.Fields, TerminalSafe)
	return f
}

func safeKeys(m map[string]int) map[string]int {
	if m == nil {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[TerminalSafe(k)] += v
	}
	return out
}
