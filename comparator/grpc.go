package comparator

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Field names of a gRPC exchange's parts. Its status difference is
// FieldStatus (the gRPC status code by name); message i of the response is
// "body.i" and its fields "body.i." and a path ("body.0.shipping.city" with a
// schema, "body.0.6.2" without); noise is learned under "body.*.PATH".
const (
	// FieldMessages is the number of response messages, when it differs.
	FieldMessages = "messages"
	// TrailerPrefix precedes a lower-case trailer name ("trailer.grpc-message").
	TrailerPrefix = "trailer."
)

// OtherGRPCEndpoint is the endpoint name of gRPC methods past MaxEndpoints.
const OtherGRPCEndpoint = "gRPC (other)"

// WithSchema sets the protobuf schema the response messages of gRPC
// exchanges are read with, to diff them by field name (default: none, they
// are diffed by field number). It is the one hook for schemas, whatever
// their source: descriptor set files (grpcwire.LoadSchemas) or server
// reflection. A method the schema does not know is diffed by number.
func WithSchema(s *grpcwire.Schema) Option { return func(o *options) { o.schema = s } }

// grpcCodes names the gRPC status codes by number.
var grpcCodes = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

// grpcServerError holds the codes that say the server failed (those gRPC
// maps from and to HTTP 5xx): on one side only, like a 5xx, they make an
// error verdict rather than a difference.
var grpcServerError = map[int]bool{2: true, 4: true, 12: true, 13: true, 14: true, 15: true}

// isGRPC reports whether ex is a gRPC exchange.
func isGRPC(ex *mlv1.Exchange) bool { return ex.GetProtocol() == mlv1.Protocol_PROTOCOL_GRPC }

// grpcStatus returns the gRPC status of r: grpc-status from its trailers,
// or from its headers for a trailers-only answer. ok is false without one
// (the call broke). name is the code's name, "code N" for a code gRPC does
// not name, "invalid" for a value that is not a number: never the captured
// text.
func grpcStatus(r *mlv1.Response) (code int, name string, ok bool) {
	v, found := headerValue(r.GetTrailers(), "grpc-status")
	if !found {
		v, found = headerValue(r.GetHeaders(), "grpc-status")
	}
	if !found {
		return -1, "", false
	}
	v = strings.TrimSpace(v)
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 0 || !isDigits(v):
		return -1, "invalid", true
	case n < len(grpcCodes):
		return n, grpcCodes[n], true
	}
	return n, "code " + strconv.Itoa(n), true
}

// grpcStatusName is r's gRPC status name, "" without one.
func grpcStatusName(r *mlv1.Response) string {
	_, name, _ := grpcStatus(r)
	return name
}

// grpcErrorVerdict decides gRPC exchanges where a side failed: a transport
// error, no grpc-status, or a server-error code on that side only.
func grpcErrorVerdict(p, s *mlv1.Response) (mlv1.Verdict, string) {
	if v, reason := errorVerdict(p, s); v != mlv1.Verdict_VERDICT_UNSPECIFIED {
		return v, reason
	}
	pc, pn, okP := grpcStatus(p)
	sc, sn, okS := grpcStatus(s)
	switch {
	case !okP:
		return mlv1.Verdict_VERDICT_PRIMARY_ERROR, "primary: " + noGRPCStatus(p)
	case !okS:
		return mlv1.Verdict_VERDICT_SHADOW_ERROR, "shadow: " + noGRPCStatus(s)
	case grpcServerError[pc] && !grpcServerError[sc]:
		return mlv1.Verdict_VERDICT_PRIMARY_ERROR, "primary: grpc-status " + pn
	case grpcServerError[sc] && !grpcServerError[pc]:
		return mlv1.Verdict_VERDICT_SHADOW_ERROR, "shadow: grpc-status " + sn
	}
	return mlv1.Verdict_VERDICT_UNSPECIFIED, ""
}

func noGRPCStatus(r *mlv1.Response) string {
	if r.GetStatus() != 200 {
		return "status " + statusText(r.GetStatus()) + " without grpc-status"
	}
	return "no grpc-status"
}

// grpcTrailers are r's trailers; a trailers-only answer's are its headers
// (but content-type, which belongs to the headers of any answer).
func grpcTrailers(r *mlv1.Response) []*mlv1.Header {
	if len(r.GetTrailers()) > 0 {
		return r.GetTrailers()
	}
	if _, ok := headerValue(r.GetHeaders(), "grpc-status"); !ok {
		return nil
	}
	return slices.DeleteFunc(slices.Clone(r.GetHeaders()), func(h *mlv1.Header) bool {
		return strings.EqualFold(h.GetName(), "content-type")
	})
}

