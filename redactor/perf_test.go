package redactor

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// The detectors' pre-checks (digit runs, IPv6 starts, skipped merges) and
// the secret-name cache make the redactor fast; these tests hold them to
// finding exactly what the straightforward scan finds.

// referenceTrigger is the trigger set of findReference: every byte that can
// start a finding, hex letters and ':' included.
func referenceTrigger(c byte) bool {
	return class[c]&cTrigger != 0 || isHex(c) || c == ':'
}

// findReference is find without its pre-checks: every trigger byte at a word
// start runs every detector that may start there, in find's order.
func (d *detectors) findReference(s string, out []span) []span {
	n := len(s)
	if n < 6 {
		return out
	}
	base := len(out)
	for i := 0; i < n; i++ {
		c := s[i]
		if !referenceTrigger(c) {
			if isAlnum(c) {
				// No finding starts inside a word: skip to its end.
				for i+1 < n && isAlnum(s[i+1]) {
					i++
				}
			}
			continue
		}
		var prev byte = ' '
		if i > 0 {
			prev = s[i-1]
		}
		if c == '@' {
			if d.on[kindEmail] {
				if st, en, ok := matchEmail(s, i); ok {
					out = append(out, span{st, en, kindEmail})
					i = en - 1
				}
			}
			continue
		}
		if isAlnum(prev) {
			for isAlnum(c) && i+1 < n && isAlnum(s[i+1]) {
				i++
			}
			continue
		}
		end := 0
		var kind piiKind
		if d.on[kindIPv6] && maybeIPv6(s, i) {
			if e := matchIPv6(s, i); e > 0 {
				out = append(out, span{i, e, kindIPv6})
				i = e - 1
				continue
			}
		}
		switch {
		case isDigit(c):
			if d.on[kindSSN] {
				if e := matchSSN(s, i); e > 0 {
					end, kind = e, kindSSN
					break
				}
			}
			if d.on[kindCard] {
				if e := matchCard(s, i); e > 0 {
					end, kind = e, kindCard
					break
				}
			}
			if d.on[kindIPv4] {
				if e := matchIPv4(s, i); e > 0 {
					end, kind = e, kindIPv4
					break
				}
			}
			if d.on[kindPhone] {
				if e := matchPhone(s, i); e > 0 {
					end, kind = e, kindPhone
				}
			}
		case c == '+' || c == '(':
			if d.on[kindPhone] {
				if e := matchPhone(s, i); e > 0 {
					end, kind = e, kindPhone
				}
			}
		case c == 'e':
			if d.on[kindJWT] && prev != '.' && class[prev]&cB64URL == 0 {
				if e := matchJWT(s, i); e > 0 {
					end, kind = e, kindJWT
				}
			}
		case c == 'b' || c == 'B':
			if d.on[kindBearer] {
				if st, e := matchBearer(s, i); e > 0 {
					k := kindBearer
					if d.on[kindJWT] && s[st] == 'e' && matchJWT(s, st) == e {
						k = kindJWT
					}
					out = append(out, span{st, e, k})
					i = e - 1
					continue
				}
			}
		default:
			if d.on[kindCredential] && credFirst[c] && i+1 < n && credStart[c]&credSecond[s[i+1]] != 0 {
				if e := matchCredential(s, i); e > 0 {
					end, kind = e, kindCredential
				}
			}
		}
		if end == 0 && isUpper(c) && d.on[kindIBAN] {
			if e := matchIBAN(s, i); e > 0 {
				end, kind = e, kindIBAN
			}
		}
		if end > 0 {
			out = append(out, span{i, end, kind})
			i = end - 1
		} else if isAlnum(c) {
			// Skip the rest of this word: no position inside it is at a word
			// boundary (emails are anchored at their '@', not a word byte).
			for i+1 < n && isAlnum(s[i+1]) {
				i++
			}
		}
	}
	return mergeSpans(out, base)
}

