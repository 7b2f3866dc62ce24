package redactor

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// The engine's fast paths (word-at-a-time string scanning, the per-engine
// name caches) must give exactly what the straightforward code gives; these
// tests hold them to it.

// plainRunReference is plainRun one byte at a time.
func plainRunReference(in []byte, k int) int {
	for k < len(in) && jsonPlain[in[k]] {
		k++
	}
	return k
}

// checkPlainRun checks plainRun, followed by the byte loop scanString runs
// after it, from every offset of in.
func checkPlainRun(t *testing.T, in []byte) {
	t.Helper()
	for k := range len(in) + 1 {
		got := plainRun(in, k)
		if got < k || got > len(in) {
			t.Fatalf("plainRun(%q, %d) = %d, out of range", in, k, got)
		}
		want := plainRunReference(in, k)
		if got > want {
			t.Fatalf("plainRun(%q, %d) = %d skipped the byte at %d", in, k, got, want)
		}
		if got+8 <= len(in) && got != want {
			t.Fatalf("plainRun(%q, %d) = %d stopped on a plain byte with 8 left, want %d", in, k, got, want)
		}
		if plainRunReference(in, got) != want {
			t.Fatalf("plainRun(%q, %d) then the byte loop != %d", in, k, want)
		}
	}
}

// TestPlainRunMatchesReference: every byte value at every position of a
// word, before and after plain and special bytes (borrows across bytes).
func TestPlainRunMatchesReference(t *testing.T) {
	for c := range 256 {
		for pos := range 17 {
			for _, fill := range []byte{'a', 0x20, 0x21, 0x7f, 0x80, 0xff, 0x1f, 0x00, '"', '\\'} {
				in := bytes.Repeat([]byte{fill}, 20)
				in[pos] = byte(c)
				checkPlainRun(t, in)
			}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		in := make([]byte, r.IntN(40))
		for i := range in {
			in[i] = byte(r.IntN(256))
			if r.IntN(2) == 0 {
				in[i] = 'a' + byte(r.IntN(26))
			}
		}
		checkPlainRun(t, in)
	}
}

// FuzzPlainRun is TestPlainRunMatchesReference on arbitrary bytes.
func FuzzPlainRun(f *testing.F) {
	f.Add([]byte(`abcdefgh"ijklmnop\q` + "\x00\x1f\x20\x7f\x80\xff"))
	f.Fuzz(func(t *testing.T, in []byte) { checkPlainRun(t, in) })
}

// cacheCases are exchanges whose JSON keys and header names exercise every
// part of their classification: rules (anywhere and path rules, both header
// directions, globs), secret-like names, names switched off, names holding
// a finding, escaped keys, names too short or too long for the caches.
var cacheCases = []string{
	`{"password":"p","Password":"q","user":{"password":"r","apiKey":"k","ab":"x","a":"y"}}`,
	`{"clientSecret":"s","client_secret":"t","session":"u","monkey":"m","max_tokens":5,"token_type":"bearer"}`,
	`{"zoe@example.org":"a","4111111111111111":1,"x\u0040example.com":2,"+41 44 668 18 00":"p"}`,
	`{"a":{"b":{"c":"4111 1111 1111 1111"}},"items":[{"cvv":"123","pin":"0000"},{"sku":"x"}],"keep":{"password":"x"}}`,
	`{"query":"mutation { login(password: \"p\") }","variables":{"otp":"1","card":{"number":"4111111111111111"}}}`,
	`{"` + strings.Repeat("k", maxCachedName) + `":"zoe@example.org","` + strings.Repeat("s", maxCachedName) + `_secret":"v","x":1}`,
	`{"access_token":"t","refresh_token":"u","next_page_token":"n","id_token":"i","nested":"{\"password\":\"x\"}"}`,
}

// cacheConfig has rules of every kind a key or header name can meet.
func cacheConfig() Config {
	return Config{
		JSONFields: jsonRules("a.b.c", "remove", "**.apikey", "mask", "user.*", "mask", "keep", "keep",
			"**.monkey", "remove", "items.0.sku", "remove", "**.pin", "off"),
		Headers: map[string]Rule{"X-Req-Only": {Action: ActionRemove, On: OnRequest},
			"X-Resp-*": {Action: ActionMask, On: OnResponse}, "x-keep-token": {Action: ActionKeep}},
	}
}

func cacheExchange(body string) *mlv1.Exchange {
	hs := func() []*mlv1.Header {
		return hdr("Content-Type", "application/json", "X-Req-Only", "zoe@example.org", "X-Resp-Id", "a",
			"X-Keep-Token", "t", "X-Session-Id", "s", "Referer", "https://x.test/?password=p&q=zoe@example.org",
			"zoe@example.org", "v", strings.Repeat("h", maxCachedName+1), "10.0.0.1", "Set-Cookie", "c=1",
			"Content-Length", "1", "A", "4111111111111111")
	}
	return &mlv1.Exchange{
		Request: &mlv1.Request{Url: "/x?password=p&Sig=s&q=zoe@example.org&api_key=k&X-Amz-Credential=c&" + body,
			Headers: hs(), Body: []byte(body)},
		Response: &mlv1.Response{Status: 200, Headers: hs(), Body: []byte(body)},
	}
}

// redactOnce redacts a fresh copy of body's exchange with e.
func redactOnce(t testing.TB, e *Engine, body string) (*mlv1.Exchange, string) {
	t.Helper()
	ex := cacheExchange(body)
	res, err := e.Redact(ex)
	return ex, fmt.Sprint(res.Redactions, err)
}

// checkColdWarm redacts body with a fresh engine (every name classified on
// a miss) and with warm, whose caches hold the names (from body and the
// earlier cases): the results must be identical.
func checkColdWarm(t *testing.T, warm *Engine, body string) {
	t.Helper()
	redactOnce(t, warm, body) // fill warm's caches with body's names
	cold := newEngine(t, cacheConfig())
	exCold, resCold := redactOnce(t, cold, body)
	exWarm, resWarm := redactOnce(t, warm, body)
	if resCold != resWarm || !proto.Equal(exCold, exWarm) {
		t.Fatalf("body %q: cold engine %s\n%v\nwarm engine %s\n%v", body, resCold, exCold, resWarm, exWarm)
	}
}

// tinyCaches gives e name caches of two slots: every look-up meets other
// names' entries (the collisions a cache must tell apart).
func tinyCaches(e *Engine) *Engine {
	e.keys, e.hdrs = newNameCacheBits[keyClass](1).withPeek(), newNameCacheBits[headerClass](1)
	e.formNames, e.queryNames = newNameCacheBits[formClass](1), newNameCacheBits[formClass](1)
	return e
}

// TestNameCachesColdWarm: an engine answers from its name caches exactly as
// it does when it classifies every name afresh.
func TestNameCachesColdWarm(t *testing.T) {
	warm := tinyCaches(newEngine(t, cacheConfig()))
	for _, c := range cacheCases {
		redactOnce(t, warm, c)
	}
	for _, c := range cacheCases {
		checkColdWarm(t, warm, c)
	}
}

// FuzzNameCachesColdWarm is TestNameCachesColdWarm on arbitrary bodies.
func FuzzNameCachesColdWarm(f *testing.F) {
	for _, c := range cacheCases {
		f.Add(c)
	}
	warm := tinyCaches(newEngine(f, cacheConfig()))
	f.Fuzz(func(t *testing.T, body string) { checkColdWarm(t, warm, body) })
}

// TestNameCacheBounded: a stream of distinct names never grows a cache
// past its slots, names longer than maxCachedName are classified without
// being stored, and the stored names are copies (a reused buffer changes
// nothing).
func TestNameCacheBounded(t *testing.T) {
	c := newNameCache[int]()
	calls := 0
	count := func(s string) int { calls++; return len(s) }
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 * nameCacheSlots {
		name := fmt.Sprintf("%x", r.Uint64())
		if got := c.get(name, count); got != len(name) {
			t.Fatalf("get(%q) = %d", name, got)
		}
	}
	used := 0
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil {
			used++
			if int(e.n) > maxCachedName {
				t.Fatalf("slot %d holds %d bytes", i, e.n)
			}
		}
	}
	if used > nameCacheSlots {
		t.Fatalf("%d entries, %d slots", used, nameCacheSlots)
	}
	long := strings.Repeat("z", maxCachedName+1)
	calls = 0
	c.get(long, count)
	c.get(long, count)
	if calls != 2 {
		t.Fatalf("a long name classified %d times in 2 look-ups, want 2 (never stored)", calls)
	}
	buf := []byte("clientSecret")
	cs := newNameCache[bool]()
	name := string(buf) // distinct from buf's bytes
	if !cs.get(name, secretName) {
		t.Fatal("clientSecret not secret")
	}
	copy(buf, "clientRegion")
	if cs.get(string(buf), secretName) {
		t.Fatal("clientRegion secret: the cache answered for other bytes")
	}
}

