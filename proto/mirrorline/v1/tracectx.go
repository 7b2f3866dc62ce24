package mirrorlinev1

import "strings"

// W3C trace context (https://www.w3.org/TR/trace-context/), as the stages
// read it: the inbound proxy puts an exchange's id in tracestate (member
// TracestateKey), the service propagates traceparent and tracestate to its
// outbound calls, and the egress proxy and the stub read them back. The
// headers come from services and shadows, so they are parsed as hostile:
// bounded, strict, anything malformed is no value.
const (
	// TracestateKey is mirrorline's tracestate list-member key.
	TracestateKey = "mirrorline"
	// MaxTracestateMembers is W3C's bound on tracestate list-members;
	// members beyond it are not looked at.
	MaxTracestateMembers = 32
	// maxTraceHeaderBytes bounds the header bytes looked at.
	maxTraceHeaderBytes = 8192
)

// TraceID returns the trace id (32 lowercase hex digits) of a valid
// traceparent, given as the header's values: exactly one value; version 00
// exactly 55 characters, a later version (not ff) at least 55 with a dash
// after them; lowercase hex; trace and parent ids not all zeros.
func TraceID(traceparent []string) (string, bool) {
	if len(traceparent) != 1 {
		return "", false
	}
	v := traceparent[0]
	if len(v) < 55 || len(v) > maxTraceHeaderBytes || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	ver, trace, parent, flags := v[0:2], v[3:35], v[36:52], v[53:55]
	if !lowerHex(ver) || ver == "ff" || !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) {
		return "", false
	}
	if (ver == "00" && len(v) != 55) || (len(v) > 55 && v[55] != '-') {
		return "", false
	}
	if allZero(trace) || allZero(parent) {
		return "", false
	}
	return trace, true
}

// ParentID returns the exchange id carried in the TracestateKey member of
// tracestate (32 lowercase hex digits), as a UUID string (the format of
// Exchange.id). Only the first MaxTracestateMembers members and
// maxTraceHeaderBytes bytes are looked at; a malformed member is none.
func ParentID(tracestate []string) (string, bool) {
	seen, size := 0, 0
	for _, line := range tracestate {
		if size += len(line); size > maxTraceHeaderBytes {
			return "", false
		}
		for m := range strings.SplitSeq(line, ",") {
			m = strings.Trim(m, " \t")
			if m == "" {
				continue
			}
			if seen++; seen > MaxTracestateMembers {
				return "", false
			}
			key, val, ok := strings.Cut(m, "=")
			if !ok || key != TracestateKey {
				continue
			}
			if len(val) != 32 || !lowerHex(val) {
				return "", false
			}
			return val[0:8] + "-" + val[8:12] + "-" + val[12:16] + "-" + val[16:20] + "-" + val[20:32], true
		}
	}
	return "", false
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
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
