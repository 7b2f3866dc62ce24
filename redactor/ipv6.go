package redactor

import "net/netip"

// isHex reports whether c is a hexadecimal digit.
func isHex(c byte) bool {
	return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'f')
}

// maybeIPv6 is the cheap pre-check of matchIPv6, small enough to inline: a
// hex digit or ':' at s[i] and a ':' in the next four bytes ("::" for a
// leading ':'). An address is at least 6 bytes long.
func maybeIPv6(s string, i int) bool {
	if i+6 > len(s) {
		return false
	}
	t := s[i : i+5]
	if t[0] == ':' {
		return t[1] == ':'
	}
	return hexDigit[t[0]] && (t[1] == ':' || t[2] == ':' || t[3] == ':' || t[4] == ':')
}

// hexDigit marks the hexadecimal digits.
var hexDigit = [256]bool{
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true,
}

// maxIPv6Len bounds the text of an IPv6 address with an IPv4 tail
// ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").
const maxIPv6Len = 45

// matchIPv6 matches an IPv6 address at s[i]: full, compressed ("::") or with
// an embedded IPv4 address ("::ffff:192.0.2.1"), validated by net/netip,
// optionally followed by a zone ("%eth0", "%25eth0" in a URL). Brackets and a
// port around it ("[2001:db8::1]:443") are not part of the finding. It must
// not be preceded by ':' or '.', nor followed by a letter, digit or ':', and
// be at least 6 bytes long (so "::1" alone is not reported). Times
// ("12:30:45") and MAC addresses have no valid IPv6 reading.
func matchIPv6(s string, i int) int {
	n := len(s)
	if i > 0 && (s[i-1] == ':' || s[i-1] == '.') {
		return 0
	}
	j, colons := i, 0
	for j < n && j-i <= maxIPv6Len && (isHex(s[j]) || s[j] == ':' || s[j] == '.') {
		if s[j] == ':' {
			colons++
		}
		j++
	}
	if j-i > maxIPv6Len || colons < 2 {
		return 0
	}
	// A sentence may end right after the address.
	for j > i && s[j-1] == '.' {
		j--
	}
	if j > i+1 && s[j-1] == ':' && s[j-2] != ':' {
		j-- // "fe80::1: ..." (a colon after the address)
	}
	if j-i < 6 {
		return 0
	}
	a, err := netip.ParseAddr(s[i:j])
	if err != nil || !a.Is6() {
		return 0
	}
	end := ipv6Zone(s, j)
	if end < n && (isAlnum(s[end]) || s[end] == ':') {
		return 0
	}
	return end
}

// ipv6Zone returns the end of the zone ("%eth0", "%25eth0" in a URL) after
// an IPv6 address ending at s[j], or j if there is none.
func ipv6Zone(s string, j int) int {
	n := len(s)
	if j >= n || s[j] != '%' {
		return j
	}
	k := j + 1
	if k+2 < n && s[k] == '2' && s[k+1] == '5' {
		k += 2
	}
	z := k
	for k < n && (isAlnum(s[k]) || s[k] == '_' || s[k] == '-' || s[k] == '.') {
		k++
	}
	if k > z {
		return k
	}
	return j
}
