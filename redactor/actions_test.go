package redactor

import (
	"net"
	"regexp"
	"strings"
	"testing"
)

func isDocIPv4(s string) bool {
	ip := net.ParseIP(s).To4()
	if ip == nil {
		return false
	}
	for _, n := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"} {
		_, cidr, _ := net.ParseCIDR(n)
		if cidr.Contains(ip) {
			return true
		}
	}
	return false
}

func testKeyed() *keyed { return newKeyed(testKey) }

func TestHashToken(t *testing.T) {
	k := testKeyed()
	a, b := k.hashToken("zoe@example.org"), k.hashToken("zoe@example.org")
	if a != b {
		t.Fatal("hash not deterministic")
	}
	if !regexp.MustCompile(`^hmac:[0-9a-f]{16}$`).MatchString(a) {
		t.Errorf("token %q", a)
	}
	if k.hashToken("zoe@example.com") == a {
		t.Error("different inputs, same token")
	}
	if newKeyed([]byte("another-key-0123456789")).hashToken("zoe@example.org") == a {
		t.Error("different keys, same token")
	}
	// A token is never all digits (it would look like a card number).
	for i := range 20000 {
		tok := k.hashToken(strings.Repeat("x", i%50) + string(rune('a'+i%26)) + string(rune(i)))
		if len(findAll(tok)) != 0 {
			t.Fatalf("detector fires on hash token %q", tok)
		}
	}
}

func TestNormalizeForHash(t *testing.T) {
	for _, tc := range []struct {
		kind fakeKind
		a, b string
	}{
		{fakeKind(kindCard), "4111 1111 1111 1111", "4111-1111-1111-1111"},
		{fakeKind(kindEmail), "Zoe@Example.org", "zoe@example.org"},
		{fakeKind(kindPhone), "+1 (415) 555-2671", "+14155552671"},
		{fakeKind(kindIBAN), "gb29 nwbk 6016 1331 9268 19", "GB29NWBK60161331926819"},
		{fakeKind(kindSSN), "078-05-1120", "078051120"},
	} {
		if normalize(tc.kind, tc.a) != normalize(tc.kind, tc.b) {
			t.Errorf("normalize(%q) != normalize(%q)", tc.a, tc.b)
		}
	}
}

