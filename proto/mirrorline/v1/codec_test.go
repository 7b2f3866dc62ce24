package mirrorlinev1

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// fill sets every field of m (recursively) to a value that is not its zero,
// distinct per field; repeated fields get two entries, maps one.
func fill(m protoreflect.Message, seed int) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		n := seed*100 + int(fd.Number())
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			mp.Set(protoreflect.ValueOfString(fmt.Sprintf("k%d", n)).MapKey(), protoreflect.ValueOfString(fmt.Sprintf("v%d ü", n)))
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := range 2 {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					fill(e.Message(), n*10+j)
					l.Append(e)
				} else {
					l.Append(scalar(fd, n*10+j))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(fd).Message(), n)
		default:
			m.Set(fd, scalar(fd, n))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor, n int) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("s%d Zoë", n))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(fmt.Sprintf("b%d \xff\x00", n)))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(int32(n)) // negative ones: TestUnmarshalExchangeOverflowingVarintInEveryField
	case protoreflect.Int64Kind:
		return protoreflect.ValueOfInt64(int64(-n) << 33)
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(uint64(n) << 40)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(protoreflect.EnumNumber(n%5 + 1))
	}
	panic(fmt.Sprintf("fill: kind %v of %s", fd.Kind(), fd.FullName()))
}

// collected is an Exchange as collectors write it: every field but the
// replay section and labels.
func collected(seed int) *Exchange {
	x := &Exchange{}
	fill(x.ProtoReflect(), seed)
	x.Replay, x.Labels = nil, nil
	return x
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameDecode checks that UnmarshalExchange and UnmarshalExchangeTransient
// give what proto.Unmarshal gives:
// the error (or none) and the message, nil and empty bodies told apart.
func sameDecode(t *testing.T, b []byte) *Exchange {
	t.Helper()
	want := &Exchange{}
	werr := proto.Unmarshal(b, want)
	var got *Exchange
	for _, d := range decoders {
		got = &Exchange{}
		gerr := d.fn(b, got)
		if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
			t.Fatalf("%s: error %v, proto.Unmarshal: %v", d.name, gerr, werr)
		}
		if !proto.Equal(got, want) {
			t.Fatalf("%s: decoded\n%v\nproto.Unmarshal:\n%v", d.name, got, want)
		}
		if (got.GetRequest().GetBody() == nil) != (want.GetRequest().GetBody() == nil) ||
			(got.GetResponse().GetBody() == nil) != (want.GetResponse().GetBody() == nil) {
			t.Fatalf("%s: a nil body decoded as empty or the reverse", d.name)
		}
	}
	// Recycled: into an exchange that held every field before, its lists
	// shortened in place as a transformer may leave them.
	rec := &Exchange{}
	if err := UnmarshalExchangeRecycled(mustMarshal(t, everyField()), rec); err != nil {
		t.Fatal(err)
	}
	rec.Request.Headers = rec.Request.Headers[:1]
	gerr := UnmarshalExchangeRecycled(b, rec)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("UnmarshalExchangeRecycled: error %v, proto.Unmarshal: %v", gerr, werr)
	}
	if werr == nil && !proto.Equal(rec, want) {
		t.Fatalf("UnmarshalExchangeRecycled: decoded\n%v\nproto.Unmarshal:\n%v", rec, want)
	}
	if werr == nil && ((rec.GetRequest().GetBody() == nil) != (want.GetRequest().GetBody() == nil) ||
		(rec.GetResponse().GetBody() == nil) != (want.GetResponse().GetBody() == nil)) {
		t.Fatal("UnmarshalExchangeRecycled: a nil body decoded as empty or the reverse")
	}
	return got
}

// everyField is an exchange with every field set, lists of two.
func everyField() *Exchange {
	x := &Exchange{}
	fill(x.ProtoReflect(), 7)
	return x
}

