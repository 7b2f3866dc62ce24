package redactor

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

const ordersDescriptors = "../test/demo/orders/ordersv1/orders.pb"

func ordersSchema(t testing.TB) *grpcwire.Schema {
	t.Helper()
	s, err := grpcwire.LoadSchemas(ordersDescriptors)
	if err != nil {
		t.Fatalf("LoadSchemas: %v", err)
	}
	return s
}

func schemaEngine(t testing.TB, cfg Config, s *grpcwire.Schema) *Engine {
	t.Helper()
	e, err := NewEngine(cfg, WithHashKey(testKey), WithSchema(s))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// grpcExchange is a gRPC call of path with one message each way.
func grpcExchange(path string, req, resp []byte) *mlv1.Exchange {
	msg := func(b []byte) []*mlv1.Message {
		if b == nil {
			return nil
		}
		return []*mlv1.Message{{OffsetNs: 10, Data: b, Size: int64(len(b))}}
	}
	return &mlv1.Exchange{
		Id: "g1", Protocol: mlv1.Protocol_PROTOCOL_GRPC,
		Request: &mlv1.Request{Method: "POST", Url: path, Headers: hdr("content-type", "application/grpc", "te", "trailers"),
			Messages: msg(req), BodySize: int64(len(req) + grpcwire.PrefixLen)},
		Response: &mlv1.Response{Status: 200, Headers: hdr("content-type", "application/grpc"),
			Messages: msg(resp), BodySize: int64(len(resp) + grpcwire.PrefixLen), Trailers: hdr("grpc-status", "0")},
	}
}

func demoOrder() *ordersv1.Order {
	return &ordersv1.Order{
		Id: "o-17", CustomerEmail: "alice@example.com", AmountCents: 1299, Currency: "EUR", Status: "shipped",
		Shipping:   &ordersv1.Address{Street: "1 Main St", City: "Lyon", Country: "FR"},
		Tags:       []string{"gift", "contact bob@example.org"},
		CardNumber: "4111 1111 1111 1111",
	}
}

func decodeOrder(t testing.TB, b []byte) *ordersv1.Order {
	t.Helper()
	var o ordersv1.Order
	if err := proto.Unmarshal(b, &o); err != nil {
		t.Fatalf("scrubbed Order does not parse: %v", err)
	}
	return &o
}

// With the schema the response Order is read by field name: a json_fields
// rule masks customer_email and shipping.street by name, the detectors find
// the card and the email in a repeated string; every other field keeps its
// value, the request (no personal data) is untouched byte for byte, and
// fields the schema does not know are kept, scrubbed by the detectors.
func TestGRPCSchemaRulesByFieldName(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"proto names", Config{JSONFields: map[string]Rule{"customer_email": {Action: ActionMask}, "shipping.street": {Action: ActionMask}}}},
		{"JSON names", Config{JSONFields: map[string]Rule{"customerEmail": {Action: ActionMask}, "**.street": {Action: ActionMask}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := schemaEngine(t, tc.cfg, ordersSchema(t))
			reqBytes := mustMarshal(t, &ordersv1.GetOrderRequest{Id: "o-17"})
			order := mustMarshal(t, demoOrder())
			order = protowire.AppendTag(order, 99, protowire.BytesType)
			order = protowire.AppendString(order, "unknown carol@example.net")
			order = protowire.AppendTag(order, 98, protowire.VarintType)
			order = protowire.AppendVarint(order, 7)
			ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", reqBytes, order)
			res, err := e.Redact(ex)
			if err != nil {
				t.Fatalf("Redact: %v", err)
			}
			if got := ex.Request.Messages[0].Data; string(got) != string(reqBytes) {
				t.Errorf("request message changed")
			}
			m := ex.Response.Messages[0]
			got := decodeOrder(t, m.Data)
			if m.Size != int64(len(m.Data)) || ex.Response.BodySize != int64(len(m.Data)+grpcwire.PrefixLen) {
				t.Errorf("size %d body_size %d for %d bytes", m.Size, ex.Response.BodySize, len(m.Data))
			}
			want := demoOrder()
			want.CustomerEmail, want.Shipping.Street, want.CardNumber = "****", "****", "****"
			want.Tags[1] = "contact ****"
			unknown := got.ProtoReflect().GetUnknown()
			got.ProtoReflect().SetUnknown(nil)
			if !proto.Equal(got, want) {
				t.Errorf("scrubbed order = %v\nwant %v", got, want)
			}
			if strings.Contains(string(unknown), "carol@") || !strings.Contains(string(unknown), "unknown ****") {
				t.Errorf("unknown fields not kept scrubbed: %q", unknown)
			}
			for _, r := range []string{"detector:card", "detector:email"} {
				if res.Redactions[r] == 0 {
					t.Errorf("rule %s not reported: %v", r, res.Rules)
				}
			}
			if res.GRPCModes[ModeSchema] != 2 {
				t.Errorf("modes = %v", res.GRPCModes)
			}
		})
	}
}

