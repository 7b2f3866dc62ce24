// gRPC exchanges: trailers, metadata and the messages of each direction.

package redactor

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Modes of a scrubbed gRPC message, counted in
// mirrorline_redactor_grpc_messages_total{mode}.
const (
	// ModeSchema: decoded with the message type of the method's schema.
	ModeSchema = "schema"
	// ModeWire: read as the protobuf wire format without a schema.
	ModeWire = "wire"
	// ModeJSON: an application/grpc+json message, scrubbed as a JSON body.
	ModeJSON = "json"
	// ModeTruncated: a message cut at capture, its data dropped.
	ModeTruncated = "truncated"
)

// Reasons a gRPC exchange is set aside, counted in
// mirrorline_redactor_grpc_set_aside_total{reason}.
const (
	ReasonEncoding       = "unsupported_encoding"
	ReasonDecompress     = "decompress"
	ReasonSchemaMismatch = "schema_mismatch"
	ReasonMalformed      = "malformed"
	ReasonSurvived       = "detector_survived"
)

// GRPCError is the error of a gRPC message that could not be scrubbed: the
// record fails closed. Its text never holds payload bytes.
type GRPCError struct {
	// Reason is one of the Reason* constants.
	Reason string
	err    error
}

func (e *GRPCError) Error() string { return e.err.Error() }

// Unwrap returns the cause and ErrUnparseable.
func (e *GRPCError) Unwrap() []error { return []error{e.err, ErrUnparseable} }

func grpcErr(reason string, format string, args ...any) error {
	return &GRPCError{Reason: reason, err: fmt.Errorf(format, args...)}
}

// grpcCall is what the scrubbing of a gRPC exchange's messages needs from
// its headers, read before the headers are scrubbed.
type grpcCall struct {
	reqEnc, respEnc string
	json            bool // application/grpc+json: messages are JSON
	grpc            bool // a gRPC exchange (protocol or content type)
}

// readGRPCCall reads the grpc-encoding of each direction and the content
// type. It is cheap enough to run on every exchange.
func readGRPCCall(ex *mlv1.Exchange) grpcCall {
	req, resp := ex.GetRequest(), ex.GetResponse()
	c := grpcCall{grpc: ex.GetProtocol() == mlv1.Protocol_PROTOCOL_GRPC}
	for _, h := range req.GetHeaders() {
		switch {
		case asciiEqualFold(h.GetName(), "grpc-encoding"):
			c.reqEnc = h.GetValue()
		case asciiEqualFold(h.GetName(), "content-type"):
			mt, _, _ := strings.Cut(asciiLower(h.GetValue()), ";")
			c.json = strings.TrimSpace(mt) == "application/grpc+json"
			c.grpc = c.grpc || grpcwire.IsGRPC(h.GetValue())
		}
	}
	for _, h := range resp.GetHeaders() {
		switch {
		case asciiEqualFold(h.GetName(), "grpc-encoding"):
			c.respEnc = h.GetValue()
		case asciiEqualFold(h.GetName(), "content-type"):
			c.grpc = c.grpc || grpcwire.IsGRPC(h.GetValue())
		}
	}
	return c
}

