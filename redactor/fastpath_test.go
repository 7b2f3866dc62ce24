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
		Request:  &mlv1.Request{Url: "/x?q=1", Headers: hs(), Body: []byte(body)},
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
	e.keys, e.hdrs = newNameCacheBits[keyClass](1), newNameCacheBits[headerClass](1)
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
