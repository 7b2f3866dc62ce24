package redactor

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// maskText is what ActionMask writes.
const maskText = "****"

// hashPrefix starts every ActionHash token.
const hashPrefix = "hmac:"

// act is a compiled action.
type act uint8

const (
	actNone   act = iota // no rule: detectors apply
	actKeep              // allow-listed: nothing applies
	actUnsign            // a JWT keeps its header and redacted claims, no signature
	actFake
	actHash
	actMask
	actRemove
)

// strength orders actions for tie-breaks between equally specific rules: the
// stronger wins.
func (a act) strength() int { return int(a) }

// actions maps each configured action to its compiled form.
var actions = map[Action]act{
	ActionRemove: actRemove, ActionDrop: actRemove, ActionMask: actMask, ActionHash: actHash,
	ActionFake: actFake, ActionShape: actFake, ActionKeep: actKeep, ActionOff: actNone,
	ActionUnsign: actUnsign,
}

func parseAction(a Action) (act, bool) {
	x, ok := actions[a]
	return x, ok
}

// fakeKind selects a fake generator; the detector kinds plus generic text.
type fakeKind uint8

const kindText = fakeKind(numKinds)

// kindAuto means: pick the generator from the detector matching the value.
const kindAuto = fakeKind(numKinds + 1)

// kindShape is the shape-keeping fake of free text (names, addresses): every
// letter replaced by a letter of the same script and case, every digit by a
// digit, everything else kept (see fakeShape).
const kindShape = fakeKind(numKinds + 2)

func parseFakeKind(s string) (fakeKind, bool) {
	switch s {
	case "":
		return kindAuto, true
	case "text":
		return kindText, true
	case "shape":
		return kindShape, true
	}
	k, ok := kindByName(s)
	return fakeKind(k), ok
}

// cjkPool is the fallback pool of 3-byte letters of fakeShape.
var cjkPool = collect(0x4E00, 0x9FA5, isLetterOther)

// keyed holds the HMAC key and pools keyed hashers.
type keyed struct {
	key  []byte
	pool sync.Pool
}

func newKeyed(key []byte) *keyed {
	k := &keyed{key: append([]byte(nil), key...)}
	k.pool.New = func() any { return hmac.New(sha256.New, k.key) }
	return k
}

// mac returns HMAC-SHA256(key, parts...).
func (k *keyed) mac(parts ...string) [32]byte {
	h := k.pool.Get().(hash.Hash)
	h.Reset()
	for _, p := range parts {
		h.Write([]byte(p))
	}
	var out [32]byte
	h.Sum(out[:0])
	k.pool.Put(h)
	return out
}

// hashToken is ActionHash: "hmac:" + the first 16 hex digits of the HMAC of v.
// A token of 16 decimal digits (about 1 in 1,800) gets its first digit
// replaced by a letter, deterministically, so a token never looks like a card
// number to the detectors.
func (k *keyed) hashToken(v string) string {
	m := k.mac(v)
	var buf [len(hashPrefix) + 16]byte
	copy(buf[:], hashPrefix)
	hex.Encode(buf[len(hashPrefix):], m[:8])
	if !bytes.ContainsAny(buf[len(hashPrefix):], "abcdef") { // hex digits, all decimal
		buf[len(hashPrefix)] = 'a' + (buf[len(hashPrefix)]-'0')%6
	}
	return string(buf[:])
}

// normalize is the form of a detected value that is hashed, so that equal
// values written differently give the same token: digits for cards, SSNs and
// phones ('+' kept), upper case without spaces for IBANs, lower case for
// emails.
func normalize(kind fakeKind, v string) string {
	switch piiKind(kind) {
	case kindCard, kindSSN, kindPhone:
		var b strings.Builder
		b.Grow(len(v))
		for i := 0; i < len(v); i++ {
			if isDigit(v[i]) || (v[i] == '+' && b.Len() == 0) {
				b.WriteByte(v[i])
			}
		}
		return b.String()
	case kindIBAN:
		return strings.ToUpper(strings.ReplaceAll(v, " ", ""))
	case kindEmail, kindIPv6:
		return strings.ToLower(v)
	}
	return v
}

