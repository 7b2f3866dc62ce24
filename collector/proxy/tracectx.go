package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/google/uuid"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// W3C trace context (https://www.w3.org/TR/trace-context/) as the proxy
// uses it to tie a service's outbound calls to the inbound exchange they
// were made for: the inbound proxy puts the exchange id in tracestate
// (key mirrorline), the service propagates traceparent and tracestate to
// its outbound calls, and the egress proxy reads the id back.
const (
	headerTraceparent = "Traceparent"
	headerTracestate  = "Tracestate"
	// tracestateKey is the proxy's tracestate list-member key.
	tracestateKey = "mirrorline"
	// maxTracestateMembers is W3C's bound on tracestate list-members.
	maxTracestateMembers = 32
)

// traceIDOf returns the trace id of a valid version-00 traceparent: exactly
// one header value "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>",
// lowercase hex, neither id all zeros. ok is false otherwise.
func traceIDOf(vals []string) (traceID string, ok bool) {
	if len(vals) != 1 {
		return "", false
	}
	v := vals[0]
	if len(v) != 55 || v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	trace, parent, flags := v[3:35], v[36:52], v[53:55]
	if !lowerHex(trace) || !lowerHex(parent) || !lowerHex(flags) || allZero(trace) || allZero(parent) {
		return "", false
	}
	return trace, true
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

// addTraceContext prepares h, the headers of an inbound request about to be
// forwarded as exchange id, and returns the trace id it carries:
//
//   - a valid traceparent is kept unchanged; without one (absent, invalid,
//     repeated) the proxy starts a trace: traceparent
//     00-<id's 16 bytes in hex>-<random span id>-01;
//   - tracestate gets the member mirrorline=<id in hex> first, replacing an
//     older mirrorline member and keeping the others (up to 32 members in
//     all) when the traceparent was kept; a new trace starts with only the
//     proxy's member (W3C: tracestate belongs to the traceparent it came
//     with).
func addTraceContext(h http.Header, id uuid.UUID) string {
	var idHex [32]byte
	hex.Encode(idHex[:], id[:])
	traceID, ok := traceIDOf(h[headerTraceparent])
	if !ok {
		traceID = string(idHex[:])
		var tp [55]byte
		copy(tp[:], "00-")
		copy(tp[3:], idHex[:])
		tp[35] = '-'
		span := rand.Uint64() | 1 // never all zeros
		var sb [8]byte
		for i := range sb {
			sb[i] = byte(span >> (8 * i))
		}
		hex.Encode(tp[36:52], sb[:])
		copy(tp[52:], "-01")
		h[headerTraceparent] = []string{string(tp[:])}
	}
	var b strings.Builder
	b.Grow(len(tracestateKey) + 1 + len(idHex))
	b.WriteString(tracestateKey)
	b.WriteByte('=')
	b.Write(idHex[:])
	if ok {
		n := 1
		for _, v := range h[headerTracestate] {
			for m := range strings.SplitSeq(v, ",") {
				m = strings.Trim(m, " \t")
				if m == "" || n >= maxTracestateMembers {
					continue
				}
				if key, _, _ := strings.Cut(m, "="); strings.TrimRight(key, " \t") == tracestateKey {
					continue
				}
				b.WriteByte(',')
				b.WriteString(m)
				n++
			}
		}
	}
	h[headerTracestate] = []string{b.String()}
	return traceID
}

// parentOf returns the exchange id (a UUID string, as Exchange.id) of the
// mirrorline member of tracestate, "" without a well-formed one.
func parentOf(h http.Header) string {
	for _, v := range h[headerTracestate] {
		for m := range strings.SplitSeq(v, ",") {
			key, val, ok := strings.Cut(strings.Trim(m, " \t"), "=")
			if !ok || key != tracestateKey {
				continue
			}
			if len(val) != 32 || !lowerHex(val) {
				return ""
			}
			var id uuid.UUID
			if _, err := hex.Decode(id[:], []byte(val)); err != nil {
				return ""
			}
			return id.String()
		}
	}
	return ""
}

// setRecorded sets the recorded header name (canonical) to its forwarded
// value: the first entry of that name takes it, later ones go; without
// one, it is appended.
func setRecorded(hs []*mlv1.Header, name, value string) []*mlv1.Header {
	out := hs[:0]
	found := false
	for _, x := range hs {
		if x.Name == name {
			if found {
				continue
			}
			found = true
			x.Value = value
		}
		out = append(out, x)
	}
	if !found {
		out = append(out, &mlv1.Header{Name: name, Value: value})
	}
	return out
}

// markInbound draws ex's id and adds trace context to r for it
// (addTraceContext), recording the trace id and the two headers as they are
// forwarded to the primary.
func (p *Proxy) markInbound(ex *mlv1.Exchange, r *http.Request) {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	ex.Id = id.String()
	ex.TraceId = addTraceContext(r.Header, id)
	hs := setRecorded(ex.Request.Headers, headerTraceparent, r.Header[headerTraceparent][0])
	ex.Request.Headers = setRecorded(hs, headerTracestate, r.Header[headerTracestate][0])
}
