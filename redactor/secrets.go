package redactor

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Credential formats found in free text, modelled on the rules of secret
// scanners such as gitleaks: a fixed, recognisable prefix and a body of a
// known alphabet and length. Each matcher returns the end of the token, or 0.

// credPrefix is one token format: prefix, body alphabet and length bounds.
type credPrefix struct {
	prefix   string
	alphabet uint8 // character class of the body (cAlnum, cB64URL, ...)
	min, max int   // body length
	upper    bool  // body must be upper-case letters and digits (AWS)
}

// credFormats lists the token formats, each family sharing one body
// alphabet and length bounds.
var credFormats = []struct {
	prefixes []string
	body     credPrefix // all but the prefix
}{
	// AWS access key ids: AKIA (long-term), ASIA (temporary), ABIA, ACCA,
	// A3T.
	{[]string{"AKIA", "ASIA", "ABIA", "ACCA"}, credPrefix{min: 16, max: 16, upper: true}},
	{[]string{"A3T"}, credPrefix{min: 17, max: 17, upper: true}},
	// Google API keys.
	{[]string{"AIza"}, credPrefix{alphabet: cB64URL, min: 35, max: 35}},
	// GitHub tokens: personal, OAuth, user-to-server, server-to-server,
	// refresh, fine-grained.
	{[]string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}, credPrefix{alphabet: cAlnum, min: 36, max: 255}},
	{[]string{"github_pat_"}, credPrefix{alphabet: cB64URL, min: 22, max: 255}},
	// GitLab personal, deploy, runner, pipeline trigger and CI job tokens.
	{[]string{"glpat-", "gldt-", "glrt-", "glptt-", "glcbt-"}, credPrefix{alphabet: cB64URL, min: 20, max: 255}},
	// Slack bot, user, app, refresh, legacy and configuration tokens.
	{[]string{"xoxb-", "xoxp-", "xoxa-", "xoxr-", "xoxs-", "xoxe-", "xoxo-", "xapp-"}, credPrefix{alphabet: cB64URL, min: 10, max: 255}},
	// Stripe secret and restricted keys, and publishable keys (not secret,
	// but they identify the account).
	{[]string{"sk_live_", "sk_test_", "sk_prod_", "rk_live_", "rk_test_", "rk_prod_", "pk_live_", "pk_test_"}, credPrefix{alphabet: cAlnum, min: 10, max: 255}},
	// OpenAI and Anthropic API keys.
	{[]string{"sk-"}, credPrefix{alphabet: cB64URL, min: 32, max: 255}},
	// PyPI upload tokens.
	{[]string{"pypi-AgEIcHlwaS5vcmc"}, credPrefix{alphabet: cB64URL, min: 50, max: 1000}},
	// Stripe webhook signing secrets.
	{[]string{"whsec_"}, credPrefix{alphabet: cAlnum, min: 20, max: 255}},
	// npm access tokens.
	{[]string{"npm_"}, credPrefix{alphabet: cAlnum, min: 36, max: 36}},
	// SendGrid API keys: SG.<22>.<43>.
	{[]string{"SG."}, credPrefix{alphabet: cB64URL, min: 22, max: 22}},
}

// credPrefixes lists the token formats by first byte (from credFormats).
var credPrefixes [256][]credPrefix

// credStart and credSecond are bit sets of the first and second bytes of the
// credential prefixes, for a cheap pre-check: bit k of credStart[c] is set
// when some prefix starts with c and has a second byte of class k.
var credStart, credSecond [256]uint64

// credFirst marks the first bytes of credential prefixes.
var credFirst [256]bool

func init() {
	add := func(p string) {
		// One bit per (first byte, second byte) pair, hashed into 64 bits.
		bit := uint64(1) << ((uint(p[0])*7 + uint(p[1])) % 64)
		credStart[p[0]] |= bit
		credSecond[p[1]] |= bit
		credFirst[p[0]] = true
	}
	for _, f := range credFormats {
		for _, prefix := range f.prefixes {
			p := f.body
			p.prefix = prefix
			credPrefixes[prefix[0]] = append(credPrefixes[prefix[0]], p)
			add(prefix)
		}
	}
	add(pemBegin)
	buildLetterPairs() // needs credFirst, credStart and credSecond
}

