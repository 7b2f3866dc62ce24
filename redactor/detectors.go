package redactor

// Detectors find personal data inside free text. They are hand-written
// scanners (no regular expressions): each anchors on a cheap trigger byte at a
// word boundary and validates the candidate fully (Luhn, mod-97, SSN areas,
// octet ranges, ...). The exact rules are documented in docs/redaction.md.

import (
	"slices"
)

// piiKind is a class of personal data a detector finds.
type piiKind uint8

// Detector kinds, in order of precedence when two findings overlap (the lower
// value wins the merged span).
const (
	kindJWT piiKind = iota
	kindBearer
	kindCredential
	kindEmail
	kindIBAN
	kindCard
	kindSSN
	kindPhone
	kindIPv6
	kindIPv4
	numKinds
)

var kindNames = [numKinds]string{
	kindJWT:        "jwt",
	kindBearer:     "bearer",
	kindCredential: "credential",
	kindEmail:      "email",
	kindIBAN:       "iban",
	kindCard:       "card",
	kindSSN:        "ssn",
	kindPhone:      "phone",
	kindIPv6:       "ipv6",
	kindIPv4:       "ipv4",
}

// String returns the detector name used in configuration and rule names.
func (k piiKind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// kindByName maps a detector name to its piiKind.
func kindByName(s string) (piiKind, bool) {
	k := slices.Index(kindNames[:], s)
	return piiKind(max(k, 0)), k >= 0
}

// span is one finding: s[start:end] is of the given kind.
type span struct {
	start, end int
	kind       piiKind
}

// Character classes.
const (
	cDigit   = 1 << iota // 0-9
	cUpper               // A-Z
	cLower               // a-z
	cLocal               // email local part: alnum . _ % + -
	cDomain              // email domain label: alnum -
	cB64URL              // base64url alphabet: alnum - _
	cToken68             // RFC 7235 token68: alnum - . _ ~ + /
	cTrigger             // a byte that can start or anchor a finding
)

const cAlnum = cDigit | cUpper | cLower

var class [256]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		class[c] |= cDigit | cLocal | cDomain | cB64URL | cToken68 | cTrigger
	}
	for c := 'A'; c <= 'Z'; c++ {
		class[c] |= cUpper | cLocal | cDomain | cB64URL | cToken68
	}
	for c := 'a'; c <= 'z'; c++ {
		class[c] |= cLower | cLocal | cDomain | cB64URL | cToken68
	}
	for _, c := range "._%+-" {
		class[c] |= cLocal
	}
	class['-'] |= cDomain | cB64URL | cToken68
	class['_'] |= cB64URL | cToken68
	for _, c := range ".~+/" {
		class[c] |= cToken68
	}
	for _, c := range "+(@" {
		class[c] |= cTrigger
	}
	// Triggers: 'e' (JWT "eyJ"), 'b'/'B' (bearer/basic), upper case (IBAN).
	class['e'] |= cTrigger
	class['b'] |= cTrigger
	for c := 'A'; c <= 'Z'; c++ {
		class[c] |= cTrigger
	}
	// Credentials start with a known prefix (ghp_, glpat-, xoxb-, sk_live_,
	// whsec_, npm_, pypi-, -----BEGIN, ...); IPv6 with a hex digit (see
	// find) or "::".
	for _, c := range "gxsrpnw-:" {
		class[c] |= cTrigger
	}
	// Non-ASCII bytes may be part of internationalised email addresses.
	for c := 0x80; c < 0x100; c++ {
		class[c] |= cLocal | cDomain
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlnum(c byte) bool { return class[c]&cAlnum != 0 }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// detectors is the set of enabled detectors.
type detectors struct {
	on [numKinds]bool
}

// any reports whether at least one detector is enabled.
func (d *detectors) any() bool { return slices.Contains(d.on[:], true) }

// find appends the findings in s to out, sorted by start and with overlapping
// findings merged (the merged span takes the kind of highest precedence).
func (d *detectors) find(s string, out []span) []span {
	n := len(s)
	if n < 6 {
		return out
	}
	base := len(out)
	// maybeIPv6 is the cheap pre-check of IPv6 addresses (a look for a
	// ':' over the whole text first costs more than it saves).
	v6 := d.on[kindIPv6]
	for i := 0; i < n; i++ {
		c := s[i]
		if class[c]&cTrigger == 0 {
			if isAlnum(c) {
				// No finding starts inside a word: skip to its end.
				st := i
				i = wordEnd(s, i+1) - 1
				if v6 && i+1 < n && s[i+1] == ':' {
					i, out = hexWordIPv6(s, st, i, out)
				}
			}
			continue
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
		var prev byte = ' '
		if i > 0 {
			prev = s[i-1]
		}
		if isAlnum(prev) {
			for isAlnum(c) && i+1 < n && isAlnum(s[i+1]) {
				i++
			}
			continue
		}
		if v6 && maybeIPv6(s, i) {
			if e := matchIPv6(s, i); e > 0 {
				out = append(out, span{i, e, kindIPv6})
				i = e - 1
				continue
			}
		}
		// Cheap pre-checks of matchAt, inline: a letter that can start no
		// finding with the byte after it, a lone number.
		if c >= 'A' && !letterMayStart(s, i, c) {
			i = wordEnd(s, i+1) - 1
			continue
		}
		if isDigit(c) {
			j := i + 1
			for j < n && isDigit(s[j]) {
				j++
			}
			// A lone number, or digits after "<digit>." (a fraction, a
			// later part of a version or an address): no SSN, card, IPv4
			// address or phone number starts there.
			if j-i < 13 && (j == n || !digitFollow[s[j]]) || prev == '.' && i >= 2 && isDigit(s[i-2]) {
				i = wordEnd(s, j) - 1
				continue
			}
		}
		if st, end, kind := d.matchAt(s, i, prev); end > 0 {
			out = append(out, span{st, end, kind})
			i = end - 1
		} else if isAlnum(c) {
			// Skip the rest of this word: no position inside it is at a word
			// boundary (emails are anchored at their '@', not a word byte).
			i = wordEnd(s, i+1) - 1
		}
	}
	if len(out)-base < 2 {
		return out // nothing to sort or merge: spare the call
	}
	return mergeSpans(out, base)
}

// letterMayStart is the pre-check of matchAt at a letter trigger c = s[i]:
// whether a finding can start there given the byte after it (letterPairs).
func letterMayStart(s string, i int, c byte) bool {
	var c2 byte
	if i+1 < len(s) {
		c2 = s[i+1]
	}
	return letterPairs[c][c2>>6]>>(c2&63)&1 != 0
}

// letterPairs holds, for each first byte c, the set of second bytes c2 with
// which a finding can start at a letter c (letterPair). It is built by
// buildLetterPairs once the credential prefixes are (secrets.go's init).
var letterPairs [256][4]uint64

func buildLetterPairs() {
	for c := range 256 {
		for c2 := range 256 {
			if letterPair(byte(c), byte(c2)) {
				letterPairs[c][c2>>6] |= 1 << (c2 & 63)
			}
		}
	}
}

// letterPair reports whether a finding can start with the letter c followed
// by c2 (0 at the end of the text): a JWT ("ey"), a bearer or basic scheme
// ("be", "Ba"), a credential prefix or an IBAN (two upper-case letters).
func letterPair(c, c2 byte) bool {
	return (c == 'e' && c2 == 'y') || ((c == 'b' || c == 'B') && (c2|0x20 == 'e' || c2 == 'a')) ||
		(credFirst[c] && credStart[c]&credSecond[c2] != 0) || (isUpper(c) && isUpper(c2))
}

// hexWordIPv6 handles the word s[st:i+1], followed by ':', whose first
// byte triggers no detector: an IPv6 address may start with a hex letter
// that is no trigger (a, c, d, f), its first group a word of at most four hex
// digits. Such an address is appended to out and the index of its last byte
// returned; otherwise i.
func hexWordIPv6(s string, st, i int, out []span) (int, []span) {
	if i-st < 4 && hexDigit[s[st]] && (st == 0 || !isAlnum(s[st-1])) && maybeIPv6(s, st) {
		if e := matchIPv6(s, st); e > 0 {
			return e - 1, append(out, span{st, e, kindIPv6})
		}
	}
	return i, out
}

// matchAt runs the enabled detectors that may start at the trigger byte s[i]
// (at a word boundary; prev is the byte before it, ' ' at the start) and
// returns the finding's span and kind; end is 0 if there is none. Only a
// bearer or basic credential starts after i (the scheme word stays).
func (d *detectors) matchAt(s string, i int, prev byte) (start, end int, kind piiKind) {
	c := s[i]
	switch {
	case isDigit(c):
		end, kind = d.matchDigit(s, i)
	case c == '+' || c == '(':
		if d.on[kindPhone] {
			end, kind = matchPhone(s, i), kindPhone
		}
	case c == 'e':
		if d.on[kindJWT] && prev != '.' && class[prev]&cB64URL == 0 {
			end, kind = matchJWT(s, i), kindJWT
		}
	case c == 'b' || c == 'B':
		if d.on[kindBearer] {
			if st, e := matchBearer(s, i); e > 0 {
				kind = kindBearer
				if d.on[kindJWT] && s[st] == 'e' && matchJWT(s, st) == e {
					kind = kindJWT
				}
				return st, e, kind
			}
		}
	default:
		if d.on[kindCredential] && credFirst[c] && i+1 < len(s) && credStart[c]&credSecond[s[i+1]] != 0 {
			end, kind = matchCredential(s, i), kindCredential
		}
	}
	if end == 0 && isUpper(c) && d.on[kindIBAN] {
		end, kind = matchIBAN(s, i), kindIBAN
	}
	return i, end, kind
}

// matchDigit runs the enabled detectors that start with the digit at s[i],
// in precedence order (ssn, card, ipv4, phone): the first that matches wins.
// The run of digits at s[i] and the byte after it rule out those that cannot
// match there: an SSN starts with three digits and '-'; a card with a digit
// 2-6 and either 13 or more digits or a first group of four; an IPv4 address
// with at most three digits and '.'; a phone number without '+' with a group
// of at most five digits.
func (d *detectors) matchDigit(s string, i int) (int, piiKind) {
	j := i + 1
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	run := j - i
	var next byte
	if j < len(s) {
		next = s[j]
	}
	if run < 13 && !digitFollow[next] {
		return 0, 0 // a lone number: nothing starting with a digit
	}
	if run == 3 && next == '-' && d.on[kindSSN] {
		if e := matchSSN(s, i); e > 0 {
			return e, kindSSN
		}
	}
	if s[i] >= '2' && s[i] <= '6' && (run >= 13 || run == 4) && d.on[kindCard] {
		if e := matchCard(s, i); e > 0 {
			return e, kindCard
		}
	}
	if run <= 3 && next == '.' && d.on[kindIPv4] {
		if e := matchIPv4(s, i); e > 0 {
			return e, kindIPv4
		}
	}
	if run <= 5 && d.on[kindPhone] {
		if e := matchPhone(s, i); e > 0 {
			return e, kindPhone
		}
	}
	return 0, 0
}

// wordEnd returns the index of the first byte at or after j that is not a
// letter or digit (len(s) if none).
func wordEnd(s string, j int) int {
	for j < len(s) && class[s[j]]&cAlnum != 0 {
		j++
	}
	return j
}

// digitFollow marks the bytes after a run of digits that let a finding
// starting with a digit go on (the pre-check of matchDigit: a run of fewer
// than 13 digits followed by another byte is a lone number, "8001", "2029"): SSN "078-", IPv4 "192.", card and phone group
// separators (space, tab, '-', '.', the first byte of U+00A0, U+2009 and
// U+202F) and a phone's "(".
var digitFollow = [256]bool{' ': true, '\t': true, '-': true, '.': true, '(': true, 0xC2: true, 0xE2: true}

// mergeSpans sorts out[base:] by start (emails are found at their '@', so they
// can start before earlier findings) and merges overlaps.
func mergeSpans(out []span, base int) []span {
	f := out[base:]
	if len(f) < 2 {
		return out
	}
	for i := 1; i < len(f); i++ { // insertion sort: tiny, nearly sorted input
		for j := i; j > 0 && f[j].start < f[j-1].start; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
	w := 0
	for i := 1; i < len(f); i++ {
		if f[i].start < f[w].end {
			if f[i].end > f[w].end {
				f[w].end = f[i].end
			}
			if f[i].kind < f[w].kind {
				f[w].kind = f[i].kind
			}
			continue
		}
		w++
		f[w] = f[i]
	}
	return out[:base+w+1]
}

// luhn reports whether the digits of s (other bytes ignored) pass the Luhn check.
func luhn(s string) bool { return luhnSum(s)%10 == 0 }

// luhnSum is the Luhn sum of the digits of s (other bytes ignored).
func luhnSum(s string) int {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum
}

// matchCard matches a payment card number at s[i]: 13 to 19 digits, first
// digit 2-6 (the major networks), passing Luhn, either contiguous or grouped
// with single separators (see cardSep) as printed on cards (4-4-4-4 with a last group
// of 1-4 digits, or 4-6-4 / 4-6-5). The whole digit-and-separator run must
// qualify (a longer run is never a card); it must not be followed by an
// alphanumeric, and not be the fraction or integer part of a decimal number.
func matchCard(s string, i int) int {
	if s[i] < '2' || s[i] > '6' {
		return 0
	}
	if i >= 2 && s[i-1] == '.' && isDigit(s[i-2]) {
		return 0
	}
	n, j, digits := len(s), i, 0
	var groups [20]uint8
	ng := 0
	for {
		st := j
		for j < n && isDigit(s[j]) {
			j++
		}
		digits += j - st
		if digits > 19 || ng == len(groups) {
			return 0
		}
		groups[ng] = uint8(j - st)
		ng++
		if l := cardSep(s, j); l > 0 && j+l < n && isDigit(s[j+l]) {
			j += l
			continue
		}
		break
	}
	if digits < 13 || (j < n && isAlnum(s[j])) {
		return 0
	}
	if j+1 < n && s[j] == '.' && isDigit(s[j+1]) {
		return 0
	}
	if !cardGroups(groups[:ng]) || !luhn(s[i:j]) {
		return 0
	}
	return j
}

// cardGroups reports whether digit groups of these sizes are printed as on
// a card: one group, groups of four then a last group (4-4-4-4, 4-4-4-1), or
// 4-6-4 / 4-6-5.
func cardGroups(g []uint8) bool {
	switch {
	case len(g) == 1:
		return true
	case len(g) == 3 && g[0] == 4 && g[1] == 6 && (g[2] == 4 || g[2] == 5):
		return true
	case g[0] != 4:
		return false
	}
	for _, n := range g[1 : len(g)-1] {
		if n != 4 {
			return false
		}
	}
	return true
}

// cardSep returns the byte length of a card number group separator at s[j]:
// a space, tab, dash or dot, a no-break space (U+00A0), a thin space
// (U+2009) or a narrow no-break space (U+202F); 0 if none.
func cardSep(s string, j int) int {
	if j >= len(s) {
		return 0
	}
	switch s[j] {
	case ' ', '\t', '-', '.':
		return 1
	case 0xC2:
		if j+1 < len(s) && s[j+1] == 0xA0 {
			return 2
		}
	case 0xE2:
		if j+2 < len(s) && s[j+1] == 0x80 && (s[j+2] == 0x89 || s[j+2] == 0xAF) {
			return 3
		}
	}
	return 0
}

// matchSSN matches a US social security number ###-##-#### at s[i], with area
// not 000, 666 or 900-999, group not 00 and serial not 0000, not part of a
// longer dashed or dotted number.
func matchSSN(s string, i int) int {
	if len(s)-i < 11 {
		return 0
	}
	t := s[i : i+11]
	for k := range 11 {
		if k == 3 || k == 6 {
			if t[k] != '-' {
				return 0
			}
		} else if !isDigit(t[k]) {
			return 0
		}
	}
	if i > 0 && (s[i-1] == '-' || s[i-1] == '.') {
		return 0
	}
	if e := i + 11; e < len(s) {
		if isAlnum(s[e]) || ((s[e] == '-' || s[e] == '.') && e+1 < len(s) && isDigit(s[e+1])) {
			return 0
		}
	}
	area := t[:3]
	if area == "000" || area == "666" || area[0] == '9' || t[4:6] == "00" || t[7:] == "0000" {
		return 0
	}
	return i + 11
}

// matchIPv4 matches a dotted-quad IPv4 address at s[i]: four decimal octets
// 0-255 of 1-3 digits, not preceded by '.', not followed by a digit or by '.'
// and a digit (so 1.2.3.4.5 is not an address), and not a product version such
// as "Chrome/120.0.0.0" (letter, '/', address ending ".0.0").
func matchIPv4(s string, i int) int {
	n, j := len(s), i
	for oct := range 4 {
		if oct > 0 {
			if j >= n || s[j] != '.' {
				return 0
			}
			j++
		}
		st, v := j, 0
		for j < n && isDigit(s[j]) && j-st < 3 {
			v = v*10 + int(s[j]-'0')
			j++
		}
		if j == st || v > 255 || (j < n && isDigit(s[j])) {
			return 0
		}
	}
	if i > 0 && s[i-1] == '.' {
		return 0
	}
	if j < n && (isAlnum(s[j]) || (s[j] == '.' && j+1 < n && isDigit(s[j+1]))) {
		return 0
	}
	if i >= 2 && s[i-1] == '/' && class[s[i-2]]&(cUpper|cLower) != 0 && j-i >= 4 && s[j-4:j] == ".0.0" {
		return 0
	}
	return j
}

// matchPhone matches a phone number at s[i] (i is '+', '(' or a digit at a word
// boundary). Groups of digits are separated by single spaces, dashes or dots,
// or written in parentheses. With a leading '+' (E.164) 8-15 digits are
// required. Without it: 10-12 digits in groups of 2-5 (a first group of one
// digit is allowed when there are four or more groups, as in 1-800-555-0100),
// with at least two separators or a parenthesised area code; a first group of
// four or five digits must start with 0 (so years are not area codes);
// dot-separated numbers must use dots only and not look like an IPv4 address;
// groups of 1-3 followed only by groups of exactly 3 (thousands separators) are
// rejected. Any run containing a date (4-2-2 or 2-2-4 digit groups joined by
// the same '-' or '.') is rejected. A number preceded by '.', '-', '+' or '/',
// or followed by ':' (a time), '@' or an alphanumeric, is rejected.
func matchPhone(s string, i int) int {
	j, plus, ok := phoneStart(s, i)
	if !ok {
		return 0
	}
	var r phoneRun
	j = r.scan(s, j)
	if j == 0 || (j < len(s) && (isAlnum(s[j]) || s[j] == ':' || s[j] == '@')) || r.hasDate() {
		return 0
	}
	if plus {
		if r.digits < 8 || r.digits > 15 {
			return 0
		}
		return j
	}
	if !r.national(s[i]) {
		return 0
	}
	return j
}

// phoneStart checks the byte before a phone number at s[i] and skips a
// leading '+': it returns where the digits start and whether there is a '+'.
func phoneStart(s string, i int) (j int, plus, ok bool) {
	if s[i] == '+' {
		if i > 0 && (s[i-1] == '+' || isAlnum(s[i-1])) {
			return 0, false, false
		}
		return i + 1, true, true
	}
	if i > 0 && (s[i-1] == '.' || s[i-1] == '-' || s[i-1] == '+' || s[i-1] == '/') {
		return 0, false, false
	}
	return i, false, true
}

// phoneSepKind maps a phone group separator to its bit in phoneRun.sepKinds.
var phoneSepKind = [256]uint8{' ': 1, '-': 2, '.': 4}

// phoneRun is the run of digit groups of a phone number candidate.
type phoneRun struct {
	groups    [16]uint8
	sepBefore [16]byte // separator before each group (0: none, '(' for a parenthesised group)
	ng        int
	digits    int
	seps      int
	parens    int
	sepKinds  uint8 // bit 1: space, 2: dash, 4: dot (see phoneSepKind)
}

// add records a group of n digits preceded by sep.
func (r *phoneRun) add(n int, sep byte) {
	r.groups[r.ng], r.sepBefore[r.ng] = uint8(n), sep
	r.ng++
	r.digits += n
}

// scan reads the digit groups from s[j] and returns the end of the run, or 0
// if the run is not a phone number whatever follows it (a group too long, too
// many digits or groups, a malformed parenthesised group).
func (r *phoneRun) scan(s string, j int) int {
	n := len(s)
	var sep byte
	for {
		if j >= n || r.ng == len(r.groups) {
			return 0
		}
		if s[j] == '(' {
			if j = r.paren(s, j); j == 0 {
				return 0
			}
			sep = 0
			// Optional single space or dash after ')'.
			if j+1 < n && (s[j] == ' ' || s[j] == '-') && isDigit(s[j+1]) {
				sep = s[j]
				j++
			}
			if j < n && isDigit(s[j]) {
				continue
			}
			return j
		}
		st := j
		for j < n && isDigit(s[j]) {
			j++
		}
		if j == st || j-st > 15 {
			return 0
		}
		r.add(j-st, sep)
		if r.digits > 15 {
			return 0
		}
		if j+1 < n && phoneSepKind[s[j]] != 0 && (isDigit(s[j+1]) || s[j+1] == '(') {
			r.sepKinds |= phoneSepKind[s[j]]
			sep = s[j]
			r.seps++
			j++
			continue
		}
		if j < n && s[j] == '(' {
			sep = 0
			continue
		}
		return j
	}
}

// paren reads a parenthesised group of 1-5 digits at s[j] == '(' and returns
// the index after its ')', or 0 if it is malformed.
func (r *phoneRun) paren(s string, j int) int {
	st := j + 1
	j = st
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j-st < 1 || j-st > 5 || j >= len(s) || s[j] != ')' {
		return 0
	}
	r.add(j-st, '(')
	r.parens++
	return j + 1
}

// hasDate reports whether the run contains a date: 4-2-2 or 2-2-4 digit
// groups joined by the same '-' or '.'.
func (r *phoneRun) hasDate() bool {
	for k := 0; k+2 < r.ng; k++ {
		a, b, c := r.groups[k], r.groups[k+1], r.groups[k+2]
		if (r.sepBefore[k+1] == '-' || r.sepBefore[k+1] == '.') && r.sepBefore[k+1] == r.sepBefore[k+2] &&
			((a == 4 && b == 2 && c == 2) || (a == 2 && b == 2 && c == 4)) {
			return true
		}
	}
	return false
}

// national reports whether a run without a leading '+' is a national phone
// number (see matchPhone); first is its first byte.
func (r *phoneRun) national(first byte) bool {
	if r.digits < 10 || r.digits > 12 || (r.seps < 2 && r.parens == 0) {
		return false
	}
	for k := range r.ng {
		g := r.groups[k]
		if g > 5 || (g < 2 && !(k == 0 && (r.sepBefore[0] == '(' || r.ng >= 4))) {
			return false
		}
	}
	if r.sepBefore[0] != '(' && r.groups[0] >= 4 && first != '0' {
		return false
	}
	// Dots only, and not four groups of 1-3 digits (an IPv4 address).
	if r.sepKinds&4 != 0 && (r.sepKinds != 4 || r.ng == 4 && r.groups[0] <= 3 && r.groups[1] <= 3 && r.groups[2] <= 3 && r.groups[3] <= 3) {
		return false
	}
	return r.parens != 0 || r.groups[0] > 3 || !r.thousands()
}

// thousands reports whether every group after the first has exactly three
// digits, as in a number with thousands separators.
func (r *phoneRun) thousands() bool {
	for k := 1; k < r.ng; k++ {
		if r.groups[k] != 3 {
			return false
		}
	}
	return true
}

// matchEmail matches an email address around the '@' at s[at]: a local part of
// letters, digits and . _ % + - (or non-ASCII; leading '.', '-', '+' are not
// part of it; dots are not otherwise checked, a malformed address is still
// personal data), and a domain of at least two labels of letters, digits and
// '-' (or non-ASCII) ending at the last label that is a valid top-level
// domain: two or more letters, or "xn--" punycode. A trailing '.' is not part
// of the address.
func matchEmail(s string, at int) (int, int, bool) {
	st := at
	for st > 0 && class[s[st-1]]&cLocal != 0 {
		st--
	}
	for st < at && (s[st] == '.' || s[st] == '-' || s[st] == '+') {
		st++
	}
	if st == at {
		return 0, 0, false
	}
	// Domain labels; the address ends after the last label that is a valid
	// top-level domain (so "a@example.com.4111" still yields a@example.com).
	n, j := len(s), at+1
	labels, end := 0, 0
	for {
		ls := j
		for j < n && class[s[j]]&cDomain != 0 {
			j++
		}
		if j == ls || s[ls] == '-' || s[j-1] == '-' {
			break
		}
		labels++
		if labels >= 2 && validTLD(s[ls:j]) {
			end = j
		}
		if j+1 < n && s[j] == '.' && class[s[j+1]]&cDomain != 0 {
			j++
			continue
		}
		break
	}
	if end == 0 {
		return 0, 0, false
	}
	return st, end, true
}

// matchJWT matches a JSON Web Token at s[i]: "eyJ" and at least 7 more
// base64url characters (the header), '.', a payload of at least 2 base64url
// characters, '.', and a possibly empty signature; JWE's five segments are
// matched too. The token must not continue with a base64url character.
func matchJWT(s string, i int) int {
	n := len(s)
	if n-i < 16 || s[i+1] != 'y' || s[i+2] != 'J' {
		return 0
	}
	j := i + 3
	for j < n && class[s[j]]&cB64URL != 0 {
		j++
	}
	if j-i < 10 || j >= n || s[j] != '.' {
		return 0
	}
	j++
	st := j
	for j < n && class[s[j]]&cB64URL != 0 {
		j++
	}
	if j-st < 2 || j >= n || s[j] != '.' {
		return 0
	}
	j++
	for seg := 0; ; seg++ {
		for j < n && class[s[j]]&cB64URL != 0 {
			j++
		}
		if seg < 2 && j+1 < n && s[j] == '.' && class[s[j+1]]&cB64URL != 0 {
			j++
			continue
		}
		break
	}
	return j
}

// matchBearer matches the credentials of an HTTP authorization scheme in free
// text: "Bearer" (any case) followed by white space and a token68 of at least
// 8 characters containing a digit or one of - . _ ~ + / =; or "Basic" followed
// by white space and base64 that decodes to "user:password". The span covers
// the credentials only, the scheme word stays.
func matchBearer(s string, i int) (int, int) {
	n := len(s)
	var basic bool
	switch {
	case n-i >= 7 && asciiEqualFold(s[i:i+6], "bearer"):
		i += 6
	case n-i >= 6 && s[i:i+5] == "Basic":
		basic = true
		i += 5
	default:
		return 0, 0
	}
	j := i
	for j < n && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j == i {
		return 0, 0
	}
	st := j
	special := false
	for j < n && class[s[j]]&cToken68 != 0 {
		if !isAlnum(s[j]) || isDigit(s[j]) {
			special = true
		}
		j++
	}
	for j < n && s[j] == '=' {
		special = true
		j++
	}
	if j-st < 8 || (j < n && isAlnum(s[j])) {
		return 0, 0
	}
	if basic {
		if !basicHasColon(s[st:j]) {
			return 0, 0
		}
	} else if !special {
		return 0, 0
	}
	return st, j
}

// basicHasColon reports whether b is standard base64 whose decoding contains ':'.
func basicHasColon(b string) bool {
	var acc, bits uint
	for k := 0; k < len(b); k++ {
		c := b[k]
		var v uint
		switch {
		case c >= 'A' && c <= 'Z':
			v = uint(c - 'A')
		case c >= 'a' && c <= 'z':
			v = uint(c-'a') + 26
		case c >= '0' && c <= '9':
			v = uint(c-'0') + 52
		case c == '+':
			v = 62
		case c == '/':
			v = 63
		case c == '=':
			return false
		default:
			return false
		}
		acc = acc<<6 | v
		bits += 6
		if bits >= 8 {
			bits -= 8
			if byte(acc>>bits) == ':' {
				return true
			}
			acc &= 1<<bits - 1
		}
	}
	return false
}

// ibanLengths is the IBAN length of each country (SWIFT IBAN registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
	"BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
	"DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
	"FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
	"GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
	"JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
	"LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
	"MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
	"PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
	"SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// matchIBAN matches an IBAN at s[i]: a country code with a known IBAN length,
// two check digits, and the BBAN of upper-case letters and digits, optionally
// printed in groups separated by single spaces, such that the whole number is
// valid mod 97 and is not followed by an alphanumeric.
func matchIBAN(s string, i int) int {
	n := len(s)
	if n-i < 15 || !isUpper(s[i+1]) || !isDigit(s[i+2]) || !isDigit(s[i+3]) {
		return 0
	}
	want, ok := ibanLengths[s[i:i+2]]
	if !ok {
		return 0
	}
	j, count := i+4, 4
	for count < want && j < n {
		c := s[j]
		if c == ' ' && j+1 < n && class[s[j+1]]&(cUpper|cDigit) != 0 && s[j-1] != ' ' {
			j++
			continue
		}
		if class[c]&(cUpper|cDigit) == 0 {
			return 0
		}
		count++
		j++
	}
	if count != want || (j < n && isAlnum(s[j])) {
		return 0
	}
	if ibanMod97(s[i:j]) != 1 {
		return 0
	}
	return j
}

// ibanMod97 computes the ISO 13616 checksum remainder of an IBAN (spaces
// ignored): the first four characters moved to the end, letters as 10-35.
func ibanMod97(s string) int {
	var buf [64]byte
	b := buf[:0]
	for k := 0; k < len(s); k++ {
		if s[k] != ' ' {
			b = append(b, s[k])
		}
	}
	if len(b) > 4 {
		b = append(b[4:], b[:4]...)
	}
	rem := 0
	for _, c := range b {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case isUpper(c):
			rem = (rem*100 + int(c-'A'+10)) % 97
		case c >= 'a' && c <= 'z':
			rem = (rem*100 + int(c-'a'+10)) % 97
		}
	}
	return rem
}

// validTLD reports whether a domain label can be a top-level domain: two or
// more letters (non-ASCII allowed), or "xn--" punycode.
func validTLD(l string) bool {
	if len(l) < 2 {
		return false
	}
	if len(l) > 4 && asciiEqualFold(l[:4], "xn--") {
		return true
	}
	for k := 0; k < len(l); k++ {
		if class[l[k]]&(cUpper|cLower) == 0 && l[k] < 0x80 {
			return false
		}
	}
	return true
}

// asciiEqualFold reports whether a and b are equal ignoring ASCII case.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}
