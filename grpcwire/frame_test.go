package grpcwire

import (
	"bytes"
	"errors"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func TestIsGRPC(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/grpc": true, "application/grpc+proto": true, "Application/GRPC; charset=utf-8": true,
		"application/grpc-web": false, "application/grpc+web": false, "application/grpcx": false, "application/json": false, "": false,
	} {
		if got := IsGRPC(ct); got != want {
			t.Errorf("IsGRPC(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestSplitMethod(t *testing.T) {
	for _, tc := range []struct {
		path, svc, m string
		ok           bool
	}{
		{"/pkg.Svc/Get", "pkg.Svc", "Get", true},
		{"/Svc/Get", "Svc", "Get", true},
		{"/pkg.Svc/Get/x", "", "", false},
		{"pkg.Svc/Get", "", "", false},
		{"/pkg.Svc/", "", "", false},
		{"/", "", "", false},
	} {
		svc, m, ok := SplitMethod(tc.path)
		if svc != tc.svc || m != tc.m || ok != tc.ok {
			t.Errorf("SplitMethod(%q) = %q %q %v", tc.path, svc, m, ok)
		}
	}
}

func frames(ms ...*mlv1.Message) []byte {
	b, _ := Frames(ms)
	return b
}

func TestFramerByteAtATime(t *testing.T) {
	body := frames(&mlv1.Message{Data: []byte("hello")}, &mlv1.Message{}, &mlv1.Message{Compressed: true, Data: []byte("zz")})
	f := NewFramer(0, 0)
	for i := range body {
		f.Feed(body[i:i+1], int64(i))
	}
	msgs, cut, n, err := f.Finish()
	if err != nil || cut || n != int64(len(body)) || len(msgs) != 3 {
		t.Fatalf("got %d msgs cut=%v n=%d err=%v", len(msgs), cut, n, err)
	}
	if string(msgs[0].Data) != "hello" || msgs[0].Size != 5 || msgs[0].OffsetNs != 0 || msgs[0].Truncated {
		t.Errorf("msg 0 = %v", msgs[0])
	}
	if msgs[1].Size != 0 || msgs[1].OffsetNs != 10 {
		t.Errorf("msg 1 = %v", msgs[1])
	}
	if !msgs[2].Compressed || string(msgs[2].Data) != "zz" || msgs[2].OffsetNs != 15 {
		t.Errorf("msg 2 = %v", msgs[2])
	}
	if again, _ := Frames(msgs); !bytes.Equal(again, body) {
		t.Errorf("reframed body differs")
	}
}

func TestFramerLimits(t *testing.T) {
	body := frames(&mlv1.Message{Data: []byte("0123456789")}, &mlv1.Message{Data: []byte("abcdef")}, &mlv1.Message{Data: []byte("x")})
	// A budget of 16 framed bytes: 5+4 for the first, 5+2 for the second,
	// nothing left for the third's prefix.
	f := NewFramer(4, 16)
	f.Feed(body, 7)
	msgs, cut, _, err := f.Finish()
	if err != nil || !cut || len(msgs) != 2 {
		t.Fatalf("got %d msgs cut=%v err=%v", len(msgs), cut, err)
	}
	if string(msgs[0].Data) != "0123" || !msgs[0].Truncated || msgs[0].Size != 10 {
		t.Errorf("msg 0 = %v", msgs[0])
	}
	if string(msgs[1].Data) != "ab" || !msgs[1].Truncated || msgs[1].Size != 6 {
		t.Errorf("msg 1 = %v", msgs[1])
	}
	if _, err := Frames(msgs); err == nil {
		t.Errorf("Frames of truncated messages: no error")
	}
}

func TestFramerEndsEarly(t *testing.T) {
	body := frames(&mlv1.Message{Data: []byte("hello")})
	f := NewFramer(0, 0)
	f.Feed(body[:7], 0)
	msgs, cut, _, err := f.Finish()
	if err != nil || cut || len(msgs) != 1 || !msgs[0].Truncated || string(msgs[0].Data) != "he" {
		t.Fatalf("cut in data: %v cut=%v err=%v", msgs, cut, err)
	}
	f = NewFramer(0, 0)
	f.Feed(body[:3], 0)
	msgs, cut, _, _ = f.Finish()
	if len(msgs) != 0 || !cut {
		t.Fatalf("cut in prefix: %v cut=%v", msgs, cut)
	}
}

func TestFramerBadFlag(t *testing.T) {
	body := append(frames(&mlv1.Message{Data: []byte("ok")}), 2, 0, 0, 0, 1, 'x')
	f := NewFramer(0, 0)
	f.Feed(body, 0)
	msgs, _, _, err := f.Finish()
	if !errors.Is(err, ErrBadFrame) || len(msgs) != 1 {
		t.Fatalf("msgs %d err %v", len(msgs), err)
	}
}

func TestCompressRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("mirrorline "), 100)
	for _, enc := range []string{"identity", "gzip", "deflate", "snappy", "zstd"} {
		c, err := Compress(enc, data)
		if err != nil {
			t.Fatalf("%s: %v", enc, err)
		}
		d, err := Decompress(enc, c, 0)
		if err != nil || !bytes.Equal(d, data) {
			t.Fatalf("%s: round trip err=%v", enc, err)
		}
		if _, err := Decompress(enc, c, 10); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: limit: %v", enc, err)
		}
	}
	if _, err := Decompress("br\x00", nil, 0); !errors.Is(err, ErrUnsupportedEncoding) {
		t.Errorf("unknown encoding: %v", err)
	}
}

func FuzzFramer(f *testing.F) {
	f.Add(frames(&mlv1.Message{Data: []byte("hello")}, &mlv1.Message{Compressed: true}), 3)
	f.Fuzz(func(t *testing.T, body []byte, chunk int) {
		chunk = max(1, chunk%64)
		fr := NewFramer(0, 0)
		for i := 0; i < len(body); i += chunk {
			fr.Feed(body[i:min(len(body), i+chunk)], int64(i))
		}
		msgs, cut, _, err := fr.Finish()
		if err != nil || cut {
			return
		}
		for _, m := range msgs {
			if m.Truncated {
				return
			}
		}
		again, ferr := Frames(msgs)
		if ferr != nil || !bytes.Equal(again, body) {
			t.Fatalf("complete body does not reframe to itself")
		}
	})
}

// The budget counts prefixes: a body of a million empty messages keeps
// budget/5 of them and counts the rest, left out.
func TestFramerBudgetCountsPrefixes(t *testing.T) {
	body := bytes.Repeat(frames(&mlv1.Message{}), 1_000_000)
	f := NewFramer(0, 50)
	f.Feed(body, 0)
	msgs, cut, framed, err := f.Finish()
	if err != nil || !cut || len(msgs) != 10 || framed != int64(len(body)) {
		t.Fatalf("%d messages kept, cut %v, %d framed bytes, err %v; want 10, true, %d", len(msgs), cut, framed, err, len(body))
	}
	if allocs := testing.AllocsPerRun(3, func() {
		f := NewFramer(0, 50)
		f.Feed(body[:50_000], 0)
	}); allocs > 20 {
		t.Fatalf("%v allocations for 10,000 messages, 10 of them kept: messages past the budget are allocated", allocs)
	}
}