func TestFakes(t *testing.T) {
	k := testKeyed()
	tests := []struct {
		kind  piiKind
		in    string
		check func(t *testing.T, out string)
	}{
		{kindCard, "4111 1111 1111 1111", func(t *testing.T, out string) {
			if len(out) != 19 || out[4] != ' ' || out[9] != ' ' || !strings.HasPrefix(out, "41") || !luhn(out) || matchCard(out, 0) != len(out) {
				t.Errorf("card fake %q", out)
			}
		}},
		{kindCard, "378282246310005", func(t *testing.T, out string) {
			if len(out) != 15 || !strings.HasPrefix(out, "37") || !luhn(out) || digitsOnly(out) != out {
				t.Errorf("amex fake %q", out)
			}
		}},
		{kindEmail, "Zoë.Ångström@example.org", func(t *testing.T, out string) {
			if !regexp.MustCompile(`^u[0-9a-f]{10}@example\.com$`).MatchString(out) {
				t.Errorf("email fake %q", out)
			}
		}},
		{kindPhone, "+44 20 7946 0958", func(t *testing.T, out string) {
			if !regexp.MustCompile(`^\+44 \d\d \d{4} \d{4}$`).MatchString(out) {
				t.Errorf("phone fake %q", out)
			}
		}},
		{kindPhone, "(415) 555-2671", func(t *testing.T, out string) {
			if !regexp.MustCompile(`^\(4\d\d\) \d{3}-\d{4}$`).MatchString(out) {
				t.Errorf("phone fake %q", out)
			}
		}},
		{kindPhone, "+14155552671", func(t *testing.T, out string) {
			if !regexp.MustCompile(`^\+1\d{10}$`).MatchString(out) {
				t.Errorf("phone fake %q", out)
			}
		}},
		{kindSSN, "078-05-1120", func(t *testing.T, out string) {
			if matchSSN(out, 0) != 11 {
				t.Errorf("ssn fake %q is not a valid SSN", out)
			}
		}},
		{kindIBAN, "GB29 NWBK 6016 1331 9268 19", func(t *testing.T, out string) {
			if !regexp.MustCompile(`^GB\d\d [A-Z]{4} \d{4} \d{4} \d{4} \d\d$`).MatchString(out) || ibanMod97(out) != 1 {
				t.Errorf("iban fake %q", out)
			}
		}},
		{kindIBAN, "DE89370400440532013000", func(t *testing.T, out string) {
			if matchIBAN(out, 0) != len(out) || !strings.HasPrefix(out, "DE") {
				t.Errorf("iban fake %q", out)
			}
		}},
		{kindIPv4, "84.17.45.201", func(t *testing.T, out string) {
			if !isDocIPv4(out) {
				t.Errorf("ipv4 fake %q", out)
			}
		}},
		{kindJWT, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl", func(t *testing.T, out string) {
			if !strings.HasPrefix(out, "eyJhbGciOiJIUzI1NiJ9.") || len(out) != 53 || strings.Count(out, ".") != 2 {
				t.Errorf("jwt fake %q", out)
			}
		}},
		{kindBearer, "sk_live_4eC39HqLyjWDarjtT1zdp7dc", func(t *testing.T, out string) {
			if len(out) != 32 || out[2] != '_' || out[7] != '_' {
				t.Errorf("bearer fake %q", out)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String()+"/"+tc.in, func(t *testing.T) {
			out := k.fake(fakeKind(tc.kind), tc.in)
			if out == tc.in {
				t.Fatalf("fake equals input")
			}
			if out2 := k.fake(fakeKind(tc.kind), tc.in); out2 != out {
				t.Fatalf("fake not deterministic: %q vs %q", out, out2)
			}
			if strings.Contains(out, digitsOnly(tc.in)) && len(digitsOnly(tc.in)) > 6 {
				t.Errorf("fake %q contains the input digits", out)
			}
			tc.check(t, out)
		})
	}
}

func TestFakeCardManyInputsStayValid(t *testing.T) {
	k := testKeyed()
	r := k.newStream(kindText, "card generator")
	for _, prefix := range []string{"4", "51", "37", "6011", "30", "3530", "2221"} {
		for range 300 {
			// A random valid card of 13-19 digits with this prefix.
			n := 13 + r.intn(7)
			b := []byte(prefix)
			for len(b) < n {
				b = append(b, r.digit())
			}
			b[n-1] = luhnCheckDigit(b)
			in := string(b)
			v := k.fake(fakeKind(kindCard), in)
			if !luhn(v) || len(v) != len(in) || v[:2] != in[:2] || v == in || matchCard(v, 0) != len(v) {
				t.Fatalf("card fake %q of %q", v, in)
			}
		}
	}
	if k.fake(fakeKind(kindCard), "4111111111111111") == k.fake(fakeKind(kindCard), "4012888888881881") {
		t.Error("distinct cards, same fake")
	}
}

func TestFakeText(t *testing.T) {
	k := testKeyed()
	out := k.fake(kindText, "Zoë Smith-42")
	if !regexp.MustCompile(`^[A-Z][a-z][a-z] [A-Z][a-z]{4}-\d\d$`).MatchString(out) {
		t.Errorf("text fake %q", out)
	}
	if k.fake(kindText, "--") != maskText {
		t.Error("punctuation-only fake should not equal input")
	}
}

func TestFakeSSNAlwaysValid(t *testing.T) {
	k := testKeyed()
	for i := range 2000 {
		out := k.fake(fakeKind(kindSSN), "078-05-"+strings.Repeat("1", 4)+string(rune('a'+i%26))+string(rune(i)))
		if matchSSN(out, 0) != 11 {
			t.Fatalf("invalid ssn fake %q", out)
		}
	}
}

func TestStreamIntn(t *testing.T) {
	r := testKeyed().newStream(kindText, "x")
	seen := map[int]bool{}
	for range 1000 {
		v := r.intn(7)
		if v < 0 || v >= 7 {
			t.Fatalf("intn out of range: %d", v)
		}
		seen[v] = true
	}
	if len(seen) != 7 {
		t.Errorf("intn covers %d of 7 values", len(seen))
	}
}