// walkEngines are engines with every kind of JSON rule: defaults only (all
// "**." rules, no path rule states), path rules with globs, indexes and
// "**" in the middle, keep, remove, unsign, hash and fake, secret names
// switched off, and tiny name caches (every look-up meets other names).
func walkEngines(t testing.TB) []*Engine {
	return []*Engine{
		newEngine(t, Config{}),
		tinyCaches(newEngine(t, cacheConfig())),
		fuzzMaskEngine(t),
		fuzzFakeEngine(t),
		newEngine(t, Config{JSONFields: jsonRules("a.**.b", "hash", "*.c*", "fake", "l.1", "remove",
			"u", "unsign", "**.jwt", "unsign", "k.*", "keep", "**.n", "shape", "**.token", "off", "x", "mask"),
			Detectors: jsonRules("card", "fake", "email", "hash", "phone", "shape", "jwt", "unsign")}),
		// Replacements longer than the findings, text scanned in passes.
		newEngine(t, Config{Detectors: jsonRules("card", "hash", "email", "hash", "ipv4", "hash", "phone", "hash",
			"ssn", "hash", "iban", "hash", "jwt", "hash", "bearer", "hash", "credential", "hash", "ipv6", "hash")}),
	}
}

// walkCases are documents at the edges of the editor's fast paths.
func walkCases() []string {
	deep := func(n int, open, close, inner string) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	cases := []string{
		`{"a":[{"b":1,"c":"zoe@example.org"}],"x":"4111111111111111","k":"Zoë"}`,
		`{"password":"p","n":4111111111111111,"l":[1,2,{"ip":"10.0.0.1"}]}`,
		`[{"a":"\u0034111111111111111"},"+1 415 555 2671",null,true,-1.5e3]`,
		"{\n  \"iban\": \"DE89 3704 0044 0532 0130 00\",\n  \"ssn\": \"078-05-1120\"\n}",
		`{"jwt":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln","auth":"Bearer abc123def456","u":"x"}`,
		`"plain"`, `{}`, `[]`, `{"a":{"b":{"c":{}}}}`, `4111111111111111`, `true`, `{"":""}`, `{"\u0070assword":"p"}`,
		`{"p":"{\"password\":\"x\",\"n\":\"[1,\\\"zoe@example.org\\\"]\"}","sessionId":"s"}`,
		`[{"query":"mutation { login(password: \"p\") }","variables":{"otp":"1","card":{"number":"4111111111111111"}}}]`,
		`{"query":"{ user(email: \"zoe@example.org\") }","variables":"{\"token\":\"t\"}","a":{"query":"q password=x"}}`,
		`{"a":{"x":{"b":"4111111111111111"}},"l":[0,"zoe@example.org",{"c1":1}],"k":{"password":"p","a":{"b":1}}}`,
		`{"n":-0.5e-3,"m":1E+2,"t":true,"f":false,"z":null,"s":"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}`,
		`{"a":1,"password":2,"b":3,"token":4,"c":5}`,
		`[{"passwd":"a","passwe":"b","pin":"1","pio":"2","cvv":"3","cvx":"4","api_key_0123456":"k","api_key_0123457":"l"},` +
			`{"passwe":"b","passwd":"a","pio":"2","pin":"1","cvx":"4","cvv":"3","api_key_0123457":"l","api_key_0123456":"k"}]`, `{"password":1,"token":2}`, `[1,{"password":1},2]`,
		`{"a":1,"password":{"x":[1,2]},"token":"t"}`, `{"a" : "x" , "token" :"t" ,"b":[ ]}`,
		"{\"a\":\"4111 1111 1111 1111\",\"b\":\"x\u00a0y\",\"c\":\"\\u0000\"}",
		`{"a":1}{"b":"zoe@example.org"}`,
		`{"a":"10.0.0.1zoe@example.org10.0.0.2 x 1.2.3.4a@b.cx1.2.3.5","10.0.0.1a@b.cx10.0.0.2":1,"n":4111111111111111}`,
		`{"c":"card 4111 1111 1111 1111 4111-1111-1111-1111 4111.1111.1111.1111 4111111111111111 x","d":"4111 1111 1111 1111 4111-1111-1111-1111"}`,
		`{"a":"a@b.cx a@b.cx a@b.cx","b":["10.0.0.1 10.0.0.2","4111 1111 1111 1111 / 4111111111111111"],"c":"x"}`, " {\"a\":1}\n{\"password\":2}\n", "\xef\xbb\xbf{\"a\":\"zoe@example.org\"}",
		`{"a":1,}`, `{"a"}`, `[1 2]`, `{"a":tru}`, `{"a":"\x01"}`, `{"a":"\u12"}`, `{"a":01}`, `{"a":-}`, `[`, `{"a":`,
		deep(maxJSONDepth-1, "[", "]", `"zoe@example.org"`), deep(maxJSONDepth, "[", "]", `1`),
		deep(maxJSONDepth+1, "[", "]", `"a"`), deep(maxJSONDepth+2, "[", "]", `true`),
		deep(maxJSONDepth-1, `{"a":`, "}", `"zoe@example.org"`), deep(maxJSONDepth, `{"a":`, "}", `null`),
		deep(maxJSONDepth+1, `{"a":`, "}", `-1`), deep(maxJSONDepth, `{"password":`, "}", `"p"`),
		deep(maxJSONDepth+1, `{"password":`, "}", `"p"`), deep(maxJSONDepth, "[", "]", `{}`),
	}
	return append(cases, cacheCases...)
}

