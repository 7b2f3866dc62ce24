package redactor

import (
	"fmt"
	"strings"
	"testing"
)

func allDetectors() *detectors {
	var d detectors
	for k := range numKinds {
		d.on[k] = true
	}
	return &d
}

// findAll renders findings as "kind:text" for compact expectations.
func findAll(s string) []string {
	var out []string
	for _, sp := range allDetectors().find(s, nil) {
		out = append(out, sp.kind.String()+":"+s[sp.start:sp.end])
	}
	return out
}

func TestDetectors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // nil: nothing found
	}{
		// Cards.
		{"visa plain", "card 4111111111111111 ok", []string{"card:4111111111111111"}},
		{"visa spaced", "4111 1111 1111 1111", []string{"card:4111 1111 1111 1111"}},
		{"visa dashed", "x:4111-1111-1111-1111.", []string{"card:4111-1111-1111-1111"}},
		{"mastercard", "5555555555554444", []string{"card:5555555555554444"}},
		{"mastercard 2-series", "2223003122003222", []string{"card:2223003122003222"}},
		{"amex 4-6-5", "3782 822463 10005", []string{"card:3782 822463 10005"}},
		{"amex plain", "378282246310005", []string{"card:378282246310005"}},
		{"diners 14", "30569309025904", []string{"card:30569309025904"}},
		{"discover", "6011111111111117", []string{"card:6011111111111117"}},
		{"jcb", "3530111333300000", []string{"card:3530111333300000"}},
		{"19 digits", "6011 0009 9013 9424 003", nil},
		{"luhn invalid", "4111111111111112", nil},
		{"luhn invalid spaced", "4111 1111 1111 1113", nil},
		{"too long run", "41111111111111110000", nil},
		{"in longer alnum", "id4111111111111111", nil},
		{"followed by letter", "4111111111111111x", nil},
		{"prefix 1 (snowflake id)", "1234567890123452", nil},
		{"prefix 9", "9111111111111119", nil},
		{"bad grouping", "41 11111111 111111", nil},
		{"decimal fraction", "0.4111111111111111", nil},
		{"12 digits", "411111111113", nil},

		// Emails.
		{"email", "mail john.doe+tag@example.co.uk now", []string{"email:john.doe+tag@example.co.uk"}},
		{"email sentence end", "write to a.b@example.com.", []string{"email:a.b@example.com"}},
		{"email idn", "josé@bücher.de", []string{"email:josé@bücher.de"}},
		{"email punycode tld", "x@example.xn--p1ai", []string{"email:x@example.xn--p1ai"}},
		{"email upper", "JOHN@EXAMPLE.COM", []string{"email:JOHN@EXAMPLE.COM"}},
		{"not email no tld", "user@localhost", nil},
		{"not email numeric tld", "a@1.2", nil},
		{"not email handle", "@username", nil},
		{"email double dot", "a..b@example.com", []string{"email:a..b@example.com"}},
		{"email dot before at", "ab.@example.com", []string{"email:ab.@example.com"}},
		{"email then decimal", "a@example.com.4111111111111111", []string{"email:a@example.com", "card:4111111111111111"}},
		{"email tld backoff", "x@mail.example.com.123", []string{"email:x@mail.example.com"}},
		{"not email one-letter tld", "a@b.c", nil},
		{"email leading dots trimmed", "...ab@example.com", []string{"email:ab@example.com"}},

		// Phones.
		{"e164", "call +14155552671 now", []string{"phone:+14155552671"}},
		{"e164 spaced", "+44 20 7946 0958", []string{"phone:+44 20 7946 0958"}},
		{"e164 parens", "+1 (415) 555-2671", []string{"phone:+1 (415) 555-2671"}},
		{"e164 dots", "+33.6.12.34.56.78", []string{"phone:+33.6.12.34.56.78"}},
		{"us parens", "(415) 555-2671", []string{"phone:(415) 555-2671"}},
		{"us dashes", "tel 415-555-2671", []string{"phone:415-555-2671"}},
		{"us dots", "415.555.2671", []string{"phone:415.555.2671"}},
		{"us spaces", "415 555 2671", []string{"phone:415 555 2671"}},
		{"nanp 1-800", "1-800-555-0199", []string{"phone:1-800-555-0199"}},
		{"fr", "06 12 34 56 78", []string{"phone:06 12 34 56 78"}},
		{"uk", "020 7946 0958", []string{"phone:020 7946 0958"}},
		{"uk 4-digit area", "0161 496 0000", []string{"phone:0161 496 0000"}},
		{"e164 too short", "+1234567", nil},
		{"e164 too long", "+1234567890123456", nil},
		{"plain digits", "4155552671", nil},
		{"one separator", "415 5552671", nil},
		{"iso date", "2024-01-15", nil},
		{"iso timestamp", "2024-01-15T10:20:30.123Z", nil},
		{"iso timestamp offset", "2024-01-15T10:20:30+01:00", nil},
		{"date time", "2024-01-15 10:20:30", nil},
		{"time then date", "10:20:30 2024-01-15", nil},
		{"german date time", "15.01.2024 10:20", nil},
		{"date and number", "15-01-2024 12 34", nil},
		{"uuid", "550e8400-e29b-41d4-a716-446655440000", nil},
		{"uuid digits", "12345678-1234-1234-1234-123456789012", nil},
		{"unix ms", "1700000000123", nil},
		{"thousands", "1,234,567,890 and 1 234 567 890 and 1.234.567.890", nil},
		{"version", "v1.2.3 and 10.0.19041.1", nil},
		{"ipv4 not phone", "10.20.30.40", []string{"ipv4:10.20.30.40"}},
		{"scientific", "1e+10", nil},
		{"year first", "2024 555 1234", nil},
		{"money", "$1 234 567.89", nil},

		// SSNs.
		{"ssn", "ssn 123-45-6789.", []string{"ssn:123-45-6789"}},
		{"ssn area 000", "000-12-3456", nil},
		{"ssn area 666", "666-12-3456", nil},
		{"ssn area 9xx", "912-34-5678", nil},
		{"ssn group 00", "123-00-4567", nil},
		{"ssn serial 0000", "123-45-0000", nil},
		{"ssn in longer", "1-123-45-6789", []string{"phone:1-123-45-6789"}},
		{"ssn after dot", "1.123-45-6789", nil},
		{"ssn followed", "123-45-6789-1", nil},
		{"ssn no dashes", "123456789", nil},

		// IBANs.
		{"iban de", "IBAN DE89370400440532013000 ok", []string{"iban:DE89370400440532013000"}},
		{"iban de spaced", "DE89 3704 0044 0532 0130 00", []string{"iban:DE89 3704 0044 0532 0130 00"}},
		{"iban gb", "GB29NWBK60161331926819", []string{"iban:GB29NWBK60161331926819"}},
		{"iban be", "BE68539007547034", []string{"iban:BE68539007547034"}},
		{"iban fr", "FR1420041010050500013M02606", []string{"iban:FR1420041010050500013M02606"}},
		{"iban bad check", "DE89370400440532013001", nil},
		{"iban wrong length", "DE8937040044053201300", nil},
		{"iban unknown country", "ZZ89370400440532013000", nil},
		{"iban lower", "de89370400440532013000", nil},

		// JWTs.
		{"jwt", "tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl end",
			[]string{"jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"}},
		{"jwt unsigned", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", []string{"jwt:eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."}},
		{"jwt two parts", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0", nil},
		{"not jwt", "eyJ.x.y", nil},

		// Bearer / basic.
		{"bearer", "Authorization: Bearer abc123def456ghi", []string{"bearer:abc123def456ghi"}},
		{"bearer lower", "bearer a1b2c3d4e5", []string{"bearer:a1b2c3d4e5"}},
		{"bearer with jwt", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln", []string{"jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln"}},
		{"bearer prose", "the Bearer information is here", nil},
		{"bearer short", "Bearer ab1", nil},
		{"basic", "Basic dXNlcjpwYXNzd29yZA==", []string{"bearer:dXNlcjpwYXNzd29yZA=="}},
		{"basic prose", "Basic information about it", nil},

		// IPv4.
		{"ipv4", "from 203.0.113.42:8080", []string{"ipv4:203.0.113.42"}},
		{"ipv4 xff", "198.51.100.7, 10.0.0.1", []string{"ipv4:198.51.100.7", "ipv4:10.0.0.1"}},
		{"ipv4 octet > 255", "256.1.1.1", nil},
		{"ipv4 five parts", "1.2.3.4.5", nil},
		{"ipv4 three parts", "1.2.3", nil},
		{"chrome version", "Chrome/120.0.0.0 Safari/537.36", nil},
		{"ipv4 in url", "http://192.168.1.10/x", []string{"ipv4:192.168.1.10"}},

		// Mixed and non-ASCII.
		{"non-ascii around", "Zoë Ångström, tél. +33 6 12 34 56 78, 東京", []string{"phone:+33 6 12 34 56 78"}},
		{"card and email overlap", "4111111111111111@example.com", []string{"email:4111111111111111@example.com"}},
		{"nothing", "The quick brown fox jumps over the lazy dog", nil},
		{"short", "a@b", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := findAll(tc.in)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("find(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDetectorsIndividuallyDisabled(t *testing.T) {
	in := "4111111111111111 a@example.com +14155552671 123-45-6789 DE89370400440532013000 203.0.113.1"
	for k := range numKinds {
		d := allDetectors()
		d.on[k] = false
		for _, sp := range d.find(in, nil) {
			if sp.kind == k {
				t.Errorf("%s disabled but found %q", k, in[sp.start:sp.end])
			}
		}
	}
}

func TestLuhn(t *testing.T) {
	for _, s := range []string{"4111111111111111", "79927398713", "0"} {
		if !luhn(s) {
			t.Errorf("luhn(%s) = false", s)
		}
	}
	for _, s := range []string{"4111111111111112", "79927398710"} {
		if luhn(s) {
			t.Errorf("luhn(%s) = true", s)
		}
	}
}

func TestIBANMod97(t *testing.T) {
	if got := ibanMod97("GB82 WEST 1234 5698 7654 32"); got != 1 {
		t.Errorf("mod97 = %d", got)
	}
}

func TestMergeSpans(t *testing.T) {
	in := []span{{10, 20, kindCard}, {0, 5, kindIPv4}, {4, 12, kindEmail}, {30, 31, kindSSN}}
	got := mergeSpans(in, 0)
	want := []span{{0, 20, kindEmail}, {30, 31, kindSSN}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mergeSpans = %v, want %v", got, want)
	}
}

func TestKindNames(t *testing.T) {
	for k := range numKinds {
		got, ok := kindByName(k.String())
		if !ok || got != k {
			t.Errorf("kindByName(%s) = %v, %v", k, got, ok)
		}
	}
	if _, ok := kindByName("nope"); ok {
		t.Error("unknown name accepted")
	}
	if piiKind(200).String() != "unknown" {
		t.Error("out of range kind name")
	}
}

func BenchmarkDetectorsCleanText(b *testing.B) {
	s := strings.Repeat("The quick brown fox jumps over the lazy dog, order 12345 shipped 2024-01-15. ", 13)
	d := allDetectors()
	b.SetBytes(int64(len(s)))
	var buf []span
	for b.Loop() {
		buf = d.find(s, buf[:0])
	}
}

// FuzzDetectors checks on arbitrary text that findings are sorted, disjoint,
// in bounds and at least 6 bytes; that scrubbing with mask, remove or hash
// leaves no finding (outside hash tokens); and that the fake of a finding
// standing alone is a finding of the same kind (format preservation).
func FuzzDetectors(f *testing.F) {
	for _, s := range []string{
		"card 4111 1111 1111 1111, mail zoe@example.org, tel +44 20 7946 0958",
		"ssn 078-05-1120 iban DE89 3704 0044 0532 0130 00 ip 84.17.45.201",
		"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln Basic dXNlcjpwYXNz",
		"a@b.cx+14155552671 4111111111a@example.com111111",
		"2024-01-15T10:20:30Z 550e8400-e29b-41d4-a716-446655440000 Chrome/120.0.0.0",
		"(415) 555-2671 1-800-555-0199 06 12 34 56 78 GB29NWBK60161331926819",
		"[2001:db8::1]:443 fe80::1%eth0 ::ffff:192.0.2.1 4111\u00a01111\u00a01111\u00a01111 4111.1111.1111.1111",
		"AKIAIOSFODNN7EXAMPLE ghp_16C7e42F292c6912E7710c838347Ae178B4a xoxb-1234567890-abcdefghij sk_live_4eC39HqLyjWDarjtT1zdp7dc",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
	} {
		f.Add(s)
	}
	engines := map[Action]*Engine{}
	for _, a := range []Action{ActionMask, ActionRemove, ActionHash} {
		m := map[string]Rule{}
		for k := range numKinds {
			m[k.String()] = Rule{Action: a}
		}
		engines[a] = newEngine(f, Config{Detectors: m})
	}
	d := allDetectors()
	k := testKeyed()
	f.Fuzz(func(t *testing.T, s string) {
		spans := d.find(s, nil)
		prev := 0
		for _, sp := range spans {
			if sp.start < prev || sp.end <= sp.start || sp.end > len(s) || sp.end-sp.start < 6 || sp.kind >= numKinds {
				t.Fatalf("bad span %+v (prev end %d) in %q", sp, prev, s)
			}
			prev = sp.end
		}
		for a, e := range engines {
			st := &state{e: e}
			out, changed := st.scrubString(s)
			if changed != (len(spans) > 0) {
				t.Fatalf("%s: changed=%v with %d findings", a, changed, len(spans))
			}
			for _, sp := range d.find(out, nil) {
				txt := out[sp.start:sp.end]
				if a == ActionHash && strings.Contains(txt, hashPrefix) {
					continue
				}
				t.Fatalf("%s: finding %s %q left in %q (from %q)", a, sp.kind, txt, out, s)
			}
		}
		for _, sp := range spans {
			txt := s[sp.start:sp.end]
			alone := d.find(txt, nil)
			if len(alone) != 1 || alone[0].start != 0 || alone[0].end != len(txt) || alone[0].kind != sp.kind {
				continue // merged or context-dependent finding
			}
			if sp.kind == kindBearer {
				continue // the scheme word is outside the span
			}
			fk := k.fake(fakeKind(sp.kind), txt)
			if fk == txt {
				t.Fatalf("fake of %q equals input", txt)
			}
			got := d.find(fk, nil)
			if sp.kind == kindPhone && len(got) > 0 {
				continue // random digits may form an SSN or card shape inside
			}
			if len(got) != 1 || got[0].start != 0 || got[0].end != len(fk) || got[0].kind != sp.kind {
				t.Fatalf("fake %s of %q is %q, found %v", sp.kind, txt, fk, got)
			}
		}
	})
}