// pemBegin and pemEnd delimit a PEM block; only private keys are credentials.
const (
	pemBegin = "-----BEGIN "
	pemEnd   = "-----END "
)

// matchCredential matches a well-known credential at s[i] (at a word
// boundary): a token with a known prefix followed by at least the format's
// minimum number of body characters and not followed by another body
// character, or a PEM private key block from "-----BEGIN ... PRIVATE
// KEY-----" to the end of its "-----END ...-----" line (to the end of the
// text when the block is cut).
func matchCredential(s string, i int) int {
	c := s[i]
	if c == '-' {
		return matchPEM(s, i)
	}
	for _, p := range credPrefixes[c] {
		if len(s)-i <= len(p.prefix) || s[i:i+len(p.prefix)] != p.prefix {
			continue
		}
		j := i + len(p.prefix)
		st := j
		for j < len(s) && j-st <= p.max && credBody(p, s[j]) {
			j++
		}
		if j-st < p.min || j-st > p.max {
			continue
		}
		if p.prefix == "SG." {
			// Second segment: ".<43>".
			if j >= len(s) || s[j] != '.' {
				continue
			}
			j++
			st2 := j
			for j < len(s) && class[s[j]]&cB64URL != 0 {
				j++
			}
			if j-st2 != 43 {
				continue
			}
		}
		if j < len(s) && class[s[j]]&cB64URL != 0 {
			continue
		}
		return j
	}
	return 0
}

func credBody(p credPrefix, c byte) bool {
	if p.upper {
		return isDigit(c) || isUpper(c)
	}
	return class[c]&p.alphabet != 0
}

// matchPEM matches a PEM private key block at s[i]; a block without key
// material (a BEGIN line alone, cut right after it) holds no secret and is
// not a finding.
func matchPEM(s string, i int) int {
	hs := pemHeaderEnd(s[i:])
	if hs < 0 {
		return 0
	}
	hs += i
	e := strings.Index(s[hs:], pemEnd)
	body, end := s[hs:], len(s)
	if e >= 0 {
		bodyEnd := hs + e
		body = s[hs:bodyEnd]
		j := bodyEnd + len(pemEnd)
		if k := strings.Index(s[j:], "-----"); k >= 0 {
			end = j + k + 5
		}
	}
	if !hasAlnum(body) {
		return 0
	}
	return end
}

// pemHeaderEnd returns the end of the "-----BEGIN ... PRIVATE KEY-----"
// marker at the start of v (the bytes after it, on its line or the next
// ones, are the key), or -1 when v does not start with one.
func pemHeaderEnd(v string) int {
	if !strings.HasPrefix(v, pemBegin) {
		return -1
	}
	head := v
	if eol := strings.IndexByte(v, '\n'); eol >= 0 {
		head = v[:eol]
	}
	k := strings.Index(head, "PRIVATE KEY")
	if k < 0 {
		return -1
	}
	d := strings.Index(head[k:], "-----")
	if d < 0 {
		return -1
	}
	return k + d + 5
}

// hasAlnum reports whether s holds a letter or digit.
func hasAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if isAlnum(s[i]) {
			return true
		}
	}
	return false
}

// credPrefixLen is the length of the recognisable prefix of a credential
// found by matchCredential, kept by its fake ("ghp_", "sk_live_", "AKIA").
func credPrefixLen(v string) int {
	if v == "" || v[0] == '-' {
		return 0
	}
	for _, p := range credPrefixes[v[0]] {
		if strings.HasPrefix(v, p.prefix) {
			return len(p.prefix)
		}
	}
	return 0
}

// fakeCredential keeps the prefix of a credential (so a shadow that checks
// the token's kind still sees it) and replaces every other letter and digit;
// a PEM block keeps its BEGIN marker and END line.
func fakeCredential(r *stream, v string) string {
	if hs := pemHeaderEnd(v); hs >= 0 {
		// The key between the BEGIN marker and the END line (or the end of
		// a cut block).
		be := len(v)
		if last := strings.LastIndex(v, pemEnd); last >= hs {
			be = last
		}
		return v[:hs] + fakeText(r, v[hs:be]) + v[be:]
	}
	p := credPrefixLen(v)
	return v[:p] + fakeText(r, v[p:])
}

// ---- secret-like names ----

