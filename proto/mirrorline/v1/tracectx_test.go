package mirrorlinev1

import (
	"net/http"
	"strings"
	"testing"
)

const (
	traceHex  = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentHex = "01939a5e8c3f7b2a9d4e5f6a7b8c9d0e"
	parentID  = "01939a5e-8c3f-7b2a-9d4e-5f6a7b8c9d0e"
)

func TestHostileTraceContext(t *testing.T) {
	long := strings.Repeat("a", 10000)
	for _, c := range []struct {
		name, traceparent string
		tracestate        []string
		trace, parent     string
	}{
		{"valid", "00-" + traceHex + "-00f067aa0ba902b7-01", []string{"mirrorline=" + parentHex}, traceHex, parentID},
		{"entry among others, spaces", "", []string{"a=1 , b=2", "\tmirrorline=" + parentHex + " ,c=3"}, "", parentID},
		{"upper case hex", "00-" + strings.ToUpper(traceHex) + "-00f067aa0ba902b7-01", []string{"mirrorline=" + strings.ToUpper(parentHex)}, "", ""},
		{"all-zero trace", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", nil, "", ""},
		{"all-zero span", "00-" + traceHex + "-0000000000000000-01", nil, "", ""},
		{"version ff", "ff-" + traceHex + "-00f067aa0ba902b7-01", nil, "", ""},
		{"version 00 with more", "00-" + traceHex + "-00f067aa0ba902b7-01-xx", nil, "", ""},
		{"future version with more", "cc-" + traceHex + "-00f067aa0ba902b7-01-xx", nil, traceHex, ""},
		{"future version glued", "cc-" + traceHex + "-00f067aa0ba902b7-01xx", nil, "", ""},
		{"short", "00-abc", []string{"mirrorline="}, "", ""},
		{"dashes moved", "00" + traceHex + "--00f067aa0ba902b7-01", []string{"mirrorline=" + parentHex[:31]}, "", ""},
		{"non-hex", "00-" + strings.Repeat("g", 32) + "-00f067aa0ba902b7-01", []string{"mirrorline=" + strings.Repeat("z", 32)}, "", ""},
		{"injection", "00-" + traceHex + "-00f067aa0ba902b7-01\r\nX: y", []string{"mirrorline=" + parentHex + "\r\nX: y"}, "", ""},
		{"huge", long, []string{long}, "", ""},
		{"entry after 32 others", "", []string{strings.Repeat("k=v,", 32) + "mirrorline=" + parentHex}, "", ""},
		{"first mirrorline entry wins", "", []string{"mirrorline=bad", "mirrorline=" + parentHex}, "", ""},
		{"two traceparents", "", nil, "", ""},
		{"unicode", "00-" + traceHex[:31] + "é-00f067aa0ba902b7-01", []string{"mirrorline=" + parentHex[:30] + "é"}, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			if c.traceparent != "" {
				h.Set("Traceparent", c.traceparent)
			}
			if c.name == "two traceparents" {
				h["Traceparent"] = []string{"00-" + traceHex + "-00f067aa0ba902b7-01", "00-" + traceHex + "-00f067aa0ba902b7-01"}
			}
			for _, v := range c.tracestate {
				h.Add("Tracestate", v)
			}
			trace, _ := TraceID(h.Values("Traceparent"))
			parent, _ := ParentID(h.Values("Tracestate"))
			if trace != c.trace || parent != c.parent {
				t.Errorf("trace %q parent %q, want %q %q", trace, parent, c.trace, c.parent)
			}
		})
	}
}

func FuzzTraceContext(f *testing.F) {
	f.Add("00-"+traceHex+"-00f067aa0ba902b7-01", "mirrorline="+parentHex)
	f.Add("", ",,=,mirrorline=,=")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		if trace, ok := TraceID([]string{tp}); ok && (len(trace) != 32 || !lowerHex(trace)) {
			t.Errorf("trace id %q", trace)
		}
		if parent, ok := ParentID([]string{ts}); ok && len(parent) != 36 {
			t.Errorf("parent id %q", parent)
		}
	})
}