// Decoding one record after another into the same exchange gives each
// record alone, never a part of the one before; what the previous record
// left (its strings, its body, a header its list no longer holds) is not
// written to.
func TestUnmarshalExchangeRecycled(t *testing.T) {
	x := &Exchange{}
	seq := []*Exchange{
		everyField(),
		{Id: "b", Request: &Request{Method: "GET", Headers: []*Header{{Name: "only-name"}}}},
		collected(5),
		{},
		{Response: &Response{Status: 204, Headers: []*Header{{Value: "only-value"}}}},
		everyField(),
		benchExchange(),
	}
	var keptStrings []string
	var keptBodies [][]byte
	var wantStrings []string
	var wantBodies [][]byte
	var dropped *Header
	for i, want := range seq {
		if err := UnmarshalExchangeRecycled(mustMarshal(t, want), x); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !proto.Equal(x, want) {
			t.Fatalf("record %d decoded\n%v\nwant\n%v", i, x, want)
		}
		for _, s := range []string{x.Id, x.GetRequest().GetUrl(), x.GetResponse().GetError()} {
			keptStrings = append(keptStrings, s)
			wantStrings = append(wantStrings, strings.Clone(s))
		}
		if b := x.GetRequest().GetBody(); b != nil {
			keptBodies = append(keptBodies, b)
			wantBodies = append(wantBodies, bytes.Clone(b))
		}
		if dropped != nil && (dropped.Name != "kept by another" || dropped.Value != "v") {
			t.Fatalf("record %d: a header dropped from the list was decoded into: %v", i, dropped)
		}
		// Shorten the request's headers in place, as the redactor drops
		// headers, and hold on to the one left past the end.
		if r := x.GetRequest(); r != nil && len(r.Headers) >= 2 {
			dropped = r.Headers[len(r.Headers)-1]
			dropped.Name, dropped.Value = "kept by another", "v"
			r.Headers = r.Headers[:len(r.Headers)-1]
		}
	}
	for i := range keptStrings {
		if keptStrings[i] != wantStrings[i] {
			t.Fatalf("string %d of an earlier record changed: %q, want %q", i, keptStrings[i], wantStrings[i])
		}
	}
	for i := range keptBodies {
		if !bytes.Equal(keptBodies[i], wantBodies[i]) {
			t.Fatalf("body %d of an earlier record changed", i)
		}
	}
}

// decoders are the two decoders, each checked against proto.Unmarshal.
var decoders = []struct {
	name string
	fn   func([]byte, *Exchange) error
}{
	{"UnmarshalExchange", UnmarshalExchange},
	{"UnmarshalExchangeTransient", UnmarshalExchangeTransient},
}