// preCheckCases are texts at the edges of find's pre-checks: IPv6 addresses
// starting with a hex letter that is no trigger, colons far from and near a
// word, digit runs followed by each byte that continues a finding (and some
// that do not), credentials in and out of words.
var preCheckCases = []string{
	"ca:fe::1 d::1 abcd:ef01:2345:6789::1 fe80::1%eth0 [2001:db8::1]:443 ::ffff:192.0.2.1",
	"addr=ca:fe::1, cafe:babe::1; dead:beef::/32 face::b00c, f:f::f",
	"x1ca:fe::1 ab.cd:ef::1 zz:cafe::1 abcde:f::1 ::1 a::1 acdf::",
	"12:30:45 2024-01-15T10:20:30Z 00:1a:2b:3c:4d:5e 1.2.3.4:80 10.0.0.1",
	"card 4111 1111 1111 1111 4111-1111-1111-1111 4111.1111.1111.1111 4111111111111111",
	"card 4111\u00a01111\u00a01111\u00a01111 4111\u20091111\u20091111\u20091111 4111\u202f1111\u202f1111\u202f1111",
	"card 4111\t1111\t1111\t1111 378282246310005 3782 822463 10005 6011111111111117",
	"ssn 078-05-1120 078-05-112 078.05.1120 phone (415) 555-2671 415 555 2671 415.555.2671 415-555-2671",
	"+41 44 668 18 00 +14155552671 06 12 34 56 78 1-800-555-0199 0044(20)79460958 020 7946 0958",
	"8001 2029 12 1249.90 SKU-1001 ORD-2024-000123 120.0.0.0 2.2.0 5812 41234",
	"ghp_16C7e42F292c6912E7710c838347Ae178B4a sk_live_4eC39HqLyjWDarjtT1zdp7dc xoxb-1234567890-abcdefghij",
	"xghp_16C7e42F292c6912E7710c838347Ae178B4a AKIAIOSFODNN7EXAMPLE npm_abcdefghijklmnopqrstuvwxyz0123456789",
	"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- whsec_abcdefghijklmnopqrstuv",
	"zoe@example.org a@b.cx Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln GB29NWBK60161331926819",
	"a@b.cx+14155552671 4111111111a@example.com111111 1.2.3.4a 4111 1111 1111 1111x",
	"41111 1111 1111 111 4222222222222 4222 2222 22222 378282246310005 5105-1051-0510-5100 2223003122003222",
	"123456-78-90 12345-678-90 12345 67890 123456 7890 (0)123456 7890 0123 45 67 89 1234.5678.90 01234-56789-0, 01234 567 890, 0123 456 7890",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
	"a.4111111111111111 v1.4111 1111 1111 1111 .4111111111111111 1.4111111111111111 x.078-05-1120 y.10.0.0.1 z.(415) 555-2671",
	"192.168.1.1.5 3.14 1.2.3.4 10.0.0.1 2.2.0 1249.90 0.4111111111111111 a.415-555-2671 .415 555 2671",
}

// TestFindMatchesReference holds find to findReference on the pre-check edge
// cases, the PII and non-PII corpora and their every suffix (so each byte
// is once a text's first).
func TestFindMatchesReference(t *testing.T) {
	texts := append([]string(nil), preCheckCases...)
	texts = append(texts, corpusTexts(t)...)
	d := allDetectors()
	for _, text := range texts {
		for i := range len(text) {
			checkFindReference(t, d, text[i:])
		}
	}
}

// FuzzFindMatchesReference is TestFindMatchesReference on arbitrary text.
func FuzzFindMatchesReference(f *testing.F) {
	for _, s := range preCheckCases {
		f.Add(s)
	}
	d := allDetectors()
	f.Fuzz(func(t *testing.T, s string) {
		checkFindReference(t, d, s)
	})
}