// A rule on a number field zeroes it; a rule on a message applies to all it
// holds; remove clears the field; keep lets a value through untouched.
func TestGRPCSchemaRuleActions(t *testing.T) {
	e := schemaEngine(t, Config{JSONFields: map[string]Rule{
		"amount_cents": {Action: ActionMask}, "shipping": {Action: ActionHash}, "shipping.country": {Action: ActionKeep},
		"tags": {Action: ActionRemove}, "customer_email": {Action: ActionKeep},
	}}, ordersSchema(t))
	ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, mustMarshal(t, demoOrder()))
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	got := decodeOrder(t, ex.Response.Messages[0].Data)
	if got.AmountCents != 0 || len(got.Tags) != 0 || got.CustomerEmail != "alice@example.com" {
		t.Errorf("amount %d tags %q email %q", got.AmountCents, got.Tags, got.CustomerEmail)
	}
	if !strings.HasPrefix(got.Shipping.Street, hashPrefix) || !strings.HasPrefix(got.Shipping.City, hashPrefix) || got.Shipping.Country != "FR" {
		t.Errorf("shipping = %v", got.Shipping)
	}
}

// Without a schema (none configured, or a method it does not know) the
// detectors run over the wire format's text fields at any depth: the email
// inside the nested Address is scrubbed and the message still parses.
func TestGRPCWithoutSchemaNested(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema *grpcwire.Schema
		path   string
	}{
		{"no schema", nil, "/mirrorline.demo.orders.v1.Orders/GetOrder"},
		{"unknown method", ordersSchema(t), "/other.Svc/Get"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := schemaEngine(t, Config{}, tc.schema)
			o := demoOrder()
			o.Shipping.Street = "c/o dave@example.com"
			ex := grpcExchange(tc.path, nil, mustMarshal(t, o))
			res, err := e.Redact(ex)
			if err != nil {
				t.Fatalf("Redact: %v", err)
			}
			got := decodeOrder(t, ex.Response.Messages[0].Data)
			want := demoOrder()
			want.Shipping.Street, want.CustomerEmail, want.CardNumber, want.Tags[1] = "c/o ****", "****", "****", "contact ****"
			if !proto.Equal(got, want) {
				t.Errorf("scrubbed order = %v\nwant %v", got, want)
			}
			if res.GRPCModes[ModeWire] != 1 {
				t.Errorf("modes = %v", res.GRPCModes)
			}
		})
	}
}

// A compressed message is decompressed, scrubbed and compressed again with
// the direction's grpc-encoding (each one gRPC defines; with and without the
// schema).
func TestGRPCCompressedMessage(t *testing.T) {
	for i, enc := range []string{"gzip", "gzip", "zstd", "deflate", "snappy"} {
		schema := ordersSchema(t)
		if i == 0 {
			schema = nil
		}
		e := schemaEngine(t, Config{}, schema)
		plain := mustMarshal(t, demoOrder())
		gz, err := grpcwire.Compress(enc, plain)
		if err != nil {
			t.Fatal(err)
		}
		ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/UploadOrders", gz, nil)
		ex.Request.Messages[0].Compressed = true
		ex.Request.Headers = append(ex.Request.Headers, &mlv1.Header{Name: "grpc-encoding", Value: enc})
		if _, err := e.Redact(ex); err != nil {
			t.Fatalf("Redact: %v", err)
		}
		m := ex.Request.Messages[0]
		if !m.Compressed {
			t.Fatal("compressed flag lost")
		}
		out, err := grpcwire.Decompress(enc, m.Data, 0)
		if err != nil {
			t.Fatalf("scrubbed message is not %s: %v", enc, err)
		}
		if got := decodeOrder(t, out); got.CustomerEmail != "****" || got.CardNumber != "****" || got.Id != "o-17" {
			t.Errorf("decompressed order = %v", got)
		}
	}
}