func TestUnmarshalExchangeAsProtoUnmarshal(t *testing.T) {
	full := &Exchange{}
	fill(full.ProtoReflect(), 1)
	twoRequests := append(mustMarshal(t, collected(1)), mustMarshal(t, collected(2))...)
	badUTF8 := protowire.AppendTag(mustMarshal(t, collected(1)), 9, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), []byte("\xff\xfe")))
	wrongType := protowire.AppendVarint(protowire.AppendTag(mustMarshal(t, collected(1)), 1, protowire.VarintType), 7)
	unknown := protowire.AppendBytes(protowire.AppendTag(mustMarshal(t, collected(1)), 99, protowire.BytesType), []byte("x"))
	fixed := protowire.AppendFixed64(protowire.AppendTag(mustMarshal(t, collected(1)), 4, protowire.Fixed64Type), 1)
	emptyBody := protowire.AppendBytes(protowire.AppendTag(nil, 7, protowire.BytesType), nil)
	emptyBody = protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), emptyBody)
	badHeader := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), []byte("x"))
	badHeader = protowire.AppendBytes(protowire.AppendTag(nil, 6, protowire.BytesType), badHeader)
	badHeader = protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), badHeader)
	// Field 1 (id) as a tag number of 2^32+1: UnmarshalVT truncates it to
	// an int32, proto.Unmarshal rejects it.
	hugeTag := protowire.AppendBytes(protowire.AppendVarint(nil, (1<<32+1)<<3|uint64(protowire.BytesType)), []byte("x"))
	badGroup := protowire.AppendTag(mustMarshal(t, collected(1)), 50, protowire.StartGroupType)
	badGroup = protowire.AppendTag(badGroup, 51, protowire.EndGroupType)
	explicitZero := protowire.AppendVarint(protowire.AppendTag(mustMarshal(t, collected(1)), 4, protowire.VarintType), 0)
	overlongTag := append([]byte{0x8a, 0x80, 0x00}, protowire.AppendBytes(nil, []byte("x"))...)
	cases := []struct {
		name string
		b    []byte
		fast bool // decoded by UnmarshalVT alone, without proto.Unmarshal
	}{
		{"collected exchange", mustMarshal(t, collected(1)), true},
		{"bench payload", mustMarshal(t, benchExchange()), true},
		{"empty", nil, true},
		{"request without headers", mustMarshal(t, &Exchange{Id: "a", Request: &Request{Method: "GET", Body: []byte("x")}}), true},
		{"response only", mustMarshal(t, &Exchange{Response: &Response{Status: 1, Headers: []*Header{{Name: "a"}, {}}}}), true},
		{"message fields twice: merged (not canonical)", twoRequests, false},
		{"empty body on the wire (not canonical)", emptyBody, false},
		{"every field, replay and labels too", mustMarshal(t, full), true},
		{"tag whose number overflows int32 to a known field", hugeTag, false},
		{"unknown group with a mismatched end", badGroup, false},
		{"default value on the wire", explicitZero, false},
		{"overlong tag", overlongTag, false},
		{"an empty label", mustMarshal(t, &Exchange{Labels: map[string]string{"": ""}}), true},
		{"negative status (ten bytes)", mustMarshal(t, &Exchange{Response: &Response{Status: -1}}), false},
		{"negative body size (ten bytes)", mustMarshal(t, &Exchange{Request: &Request{BodySize: -1}}), true},
		{"invalid UTF-8 in a string", badUTF8, false},
		{"known field of another wire type", wrongType, false},
		{"fixed64 wire type", fixed, false},
		{"unknown field", unknown, false},
		{"unknown header field", badHeader, false},
		{"truncated", mustMarshal(t, collected(1))[:200], false},
		{"overlong length", []byte{0x42, 0xff, 0xff, 0xff, 0xff, 0x0f}, false},
		{"bad tag", []byte{0x00, 0x01}, false},
		{"varint overflow", append([]byte{0x20}, bytes.Repeat([]byte{0xff}, 11)...), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sameDecode(t, tc.b)
			for _, shared := range []bool{false, true} {
				if fast := unmarshalVT(tc.b, &Exchange{}, shared); fast != tc.fast {
					t.Errorf("decoded by the generated code alone (shared %v): %v, want %v", shared, fast, tc.fast)
				}
			}
		})
	}
}

// UnmarshalExchange's message owns its strings and bodies: the input buffer
// (a fetched Kafka record) may be reused or edited afterwards, and editing a
// body in place, up to its capacity, or appending to it does not touch the
// strings. (UnmarshalExchangeTransient borrows the input instead:
// TestUnmarshalExchangeTransientBorrowsB.)
func TestUnmarshalExchangeOwnsItsData(t *testing.T) {
	for _, d := range decoders[:1] {
		t.Run(d.name, func(t *testing.T) {
			want := collected(3)
			b := mustMarshal(t, want)
			x := &Exchange{}
			if err := d.fn(b, x); err != nil {
				t.Fatal(err)
			}
			clear(b)
			// Everything a body's slice reaches, up to its capacity.
			for _, body := range [][]byte{x.Request.Body, x.Response.Body} {
				for i := range body[:cap(body)] {
					body[:cap(body)][i] = 'X'
				}
			}
			x.Request.Body = append(x.Request.Body, "more"...)
			want.Request.Body = append(bytes.Repeat([]byte("X"), len(want.Request.Body)), "more"...)
			want.Response.Body = bytes.Repeat([]byte("X"), len(want.Response.Body))
			if !proto.Equal(x, want) {
				t.Fatalf("decoded exchange changed with its input or its body:\n%v\nwant\n%v", x, want)
			}
		})
	}
}

