package mirrorlinev1

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// UnmarshalExchange decodes b into x (reset first), exactly as
// proto.Unmarshal does, only cheaper for the records collectors write: all
// string fields share one copy of b (one allocation instead of one per
// string), the header entries of a message share one allocation, and no
// reflection is involved. Anything it does not decode itself (a replay
// section, labels, an unknown field, a malformed or non-UTF-8 input) is
// decoded by proto.Unmarshal instead, so the result and the error are always
// proto.Unmarshal's. Strings of x keep all of b's bytes alive while any of
// them is referenced; bodies are copies x owns.
func UnmarshalExchange(b []byte, x *Exchange) error {
	proto.Reset(x)
	d := decoder{s: string(b)}
	if d.exchange(b, 0, x) {
		return nil
	}
	proto.Reset(x)
	return proto.Unmarshal(b, x)
}

// decoder decodes an Exchange; s is the input as one string, which the
// decoded strings are substrings of.
type decoder struct{ s string }

// field is one decoded field: its number and wire type, and its value (v for
// a varint; start and end offsets of a length-delimited value in the input).
type field struct {
	num        protowire.Number
	typ        protowire.Type
	v          uint64
	start, end int
}

// next decodes the field at b[i:] (b starting at offset base of the input)
// into f; it returns the offset after it, or -1 for anything but a
// well-formed varint or length-delimited field.
func next(b []byte, i, base int, f *field) int {
	if c := b[i]; c < 0x80 && c>>3 != 0 {
		// A one-byte tag: every field of the envelope.
		f.num, f.typ = protowire.Number(c>>3), protowire.Type(c&7)
		i++
	} else {
		num, typ, n := protowire.ConsumeTag(b[i:])
		if n < 0 {
			return -1
		}
		f.num, f.typ = num, typ
		i += n
	}
	switch f.typ {
	case protowire.VarintType:
		v, n := protowire.ConsumeVarint(b[i:])
		if n < 0 {
			return -1
		}
		f.v = v
		return i + n
	case protowire.BytesType:
		if i < len(b) && b[i] < 0x80 && i+1+int(b[i]) <= len(b) {
			// A length below 128.
			f.start = base + i + 1
			f.end = f.start + int(b[i])
			return i + 1 + int(b[i])
		}
		v, n := protowire.ConsumeBytes(b[i:])
		if n < 0 {
			return -1
		}
		f.start = base + i + n - len(v)
		f.end = f.start + len(v)
		return i + n
	}
	return -1
}

// str returns f's value as a string sharing the input's copy; ok is false
// when it is not valid UTF-8 (proto3 strings must be).
func (d *decoder) str(f *field) (string, bool) {
	if f.typ != protowire.BytesType {
		return "", false
	}
	s := d.s[f.start:f.end]
	return s, utf8.ValidString(s)
}

// bytes returns a copy of f's value (nil when empty, as proto.Unmarshal).
func (d *decoder) bytes(f *field) ([]byte, bool) {
	if f.typ != protowire.BytesType {
		return nil, false
	}
	if f.start == f.end {
		return nil, true
	}
	return append(make([]byte, 0, f.end-f.start), d.s[f.start:f.end]...), true
}