// stream is a deterministic byte stream seeded by an HMAC: block i is
// SHA-256(seed || i).
type stream struct {
	seed [32]byte
	buf  [32]byte
	ctr  uint32
	off  int
}

func (k *keyed) newStream(kind fakeKind, norm string) *stream {
	return &stream{seed: k.mac("fake", string([]byte{byte(kind)}), norm), off: 32}
}

func (r *stream) byte() byte {
	if r.off == 32 {
		var in [36]byte
		copy(in[:], r.seed[:])
		binary.BigEndian.PutUint32(in[32:], r.ctr)
		r.ctr++
		r.buf = sha256.Sum256(in[:])
		r.off = 0
	}
	b := r.buf[r.off]
	r.off++
	return b
}

// intn returns a uniform integer in [0, n), n <= 256.
func (r *stream) intn(n int) int {
	limit := 256 - 256%n
	for {
		b := int(r.byte())
		if b < limit {
			return b % n
		}
	}
}

func (r *stream) digit() byte   { return byte('0' + r.intn(10)) }
func (r *stream) lower() byte   { return byte('a' + r.intn(26)) }
func (r *stream) upper() byte   { return byte('A' + r.intn(26)) }
func (r *stream) nonzero() byte { return byte('1' + r.intn(9)) }

// fake returns a format-preserving fake of v of the given kind, derived from
// the HMAC of the normalised v: equal inputs give equal fakes. A fake never
// equals its input: the generator is retried on the continuing stream, and a
// value with no room for change (such as punctuation only) is masked.
func (k *keyed) fake(kind fakeKind, v string) string {
	r := k.newStream(kind, normalize(kind, v))
	for range 8 {
		if out := fakeOnce(r, kind, v); out != v {
			return out
		}
	}
	return maskText
}

// fakers are the fake generators of the detector kinds; each gets the
// value, though some ignore it.
var fakers = [numKinds]func(r *stream, v string) string{
	kindJWT:        fakeJWT,
	kindBearer:     fakeText,
	kindCredential: fakeCredential,
	kindEmail:      fakeEmail,
	kindIBAN:       fakeIBAN,
	kindCard:       fakeCard,
	kindSSN:        fakeSSN,
	kindPhone:      fakePhone,
	kindIPv6:       fakeIPv6,
	kindIPv4:       fakeIPv4,
}

func fakeOnce(r *stream, kind fakeKind, v string) string {
	switch {
	case kind < kindText:
		return fakers[kind](r, v)
	case kind == kindShape:
		return fakeShape(r, v)
	}
	return fakeText(r, v)
}

// fakeCard keeps the separators and the first two digits (the network),
// replaces the other digits and fixes the last one so the number passes Luhn.
func fakeCard(r *stream, v string) string {
	b := []byte(v)
	var arr [32]int
	pos := arr[:0]
	for i, c := range b {
		if isDigit(c) {
			pos = append(pos, i)
		}
	}
	n := len(pos)
	if n < 2 {
		return fakeText(r, v)
	}
	for k := 2; k < n-1; k++ {
		b[pos[k]] = r.digit()
	}
	b[pos[n-1]] = luhnCheckDigit(b)
	return string(b)
}

// luhnCheckDigit returns the digit to put in the last digit position of b so
// that b passes Luhn (the current last digit is ignored).
func luhnCheckDigit(b []byte) byte {
	k := len(b) - 1
	for k >= 0 && !isDigit(b[k]) {
		k--
	}
	if k < 0 {
		return '0'
	}
	c := b[k]
	b[k] = '0' // contributes nothing to the sum
	sum := luhnSum(string(b))
	b[k] = c
	return byte('0' + (10-sum%10)%10)
}

// fakeEmail returns "u" + 10 hex digits + "@example.com".
func fakeEmail(r *stream, _ string) string {
	var b [len("u0000000000@example.com")]byte
	b[0] = 'u'
	const hexd = "0123456789abcdef"
	for i := 1; i <= 10; i++ {
		b[i] = hexd[r.intn(16)]
	}
	copy(b[11:], "@example.com")
	return string(b[:])
}