// An id kept from an exchange UnmarshalExchange decoded (the comparator keeps
// decided ids for a while) holds the id's bytes, not the record's: 64 ids of
// records with a 1 MiB body keep far less than 64 MiB alive.
func TestUnmarshalExchangeKeepsNoMoreThanAString(t *testing.T) {
	x := collected(4)
	x.Request.Body = bytes.Repeat([]byte("b"), 1<<20)
	b := mustMarshal(t, x)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	ids := make([]string, 64)
	for i := range ids {
		x := &Exchange{}
		if err := UnmarshalExchange(b, x); err != nil {
			t.Fatal(err)
		}
		ids[i] = x.Id
	}
	after := heap()
	if after > before && after-before > 16<<20 {
		t.Fatalf("64 ids keep %d MiB alive", (after-before)>>20)
	}
	runtime.KeepAlive(ids)
}

func FuzzUnmarshalExchange(f *testing.F) {
	f.Add(mustMarshal(f, collected(1)))
	full := &Exchange{}
	fill(full.ProtoReflect(), 2)
	f.Add(mustMarshal(f, full))
	f.Add([]byte{0x42, 0x02, 0x32, 0x00})
	f.Add(mustMarshal(f, &Exchange{Sequence: 1 << 63, Request: &Request{BodySize: -1}, Response: &Response{Status: -1}, Labels: map[string]string{"a": "b"}}))
	f.Fuzz(func(t *testing.T, b []byte) { sameDecode(t, b) })
}

