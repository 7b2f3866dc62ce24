package mirrorlinev1

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// MarshalExchange encodes x exactly as proto.Marshal does (the same bytes,
// the same errors), only cheaper for the records the pipeline writes: one
// pass to size, one to append, no reflection. An exchange it does not encode
// itself (a replay section, labels, unknown fields, a nil header entry, a
// string that is not valid UTF-8) is encoded by proto.Marshal.
func MarshalExchange(x *Exchange) ([]byte, error) {
	n, ok := sizeExchange(x)
	if !ok {
		return proto.Marshal(x)
	}
	// As proto.Marshal: an empty message is an empty, non-nil slice.
	return appendExchange(make([]byte, 0, n.total), x, n), nil
}

// exchangeSize is the encoded size of an exchange and of its request and
// response.
type exchangeSize struct{ total, req, resp int }

// The sizes below return false for what appendExchange leaves to
// proto.Marshal.

func sizeStr(num protowire.Number, s string) (int, bool) {
	if s == "" {
		return 0, true
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s)), utf8.ValidString(s)
}

func sizeBytes(num protowire.Number, b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(len(b))
}

func sizeVarint(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func sizeBool(num protowire.Number, v bool) int {
	if !v {
		return 0
	}
	return protowire.SizeTag(num) + 1
}

// sizes adds up field sizes, remembering whether all could be encoded.
type sizes struct {
	n  int
	ok bool
}

func (s *sizes) str(num protowire.Number, v string) {
	n, ok := sizeStr(num, v)
	s.n += n
	s.ok = s.ok && ok
}

func (s *sizes) msg(num protowire.Number, n int, ok bool) {
	s.n += protowire.SizeTag(num) + protowire.SizeBytes(n)
	s.ok = s.ok && ok
}

func sizeHeaders(num protowire.Number, hs []*Header, s *sizes) {
	for _, h := range hs {
		if h == nil || len(h.unknownFields) > 0 {
			s.ok = false
			return
		}
		n, ok := sizeHeader(h)
		s.msg(num, n, ok)
	}
}

func sizeHeader(h *Header) (int, bool) {
	s := sizes{ok: true}
	s.str(1, h.Name)
	s.str(2, h.Value)
	return s.n, s.ok
}

func sizeRequest(r *Request) (int, bool) {
	s := sizes{ok: len(r.unknownFields) == 0}
	s.str(1, r.Method)
	s.str(2, r.Url)
	s.str(3, r.Host)
	s.str(4, r.Proto)
	s.str(5, r.Scheme)
	sizeHeaders(6, r.Headers, &s)
	s.n += sizeBytes(7, r.Body) + sizeBool(8, r.BodyTruncated) + sizeVarint(9, uint64(r.BodySize))
	s.str(10, r.RemoteAddr)
	s.n += sizeBool(11, r.HeadersTruncated) + sizeBool(12, r.BodyIncomplete)
	return s.n, s.ok
}

func sizeResponse(r *Response) (int, bool) {
	s := sizes{ok: len(r.unknownFields) == 0}
	s.n += sizeVarint(1, uint64(int64(r.Status)))
	sizeHeaders(2, r.Headers, &s)
	s.n += sizeBytes(3, r.Body) + sizeBool(4, r.BodyTruncated) + sizeVarint(5, uint64(r.BodySize)) + sizeVarint(6, uint64(r.LatencyNs))
	s.str(7, r.Error)
	s.str(8, r.Proto)
	s.n += sizeBool(9, r.HeadersTruncated)
	return s.n, s.ok
}

func sizeExchange(x *Exchange) (exchangeSize, bool) {
	var es exchangeSize
	if x == nil || x.Replay != nil || len(x.Labels) > 0 || len(x.unknownFields) > 0 {
		return es, false
	}
	s := sizes{ok: true}
	s.str(1, x.Id)
	s.str(2, x.Service)
	s.str(3, x.ConnectionId)
	s.n += sizeVarint(4, x.Sequence) + sizeVarint(5, uint64(int64(x.Source)))
	s.str(6, x.Collector)
	s.n += sizeVarint(7, uint64(x.CaptureTimeNs))
	var ok bool
	if x.Request != nil {
		es.req, ok = sizeRequest(x.Request)
		s.msg(8, es.req, ok)
	}
	if x.Response != nil {
		es.resp, ok = sizeResponse(x.Response)
		s.msg(9, es.resp, ok)
	}
	for _, r := range x.Redactions {
		n, ok := sizeStr(11, r)
		if r == "" {
			n = protowire.SizeTag(11) + 1
		}
		s.n += n
		s.ok = s.ok && ok
	}
	es.total = s.n
	return es, s.ok
}

func appendStr(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), v)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

func appendBool(b []byte, num protowire.Number, v bool) []byte {
	if !v {
		return b
	}
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), 1)
}

// appendMsg appends the tag and length of a message of n bytes.
func appendMsg(b []byte, num protowire.Number, n int) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.BytesType), uint64(n))
}

func appendHeaders(b []byte, num protowire.Number, hs []*Header) []byte {
	for _, h := range hs {
		n := 0
		if h.Name != "" {
			n += 1 + protowire.SizeBytes(len(h.Name))
		}
		if h.Value != "" {
			n += 1 + protowire.SizeBytes(len(h.Value))
		}
		b = appendMsg(b, num, n)
		b = appendStr(b, 1, h.Name)
		b = appendStr(b, 2, h.Value)
	}
	return b
}

func appendRequest(b []byte, r *Request) []byte {
	b = appendStr(b, 1, r.Method)
	b = appendStr(b, 2, r.Url)
	b = appendStr(b, 3, r.Host)
	b = appendStr(b, 4, r.Proto)
	b = appendStr(b, 5, r.Scheme)
	b = appendHeaders(b, 6, r.Headers)
	b = appendBytes(b, 7, r.Body)
	b = appendBool(b, 8, r.BodyTruncated)
	b = appendVarint(b, 9, uint64(r.BodySize))
	b = appendStr(b, 10, r.RemoteAddr)
	b = appendBool(b, 11, r.HeadersTruncated)
	return appendBool(b, 12, r.BodyIncomplete)
}

func appendResponse(b []byte, r *Response) []byte {
	b = appendVarint(b, 1, uint64(int64(r.Status)))
	b = appendHeaders(b, 2, r.Headers)
	b = appendBytes(b, 3, r.Body)
	b = appendBool(b, 4, r.BodyTruncated)
	b = appendVarint(b, 5, uint64(r.BodySize))
	b = appendVarint(b, 6, uint64(r.LatencyNs))
	b = appendStr(b, 7, r.Error)
	b = appendStr(b, 8, r.Proto)
	return appendBool(b, 9, r.HeadersTruncated)
}

// appendExchange appends x, which sizeExchange accepted and sized n.
func appendExchange(b []byte, x *Exchange, n exchangeSize) []byte {
	b = appendStr(b, 1, x.Id)
	b = appendStr(b, 2, x.Service)
	b = appendStr(b, 3, x.ConnectionId)
	b = appendVarint(b, 4, x.Sequence)
	b = appendVarint(b, 5, uint64(int64(x.Source)))
	b = appendStr(b, 6, x.Collector)
	b = appendVarint(b, 7, uint64(x.CaptureTimeNs))
	if x.Request != nil {
		b = appendRequest(appendMsg(b, 8, n.req), x.Request)
	}
	if x.Response != nil {
		b = appendResponse(appendMsg(b, 9, n.resp), x.Response)
	}
	for _, r := range x.Redactions {
		b = protowire.AppendString(protowire.AppendTag(b, 11, protowire.BytesType), r)
	}
	return b
}