// grpcName matches a gRPC method path whose service and method are protobuf
// identifiers: only such paths name an endpoint.
var grpcName = regexp.MustCompile(`^/[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/[A-Za-z_][A-Za-z0-9_]*$`)

// GRPCEndpoint returns the endpoint name of a gRPC call to path: the method
// path itself ("/package.Service/Method") when it is made of protobuf
// identifiers (at most 200 bytes), else the name Endpoint gives a POST to it.
func (t *Templater) GRPCEndpoint(path string) string {
	if len(path) > 200 || !grpcName.MatchString(path) {
		return t.Endpoint("POST", path)
	}
	if t.max <= 0 {
		return path
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[path] {
		return path
	}
	if len(t.seen) >= t.max {
		return OtherGRPCEndpoint
	}
	t.seen[path] = true
	return path
}

// compareGRPC diffs the shadow's answer s to a gRPC call of method (its
// path) against the primary's p: the gRPC status, grpc-message, the
// configured headers (also looked up in the trailers) and the response
// messages, message i with message i.
func (d *differ) compareGRPC(endpoint, method string, p, s *mlv1.Response) comparison {
	var c comparison
	er := d.rules.forEndpoint(endpoint)
	vol := map[string]bool{}
	pn, sn := grpcStatusName(p), grpcStatusName(s)
	statusDiff := pn != sn
	if statusDiff {
		c.diffs = append(c.diffs, &mlv1.Difference{Field: FieldStatus, Key: FieldStatus, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Primary: pn, Shadow: sn})
	}
	pt, st := grpcTrailers(p), grpcTrailers(s)
	c.diffs = d.compareValues(c.diffs, vol, er, HeaderPrefix, d.rules.headers, p.GetHeaders(), s.GetHeaders())
	trailers := []string{"grpc-message"}
	for _, h := range d.rules.headers {
		if !slices.Contains(trailers, h) {
			trailers = append(trailers, h)
		}
	}
	c.diffs = d.compareValues(c.diffs, vol, er, TrailerPrefix, trailers, pt, st)
	bodyDiffs, bodyVol, note := d.compareMessages(er, method, p, s)
	c.addBody(bodyDiffs, bodyVol, note, vol, statusDiff)
	return c
}

// compareValues appends the differences of the named header (or trailer)
// values of p and s, fields prefix+name, to diffs.
func (d *differ) compareValues(diffs []*mlv1.Difference, vol map[string]bool, er *epRules, prefix string, names []string, p, s []*mlv1.Header) []*mlv1.Difference {
	for _, name := range names {
		if er.ignoreHeader(name) {
			continue
		}
		pv, okP := headerValue(p, name)
		sv, okS := headerValue(s, name)
		if name == "content-type" {
			pv, sv = normContentType(pv), normContentType(sv)
		}
		f := prefix + name
		if okP && okS && looksVolatile(pv) {
			vol[f] = true
		}
		switch {
		case okP && okS && pv != sv:
			diffs = append(diffs, &mlv1.Difference{Field: f, Key: f, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Primary: cut(pv, maxValueLen), Shadow: cut(sv, maxValueLen), Volatile: volatilePair(pv, sv)})
		case okP && !okS:
			diffs = append(diffs, &mlv1.Difference{Field: f, Key: f, Kind: mlv1.DiffKind_DIFF_KIND_REMOVED, Primary: cut(pv, maxValueLen)})
		case !okP && okS:
			diffs = append(diffs, &mlv1.Difference{Field: f, Key: f, Kind: mlv1.DiffKind_DIFF_KIND_ADDED, Shadow: cut(sv, maxValueLen)})
		}
	}
	return diffs
}

// errMessageTruncated marks a message cut at capture: it is not compared.
var errMessageTruncated = errors.New("truncated at capture")

// decodedMessage is one response message read for the diff.
type decodedMessage struct {
	v   any
	err error
	raw []byte // as decompressed, for a comparison by bytes
}

// decodeMessage reads m, a message of a response with grpc-encoding enc,
// with out (nil: without a schema).
func (d *differ) decodeMessage(out protoreflect.MessageDescriptor, enc string, m *mlv1.Message) decodedMessage {
	if m.GetTruncated() {
		return decodedMessage{err: errMessageTruncated}
	}
	data := m.GetData()
	if m.GetCompressed() {
		var err error
		if data, err = grpcwire.Decompress(enc, data, int(min(d.maxBody, 1<<30))); err != nil {
			// A fixed text: the error may quote the captured grpc-encoding.
			switch {
			case errors.Is(err, grpcwire.ErrUnsupportedEncoding):
				err = errors.New("unsupported grpc-encoding")
			case errors.Is(err, grpcwire.ErrTooLarge):
				err = errors.New("larger than max_body_bytes decompressed")
			default:
				err = errors.New("not decompressible")
			}
			return decodedMessage{err: err}
		}
	}
	if int64(len(data)) > d.maxBody {
		return decodedMessage{raw: data, err: errors.New("larger than max_body_bytes")}
	}
	var v any
	var err error
	if out != nil {
		v, err = grpcwire.MessageValue(out, data)
	} else {
		v, err = grpcwire.WireValue(data)
	}
	if err != nil {
		return decodedMessage{raw: data, err: errors.New("not a protobuf message of the method's type")}
	}
	return decodedMessage{v: v, raw: data}
}

// compareMessages diffs the response messages of p and s.
func (d *differ) compareMessages(er *epRules, method string, p, s *mlv1.Response) ([]*mlv1.Difference, map[string]bool, string) {
	var out protoreflect.MessageDescriptor
	var notes []string
	if d.schema != nil {
		if _, o, ok := d.schema.Method(method); ok {
			out = o
		} else {
			notes = append(notes, "method not in the schema; fields named by number")
		}
	}
	pe, _ := headerValue(p.GetHeaders(), "grpc-encoding")
	se, _ := headerValue(s.GetHeaders(), "grpc-encoding")
	pm, sm := p.GetMessages(), s.GetMessages()
	jd := newJSONDiffer(er, d.maxDiffs)
	jd.messages = true
	var cutAt []string
	for i := range min(len(pm), len(sm)) {
		a, b := d.decodeMessage(out, pe, pm[i]), d.decodeMessage(out, se, sm[i])
		path := []seg{{s: strconv.Itoa(i), idx: true}}
		switch {
		case a.err == nil && b.err == nil:
			jd.walk(path, a.v, b.v)
		case errors.Is(a.err, errMessageTruncated) || errors.Is(b.err, errMessageTruncated):
			cutAt = append(cutAt, strconv.Itoa(i))
		case a.raw != nil && b.raw != nil && bytes.Equal(a.raw, b.raw):
		case a.raw != nil && b.raw != nil:
			if !jd.ignored(path) {
				df := binaryDiff(a.raw, b.raw)
				df.Field, df.Key = pathString(path, false), pathString(path, true)
				jd.out = append(jd.out, df)
			}
			notes = append(notes, fmt.Sprintf("message %d: %v; compared by bytes", i, cmpErr(a.err, b.err)))
		default:
			notes = append(notes, fmt.Sprintf("message %d: %v; not compared", i, cmpErr(a.err, b.err)))
		}
	}
	if len(cutAt) > 0 {
		notes = append(notes, "message "+strings.Join(cutAt, ", ")+" truncated at capture; not compared")
	}
	switch {
	case p.GetMessagesTruncated() || s.GetMessagesTruncated():
		notes = append(notes, "messages left out at capture; their number not compared")
	case len(pm) != len(sm):
		jd.out = append(jd.out, &mlv1.Difference{Field: FieldMessages, Key: FieldMessages, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED,
			Primary: strconv.Itoa(len(pm)), Shadow: strconv.Itoa(len(sm))})
		for i := min(len(pm), len(sm)); i < max(len(pm), len(sm)); i++ {
			path := []seg{{s: strconv.Itoa(i), idx: true}}
			if i < len(pm) {
				v := d.decodeMessage(out, pe, pm[i])
				jd.add(path, mlv1.DiffKind_DIFF_KIND_REMOVED, messageSummary(v), nil, true, false, false)
			} else {
				v := d.decodeMessage(out, se, sm[i])
				jd.add(path, mlv1.DiffKind_DIFF_KIND_ADDED, nil, messageSummary(v), false, true, false)
			}
		}
	}
	if jd.truncated {
		notes = append(notes, fmt.Sprintf("more than %d differences; the rest not recorded", d.maxDiffs))
	}
	return jd.out, jd.volatile, strings.Join(notes, "; ")
}

// messageSummary is a message's value for a Difference: its decoded value,
// else its size and hash.
func messageSummary(m decodedMessage) any {
	switch {
	case m.err == nil:
		return m.v
	case m.raw != nil:
		return hashOf(m.raw)
	}
	return m.err.Error()
}

// cmpErr is the first of two errors that is not nil.
func cmpErr(a, b error) error {
	if a != nil {
		return fmt.Errorf("primary %w", a)
	}
	return fmt.Errorf("shadow %w", b)
}