// benchExchange is a captured 1 KB JSON POST as the proxy writes it: the
// redactor's bench payload.
func benchExchange() *Exchange {
	h := func(kv ...string) (hs []*Header) {
		for i := 0; i+1 < len(kv); i += 2 {
			hs = append(hs, &Header{Name: kv[i], Value: kv[i+1]})
		}
		return hs
	}
	body := bytes.Repeat([]byte(`{"email": "zoe.angstrom@example.org", "n": 4111},`), 20)
	return &Exchange{
		Id: "0190d9a0-0000-7000-8000-000000000001", Service: "payments", ConnectionId: "conn-1", Sequence: 7,
		Source: Source_SOURCE_PROXY, Collector: "proxy-1", CaptureTimeNs: 1764070000123456789,
		Request: &Request{
			Method: "POST", Url: "/v1/payments?expand=customer&idempotency=ik_5521&locale=de-CH",
			Host: "api.example.com", Proto: "HTTP/1.1", Scheme: "https",
			Headers: h("Content-Type", "application/json", "Content-Length", "1000",
				"Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
				"Accept", "application/json", "X-Request-Id", "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b",
				"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
			Body: body, BodySize: int64(len(body)), RemoteAddr: "10.0.3.17:41234",
		},
		Response: &Response{Status: 201, Headers: h("Content-Type", "application/json", "Content-Length", "29"),
			Body: []byte(`{"id":"pay_01HQ","ok":true}  `), BodySize: 29, LatencyNs: 2_000_000},
	}
}

func BenchmarkUnmarshalExchange(b *testing.B) {
	raw := mustMarshal(b, benchExchange())
	for _, bc := range []struct {
		name string
		fn   func([]byte, *Exchange) error
	}{
		{"proto.Unmarshal", func(b []byte, x *Exchange) error { return proto.Unmarshal(b, x) }},
		{"UnmarshalExchange", UnmarshalExchange},
		{"UnmarshalExchangeTransient", UnmarshalExchangeTransient},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.fn(raw, &Exchange{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// sameEncode checks that MarshalExchange gives what proto.Marshal gives: the
// same bytes (up to the order of labels, a map), or an error where it errs.
func sameEncode(t *testing.T, x *Exchange) {
	t.Helper()
	want, werr := proto.Marshal(x)
	got, gerr := MarshalExchange(x)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("error %v, proto.Marshal: %v", gerr, werr)
	}
	// AppendExchange: the same bytes after the prefix, into spare capacity
	// (too little, then enough).
	for _, room := range []int{0, len(want) + 16} {
		prefix := append(make([]byte, 0, 3+room), "pre"...)
		app, aerr := AppendExchange(prefix, x)
		if (werr == nil) != (aerr == nil) || (werr != nil && werr.Error() != aerr.Error()) {
			t.Fatalf("AppendExchange: error %v, proto.Marshal: %v", aerr, werr)
		}
		if werr != nil {
			continue
		}
		if string(app[:3]) != "pre" || len(app) != 3+len(want) {
			t.Fatalf("AppendExchange: %d bytes, want the prefix and %d", len(app), len(want))
		}
		if room > 0 && &app[0] != &prefix[:1][0] {
			t.Fatal("AppendExchange: allocated although the buffer had room")
		}
		if len(x.GetLabels()) <= 1 && !bytes.Equal(app[3:], want) {
			t.Fatalf("AppendExchange: encoded\n%x\nproto.Marshal:\n%x", app[3:], want)
		}
	}
	if len(x.GetLabels()) > 1 {
		// Map entries come in no fixed order, from either: the same
		// length, and the same message read back.
		back := &Exchange{}
		if len(got) != len(want) || proto.Unmarshal(got, back) != nil || !proto.Equal(back, x) {
			t.Fatalf("encoded\n%x\nproto.Marshal:\n%x", got, want)
		}
		return
	}
	if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
		t.Fatalf("encoded\n%x\nproto.Marshal:\n%x", got, want)
	}
}

func TestMarshalExchangeAsProtoMarshal(t *testing.T) {
	full := &Exchange{}
	fill(full.ProtoReflect(), 1)
	withUnknown := collected(2)
	withUnknown.Request.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1))
	cases := []struct {
		name string
		x    *Exchange
		fast bool // encoded by MarshalVT, without proto.Marshal
	}{
		{"collected exchange", collected(1), true},
		{"bench payload", benchExchange(), true},
		{"redacted: redactions, an empty one too", func() *Exchange { x := collected(3); x.Redactions = append(x.Redactions, ""); return x }(), true},
		{"empty", &Exchange{}, true},
		{"empty request and response", &Exchange{Request: &Request{}, Response: &Response{}}, true},
		{"empty header entries", &Exchange{Request: &Request{Headers: []*Header{{}, {Name: "a"}, {Value: "b"}}}}, true},
		{"negative numbers", &Exchange{Source: -1, CaptureTimeNs: -5, Response: &Response{Status: -2, BodySize: -3, LatencyNs: -4}}, true},
		{"empty non-nil body", &Exchange{Request: &Request{Body: []byte{}}}, true},
		{"nil", nil, false},
		{"replay and labels", full, true},
		{"an empty label", &Exchange{Labels: map[string]string{"": ""}}, true},
		{"three labels", &Exchange{Id: "a", Labels: map[string]string{"a": "1", "b": "", "": "3"}}, true},
		{"unknown fields", withUnknown, false},
		{"invalid UTF-8 in a header", &Exchange{Request: &Request{Headers: []*Header{{Name: "a", Value: "\xff"}}}}, false},
		{"invalid UTF-8 in a redaction", &Exchange{Redactions: []string{"\xfe"}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sameEncode(t, tc.x)
			if fast := tc.x != nil && tc.x.plain(); fast != tc.fast {
				t.Errorf("encoded by MarshalVT: %v, want %v", fast, tc.fast)
			}
		})
	}
}

// FuzzMarshalExchange encodes whatever decodes, both ways.
func FuzzMarshalExchange(f *testing.F) {
	f.Add(mustMarshal(f, collected(1)))
	f.Add([]byte{0x42, 0x02, 0x32, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		x := &Exchange{}
		if proto.Unmarshal(b, x) == nil {
			sameEncode(t, x)
		}
	})
}

func BenchmarkMarshalExchange(b *testing.B) {
	x := benchExchange()
	for _, bc := range []struct {
		name string
		fn   func(*Exchange) ([]byte, error)
	}{
		{"proto.Marshal", func(x *Exchange) ([]byte, error) { return proto.Marshal(x) }},
		{"MarshalExchange", MarshalExchange},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.fn(x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// spoilString sets the n-th string (in field order, list elements, map keys
// then values) of m and its submessages to invalid UTF-8; it returns how many
// strings it passed, n+1 or more when it spoiled one.
func spoilString(m protoreflect.Message, n int) int {
	const bad = "a\xffz"
	k := 0
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			var keys []protoreflect.MapKey
			mp.Range(func(key protoreflect.MapKey, _ protoreflect.Value) bool { keys = append(keys, key); return true })
			for _, key := range keys {
				if k == n {
					v := mp.Get(key)
					mp.Clear(key)
					mp.Set(protoreflect.ValueOfString(bad).MapKey(), v)
					return k + 1
				}
				if k+1 == n {
					mp.Set(key, protoreflect.ValueOfString(bad))
					return k + 2
				}
				k += 2
			}
		case fd.IsList() && fd.Kind() == protoreflect.StringKind:
			l := m.Mutable(fd).List()
			for j := range l.Len() {
				if k == n {
					l.Set(j, protoreflect.ValueOfString(bad))
					return k + 1
				}
				k++
			}
		case fd.IsList() && fd.Kind() == protoreflect.MessageKind:
			l := m.Mutable(fd).List()
			for j := range l.Len() {
				k += spoilString(l.Get(j).Message(), n-k)
				if k > n {
					return k
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			k += spoilString(m.Mutable(fd).Message(), n-k)
			if k > n {
				return k
			}
		case fd.Kind() == protoreflect.StringKind:
			if k == n {
				m.Set(fd, protoreflect.ValueOfString(bad))
				return k + 1
			}
			k++
		}
	}
	return k
}

// Every string field, present and future, is checked for UTF-8 as
// proto.Unmarshal and proto.Marshal check it: the generated code does not.
func TestExchangeCodecRejectsInvalidUTF8InEveryString(t *testing.T) {
	for n := 0; ; n++ {
		x := &Exchange{}
		fill(x.ProtoReflect(), 1)
		x.Labels = map[string]string{"k": "v"} // one entry: a fixed order
		if spoilString(x.ProtoReflect(), n) <= n {
			if n < 20 {
				t.Fatalf("only %d strings spoiled", n)
			}
			return
		}
		if x.plain() {
			t.Fatalf("string %d: invalid UTF-8 not noticed", n)
		}
		sameEncode(t, x)
		// The generated encoder does not check: its bytes carry the bad
		// string for the decoders to reject.
		b, err := x.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		if err := UnmarshalExchange(b, &Exchange{}); err == nil {
			t.Fatalf("string %d: invalid UTF-8 decoded without an error", n)
		}
		sameDecode(t, b)
	}
}

// varintFields lists the varint number fields of m and its singular
// submessages (bools aside) as setters of a value with bit 63 set.
func varintFields(m protoreflect.Message) (set []func(), names []string) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.IsList() || fd.IsMap() {
			continue
		}
		var v protoreflect.Value
		switch fd.Kind() {
		case protoreflect.MessageKind:
			s, n := varintFields(m.Mutable(fd).Message())
			set, names = append(set, s...), append(names, n...)
			continue
		case protoreflect.Int32Kind:
			v = protoreflect.ValueOfInt32(-7)
		case protoreflect.Int64Kind:
			v = protoreflect.ValueOfInt64(-7 << 40)
		case protoreflect.Uint64Kind:
			v = protoreflect.ValueOfUint64(1<<63 | 7)
		case protoreflect.EnumKind:
			v = protoreflect.ValueOfEnum(-7)
		default:
			continue
		}
		set = append(set, func() { m.Set(fd, v) })
		names = append(names, string(fd.FullName()))
	}
	return set, names
}

// A ten-byte varint whose last byte is above 1 overflows 64 bits:
// proto.Unmarshal rejects it, the generated decoder reads it. Every varint
// field, present and future, decodes such input as proto.Unmarshal does.
func TestUnmarshalExchangeOverflowingVarintInEveryField(t *testing.T) {
	small := func() *Exchange {
		return &Exchange{Id: "a", Sequence: 1, Request: &Request{Method: "GET", BodySize: 3, Body: []byte("abc")},
			Response: &Response{Status: 200}, Replay: &Replay{Target: "t", SourceOffset: 1}}
	}
	set, _ := varintFields(small().ProtoReflect())
	if len(set) < 10 {
		t.Fatalf("only %d varint fields", len(set))
	}
	for i := range set {
		x := small()
		set, names := varintFields(x.ProtoReflect())
		set[i]()
		b := mustMarshal(t, x)
		if got := sameDecode(t, b); !proto.Equal(got, x) {
			t.Fatalf("%s: a value with bit 63 set decoded as %v", names[i], got)
		}
		// The value's ten bytes end in 0x01: overflow them.
		last := -1
		for j := 9; j < len(b); j++ {
			if _, k := protowire.ConsumeVarint(b[j-9:]); k == 10 && b[j] == 0x01 {
				last = j
			}
		}
		if last < 0 {
			t.Fatalf("%s: no ten-byte varint in %x", names[i], b)
		}
		b[last] = 0x03
		if err := UnmarshalExchange(b, &Exchange{}); err == nil {
			t.Fatalf("%s: an overflowing varint decoded without an error", names[i])
		}
		sameDecode(t, b)
	}
}

// UnmarshalExchangeTransient decodes without a copy: the exchange's bytes
// are b's. Appending to a body or to message data (what a transformer may
// do to the exchange it was given) never writes into b, whose next bytes
// are another field's or, in a fetched batch, the next record's.
func TestUnmarshalExchangeTransientBorrowsB(t *testing.T) {
	b := mustMarshal(t, everyField())
	// Room after b, as in a batch where the next record follows.
	buf := append(b, "next record"...)
	b = buf[:len(b)]
	want := bytes.Clone(buf)
	x := &Exchange{}
	if err := UnmarshalExchangeTransient(b, x); err != nil {
		t.Fatal(err)
	}
	body := x.GetRequest().GetBody()
	if len(body) == 0 || !aliases(b, body) {
		t.Fatal("the request body is not part of b")
	}
	var grown [][]byte
	for _, r := range []interface{ GetBody() []byte }{x.GetRequest(), x.GetResponse()} {
		grown = append(grown, append(r.GetBody(), "appended"...))
	}
	msgs := append(x.GetRequest().GetMessages(), x.GetResponse().GetMessages()...)
	if len(msgs) == 0 {
		t.Fatal("no gRPC messages decoded")
	}
	for _, m := range msgs {
		grown = append(grown, append(m.Data, "appended"...))
	}
	if !bytes.Equal(buf, want) {
		t.Fatalf("appending to a body or message data wrote into the decoded buffer: %d views grown", len(grown))
	}
}

// aliases reports whether part lies within b's bytes.
func aliases(b, part []byte) bool {
	if len(b) == 0 || len(part) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	p := uintptr(unsafe.Pointer(&part[0]))
	return p >= start && p < start+uintptr(len(b))
}
