package grpcwire

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

const getOrder = "/mirrorline.demo.orders.v1.Orders/GetOrder"

func demoOrder() *ordersv1.Order {
	return &ordersv1.Order{
		Id: "o-1", CustomerEmail: "a@b.example", AmountCents: 1234, Currency: "EUR", Status: "shipped",
		Shipping: &ordersv1.Address{Street: "1 Demo Street", City: "Lyon", Country: "FR"},
		Tags:     []string{"demo", "bucket-1"},
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMessageAndWireJSON(t *testing.T) {
	s, err := LoadSchemas(ordersSet)
	if err != nil {
		t.Fatal(err)
	}
	_, out, ok := s.Method(getOrder)
	if !ok {
		t.Fatal("GetOrder not in the schema")
	}
	order := mustMarshal(t, demoOrder())
	// A field the schema does not know (a newer server): kept by number.
	newer := protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), order...), 20, protowire.VarintType), 7)
	empty := mustMarshal(t, &ordersv1.Order{})
	for _, tc := range []struct {
		name string
		data []byte
		schema,
		want string
	}{
		{"by name", order, "schema",
			`{"amount_cents":1234,"card_number":"","currency":"EUR","customer_email":"a@b.example","id":"o-1","shipping":{"city":"Lyon","country":"FR","street":"1 Demo Street"},"status":"shipped","tags":["demo","bucket-1"]}`},
		{"defaults without presence, unset message left out", empty, "schema",
			`{"amount_cents":0,"card_number":"","currency":"","customer_email":"","id":"","status":"","tags":[]}`},
		{"unknown field by number", newer, "schema",
			`{"20":7,"amount_cents":1234,"card_number":"","currency":"EUR","customer_email":"a@b.example","id":"o-1","shipping":{"city":"Lyon","country":"FR","street":"1 Demo Street"},"status":"shipped","tags":["demo","bucket-1"]}`},
		{"by number", order, "",
			`{"1":"o-1","2":"a@b.example","3":1234,"4":"EUR","5":"shipped","6":{"1":"1 Demo Street","2":"Lyon","3":"FR"},"7":["demo","bucket-1"]}`},
		{"empty message by number", nil, "", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			var err error
			if tc.schema != "" {
				got, err = MessageJSON(out, tc.data)
			} else {
				got, err = WireJSON(tc.data)
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestWireValueGuesses(t *testing.T) {
	// A length-delimited field that is text stays text even when it would
	// parse as a message; bytes that are neither are base64.
	text := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "hello\n")
	bin := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), []byte{0xff, 0x00})
	fixed := protowire.AppendFixed32(protowire.AppendTag(nil, 3, protowire.Fixed32Type), 9)
	msg := append(append(text, bin...), fixed...)
	for range 3 { // deterministic
		got, err := WireJSON(msg)
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"1":"hello\n","2":"/wA=","3":9}`; string(got) != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if _, err := WireValue([]byte{0x0a, 0x05, 'a'}); !errors.Is(err, ErrMalformed) {
		t.Errorf("truncated field: %v", err)
	}
}

func TestMessageValueWellKnownAndErrors(t *testing.T) {
	ts := timestamppb.New(time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC))
	v, err := MessageValue(ts.ProtoReflect().Descriptor(), mustMarshal(t, ts))
	if err != nil || v != "2026-12-02T03:04:05Z" {
		t.Errorf("timestamp: %v %v", v, err)
	}
	s, err := LoadSchemas(ordersSet)
	if err != nil {
		t.Fatal(err)
	}
	_, out, _ := s.Method(getOrder)
	// Field 5 (status, a string) holding invalid UTF-8.
	bad := protowire.AppendBytes(protowire.AppendTag(nil, 5, protowire.BytesType), []byte{0xff})
	if _, err := MessageValue(out, bad); err == nil {
		t.Errorf("invalid UTF-8 in a string field: no error")
	}
	if _, err := MessageValue(out, []byte{0x0a, 0x05, 'a'}); err == nil {
		t.Errorf("truncated message: no error")
	}
}

func FuzzWireJSON(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, errA := WireJSON(data)
		b, errB := WireJSON(data)
		if (errA == nil) != (errB == nil) || string(a) != string(b) {
			t.Fatalf("not deterministic")
		}
	})
}

// FuzzMessageJSON: any bytes read as an Order either fail or give the same
// JSON every time; nothing panics.
func FuzzMessageJSON(f *testing.F) {
	s, err := LoadSchemas(ordersSet)
	if err != nil {
		f.Fatal(err)
	}
	_, out, _ := s.Method(getOrder)
	b, err := proto.Marshal(demoOrder())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(protowire.AppendVarint(protowire.AppendTag(append([]byte(nil), b...), 99, protowire.VarintType), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, errA := MessageJSON(out, data)
		again, errB := MessageJSON(out, data)
		if (errA == nil) != (errB == nil) || string(a) != string(again) {
			t.Fatalf("not deterministic")
		}
	})
}