// scrubGRPC scrubs the parts of ex only HTTP/2 and gRPC exchanges have: the
// trailers of each direction (as headers), and for gRPC grpc-message and
// binary (-bin) metadata in headers and trailers; and every message (of any
// exchange: fail closed). Headers must have been scrubbed already. An error
// means fail closed.
func (st *state) scrubGRPC(ex *mlv1.Exchange, call grpcCall) error {
	req, resp := ex.GetRequest(), ex.GetResponse()
	if req != nil {
		req.Trailers = st.scrubHeaders(req.Trailers, dirRequest)
		if call.grpc {
			req.Headers = st.scrubMetadata(req.Headers, dirRequest)
			req.Trailers = st.scrubMetadata(req.Trailers, dirRequest)
		}
	}
	if resp != nil {
		resp.Trailers = st.scrubHeaders(resp.Trailers, dirResponse)
		if call.grpc {
			resp.Headers = st.scrubMetadata(resp.Headers, dirResponse)
			resp.Trailers = st.scrubMetadata(resp.Trailers, dirResponse)
		}
	}
	framedReq := call.grpc && len(req.GetBody()) > 0
	framedResp := call.grpc && len(resp.GetBody()) > 0
	if len(req.GetMessages()) == 0 && len(resp.GetMessages()) == 0 && !framedReq && !framedResp {
		return nil
	}
	var in, out protoreflect.MessageDescriptor
	if s := st.e.schema; s != nil {
		in, out, _ = s.Method(methodPath(req.GetUrl()))
	}
	if framedReq {
		if err := st.scrubFramedBody(&req.Body, &req.Headers, &req.BodySize, req.BodyTruncated, in, call.reqEnc, call.json); err != nil {
			return fmt.Errorf("redact request body: %w", err)
		}
	}
	if framedResp {
		if err := st.scrubFramedBody(&resp.Body, &resp.Headers, &resp.BodySize, resp.BodyTruncated, out, call.respEnc, call.json); err != nil {
			return fmt.Errorf("redact response body: %w", err)
		}
	}
	if req != nil {
		d, err := st.scrubMessages(req.Messages, in, call.reqEnc, call.json)
		if err != nil {
			return fmt.Errorf("redact request messages: %w", err)
		}
		req.BodySize += d
	}
	if resp != nil {
		d, err := st.scrubMessages(resp.Messages, out, call.respEnc, call.json)
		if err != nil {
			return fmt.Errorf("redact response messages: %w", err)
		}
		resp.BodySize += d
	}
	return nil
}

// scrubFramedBody scrubs a gRPC body kept whole (binary: pass lets it
// through the body rules): it is cut into its messages, which are scrubbed
// like Request.messages, and framed again. A body that does not frame
// completely (truncated, a bad prefix) is emptied.
func (st *state) scrubFramedBody(body *[]byte, headers *[]*mlv1.Header, size *int64, truncated bool, md protoreflect.MessageDescriptor, enc string, isJSON bool) error {
	f := grpcwire.NewFramer(0, 0)
	f.Feed(*body, 0)
	msgs, cut, _, err := f.Finish()
	incomplete := truncated || cut || err != nil || slices.ContainsFunc(msgs, (*mlv1.Message).GetTruncated)
	if incomplete {
		setBody(body, headers, size, truncated, nil)
		st.hit("grpc:body_unframed", 1)
		return nil
	}
	if _, err := st.scrubMessages(msgs, md, enc, isJSON); err != nil {
		return err
	}
	out, err := grpcwire.Frames(msgs)
	if err != nil {
		return grpcErr(ReasonMalformed, "frame scrubbed messages: %w", err)
	}
	setBody(body, headers, size, false, out)
	return nil
}

// methodPath returns the path of a request URL ("/pkg.Svc/Method"), the URL
// itself when it does not parse.
func methodPath(u string) string {
	if pu, err := url.Parse(u); err == nil && pu.Path != "" {
		return pu.Path
	}
	return u
}

// scrubMessages scrubs msgs in place with md (nil: without a schema) and
// returns by how much the framed size changed.
func (st *state) scrubMessages(msgs []*mlv1.Message, md protoreflect.MessageDescriptor, enc string, isJSON bool) (int64, error) {
	var delta int64
	for i, m := range msgs {
		if m == nil {
			continue
		}
		old := len(m.Data)
		if err := st.scrubOneMessage(m, md, enc, isJSON); err != nil {
			return 0, fmt.Errorf("message %d: %w", i, err)
		}
		if !m.Truncated && len(m.Data) != old {
			delta += int64(len(m.Data) - old)
			m.Size = int64(len(m.Data))
		}
	}
	return delta, nil
}

// scrubOneMessage scrubs one message's data: decompressed when compressed,
// scrubbed with the schema, as JSON or as wire format, compressed again.
func (st *state) scrubOneMessage(m *mlv1.Message, md protoreflect.MessageDescriptor, enc string, isJSON bool) error {
	if m.Truncated {
		// Cut at capture: it cannot be parsed, so no field rule could be
		// applied to it. Its data is dropped; size and flags stay.
		if len(m.Data) > 0 {
			m.Data = nil
			st.hit("grpc:truncated", 1)
		}
		st.mode(ModeTruncated)
		return nil
	}
	if len(m.Data) == 0 {
		return nil
	}
	plain := m.Data
	if m.Compressed {
		e := strings.ToLower(strings.TrimSpace(enc))
		if e == "" || e == "identity" {
			return grpcErr(ReasonEncoding, "compressed message without a grpc-encoding")
		}
		var err error
		plain, err = grpcwire.Decompress(enc, m.Data, int(st.e.maxDecoded))
		if err != nil {
			if errors.Is(err, grpcwire.ErrUnsupportedEncoding) {
				// The encoding's name is captured text: not repeated.
				return grpcErr(ReasonEncoding, "grpc-encoding not supported")
			}
			return grpcErr(ReasonDecompress, "%w", err)
		}
	}
	out, changed, err := st.scrubPlainMessage(plain, md, isJSON)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	if m.Compressed {
		out, err = compressMessage(enc, out)
		if err != nil {
			return grpcErr(ReasonEncoding, "%w", err)
		}
	}
	m.Data = out
	return nil
}

