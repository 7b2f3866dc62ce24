package comparator

import (
	"encoding/json"
	"regexp"
	"strings"
)

// volatileRE finds tokens that typically change on every call: UUIDs,
// date-times (ISO 8601 / RFC 3339, HTTP dates), ULIDs, long hex strings,
// long digit runs (epochs, snowflake ids) and random-looking tokens. The
// order of the alternatives matters: leftmost-first.
var volatileRE = regexp.MustCompile(`(?i:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})` +
	`|\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?` +
	`|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT` +
	`|\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b` +
	`|\b[0-9A-HJKMNP-TV-Z]{26}\b` +
	`|\b[0-9a-fA-F]{16,}\b` +
	`|\b\d{9,}\b` +
	`|[A-Za-z0-9_-]{20,}`)

// maskVolatile replaces volatile tokens in s by a placeholder naming their
// shape. A long token counts only when it mixes letters and digits.
func maskVolatile(s string) string {
	if len(s) < 8 || !mayHoldVolatile(s) {
		return s
	}
	return maskVolatileRE(s)
}

// mayHoldVolatile is maskVolatile's pre-check, one pass over s without the
// regular expression. maskVolatile changes s only when s has a digit
// somewhere, and a token that has either 4 digits in a row (dates, HTTP
// dates, long numbers), a ':' (times) or 16 or more of [A-Za-z0-9_-] in a
// row (UUIDs, ULIDs, hex, random tokens). Most JSON strings (words, codes,
// short ids) have none.
func mayHoldVolatile(s string) bool {
	digit, colon, long := false, false, false
	digits, word := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digit = true
			digits++
			word++
			if digits >= 4 {
				return true
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_', c == '-':
			digits = 0
			word++
		default:
			colon = colon || c == ':'
			digits, word = 0, 0
		}
		long = long || word >= 16
	}
	return digit && (colon || long)
}

// maskVolatileRE is maskVolatile without the pre-check.
func maskVolatileRE(s string) string {
	return volatileRE.ReplaceAllStringFunc(s, func(tok string) string {
		switch {
		case len(tok) == 36 && tok[8] == '-' && tok[13] == '-':
			return "<uuid>"
		case strings.ContainsAny(tok, ":") || (len(tok) == 10 && tok[4] == '-' && tok[7] == '-'):
			return "<time>"
		case isDigits(tok):
			return "<num>"
		case len(tok) >= 20 && !isHex(tok) && !mixesLettersDigits(tok):
			return tok
		}
		return "<id>"
	})
}

// volatilePair reports whether two differing strings have the same shape once
// their volatile tokens are masked, and contain such tokens.
func volatilePair(p, s string) bool {
	if p == s {
		return false
	}
	mp := maskVolatile(p)
	return mp != p && mp == maskVolatile(s)
}

// looksVolatile reports whether s contains volatile tokens.
func looksVolatile(s string) bool { return maskVolatile(s) != s }

// epochShape classifies a JSON number as a Unix time in s, ms, µs or ns
// (between 2001 and 2096): it returns its digit count, or 0.
func epochShape(n json.Number) int {
	s := string(n)
	if !isDigits(s) {
		return 0
	}
	switch len(s) {
	case 10, 13, 16, 19:
		if s[0] == '1' || s[0] == '2' || s[0] == '3' {
			return len(s)
		}
	}
	return 0
}

// isDigits reports whether s is a non-empty run of ASCII digits.
func isDigits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }

// isHex reports whether s holds only hexadecimal digits.
func isHex(s string) bool { return strings.Trim(s, "0123456789abcdefABCDEF") == "" }

func mixesLettersDigits(s string) bool {
	var l, d bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			d = true
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
			l = true
		}
	}
	return l && d
}
