package mirrorlinev1

import (
	"bytes"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// UnmarshalExchange decodes b into x (reset first) with the generated
// UnmarshalVT (exchange_vtproto.pb.go, no reflection) and gives exactly what
// proto.Unmarshal gives, result and error. The generated decoder does not
// check that strings are valid UTF-8 and differs from proto.Unmarshal on
// malformed input, so whatever it does not decode as a pipeline writer would
// have written it (an error, a string that is not UTF-8, an unknown field, a
// non-canonical encoding, an overflowing varint) is decoded again by
// proto.Unmarshal. Every string and body of x is a copy of its own, never
// part of b: x may outlive b and keep any of its strings for long (an id in
// a set of decided ones) without holding more than that string.
func UnmarshalExchange(b []byte, x *Exchange) error {
	if unmarshalVT(b, x, false) {
		return nil
	}
	x.Reset()
	return proto.Unmarshal(b, x)
}

// UnmarshalExchangeTransient is UnmarshalExchange for an exchange that is
// dropped once processed (the redactor's records, encoded again within their
// transaction): x is decoded with UnmarshalVTUnsafe from b itself, without a
// copy, so all its strings, bodies and message data are parts of b. b must
// not change while x or anything taken from it is in use, and x's bodies and
// message data are b's bytes: replace them, never write into them. Their
// capacity ends with them, so appending to one never writes into b. Any
// string of x kept keeps all of b alive.
func UnmarshalExchangeTransient(b []byte, x *Exchange) error {
	if unmarshalVT(b, x, true) {
		return nil
	}
	x.Reset()
	return proto.Unmarshal(b, x)
}

// UnmarshalExchangeRecycled is UnmarshalExchangeTransient into x, an
// exchange the caller decoded before and no longer uses: the messages of
// x's request and response (headers, trailers, gRPC messages) are reset and
// decoded into again instead of allocated anew (they go through the
// generated pools, so the next decode takes them back). Neither x nor any
// message reached from it may be held by anyone when it is called; strings
// and bodies may (they are never written to: a body or message data is
// never decoded into the previous one's bytes). For a loop that decodes one
// record at a time and drops it once encoded again (the redactor).
func UnmarshalExchangeRecycled(b []byte, x *Exchange) error {
	x.recycle()
	return UnmarshalExchangeTransient(b, x)
}

// recycle resets x for UnmarshalExchangeRecycled: ResetVT returns its
// request and response to the generated pools with their header, trailer and
// message lists kept, each entry reset. Entries past a list's length (a
// list shortened in place) are dropped, not reused: only what x holds is
// reset. Bodies and message data are dropped, so that a later decode
// (UnmarshalVT appends into a kept body) never writes into bytes a string
// may share.
func (x *Exchange) recycle() {
	if r := x.Request; r != nil {
		r.Body = nil
		recycleParts(r.Headers, r.Trailers, r.Messages)
	}
	if r := x.Response; r != nil {
		r.Body = nil
		recycleParts(r.Headers, r.Trailers, r.Messages)
	}
	x.Redactions = nil // may be another's slice (the redactor's rule names)
	x.ResetVT()
}

// recycleParts drops the entries past the length of a request's or a
// response's lists, and its messages' data.
func recycleParts(headers, trailers []*Header, msgs []*Message) {
	clear(headers[len(headers):cap(headers)])
	clear(trailers[len(trailers):cap(trailers)])
	clear(msgs[len(msgs):cap(msgs)])
	for _, m := range msgs {
		if m != nil {
			m.Data = nil
		}
	}
}

// unmarshalVT decodes b into x (reset first) with UnmarshalVT, or with
// UnmarshalVTUnsafe when shared (x's strings and bytes are then parts of b),
// and reports whether the result is
// certainly proto.Unmarshal's: decoded without error, every string valid
// UTF-8, no unknown fields, b the canonical encoding of the result (the size
// MarshalVT would write, so no tag, length or field was read in a way
// proto.Unmarshal would not) and no overflowing varint.
func unmarshalVT(b []byte, x *Exchange, shared bool) bool {
	x.Reset()
	var err error
	if shared {
		err = x.UnmarshalVTUnsafe(b)
	} else {
		err = x.UnmarshalVT(b)
	}
	if err != nil || !x.plain() || x.SizeVT() != len(b) || !x.noOverflow(b) {
		return false
	}
	if shared {
		if r := x.Request; r != nil {
			r.Body = slices.Clip(r.Body)
			clipData(r.Messages)
		}
		if r := x.Response; r != nil {
			r.Body = slices.Clip(r.Body)
			clipData(r.Messages)
		}
	}
	return true
}

// clipData ends the capacity of each message's data with it: the bytes after
// it in the buffer decoded from are another field's, or another record's.
func clipData(msgs []*Message) {
	for _, m := range msgs {
		if m != nil {
			m.Data = slices.Clip(m.Data)
		}
	}
}

// MarshalExchange encodes x with the generated MarshalVT: the bytes
// proto.Marshal writes (fields in number order, unknown fields last; labels,
// a map, in no fixed order as with proto.Marshal). What MarshalVT would encode
// differently from proto.Marshal (a nil exchange or header entry, unknown
// fields) or encode where proto.Marshal fails (a string that is not valid
// UTF-8) is encoded by proto.Marshal, so the errors are its errors.
func MarshalExchange(x *Exchange) ([]byte, error) {
	if x == nil || !x.plain() {
		return proto.Marshal(x)
	}
	return x.MarshalVT()
}

// AppendExchange is MarshalExchange appending to dst: the same bytes after
// dst's, written into dst's spare capacity when it has enough (a buffer
// reused from record to record), else into a grown copy.
func AppendExchange(dst []byte, x *Exchange) ([]byte, error) {
	if x == nil || !x.plain() {
		return proto.MarshalOptions{}.MarshalAppend(dst, x)
	}
	size := x.SizeVT()
	n := len(dst)
	dst = slices.Grow(dst, size)[:n+size]
	if _, err := x.MarshalToSizedBufferVT(dst[n:]); err != nil {
		return dst[:n], err
	}
	return dst, nil
}

// plain reports whether x is what the generated code handles as
// proto.Unmarshal and proto.Marshal do: every string valid UTF-8 (proto3
// requires it; the generated code does not check), no nil header entry and
// no unknown fields.
func (x *Exchange) plain() bool {
	if x.unknownFields != nil ||
		!validUTF8(x.Id, x.Service, x.ConnectionId, x.Collector, x.ParentId, x.TraceId) ||
		!x.GetStub().plain() ||
		!validUTF8(x.Redactions...) ||
		!x.GetRequest().plain() || !x.GetResponse().plain() || !x.GetReplay().plain() {
		return false
	}
	for k, v := range x.Labels {
		if !validUTF8(k, v) {
			return false
		}
	}
	return true
}

func (r *Request) plain() bool {
	return r == nil || r.unknownFields == nil &&
		validUTF8(r.Method, r.Url, r.Host, r.Proto, r.Scheme, r.RemoteAddr) &&
		plainHeaders(r.Headers) && plainHeaders(r.Trailers) && plainMessages(r.Messages)
}

func (r *Response) plain() bool {
	return r == nil || r.unknownFields == nil &&
		validUTF8(r.Error, r.Proto) && plainHeaders(r.Headers) &&
		plainHeaders(r.Trailers) && plainMessages(r.Messages)
}

func (a *StubAnswer) plain() bool {
	return a == nil || a.unknownFields == nil && validUTF8(a.Outcome, a.MatchedId)
}

func (r *Replay) plain() bool {
	return r == nil || r.unknownFields == nil &&
		validUTF8(r.Target, r.Job, r.Instance, r.SourceTopic)
}

func plainHeaders(hs []*Header) bool {
	for _, h := range hs {
		if h == nil || h.unknownFields != nil || !validUTF8(h.Name, h.Value) {
			return false
		}
	}
	return true
}

func plainMessages(ms []*Message) bool {
	for _, m := range ms {
		if m == nil || m.unknownFields != nil {
			return false
		}
	}
	return true
}

// noOverflow reports that no varint of b that gave a value of x was an
// overflowing one, which proto.Unmarshal rejects and UnmarshalVT reads: ten
// bytes whose last is not 0 or 1. With b of canonical size (checked first),
// only a value with bit 63 set (a negative number, a uint64 from 2^63) can
// come from ten bytes. For a 64-bit field the first nine are those of the
// value's canonical encoding, so b is searched for them followed by anything
// but the canonical last byte 1 (a match in a body merely sends the record to
// proto.Unmarshal); a 32-bit field keeps only the low bits of its ten, so a
// negative one always goes to proto.Unmarshal.
func (x *Exchange) noOverflow(b []byte) bool {
	var vs []uint64
	add := func(v uint64) {
		if v>>63 != 0 {
			vs = append(vs, v)
		}
	}
	if x.Source < 0 || x.Protocol < 0 || x.Kind < 0 || x.GetStub().GetScore() < 0 || x.GetResponse().GetStatus() < 0 || x.GetReplay().GetSourcePartition() < 0 {
		return false
	}
	add(x.Sequence)
	add(uint64(x.CaptureTimeNs))
	addMessages := func(ms []*Message) {
		for _, m := range ms {
			add(uint64(m.OffsetNs))
			add(uint64(m.Size))
		}
	}
	if r := x.Request; r != nil {
		add(uint64(r.BodySize))
		addMessages(r.Messages)
	}
	if r := x.Response; r != nil {
		add(uint64(r.BodySize))
		add(uint64(r.LatencyNs))
		addMessages(r.Messages)
	}
	if r := x.Replay; r != nil {
		add(uint64(r.SentTimeNs))
		add(uint64(r.ScheduleLagNs))
		add(uint64(r.SourceOffset))
	}
	for _, v := range vs {
		var enc [10]byte
		prefix := protowire.AppendVarint(enc[:0], v)[:9]
		for rest := b; ; {
			i := bytes.Index(rest, prefix)
			if i < 0 {
				break
			}
			if i+9 < len(rest) && rest[i+9] > 1 {
				return false
			}
			rest = rest[i+1:]
		}
	}
	return true
}

// validUTF8 reports whether every s is valid UTF-8. ASCII, most of what a
// pipeline carries (header names and values, methods, URLs, ids), is
// checked eight bytes at a time; anything else by utf8.ValidString.
func validUTF8(ss ...string) bool {
	for _, s := range ss {
		if !ascii(s) && !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// ascii reports whether s has no byte of 0x80 or above.
func ascii(s string) bool {
	if len(s) < 8 {
		var acc byte
		for i := 0; i < len(s); i++ {
			acc |= s[i]
		}
		return acc < utf8.RuneSelf
	}
	acc := load64(s[len(s)-8:]) // the tail, partly read again below
	for ; len(s) >= 8; s = s[8:] {
		acc |= load64(s)
	}
	return acc&0x8080808080808080 == 0
}

// load64 is the first 8 bytes of s as one little-endian word (the compiler
// makes it one load).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