// A message that cannot be read (an encoding mirrorline does not know, a
// compressed flag without encoding, corrupt compressed data, bytes that are
// not protobuf, a message that does not match its schema) fails closed: an
// error naming the reason, and no message left in the exchange.
func TestGRPCFailsClosed(t *testing.T) {
	order := mustMarshal(t, demoOrder())
	gz, _ := grpcwire.Compress("gzip", order)
	for _, tc := range []struct {
		name, enc string
		data      []byte
		comp      bool
		schema    bool
		reason    string
	}{
		{"unsupported encoding", "br", order, true, false, ReasonEncoding},
		{"compressed without encoding", "", order, true, false, ReasonEncoding},
		{"corrupt gzip", "gzip", gz[:len(gz)-6], true, false, ReasonDecompress},
		{"not protobuf", "", []byte("\xff\xff\xff\xff alice@example.com"), false, false, ReasonMalformed},
		{"schema mismatch", "", []byte{0x18, 0x80}, false, true, ReasonSchemaMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s *grpcwire.Schema
			if tc.schema {
				s = ordersSchema(t)
			}
			e := schemaEngine(t, Config{}, s)
			ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, tc.data)
			ex.Response.Messages[0].Compressed = tc.comp
			if tc.enc != "" {
				ex.Response.Headers = append(ex.Response.Headers, &mlv1.Header{Name: "grpc-encoding", Value: tc.enc})
			}
			_, err := e.Redact(ex)
			var ge *GRPCError
			if !errors.As(err, &ge) || ge.Reason != tc.reason || !errors.Is(err, ErrUnparseable) {
				t.Fatalf("err = %v, want reason %s", err, tc.reason)
			}
			if strings.Contains(err.Error(), "alice") {
				t.Errorf("error echoes payload: %v", err)
			}
			if ex.Response.Messages != nil || ex.Request.Messages != nil {
				t.Errorf("messages kept after a failure")
			}
		})
	}
}

// A message truncated at capture cannot be parsed: its data is dropped, its
// size and flags kept, and the record passes.
func TestGRPCTruncatedMessage(t *testing.T) {
	e := schemaEngine(t, Config{}, ordersSchema(t))
	order := mustMarshal(t, demoOrder())
	ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, order[:20])
	m := ex.Response.Messages[0]
	m.Truncated, m.Size = true, int64(len(order))
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	if m.Data != nil || !m.Truncated || m.Size != int64(len(order)) || res.Redactions["grpc:truncated"] != 1 {
		t.Errorf("truncated message = %v, redactions %v", m, res.Redactions)
	}
}

// Trailers go through the header rules and the detectors; grpc-message is
// percent-decoded free text, scrubbed even where it is a header (a
// trailers-only answer) and when scan_headers is off; a -bin value is
// scrubbed as protobuf, or removed when it is not.
func TestGRPCTrailersAndMetadata(t *testing.T) {
	e := schemaEngine(t, Config{ScanHeaders: boolPtr(false)}, nil)
	ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, nil)
	status := mustMarshal(t, &ordersv1.TrackNote{OrderId: "o-1", Note: "call erin@example.com"})
	ex.Response.Trailers = hdr("grpc-status", "3", "grpc-message", "no order for frank@example.com %E2%9C%93",
		"x-debug-token", "abc123", "grpc-status-details-bin", base64.RawStdEncoding.EncodeToString(status), "x-blob-bin", "!!notbase64")
	ex.Response.Headers = hdr("content-type", "application/grpc", "grpc-status", "5", "grpc-message", "gina@example.com%20not%20found")
	ex.Request.Trailers = hdr("authorization", "Bearer x")
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := header(ex.Response.Trailers, "grpc-message"); v != "no order for **** %E2%9C%93" {
		t.Errorf("trailer grpc-message = %q", v)
	}
	if v, _ := header(ex.Response.Headers, "grpc-message"); v != "**** not found" {
		t.Errorf("header grpc-message = %q", v)
	}
	if _, ok := header(ex.Response.Trailers, "x-debug-token"); ok {
		t.Errorf("credential trailer kept")
	}
	if _, ok := header(ex.Request.Trailers, "authorization"); ok {
		t.Errorf("request trailer authorization kept")
	}
	if _, ok := header(ex.Response.Trailers, "x-blob-bin"); ok {
		t.Errorf("undecodable -bin trailer kept")
	}
	v, _ := header(ex.Response.Trailers, "grpc-status-details-bin")
	raw, err := base64.RawStdEncoding.DecodeString(v)
	if err != nil {
		t.Fatalf("-bin trailer not base64: %v", err)
	}
	var note ordersv1.TrackNote
	if err := proto.Unmarshal(raw, &note); err != nil || note.Note != "call ****" || note.OrderId != "o-1" {
		t.Errorf("-bin trailer = %v (%v)", &note, err)
	}
	if v, _ := header(ex.Response.Trailers, "grpc-status"); v != "3" {
		t.Errorf("grpc-status = %q", v)
	}
	if res.Redactions["grpc:bin_metadata"] != 1 {
		t.Errorf("redactions = %v", res.Redactions)
	}
}