// checkWalk holds scrubJSON to the reference editor: the same output, change
// flag, error and rule counts.
func checkWalk(t *testing.T, e *Engine, in []byte, multi bool) {
	t.Helper()
	st, ref := &state{e: e}, &state{e: e}
	out, changed, err := st.scrubJSON(bytes.Clone(in), multi)
	rout, rchanged, rerr := ref.refScrubJSON(bytes.Clone(in), multi)
	if !bytes.Equal(out, rout) || changed != rchanged || fmt.Sprint(err) != fmt.Sprint(rerr) ||
		fmt.Sprint(st.counts) != fmt.Sprint(ref.counts) {
		t.Fatalf("scrubJSON(%.200q, multi %v) = %.300q, %v, %v, %v; reference %.300q, %v, %v, %v",
			in, multi, out, changed, err, st.counts, rout, rchanged, rerr, ref.counts)
	}
}

// TestJSONWalkMatchesReference holds the JSON editor to the reference on
// the edge cases, every prefix of them (truncated documents), and every
// engine.
func TestJSONWalkMatchesReference(t *testing.T) {
	engines := walkEngines(t)
	for _, c := range walkCases() {
		for _, e := range engines {
			for _, multi := range []bool{false, true} {
				checkWalk(t, e, []byte(c), multi)
				if len(c) < 400 {
					for n := range len(c) {
						checkWalk(t, e, []byte(c[:n]), multi)
					}
				}
			}
		}
	}
}