// exchange decodes b (at offset base of the input) into x; false: leave it
// to proto.Unmarshal.
func (d *decoder) exchange(b []byte, base int, x *Exchange) bool {
	var f field
	for i := 0; i < len(b); {
		if i = next(b, i, base, &f); i < 0 {
			return false
		}
		ok := true
		switch f.num {
		case 1:
			x.Id, ok = d.str(&f)
		case 2:
			x.Service, ok = d.str(&f)
		case 3:
			x.ConnectionId, ok = d.str(&f)
		case 4:
			x.Sequence, ok = f.v, f.typ == protowire.VarintType
		case 5:
			x.Source, ok = Source(int32(f.v)), f.typ == protowire.VarintType
		case 6:
			x.Collector, ok = d.str(&f)
		case 7:
			x.CaptureTimeNs, ok = int64(f.v), f.typ == protowire.VarintType
		case 8:
			if ok = f.typ == protowire.BytesType; ok {
				if x.Request == nil {
					x.Request = &Request{}
				}
				ok = d.request(b[f.start-base:f.end-base], f.start, x.Request)
			}
		case 9:
			if ok = f.typ == protowire.BytesType; ok {
				if x.Response == nil {
					x.Response = &Response{}
				}
				ok = d.response(b[f.start-base:f.end-base], f.start, x.Response)
			}
		case 11:
			var s string
			if s, ok = d.str(&f); ok {
				x.Redactions = append(x.Redactions, s)
			}
		default:
			// replay, labels, unknown fields.
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

// request decodes b (at offset base of the input) into r, merging as
// proto.Unmarshal does.
func (d *decoder) request(b []byte, base int, r *Request) bool {
	r.Headers = d.preallocHeaders(b, 6, r.Headers)
	var f field
	for i := 0; i < len(b); {
		if i = next(b, i, base, &f); i < 0 {
			return false
		}
		ok := true
		switch f.num {
		case 1:
			r.Method, ok = d.str(&f)
		case 2:
			r.Url, ok = d.str(&f)
		case 3:
			r.Host, ok = d.str(&f)
		case 4:
			r.Proto, ok = d.str(&f)
		case 5:
			r.Scheme, ok = d.str(&f)
		case 6:
			r.Headers, ok = d.header(b, base, &f, r.Headers)
		case 7:
			r.Body, ok = d.bytes(&f)
		case 8:
			r.BodyTruncated, ok = f.v != 0, f.typ == protowire.VarintType
		case 9:
			r.BodySize, ok = int64(f.v), f.typ == protowire.VarintType
		case 10:
			r.RemoteAddr, ok = d.str(&f)
		case 11:
			r.HeadersTruncated, ok = f.v != 0, f.typ == protowire.VarintType
		case 12:
			r.BodyIncomplete, ok = f.v != 0, f.typ == protowire.VarintType
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

// response decodes b (at offset base of the input) into r, merging as
// proto.Unmarshal does.
func (d *decoder) response(b []byte, base int, r *Response) bool {
	r.Headers = d.preallocHeaders(b, 2, r.Headers)
	var f field
	for i := 0; i < len(b); {
		if i = next(b, i, base, &f); i < 0 {
			return false
		}
		ok := true
		switch f.num {
		case 1:
			r.Status, ok = int32(f.v), f.typ == protowire.VarintType
		case 2:
			r.Headers, ok = d.header(b, base, &f, r.Headers)
		case 3:
			r.Body, ok = d.bytes(&f)
		case 4:
			r.BodyTruncated, ok = f.v != 0, f.typ == protowire.VarintType
		case 5:
			r.BodySize, ok = int64(f.v), f.typ == protowire.VarintType
		case 6:
			r.LatencyNs, ok = int64(f.v), f.typ == protowire.VarintType
		case 7:
			r.Error, ok = d.str(&f)
		case 8:
			r.Proto, ok = d.str(&f)
		case 9:
			r.HeadersTruncated, ok = f.v != 0, f.typ == protowire.VarintType
		default:
			return false
		}
		if !ok {
			return false
		}
	}
	return true
}

// preallocHeaders gives hs room for the header entries (field num) of the
// message b, and allocates them together.
func (d *decoder) preallocHeaders(b []byte, num protowire.Number, hs []*Header) []*Header {
	n := 0
	var f field
	for i := 0; i < len(b); {
		j := next(b, i, 0, &f)
		if j < 0 {
			break
		}
		if f.num == num {
			n++
		}
		i = j
	}
	if n == 0 {
		return hs
	}
	slab := make([]Header, n)
	out := make([]*Header, len(hs), len(hs)+n)
	copy(out, hs)
	for i := range slab {
		out = append(out, &slab[i])
	}
	// The entries are handed out by header in order; hs's length says
	// which is next.
	return out[:len(hs)]
}

// header decodes the header entry f of the message b (at offset base of the
// input) and appends it to hs, using the room preallocHeaders left.
func (d *decoder) header(b []byte, base int, f *field, hs []*Header) ([]*Header, bool) {
	if f.typ != protowire.BytesType {
		return hs, false
	}
	var h *Header
	if len(hs) < cap(hs) {
		hs = hs[:len(hs)+1]
		h = hs[len(hs)-1]
	} else {
		h = &Header{}
		hs = append(hs, h)
	}
	m := b[f.start-base : f.end-base]
	var g field
	for i := 0; i < len(m); {
		if i = next(m, i, f.start, &g); i < 0 {
			return hs, false
		}
		ok := true
		switch g.num {
		case 1:
			h.Name, ok = d.str(&g)
		case 2:
			h.Value, ok = d.str(&g)
		default:
			return hs, false
		}
		if !ok {
			return hs, false
		}
	}
	return hs, true
}