// Well-known types read as their JSON mapping: a Struct's keys are path
// segments, an Any holding a known type is decoded and scrubbed.
func TestGRPCWellKnownTypes(t *testing.T) {
	st, err := structpb.NewStruct(map[string]any{"email": "hank@example.com", "nested": map[string]any{"pin": "1234"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&ordersv1.Address{Street: "ivy@example.com", City: "Nice"})
	if err != nil {
		t.Fatal(err)
	}
	e := schemaEngine(t, Config{JSONFields: map[string]Rule{"nested.pin": {Action: ActionMask}, "city": {Action: ActionMask}}}, ordersSchema(t))
	p := protoEd{st: e.pool.Get().(*state)}
	for _, m := range []proto.Message{st, a} {
		b := mustMarshal(t, m)
		out, changed, err := p.withSchema(b, m.ProtoReflect().Descriptor())
		if err != nil || !changed {
			t.Fatalf("%T: changed %v err %v", m, changed, err)
		}
		got := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(out, got); err != nil {
			t.Fatal(err)
		}
		switch g := got.(type) {
		case *structpb.Struct:
			if m := g.AsMap(); m["email"] != "****" || m["nested"].(map[string]any)["pin"] != "****" {
				t.Errorf("struct = %v", m)
			}
		case *anypb.Any:
			var addr ordersv1.Address
			if err := g.UnmarshalTo(&addr); err != nil || addr.Street != "****" || addr.City != "****" {
				t.Errorf("any = %v (%v)", &addr, err)
			}
		}
	}
}

// The fields gRPC added to the Exchange (trailers, messages) never reach the
// clean topic unscrubbed: whatever the schema, no email of the call survives
// anywhere in the redacted record.
func TestGRPCNothingPassesUnscrubbed(t *testing.T) {
	e := newEngine(t, Config{})
	o := demoOrder()
	o.Shipping.Street = "care of judy@example.com"
	ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", mustMarshal(t, &ordersv1.GetOrderRequest{Id: "1", CustomerEmail: "kim@example.com"}), mustMarshal(t, o))
	ex.Request.Trailers = hdr("x-note", "from leo@example.com")
	ex.Response.Trailers = hdr("grpc-status", "0", "grpc-message", "sent to mia@example.com")
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	rec, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.Index(string(rec), "@example."); i >= 0 {
		t.Fatalf("an email survives in the redacted record: ...%q...", rec[max(0, i-8):i])
	}
}

// A gRPC body kept whole (binary: pass) is cut into its messages, scrubbed
// and framed again; one that does not frame completely is emptied.
func TestGRPCFramedBody(t *testing.T) {
	e := schemaEngine(t, Config{Binary: BinaryPass}, ordersSchema(t))
	body, err := grpcwire.Frames([]*mlv1.Message{{Data: mustMarshal(t, demoOrder())}, {Data: mustMarshal(t, &ordersv1.Order{Id: "2", CustomerEmail: "rob@example.com"})}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		body      []byte
		truncated bool
		want      []string // customer_email of each message; nil: body emptied
	}{
		{"whole", body, false, []string{"****", "****"}},
		{"cut in a message", body[:len(body)-3], false, nil},
		{"truncated at capture", body, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/UploadOrders", nil, nil)
			ex.Request.Body, ex.Request.BodySize, ex.Request.BodyTruncated = append([]byte(nil), tc.body...), int64(len(tc.body)), tc.truncated
			if _, err := e.Redact(ex); err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(ex.Request.Body) != 0 {
					t.Fatalf("incomplete body kept")
				}
				return
			}
			f := grpcwire.NewFramer(0, 0)
			f.Feed(ex.Request.Body, 0)
			msgs, cut, n, err := f.Finish()
			if err != nil || cut || len(msgs) != len(tc.want) || n != ex.Request.BodySize {
				t.Fatalf("reframed body: %d msgs cut=%v n=%d size=%d err=%v", len(msgs), cut, n, ex.Request.BodySize, err)
			}
			for i, m := range msgs {
				if got := decodeOrder(t, m.Data); got.CustomerEmail != tc.want[i] {
					t.Errorf("message %d email %q", i, got.CustomerEmail)
				}
			}
		})
	}
}

// remove on a repeated element or a map entry removes it, as in JSON.
func TestGRPCRemoveElements(t *testing.T) {
	e := schemaEngine(t, Config{JSONFields: map[string]Rule{"tags.1": {Action: ActionRemove}, "drop": {Action: ActionRemove}}}, ordersSchema(t))
	o := demoOrder()
	o.Tags = []string{"a", "b", "c"}
	ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, mustMarshal(t, o))
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if got := decodeOrder(t, ex.Response.Messages[0].Data).Tags; strings.Join(got, ",") != "a,c" {
		t.Errorf("tags = %q", got)
	}
	st, _ := structpb.NewStruct(map[string]any{"keep": "x", "drop": "y"})
	p := protoEd{st: e.pool.Get().(*state)}
	// A Struct is an object: its keys are path segments of their own.
	out, _, err := p.withSchema(mustMarshal(t, st), st.ProtoReflect().Descriptor())
	if err != nil {
		t.Fatal(err)
	}
	var got structpb.Struct
	if err := proto.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	if m := got.AsMap(); len(m) != 1 || m["keep"] != "x" {
		t.Errorf("struct = %v", m)
	}
}

