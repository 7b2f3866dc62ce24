package mirrorlinev1

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// validUTF8 agrees with utf8.ValidString whatever the length and wherever a
// non-ASCII byte sits (the word loop, the overlapping tail, the short loop).
func TestValidUTF8(t *testing.T) {
	var cases []string
	for n := range 26 {
		ascii := strings.Repeat("a", n)
		cases = append(cases, ascii)
		for i := range n {
			for _, b := range []string{"\x80", "\xff", "é", "\xe2\x82", "€", "\xed\xa0\x80" /* surrogate */} {
				cases = append(cases, ascii[:i]+b+ascii[i:])
			}
		}
	}
	for _, s := range cases {
		if got, want := validUTF8(s), utf8.ValidString(s); got != want {
			t.Errorf("validUTF8(%q) = %v, want %v", s, got, want)
		}
		if got, want := validUTF8("ok", s, "fine"), utf8.ValidString(s); got != want {
			t.Errorf("validUTF8(ok, %q, fine) = %v, want %v", s, got, want)
		}
	}
}

func FuzzValidUTF8(f *testing.F) {
	for _, s := range []string{"", "abc", "abcdefgh\x80", "Zoë Ångström", "\xc3", strings.Repeat("x", 17) + "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validUTF8(s), utf8.ValidString(s); got != want {
			t.Fatalf("validUTF8(%q) = %v, want %v", s, got, want)
		}
	})
}
