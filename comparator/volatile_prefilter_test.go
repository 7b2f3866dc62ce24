package comparator

import (
	"strings"
	"testing"
)

// masked is maskVolatile as it was before its pre-check: the regular
// expression on every string of 8 bytes or more with a digit.
func masked(s string) string {
	if len(s) < 8 || !strings.ContainsAny(s, "0123456789") {
		return s
	}
	return maskVolatileRE(s)
}

// maskVolatile's pre-check never skips a string the regular expression
// would change.
func TestMaskVolatilePrecheck(t *testing.T) {
	for _, s := range []string{
		"", "Espresso beans 1kg", "de-CH", "SKU-1001", "ORD-2024-000123", "2024-01-15T10:20:30Z",
		"at 10:20:30 today", "Mon, 02 Jan 2006 15:04:05 GMT", "pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B",
		"550e8400-e29b-41d4-a716-446655440000", "abcdefabcdefabcdef x1", "token 1 abcdefghijklmnopqrst",
		"x1 deadbeefdeadbeef", "123456789", "12:3", "a1b2c3d4e5f6g7h8", "v1.2.3 build 77",
		"AAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAA 1",
	} {
		if got, want := maskVolatile(s), masked(s); got != want {
			t.Errorf("maskVolatile(%q) = %q, the expression gives %q", s, got, want)
		}
	}
}

func FuzzMaskVolatilePrecheck(f *testing.F) {
	for _, s := range []string{"abcdefabcdefabcdef x1", "ts 12:00:01", "id 0123", "ULID 01ARZ3NDEKTSV4RRFFQ69G5FAV"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := maskVolatile(s), masked(s); got != want {
			t.Fatalf("maskVolatile(%q) = %q, the expression gives %q", s, got, want)
		}
	})
}

// The strings of a typical JSON body (the payments benchmark's), through
// maskVolatile with and without its pre-check.
func BenchmarkMaskVolatile(b *testing.B) {
	strs := []string{"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B", "mch_8842", "Café Zürich GmbH", "5812", "CH", "CHF",
		"cus_4411", "zoe.angstrom@example.org", "Zoë Ångström", "+41 44 668 18 00", "de-CH", "4111 1111 1111 1111",
		"visa", "Bahnhofstrasse 1", "Zürich", "8001", "SKU-1001", "Espresso beans 1kg", "SKU-2002", "Milk frother",
		"ORD-2024-000123", "web", "2024-01-15T10:20:30Z", "2.2.0", "authenticated"}
	for _, f := range []struct {
		name string
		fn   func(string) string
	}{{"precheck", maskVolatile}, {"expression", masked}} {
		b.Run(f.name, func(b *testing.B) {
			for b.Loop() {
				for _, s := range strs {
					_ = f.fn(s)
				}
			}
		})
	}
}
