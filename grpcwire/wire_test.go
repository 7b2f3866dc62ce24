package grpcwire

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func TestParseMessageNested(t *testing.T) {
	inner := protowire.AppendTag(nil, 1, protowire.BytesType)
	inner = protowire.AppendString(inner, "a@b.example")
	msg := protowire.AppendTag(nil, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 150)
	msg = protowire.AppendTag(msg, 2, protowire.BytesType)
	msg = protowire.AppendBytes(msg, inner)
	msg = protowire.AppendTag(msg, 3, protowire.Fixed64Type)
	msg = protowire.AppendFixed64(msg, 7)
	fs, err := ParseMessage(msg)
	if err != nil || len(fs) != 3 {
		t.Fatalf("fields %v err %v", fs, err)
	}
	if fs[0].Varint() != 150 || !fs[1].Nested || len(fs[1].Fields) != 1 || !fs[1].Fields[0].Text() {
		t.Fatalf("fields %+v", fs)
	}
	if got := AppendMessage(nil, fs); !bytes.Equal(got, msg) {
		t.Fatalf("re-encoded message differs")
	}
	fs[1].Fields[0].Value = []byte("[redacted]")
	out, err := ParseMessage(AppendMessage(nil, fs))
	if err != nil || string(out[1].Fields[0].Value) != "[redacted]" || out[0].Varint() != 150 {
		t.Fatalf("changed nested field not kept: %v %v", out, err)
	}
}

func TestParseMessageMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"group":         protowire.AppendTag(nil, 1, protowire.StartGroupType),
		"short varint":  {0x08, 0x80},
		"long length":   {0x12, 0x05, 'a'},
		"field zero":    {0x00, 0x01},
		"short fixed64": {0x19, 1, 2},
	} {
		if _, err := ParseMessage(b); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add([]byte{0x08, 0x96, 0x01, 0x12, 0x03, 'a', 'b', 'c'})
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := ParseMessage(b)
		if err != nil {
			return
		}
		again, err := ParseMessage(AppendMessage(nil, fs))
		if err != nil || len(again) != len(fs) {
			t.Fatalf("re-encoded message does not parse alike: %v", err)
		}
	})
}
