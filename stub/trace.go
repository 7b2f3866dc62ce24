package stub

import (
	"net/http"
	"strings"
)

// Limits on what is parsed of the trace context headers: they come from the
// shadow, which forwards what it was sent, and are treated as hostile.
const (
	// maxTracestateEntries is the W3C limit on list members; entries beyond
	// it are not looked at.
	maxTracestateEntries = 32
	// maxTraceHeaderBytes bounds the header bytes looked at.
	maxTraceHeaderBytes = 8192
)

// TraceID returns the trace id (32 lowercase hex digits) of the first
// traceparent header of h, when it is a valid W3C traceparent: version 00
// (exactly 55 characters) or a later version (at least 55, the rest after
// a dash), trace and parent ids not all zero.
func TraceID(h http.Header) (string, bool) {
	vs := h.Values("Traceparent")
	if len(vs) == 0 {
		return "", false
	}
	return parseTraceparent(strings.TrimSpace(vs[0]))
}

func parseTraceparent(v string) (string, bool) {
	if len(v) < 55 || len(v) > maxTraceHeaderBytes {
		return "", false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	ver, trace, span, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	if !isLowerHex(ver) || ver == "ff" || !isLowerHex(trace) || !isLowerHex(span) || !isLowerHex(flags) {
		return "", false
	}
	if ver == "00" && len(v) != 55 {
		return "", false
	}
	if len(v) > 55 && v[55] != '-' {
		return "", false
	}
	if allZero(trace) || allZero(span) {
		return "", false
	}
	return trace, true
}

// ParentID returns the primary's exchange id carried in the "mirrorline"
// entry of h's tracestate (32 lowercase hex digits), as a UUID string (the
// format of Exchange.id). Only the first maxTracestateEntries entries are
// looked at; a malformed entry is no entry.
func ParentID(h http.Header) (string, bool) {
	seen, size := 0, 0
	for _, line := range h.Values("Tracestate") {
		size += len(line)
		if size > maxTraceHeaderBytes {
			return "", false
		}
		for entry := range strings.SplitSeq(line, ",") {
			entry = strings.Trim(entry, " \t")
			if entry == "" {
				continue
			}
			if seen++; seen > maxTracestateEntries {
				return "", false
			}
			key, val, ok := strings.Cut(entry, "=")
			if !ok || key != "mirrorline" {
				continue
			}
			if len(val) != 32 || !isLowerHex(val) {
				return "", false
			}
			return val[0:8] + "-" + val[8:12] + "-" + val[12:16] + "-" + val[16:20] + "-" + val[20:32], true
		}
	}
	return "", false
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