// secretName reports whether a header, JSON key, form field, query
// parameter or XML element/attribute name looks like it holds a secret. The
// name is split into words at non-alphanumeric bytes and at camel-case
// boundaries ("clientSecret" -> client, secret; "X-Api-Key" -> x, api, key);
// then:
//   - password, passwd, passphrase, passcode and secret anywhere in a word
//     (not secretary/secretariat), pwd, credential(s), creds, cookie(s),
//     authorization, auth, otp, totp, hotp, cvv, cvc, cvv2, cvc2 as words,
//     and token(s) as a word or at the end of one (accessToken, csrftoken;
//     not tokenizer);
//   - key only after a qualifier word (api, access, secret, private, session,
//     auth, signing, encryption, client, master, license, ssh, app, consumer,
//     account, storage, shared, service, webhook, hmac, subscription, ...),
//     or run together with one (apikey, authkey, secretkey, privatekey);
//   - session alone or with id, key, token, cookie (sessionId, session-key),
//     sessionid, sessid, jsessionid, phpsessid;
//   - pass and pin alone or with phrase, word, code, key or number;
//
// unless a word names metadata about the secret rather than the secret itself
// (type, count, length, max, min, expires, ttl, url, policy, page, cursor,
// ...), so max_tokens, token_type, password_min_length, next_page_token and
// session_expires_at are not secret. "monkey", "keyboard_layout", "author"
// and "tokenizer_version" are not secret either.
func secretName(name string) bool {
	if len(name) < 2 || len(name) > maxSecretName || !secretAnchor(name) {
		return false
	}
	var small [64]byte
	var low []byte
	if len(name) <= len(small) {
		low = small[:len(name)]
	} else {
		low = make([]byte, len(name))
	}
	for k := 0; k < len(name); k++ {
		low[k] = lowerByte(name[k])
	}
	ls := unsafe.String(&low[0], len(low)) // valid while low is
	// Split into words (bounds into ls).
	var bounds [16][2]uint16
	nw := nameWords(name, &bounds)
	anchored := false
	word := func(w int) string {
		if w < 0 || w >= nw {
			return ""
		}
		return ls[bounds[w][0]:bounds[w][1]]
	}
	secret := false
	for w := 0; w < nw && !secret; w++ {
		cur := word(w)
		if len(cur) < 3 || !secretAnchor(cur) {
			continue
		}
		anchored = true
		secret = secretWord(cur, word(w-1), word(w+1), nw)
	}
	if !anchored || !secret {
		return false
	}
	for w := 0; w < nw; w++ {
		if metadataWord(word(w)) {
			return false
		}
	}
	return true
}

// nameWords splits name into words at non-alphanumeric bytes and at
// camel-case boundaries, stores their bounds and returns how many there are;
// beyond len(bounds) words, the last one takes the rest of the name.
func nameWords(name string, bounds *[16][2]uint16) int {
	nw, start := 0, -1
	for k := 0; k <= len(name); k++ {
		boundary := k == len(name) || !isAlnum(name[k])
		if !boundary && start >= 0 && k > start {
			boundary = camelBoundary(name, k)
		}
		if boundary {
			switch {
			case start < 0:
			case nw < len(bounds):
				bounds[nw] = [2]uint16{uint16(start), uint16(k)}
				nw++
			default:
				bounds[nw-1][1] = uint16(k) // more words: the last one takes the rest
			}
			start = -1
			if k < len(name) && isAlnum(name[k]) {
				start = k
			}
			continue
		}
		if start < 0 {
			start = k
		}
	}
	return nw
}

// camelBoundary reports whether a new word starts at name[k] (k > 0, both
// bytes alphanumeric) by case: "clientSecret" -> client, Secret; "APIKey" ->
// API, Key.
func camelBoundary(name string, k int) bool {
	c, p := name[k], name[k-1]
	if !isUpper(c) {
		return false
	}
	return (p >= 'a' && p <= 'z') || (isUpper(p) && k+1 < len(name) && name[k+1] >= 'a' && name[k+1] <= 'z')
}

// maxSecretName bounds the names secretName classifies (longer ones are
// not secret-like names but data).
const maxSecretName = 1024

// anchorTrigrams is the set of letter triples (case-insensitive) at least
// one of which every secret-like word contains: pas(s), pwd, sec(ret),
// ses(sion, sid), tok(en), cre(dential, ds), coo(kie), aut(h), otp, cvv,
// cvc, key, pin. A triple is indexed by its letters' low five bits.
var anchorTrigrams [1 << 15 / 64]uint64

