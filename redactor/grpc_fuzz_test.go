package redactor

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mirrorline/mirrorline/grpcwire"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

// FuzzRedactProtobuf feeds random message bytes to the redactor as a gRPC
// response, read with the schema (an Order) or without: it never panics,
// and either fails closed (no message left) or returns a message that
// parses (as an Order with the schema) in which no detector finds anything:
// in its raw bytes, in any length-delimited field's content at any depth of
// the nested reading, nor (with the schema) in any string or 64-bit integer.
func FuzzRedactProtobuf(f *testing.F) {
	o := demoOrder()
	f.Add(mustMarshal(f, o), false)
	f.Add(mustMarshal(f, o), true)
	o.Shipping.Street = "x frank@example.com y"
	nested := mustMarshal(f, o)
	f.Add(nested, false)
	f.Add(append(protowire.AppendString(protowire.AppendTag(nil, 13, protowire.BytesType), "user@foo"), "j.com and more text to reach a printable length byte ok"...), false)
	f.Add(protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 4111111111111111), true)
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), []byte("\x12\x10bob@example.com.")), false)
	wkt, _ := structpb.NewStruct(map[string]any{"a": map[string]any{"b": []any{"sam@example.com", 1.5}}})
	f.Add(mustMarshal(f, wkt), true)
	an, _ := anypb.New(wkt)
	f.Add(mustMarshal(f, an), true)
	schema := ordersSchema(f)
	engines := map[bool]*Engine{false: newEngine(f, Config{}), true: schemaEngine(f, Config{}, schema)}
	f.Fuzz(func(t *testing.T, data []byte, withSchema bool) {
		e := engines[withSchema]
		if withSchema {
			// The well-known types' own paths (Struct, Any) as well.
			for _, m := range []proto.Message{&structpb.Struct{}, &anypb.Any{}} {
				p := protoEd{st: &state{e: e}}
				out, _, err := p.withSchema(data, m.ProtoReflect().Descriptor())
				if err != nil {
					continue
				}
				got := m.ProtoReflect().New()
				if err := proto.Unmarshal(out, got.Interface()); err != nil {
					t.Fatalf("scrubbed %T does not parse: %v", m, err)
				}
				checkNoFinding(t, &protoEd{st: &state{e: e}}, got)
			}
		}
		ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, bytes.Clone(data))
		in := ex.Response.Messages[0].Data
		_, err := e.Redact(ex)
		if !bytes.Equal(in, data) {
			t.Fatal("Redact wrote into the message data it was given (the loop's are the fetched record's bytes)")
		}
		if err != nil {
			if !errors.Is(err, ErrUnparseable) || errors.Is(err, ErrInternal) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if ex.Response.Messages != nil {
				t.Fatal("messages kept after a failure")
			}
			return
		}
		out := ex.Response.Messages[0].Data
		st := &state{e: e}
		p := protoEd{st: st}
		if _, err := grpcwire.ParseMessage(out); err != nil && len(out) > 0 {
			t.Fatalf("output does not parse: %v", err)
		}
		if !withSchema {
			if err := p.verifyWire(out); err != nil {
				t.Fatalf("detector finding survives: %v", err)
			}
			return
		}
		var order ordersv1.Order
		if err := proto.Unmarshal(out, &order); err != nil {
			t.Fatalf("output does not parse as an Order: %v", err)
		}
		checkNoFinding(t, &p, order.ProtoReflect())
	})
}

// checkNoFinding fails when a detector finds anything in a string or 64-bit
// integer of m, or in its unknown fields read without a schema.
func checkNoFinding(t *testing.T, p *protoEd, m protoreflect.Message) {
	t.Helper()
	text := func(s string) {
		if len(s) >= 6 && len(p.st.e.det.find(s, nil)) > 0 {
			t.Fatalf("detector finding survives in a field")
		}
	}
	var value func(fd protoreflect.FieldDescriptor, v protoreflect.Value)
	value = func(fd protoreflect.FieldDescriptor, v protoreflect.Value) {
		switch fd.Kind() {
		case protoreflect.StringKind:
			text(v.String())
		case protoreflect.BytesKind:
			if p.verifyWire(v.Bytes()) != nil && !p.clean(v.Bytes()) {
				t.Fatalf("detector finding survives in a bytes field")
			}
		case protoreflect.Int64Kind:
			text(strconv.FormatInt(v.Int(), 10))
		case protoreflect.MessageKind:
			checkNoFinding(t, p, v.Message())
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				value(fd, v.List().Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				value(fd.MapKey(), k.Value())
				value(fd.MapValue(), mv)
				return true
			})
		default:
			value(fd, v)
		}
		return true
	})
	if u := m.GetUnknown(); len(u) > 0 {
		if err := p.verifyWire(u); err != nil {
			t.Fatalf("unknown fields: %v", err)
		}
	}
}