// FuzzJSONWalkMatchesReference is TestJSONWalkMatchesReference on arbitrary
// documents.
func FuzzJSONWalkMatchesReference(f *testing.F) {
	for _, c := range walkCases() {
		if len(c) < 1000 {
			f.Add([]byte(c), false)
		}
	}
	engines := walkEngines(f)
	f.Fuzz(func(t *testing.T, in []byte, multi bool) {
		for _, e := range engines {
			checkWalk(t, e, in, multi)
		}
	})
}

// TestNameCachesConcurrent shares one engine with tiny caches between
// goroutines (an engine serves concurrent Redact calls): every result is the
// one a fresh engine gives; run with -race.
func TestNameCachesConcurrent(t *testing.T) {
	shared := tinyCaches(newEngine(t, cacheConfig()))
	cases := walkCases()[:20]
	want := make([]string, len(cases))
	for k, c := range cases {
		ex, res := redactOnce(t, newEngine(t, cacheConfig()), c)
		want[k] = res + ex.String()
	}
	errs := make(chan string, 8)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for k := range 3 * len(cases) {
				k := (k + g*5) % len(cases)
				ex, res := redactOnce(t, shared, cases[k])
				if res+ex.String() != want[k] {
					errs <- cases[k]
					return
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	close(errs)
	for c := range errs {
		t.Errorf("concurrent redaction of %.80q differs from a fresh engine's", c)
	}
}

// TestLooksJSONMatchesTrim holds looksJSON to its definition with
// strings.Trim.
func TestLooksJSONMatchesTrim(t *testing.T) {
	ref := func(s string) bool {
		s = strings.Trim(s, " \t\n\r\f")
		return len(s) >= 2 && (s[0] == '{' && s[len(s)-1] == '}' || s[0] == '[' && s[len(s)-1] == ']')
	}
	parts := []string{"", " ", "\t", "\n", "\r", "\f", "\v", "{", "}", "[", "]", "a", "\u00a0"}
	for _, a := range parts {
		for _, b := range parts {
			for _, c := range parts {
				for _, d := range parts {
					s := a + b + c + d
					if looksJSON(s) != ref(s) {
						t.Fatalf("looksJSON(%q) = %v", s, looksJSON(s))
					}
				}
			}
		}
	}
}