// Without a schema, a field that reads both as a nested message and as text
// is scrubbed so that no finding survives in either reading: here the email
// exists only in the text reading (it spans two nested fields' bytes), so
// the field is scrubbed as text.
func TestGRPCWireAmbiguousField(t *testing.T) {
	s1 := strings.Repeat("a", 31) + " bob@exam" // 40 bytes: length byte '('
	s2 := "com " + strings.Repeat("b", 42)      // 46 bytes: length byte '.'
	var inner []byte
	inner = protowire.AppendString(protowire.AppendTag(inner, 13, protowire.BytesType), s1) // tag 'j'
	inner = protowire.AppendString(protowire.AppendTag(inner, 13, protowire.BytesType), s2)
	if !strings.Contains(string(inner), "bob@examj.com") {
		t.Fatalf("test message is not ambiguous: %q", inner)
	}
	msg := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), inner)
	e := newEngine(t, Config{})
	ex := grpcExchange("/x.Svc/M", msg, nil)
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	out := ex.Request.Messages[0].Data
	fields, err := grpcwire.ParseMessage(out)
	if err != nil || len(fields) != 1 {
		t.Fatalf("output does not parse: %v", err)
	}
	if strings.Contains(string(out), "bob@") || !strings.Contains(string(fields[0].Value), "****") || res.Redactions["detector:email"] == 0 {
		t.Errorf("field 2 = %q, redactions %v", fields[0].Value, res.Redactions)
	}
}

// What a schema's decoding does not keep is not scrubbed by it, so it must
// not reach the output either: a field sent twice (the last one wins), and
// fields inside a map entry the schema does not name (the decoder drops
// them). The message is encoded again from what was decoded and scrubbed.
func TestGRPCSchemaDropsWhatDecodingDropped(t *testing.T) {
	e := schemaEngine(t, Config{}, ordersSchema(t))
	email := []byte("alice@example.com")
	twice := protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), string(email))
	twice = protowire.AppendString(protowire.AppendTag(twice, 2, protowire.BytesType), "")
	twice = protowire.AppendString(protowire.AppendTag(twice, 1, protowire.BytesType), "o-1")

	entry := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "k")
	entry = protowire.AppendString(protowire.AppendTag(entry, 6, protowire.BytesType), string(email))
	st := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), entry)
	anyMsg := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "type.googleapis.com/google.protobuf.Struct")
	anyMsg = protowire.AppendBytes(protowire.AppendTag(anyMsg, 2, protowire.BytesType), st)

	for name, tc := range map[string]struct {
		data []byte
		desc protoreflect.MessageDescriptor
	}{
		"field sent twice":          {twice, (&ordersv1.Order{}).ProtoReflect().Descriptor()},
		"map entry's unknown field": {anyMsg, (&anypb.Any{}).ProtoReflect().Descriptor()},
	} {
		t.Run(name, func(t *testing.T) {
			p := protoEd{st: &state{e: e}}
			out, changed, err := p.withSchema(tc.data, tc.desc)
			if err != nil {
				t.Fatal(err)
			}
			if !changed || bytes.Contains(out, email) {
				t.Fatalf("changed=%v; the email the decoding dropped is still in the output", changed)
			}
		})
	}
	ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, twice)
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ex.Response.Messages[0].Data, email) {
		t.Fatal("the first of two customer_email fields reached the output")
	}
}