func init() {
	for _, t := range []string{"pas", "pwd", "sec", "ses", "tok", "cre", "coo", "aut", "otp", "cvv", "cvc", "key", "pin"} {
		x := uint(t[0]&31)<<10 | uint(t[1]&31)<<5 | uint(t[2]&31)
		anchorTrigrams[x/64] |= 1 << (x % 64)
	}
}

// secretAnchor is the cheap pre-check of secretName: whether name contains
// an anchor trigram of letters (ignoring case).
func secretAnchor(name string) bool {
	var x uint
	run := 0
	for i := 0; i < len(name); i++ {
		c := name[i] | 0x20
		if c < 'a' || c > 'z' {
			run = 0
			continue
		}
		x = (x<<5 | uint(c&31)) & (1<<15 - 1)
		if run++; run >= 3 && anchorTrigrams[x/64]&(1<<(x%64)) != 0 {
			return true
		}
	}
	return false
}

// secretWord classifies one lower-case word of a name with its neighbours.
func secretWord(w, prev, next string, nw int) bool {
	switch w {
	case "pwd", "credential", "credentials", "creds", "cookie", "cookies", "authorization",
		"auth", "otp", "totp", "hotp", "cvv", "cvc", "cvv2", "cvc2", "token", "tokens",
		"apikey", "authkey", "secretkey", "privatekey", "accesskey", "signingkey",
		"sessionid", "sessid", "jsessionid", "phpsessid", "sessionkey", "sessiontoken":
		return true
	case "key", "keys":
		return keyQualifier(prev)
	case "session":
		return nw == 1 || next == "id" || next == "key" || next == "token" || next == "cookie" || next == "secret"
	case "pass", "pin":
		return nw == 1 || next == "phrase" || next == "word" || next == "code" || next == "key" || next == "number"
	}
	if strings.Contains(w, "passw") || strings.Contains(w, "passphrase") || strings.Contains(w, "passcode") {
		return true
	}
	if k := strings.Index(w, "secret"); k >= 0 && !strings.HasPrefix(w[k:], "secretar") {
		return true
	}
	if strings.HasSuffix(w, "token") || strings.HasSuffix(w, "tokens") || strings.HasSuffix(w, "credential") ||
		strings.HasSuffix(w, "credentials") {
		return true
	}
	return false
}

// keyQualifier reports words that make a following "key" a secret.
func keyQualifier(w string) bool {
	switch w {
	case "api", "access", "secret", "private", "session", "auth", "signing", "sign", "encryption",
		"encrypt", "decryption", "enc", "client", "master", "license", "licence", "ssh", "app",
		"consumer", "account", "storage", "shared", "service", "webhook", "hmac", "aes", "rsa",
		"pgp", "gpg", "deploy", "admin", "root", "crypto", "jwt", "subscription", "product",
		"recovery", "backup", "otp", "mfa", "totp", "x", "sas", "signature", "password":
		return true
	}
	return false
}

// metadataWord reports words naming metadata about a secret, not the secret.
func metadataWord(w string) bool {
	switch w {
	case "type", "types", "kind", "count", "counts", "length", "len", "size", "min", "max",
		"minimum", "maximum", "limit", "limits", "num", "total", "usage", "used", "remaining",
		"prompt", "completion", "input", "output", "cached", "reasoning", "expires", "expiry",
		"expiration", "expire", "exp", "ttl", "lifetime", "age", "policy", "rules", "strength",
		"required", "enabled", "disabled", "url", "uri", "endpoint", "path", "format", "mode",
		"method", "methods", "scheme", "provider", "status", "at", "timestamp", "updated",
		"changed", "created", "version", "algorithm", "alg", "label", "placeholder", "name",
		"page", "pagination", "cursor", "continuation", "next", "prev", "previous", "field",
		"fields", "rotation", "strategy", "issuer", "audience":
		return true
	}
	return false
}

