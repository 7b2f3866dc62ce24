package grpcwire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"
)

// The values MessageValue and WireValue return are generic JSON values, as
// encoding/json decodes them with UseNumber: map[string]any, []any, string,
// json.Number, bool and nil. A JSON diff can walk them as it walks a decoded
// JSON body.

// MessageValue decodes data, a protobuf message of type md, into a JSON value
// keyed by field name (the .proto names, as protojson's UseProtoNames):
//   - scalars: numbers as json.Number (64-bit integers exact, not quoted),
//     bools, strings; bytes in standard base64; enums by value name (by
//     number when the schema does not name the value); floats that are not
//     finite as "NaN", "Infinity", "-Infinity";
//   - fields without presence (proto3 scalars, repeated, maps) always, with
//     their default when not set; fields with presence (messages, optional,
//     oneof members) only when set;
//   - well-known types (google.protobuf.Timestamp, Duration, wrappers,
//     Struct, ...) in their protojson form (a Timestamp is an RFC 3339 string);
//   - fields the schema does not know (a newer server) by field number, as
//     WireValue reads them.
//
// It fails on bytes that are not a message of type md (including invalid
// UTF-8 in a proto3 string). Nesting is bounded by MaxDepth.
func MessageValue(md protoreflect.MessageDescriptor, data []byte) (any, error) {
	m := dynamicpb.NewMessage(md)
	if err := (proto.UnmarshalOptions{RecursionLimit: MaxDepth}).Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", md.FullName(), err)
	}
	return messageValue(m, 0)
}

// MessageJSON is MessageValue encoded as JSON (object keys sorted).
func MessageJSON(md protoreflect.MessageDescriptor, data []byte) ([]byte, error) {
	v, err := MessageValue(md, data)
	if err != nil {
		return nil, err
	}
	return encodeJSON(v)
}

// WireValue decodes data, a protobuf message read without a schema
// (ParseMessage), into a JSON object keyed by field number ("5"):
//   - a number that occurs once is a value, one that occurs more than once
//     (a repeated field) an array of its values in wire order;
//   - varints and fixed32/fixed64 as unsigned decimal numbers (the wire
//     does not say whether they are signed, zigzag or floats);
//   - a length-delimited field as a string when it is text (valid UTF-8
//     without control characters but tab, CR, LF), else as an object when it
//     parses as a message (nested, up to MaxDepth), else as standard base64.
//
// The guesses depend on the bytes alone: the same bytes always give the same
// value. A packed repeated field reads as one base64 (or text) value.
func WireValue(data []byte) (any, error) {
	fs, err := ParseMessage(data)
	if err != nil {
		return nil, err
	}
	return wireObject(fs), nil
}

// WireJSON is WireValue encoded as JSON (object keys sorted).
func WireJSON(data []byte) ([]byte, error) {
	v, err := WireValue(data)
	if err != nil {
		return nil, err
	}
	return encodeJSON(v)
}

func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode message as JSON: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

func wireObject(fs []Field) map[string]any {
	count := map[protowire.Number]int{}
	for _, f := range fs {
		count[f.Num]++
	}
	out := make(map[string]any, len(count))
	for _, f := range fs {
		k := strconv.FormatInt(int64(f.Num), 10)
		if count[f.Num] == 1 {
			out[k] = wireField(f)
			continue
		}
		l, _ := out[k].([]any)
		out[k] = append(l, wireField(f))
	}
	return out
}

func wireField(f Field) any {
	switch f.Type {
	case protowire.VarintType:
		return json.Number(strconv.FormatUint(f.Varint(), 10))
	case protowire.Fixed32Type:
		v, _ := protowire.ConsumeFixed32(f.Value)
		return json.Number(strconv.FormatUint(uint64(v), 10))
	case protowire.Fixed64Type:
		v, _ := protowire.ConsumeFixed64(f.Value)
		return json.Number(strconv.FormatUint(v, 10))
	}
	switch {
	case f.Text():
		return string(f.Value)
	case f.Nested:
		return wireObject(f.Fields)
	}
	return base64.StdEncoding.EncodeToString(f.Value)
}

var errDepth = errors.New("message nested too deeply")

func messageValue(m protoreflect.Message, depth int) (any, error) {
	if depth > MaxDepth {
		return nil, errDepth
	}
	md := m.Descriptor()
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		if b, err := (protojson.MarshalOptions{UseProtoNames: true}).Marshal(m.Interface()); err == nil {
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber()
			var v any
			if dec.Decode(&v) == nil {
				return v, nil
			}
		}
		// Not representable by protojson (an Any of an unknown type):
		// read field by field like any other message.
	}
	out := map[string]any{}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if fd.HasPresence() && !m.Has(fd) {
			continue
		}
		v, err := fieldValue(fd, m.Get(fd), depth)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", fd.Name(), err)
		}
		out[string(fd.Name())] = v
	}
	if u := m.GetUnknown(); len(u) > 0 {
		fs, err := ParseMessage(u)
		if err != nil {
			return nil, fmt.Errorf("unknown fields: %w", err)
		}
		for k, v := range wireObject(fs) {
			out[k] = v
		}
	}
	return out, nil
}

func fieldValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) (any, error) {
	switch {
	case fd.IsList():
		l := v.List()
		out := make([]any, 0, l.Len())
		for i := 0; i < l.Len(); i++ {
			e, err := singular(fd, l.Get(i), depth)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	case fd.IsMap():
		out := map[string]any{}
		var err error
		v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
			var e any
			e, err = singular(fd.MapValue(), mv, depth)
			out[k.String()] = e
			return err == nil
		})
		return out, err
	}
	return singular(fd, v, depth)
}

func singular(fd protoreflect.FieldDescriptor, v protoreflect.Value, depth int) (any, error) {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return v.Bool(), nil
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return json.Number(strconv.FormatInt(v.Int(), 10)), nil
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return json.Number(strconv.FormatUint(v.Uint(), 10)), nil
	case protoreflect.FloatKind:
		return floatValue(v.Float(), 32), nil
	case protoreflect.DoubleKind:
		return floatValue(v.Float(), 64), nil
	case protoreflect.StringKind:
		return v.String(), nil
	case protoreflect.BytesKind:
		return base64.StdEncoding.EncodeToString(v.Bytes()), nil
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name()), nil
		}
		return json.Number(strconv.FormatInt(int64(v.Enum()), 10)), nil
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return messageValue(v.Message(), depth+1)
	}
	return nil, fmt.Errorf("unsupported kind %v", fd.Kind())
}

func floatValue(f float64, bits int) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return json.Number(strconv.FormatFloat(f, 'g', -1, bits))
}
