package grpcwire

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxDepth bounds how deeply ParseMessage reads nested messages.
const MaxDepth = 32

// ErrMalformed is returned for bytes that are not the protobuf wire format.
var ErrMalformed = errors.New("malformed protobuf message")

// Field is one field of a protobuf message read without a schema.
type Field struct {
	Num  protowire.Number
	Type protowire.Type
	// Value: for VarintType, Fixed32Type and Fixed64Type the value's
	// encoding; for BytesType the content (without its length).
	Value []byte
	// Nested is set for a BytesType field whose content parses as a message
	// (ParseMessage's guess: a short string can parse as a message too);
	// Fields are then its fields.
	Nested bool
	Fields []Field
}

// Varint returns the value of a VarintType field.
func (f Field) Varint() uint64 {
	v, _ := protowire.ConsumeVarint(f.Value)
	return v
}

// Text reports whether a BytesType field's content is valid UTF-8 text
// without control characters other than tab, newline and carriage return.
func (f Field) Text() bool {
	if f.Type != protowire.BytesType || !utf8.Valid(f.Value) {
		return false
	}
	for _, c := range f.Value {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// ParseMessage reads b as a protobuf message without a schema. Groups
// (deprecated wire types 3 and 4) are refused. Length-delimited fields whose
// content parses as a message are read as nested, up to MaxDepth; Value
// always keeps their bytes. The Values alias b.
func ParseMessage(b []byte) ([]Field, error) { return parse(b, 0) }

func parse(b []byte, depth int) ([]Field, error) {
	var fields []Field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: tag: %w", ErrMalformed, protowire.ParseError(n))
		}
		b = b[n:]
		f := Field{Num: num, Type: typ}
		switch typ {
		case protowire.VarintType:
			_, n = protowire.ConsumeVarint(b)
			if n >= 0 {
				f.Value = b[:n]
			}
		case protowire.Fixed32Type:
			_, n = protowire.ConsumeFixed32(b)
			if n >= 0 {
				f.Value = b[:n]
			}
		case protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b)
			if n >= 0 {
				f.Value = b[:n]
			}
		case protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				f.Value = v
				if depth < MaxDepth && len(v) > 0 {
					if sub, err := parse(v, depth+1); err == nil {
						f.Nested, f.Fields = true, sub
					}
				}
			}
		default:
			return nil, fmt.Errorf("%w: field %d: wire type %d", ErrMalformed, num, typ)
		}
		if n < 0 {
			return nil, fmt.Errorf("%w: field %d: %w", ErrMalformed, num, protowire.ParseError(n))
		}
		b = b[n:]
		fields = append(fields, f)
	}
	return fields, nil
}

// AppendMessage appends fields encoded to dst. A Nested field is encoded
// from its Fields (so changes to them are kept), any other from Value.
func AppendMessage(dst []byte, fields []Field) []byte {
	for _, f := range fields {
		dst = protowire.AppendTag(dst, f.Num, f.Type)
		switch {
		case f.Type == protowire.BytesType && f.Nested:
			dst = protowire.AppendBytes(dst, AppendMessage(nil, f.Fields))
		case f.Type == protowire.BytesType:
			dst = protowire.AppendBytes(dst, f.Value)
		default:
			dst = append(dst, f.Value...)
		}
	}
	return dst
}