// compileSecretNames compiles the secret_names rule (nil: off).
func (e *Engine) compileSecretNames(r *Rule, need func(section, key string, r rule)) error {
	if r == nil {
		return nil
	}
	if r.On != "" || (r.Kind != "" && r.Action != ActionFake && r.Action != ActionShape) {
		return fmt.Errorf("secret_names: on is not valid, kind only with fake")
	}
	cr, err := compileRule("secret_names", "secret_names", "", *r, false)
	if err != nil {
		return err
	}
	if cr.act == actUnsign {
		return fmt.Errorf("secret_names.action: unsign applies only to header, JSON field, form field and query parameter rules and the jwt detector")
	}
	if cr.act == actNone || cr.act == actKeep {
		return nil
	}
	need("secret_names", "action", cr)
	e.secretOn = true
	named := func(section string) rule {
		c := cr
		if r.Name == "" {
			c.name = section + ":secret-name"
		}
		return c
	}
	e.secretJSON = named("json")
	e.secretForm = named("form")
	e.secretQuery = named("query")
	e.secretText = named("text")
	e.secretHeader = named("header")
	e.secretHeader.act = actRemove
	return nil
}

// offGlobs compiles the names of the rules switched off in m; for JSON paths
// (lastSeg), the last segment of the path.
func offGlobs(m map[string]Rule, lastSeg bool) []glob {
	var out []glob
	for _, k := range sortedKeys(m) {
		if m[k].Action != ActionOff {
			continue
		}
		if lastSeg {
			if i := strings.LastIndexByte(k, '.'); i >= 0 {
				k = k[i+1:]
			}
			if k == "*" || k == "**" || k == "" {
				continue
			}
		}
		out = append(out, compileGlob(k))
	}
	return out
}

// secretMatch reports whether secret_names applies to name: it is on, no
// rule for the name was switched off, and the name looks secret.
func (e *Engine) secretMatch(off []glob, name string) bool {
	return e.secretOn && e.secrets.match(off, name)
}

// secretCacheSlots and maxCachedName size the secret-name cache: at most
// secretCacheSlots entries of at most maxCachedName bytes each (at most about
// 180 KB per engine), whatever the names a stream carries.
const (
	secretCacheBits  = 11
	secretCacheSlots = 1 << secretCacheBits
	maxCachedName    = 64
)

// secretCache memoises secretName per engine. The names an API uses (JSON
// keys, headers, query parameters) are few and repeat on every record, so
// most look-ups are one hash and one comparison instead of a scan of the
// name. It is two-way set-associative and fixed in size: a stream of
// distinct names only replaces entries (each miss costs one small
// allocation), and the random multiplier of the slot hash keeps a sender
// from choosing names that collide on purpose. Safe for concurrent use.
type secretCache struct {
	mul   uint64 // odd multiplier of the slot hash, random per engine
	slots [secretCacheSlots]atomic.Pointer[secretEntry]
}

// secretEntry is one cached classification; the name is copied in (names
// may alias a record's buffers) and the entry holds no pointer.
type secretEntry struct {
	n      uint8
	secret bool
	name   [maxCachedName]byte
}

// newSecretCache returns an empty cache with a random slot hash.
func newSecretCache() *secretCache {
	return &secretCache{mul: rand.Uint64() | 1}
}

// match reports whether no glob of off matches name and name looks secret
// (secretName, through the cache).
func (c *secretCache) match(off []glob, name string) bool {
	for i := range off {
		if off[i].match(name) {
			return false
		}
	}
	if c == nil || len(name) < 2 || len(name) > maxCachedName {
		return secretName(name)
	}
	// A cheap hash of the length and four bytes: a collision or a stream of
	// distinct names only costs a miss, never a wrong answer.
	n := len(name)
	h := uint64(n) | uint64(name[0])<<8 | uint64(name[1])<<16 | uint64(name[n/2])<<24 | uint64(name[n-1])<<32
	// Two-way: a name lives in either slot of its pair.
	k := (h * c.mul) >> (64 - secretCacheBits)
	a, b := &c.slots[k], &c.slots[k^1]
	ea := a.Load()
	if ea != nil && string(ea.name[:ea.n]) == name {
		return ea.secret
	}
	eb := b.Load()
	if eb != nil && string(eb.name[:eb.n]) == name {
		return eb.secret
	}
	secret := secretName(name)
	en := &secretEntry{n: uint8(len(name)), secret: secret}
	copy(en.name[:], name)
	if ea == nil || eb != nil && k&1 == 0 {
		a.Store(en) // free, or the pair is full: replace by parity
	} else {
		b.Store(en)
	}
	return secret
}