// fakePhone keeps every non-digit (so the format stays), the '+' and country
// code group when written apart ("+44 ..."), or else the first digit, and
// replaces the other digits.
func fakePhone(r *stream, v string) string {
	b := []byte(v)
	keep := 1 // digits kept from the start
	digitsSeen := 0
	if len(b) > 0 && b[0] == '+' {
		g := 0
		for g+1 < len(b) && isDigit(b[g+1]) {
			g++
		}
		if g <= 3 && g+1 < len(b) {
			keep = g
		}
	}
	for i, c := range b {
		if !isDigit(c) {
			continue
		}
		if digitsSeen >= keep {
			b[i] = r.digit()
		}
		digitsSeen++
	}
	return string(b)
}

// fakeSSN returns a valid-looking ###-##-####: area 001-899 except 666,
// group 01-99, serial 0001-9999.
func fakeSSN(r *stream, _ string) string {
	area := 0
	for area == 0 || area == 666 {
		area = (int(r.byte())<<8 | int(r.byte())) % 900
	}
	group := 1 + r.intn(99)
	serial := 1 + (int(r.byte())<<8|int(r.byte()))%9999
	b := make([]byte, 0, 11)
	b = appendPadded(b, area, 3)
	b = append(b, '-')
	b = appendPadded(b, group, 2)
	b = append(b, '-')
	b = appendPadded(b, serial, 4)
	return string(b)
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// fakeIBAN keeps the country, the spacing and the letter/digit shape of the
// BBAN, replaces the BBAN characters and recomputes the check digits.
func fakeIBAN(r *stream, v string) string {
	b := []byte(v)
	var arr [40]int
	pos := arr[:0]
	for i, c := range b {
		if c != ' ' {
			pos = append(pos, i)
		}
	}
	n := len(pos)
	if n < 5 {
		return fakeText(r, v)
	}
	for k := 4; k < n; k++ {
		c := b[pos[k]]
		switch {
		case isDigit(c):
			b[pos[k]] = r.digit()
		case c >= 'a' && c <= 'z':
			b[pos[k]] = r.lower()
		default:
			b[pos[k]] = r.upper()
		}
	}
	b[pos[2]], b[pos[3]] = '0', '0'
	check := 98 - ibanMod97(string(b))
	b[pos[2]], b[pos[3]] = byte('0'+check/10), byte('0'+check%10)
	return string(b)
}

// fakeIPv4 returns an address in a documentation range (RFC 5737):
// 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24, host 1-254.
func fakeIPv4(r *stream, _ string) string {
	nets := [...]string{"192.0.2.", "198.51.100.", "203.0.113."}
	return nets[r.intn(3)] + strconv.Itoa(1+r.intn(254))
}

// fakeIPv6 returns an address in the documentation prefix 2001:db8::/32
// (RFC 3849).
func fakeIPv6(r *stream, _ string) string {
	const hexd = "0123456789abcdef"
	b := []byte("2001:db8::")
	for g := range 2 {
		if g > 0 {
			b = append(b, ':')
		}
		b = append(b, hexd[1+r.intn(15)], hexd[r.intn(16)], hexd[r.intn(16)], hexd[r.intn(16)])
	}
	return string(b)
}

// fakeJWT keeps the header segment (algorithm and type, no personal data) and
// replaces every other base64url character.
func fakeJWT(r *stream, v string) string {
	b := []byte(v)
	dot := strings.IndexByte(v, '.')
	if dot < 0 {
		return fakeText(r, v)
	}
	for i := dot + 1; i < len(b); i++ {
		b[i] = fakeClassByte(r, b[i])
	}
	return string(b)
}

// fakeText replaces every ASCII letter and digit by a random one of the same
// class (upper, lower, digit), every non-ASCII character by a random lower-case
// letter, and keeps punctuation and white space: the shape of the value stays.
func fakeText(r *stream, v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); {
		c := v[i]
		if c < 0x80 {
			b = append(b, fakeClassByte(r, c))
			i++
			continue
		}
		// Skip the whole UTF-8 sequence (or one invalid byte).
		i++
		for i < len(v) && v[i]&0xC0 == 0x80 {
			i++
		}
		b = append(b, r.lower())
	}
	return string(b)
}

func fakeClassByte(r *stream, c byte) byte {
	switch {
	case isDigit(c):
		return r.digit()
	case c >= 'a' && c <= 'z':
		return r.lower()
	case c >= 'A' && c <= 'Z':
		return r.upper()
	}
	return c
}