// compressMessage compresses a scrubbed message again: gzip and zstd with
// the body re-encoders (pooled, fast level), the others with grpcwire.
func compressMessage(enc string, b []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "gzip":
		return encodeBody(b, codings{n: 1, c: [maxCodings]coding{codingGzip}})
	case "zstd":
		return encodeBody(b, codings{n: 1, c: [maxCodings]coding{codingZstd}})
	}
	return grpcwire.Compress(enc, b)
}

// scrubPlainMessage scrubs one decompressed message.
func (st *state) scrubPlainMessage(b []byte, md protoreflect.MessageDescriptor, isJSON bool) ([]byte, bool, error) {
	if isJSON {
		st.mode(ModeJSON)
		out, changed, err := st.scrubJSON(b, false)
		if err != nil {
			return nil, false, grpcErr(ReasonMalformed, "grpc+json message: %w", err)
		}
		return out, changed, nil
	}
	p := protoEd{st: st}
	if md != nil {
		st.mode(ModeSchema)
		return p.withSchema(b, md)
	}
	st.mode(ModeWire)
	out, changed, err := p.wire(b)
	if err != nil {
		return nil, false, grpcErr(ReasonMalformed, "%w", err)
	}
	if err := p.verifyWire(out); err != nil {
		return nil, false, err
	}
	return out, changed, nil
}

// mode counts a message scrubbed in mode (Result.GRPCModes).
func (st *state) mode(m string) {
	if st.modes == nil {
		st.modes = make(map[string]int, 2)
	}
	st.modes[m]++
}

// scrubMetadata scrubs what header rules and the header scan do not reach
// in gRPC metadata: grpc-message (percent-encoded free text) is always run
// through the detectors, decoded, unless a header rule names it; a binary
// value (a name ending in -bin, base64) is decoded and scrubbed as a
// protobuf message without a schema, and removed when it is not one.
func (st *state) scrubMetadata(hs []*mlv1.Header, dir uint8) []*mlv1.Header {
	out := hs[:0]
	for _, h := range hs {
		if h == nil {
			continue
		}
		name := h.GetName()
		switch {
		case st.e.headers.match(name, dir) != nil:
		case asciiEqualFold(name, "grpc-message"):
			v := percentDecode(h.Value)
			if nv, ok := st.scrubString(v); ok {
				h.Value = percentEncode(nv)
			}
		case len(name) > 4 && asciiEqualFold(name[len(name)-4:], "-bin"):
			v, ok := st.scrubBinaryMetadata(h.Value)
			if !ok {
				st.hit("grpc:bin_metadata", 1)
				continue
			}
			h.Value = v
		}
		out = append(out, h)
	}
	for i := len(out); i < len(hs); i++ {
		hs[i] = nil
	}
	return out
}

// scrubBinaryMetadata scrubs a base64 -bin metadata value as a protobuf
// message; ok is false when the value must be removed.
func (st *state) scrubBinaryMetadata(v string) (string, bool) {
	enc := base64.StdEncoding
	if len(v)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	b, err := enc.DecodeString(v)
	if err != nil {
		return "", false
	}
	if len(b) == 0 {
		return v, true
	}
	p := protoEd{st: st}
	out, changed, err := p.wire(b)
	if err != nil || p.verifyWire(out) != nil {
		return "", false
	}
	if !changed {
		return v, true
	}
	return enc.EncodeToString(out), true
}

// percentDecode decodes grpc-message's percent-encoding; invalid escapes
// are kept as they are.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0 {
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// percentEncode encodes s for grpc-message: bytes outside printable ASCII,
// and '%', as %XX.
func percentEncode(s string) string {
	const hexd = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hexd[c>>4])
			b.WriteByte(hexd[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