// corpusTexts returns the inputs of every corpus case.
func corpusTexts(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/corpus/*/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("corpus files: %v (%d)", err, len(files))
	}
	var out []string
	for _, f := range files {
		for _, c := range loadCorpus(t, f) {
			out = append(out, c.input)
		}
	}
	return out
}

func checkFindReference(t *testing.T, d *detectors, s string) {
	t.Helper()
	got := d.find(s, nil)
	want := d.findReference(s, nil)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("find(%q) = %v, findReference = %v", s, got, want)
	}
}

// secretCacheNames are secret and non-secret names, in several cases.
func secretCacheNames() []string {
	base := []string{
		"X-Api-Key", "clientSecret", "client_secret", "db_password", "refresh_token", "accessToken", "sessionId",
		"session", "JSESSIONID", "credentials", "otp_code", "Authorization", "APIKey", "private_key", "pin",
		"cvv", "cookie", "webhookSecret", "monkey", "keyboard_layout", "author", "max_tokens", "token_type",
		"password_min_length", "secretary", "next_page_token", "idempotency_key", "primary_key", "passport",
		"Content-Type", "payment_id", "merchant", "email", "phone", "exp_month", "billing_address", "items",
		"X-Request-Id", "Traceparent", "User-Agent", "ab", "id", "pwd", "key",
		strings.Repeat("a", maxCachedName-6) + "secret", strings.Repeat("a", maxCachedName) + "_secret",
		strings.Repeat("x", maxCachedName+1), strings.Repeat("y", maxSecretName+1),
	}
	var out []string
	for _, n := range base {
		out = append(out, n, strings.ToUpper(n), strings.ToLower(n))
	}
	return out
}

// TestSecretCacheMatchesClassifier checks the cache against secretName on a
// miss, on a hit, and after a stream of distinct names has replaced entries.
func TestSecretCacheMatchesClassifier(t *testing.T) {
	c := newSecretCache()
	names := secretCacheNames()
	check := func(round string) {
		t.Helper()
		for _, n := range names {
			if got, want := c.match(nil, n), secretName(n); got != want {
				t.Fatalf("%s: cached secret(%q) = %v, secretName = %v", round, n, got, want)
			}
		}
	}
	check("miss")
	check("hit")
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 4 * secretCacheSlots {
		n := fmt.Sprintf("field_%d_%x", i, r.Uint64())
		if i%3 == 0 {
			n += "_token"
		}
		if got, want := c.match(nil, n), secretName(n); got != want {
			t.Fatalf("cached secret(%q) = %v, secretName = %v", n, got, want)
		}
	}
	check("after replacement")
	// The switched-off names are never secret, cached or not.
	off := []glob{compileGlob("client_secret"), compileGlob("*token")}
	for _, n := range []string{"client_secret", "CLIENT_SECRET", "refresh_token", "accessToken"} {
		if c.match(off, n) {
			t.Errorf("secret(%q) with the name switched off", n)
		}
	}
	if !c.match(off, "clientSecret") {
		t.Error("clientSecret not secret next to unrelated off globs")
	}
}

// TestSecretCacheCopiesNames: names alias a record's buffers, which are
// reused; the cache must answer for the bytes it is given now, not for the
// bytes a reused buffer held when the entry was made.
func TestSecretCacheCopiesNames(t *testing.T) {
	c := newSecretCache()
	buf := []byte("client_secret")
	name := unsafe.String(&buf[0], len(buf))
	if !c.match(nil, name) {
		t.Fatal("client_secret not secret")
	}
	copy(buf, "client_region")
	if c.match(nil, name) {
		t.Fatal("client_region secret: the cache kept the reused buffer, not a copy")
	}
	copy(buf, "client_secret")
	if !c.match(nil, name) {
		t.Fatal("client_secret not secret on the second look-up")
	}
}

// TestSecretCacheBounded: a stream of distinct names (a hostile client)
// never grows the cache past its slots, and names longer than
// maxCachedName are classified without being stored.
func TestSecretCacheBounded(t *testing.T) {
	c := newSecretCache()
	// Names varied in every byte the cache hashes (length, first two, middle
	// and last), so how full it gets depends on the cache, not on names
	// that share most of their hash input.
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789_"
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 * secretCacheSlots {
		name := make([]byte, 4+rng.IntN(12))
		for j := range name {
			name[j] = letters[rng.IntN(len(letters))]
		}
		c.match(nil, string(name))
	}
	long := strings.Repeat("z", maxCachedName) + "_password"
	if !c.match(nil, long) {
		t.Fatal("long password name not secret")
	}
	used := 0
	for i := range c.slots {
		e := c.slots[i].Load()
		if e == nil {
			continue
		}
		used++
		if int(e.n) > maxCachedName || string(e.name[:e.n]) == long {
			t.Fatalf("slot %d holds a name of %d bytes", i, e.n)
		}
	}
	if used > secretCacheSlots || used < secretCacheSlots/2 {
		t.Fatalf("%d of %d slots used after %d distinct names", used, secretCacheSlots, 20*secretCacheSlots)
	}
}

// TestSecretCacheConcurrent shares one cache between goroutines (an engine
// serves concurrent Redact calls); run with -race.
func TestSecretCacheConcurrent(t *testing.T) {
	c := newSecretCache()
	names := secretCacheNames()
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				n := names[(g*7+k)%len(names)]
				if k%5 == 0 {
					n = fmt.Sprintf("%s_%d_%d", n, g, k) // force replacements
				}
				if c.match(nil, n) != secretName(n) {
					errs <- n
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for n := range errs {
		t.Errorf("concurrent cached secret(%q) differs from secretName", n)
	}
}
