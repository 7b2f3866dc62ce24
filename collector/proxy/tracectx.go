package proxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/google/uuid"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// W3C trace context as the proxy uses it to tie a service's outbound calls
// to the inbound exchange they were made for: the inbound proxy puts the
// exchange id in tracestate (member mlv1.TracestateKey), the service
// propagates traceparent and tracestate to its outbound calls, and the
// egress proxy reads the id back (mlv1.TraceID, mlv1.ParentID parse them).
const (
	headerTraceparent = "Traceparent"
	headerTracestate  = "Tracestate"
)

// traceIDOf returns the trace id of a valid version-00 traceparent (see
// mlv1.TraceID): the proxy forwards only a version it writes itself, and
// starts a new trace for a later one.
func traceIDOf(vals []string) (string, bool) {
	id, ok := mlv1.TraceID(vals)
	if !ok || !strings.HasPrefix(vals[0], "00-") {
		return "", false
	}
	return id, true
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
	b.Grow(len(mlv1.TracestateKey) + 1 + len(idHex))
	b.WriteString(mlv1.TracestateKey)
	b.WriteByte('=')
	b.Write(idHex[:])
	if ok {
		n := 1
		for _, v := range h[headerTracestate] {
			for m := range strings.SplitSeq(v, ",") {
				m = strings.Trim(m, " \t")
				if m == "" || n >= mlv1.MaxTracestateMembers {
					continue
				}
				if key, _, _ := strings.Cut(m, "="); strings.TrimRight(key, " \t") == mlv1.TracestateKey {
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
	id, _ := mlv1.ParentID(h[headerTracestate])
	return id
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
