// Package reqtarget parses the request-target of a captured HTTP/1.x request
// (RFC 9112 section 3.2) into the origin-form path and query that may be
// recorded and replayed, or rejects it as unsafe.
//
// A captured request-target is hostile input: a replayer that concatenated it
// to its target URL could be made to connect elsewhere ("@evil/x",
// ".evil.example/x", "http:@localhost/x"). Collectors parse every target with
// Parse before publishing it and the replayer parses it again before sending,
// and both build URLs from the parsed parts only.
package reqtarget

import (
	"errors"
	"net/url"
	"strings"
)

// ErrUnsafe is wrapped by every error of Parse.
var ErrUnsafe = errors.New("unsafe request-target")

// Reasons a request-target is rejected. They name the problem, never the
// bytes, so they may be logged and used as metric labels.
const (
	ReasonEmpty        = "empty"
	ReasonByte         = "control, space or non-ASCII byte"
	ReasonBackslash    = "backslash"
	ReasonFragment     = "fragment"
	ReasonAsterisk     = "asterisk-form"
	ReasonNotOrigin    = "neither origin-form nor absolute-form"
	ReasonScheme       = "absolute-form with a scheme other than http or https"
	ReasonUserinfo     = "userinfo in absolute-form"
	ReasonHost         = "bad host in absolute-form"
	ReasonDoubleSlash  = "path starts with //"
	ReasonEscape       = "invalid percent-encoding in path"
	ReasonEncodedSlash = "percent-decoded path starts with // or holds a backslash or control byte"
	ReasonDotSegment   = "dot segment in path"
	ReasonConnect      = "CONNECT request"
)

// Error is a rejected request-target; it wraps ErrUnsafe.
type Error struct {
	// Reason is one of the Reason constants.
	Reason string
}

// Error returns "unsafe request-target: REASON".
func (e *Error) Error() string { return ErrUnsafe.Error() + ": " + e.Reason }

// Unwrap returns ErrUnsafe.
func (e *Error) Unwrap() error { return ErrUnsafe }

func unsafe(reason string) error { return &Error{Reason: reason} }

// Target is a parsed request-target.
type Target struct {
	// Path is the path as captured (percent-encoded): it starts with "/" but
	// not with "//".
	Path string
	// Query is the query as captured, without the "?".
	Query string
	// ForceQuery is set when the target had a "?" (possibly with an empty query).
	ForceQuery bool
	// Host is the authority of an absolute-form target ("" for origin-form):
	// the request's Host (RFC 9112 section 3.2.2).
	Host string
}

// String returns the origin-form: path, then "?" and the query when there was one.
func (t Target) String() string {
	if t.ForceQuery || t.Query != "" {
		return t.Path + "?" + t.Query
	}
	return t.Path
}

// DecodedPath returns Path percent-decoded (Parse has checked it decodes).
func (t Target) DecodedPath() string {
	p, err := url.PathUnescape(t.Path)
	if err != nil {
		return t.Path
	}
	return p
}

// Check parses the request-target of a captured request with method (see
// Parse); a CONNECT request, whose target is another host's authority and
// whose replay would open a tunnel from the shadow, is rejected whatever its
// target.
func Check(method, raw string) (Target, error) {
	if strings.EqualFold(method, "CONNECT") {
		return Target{}, unsafe(ReasonConnect)
	}
	return Parse(raw)
}

// Parse parses a captured request-target. It accepts:
//
//   - origin-form ("/path?query"): the path must start with a single "/";
//   - absolute-form ("http://host:port/path?query", http or https, without
//     userinfo): Host is set and only the path and query are kept, an empty
//     path becoming "/".
//
// Authority-form (CONNECT's "host:port"), asterisk-form (OPTIONS's "*") and
// anything else ("x", "@host/x", ".host/x", "http:@host/x") are rejected, as
// are targets holding control bytes, spaces, non-ASCII bytes, a backslash or a
// fragment, paths with an invalid percent-encoding, dot segments ("." or "..",
// also percent-encoded or followed by ";params"), or whose decoded form starts
// with "//" or holds a backslash or a control byte. The query is kept as
// captured: any visible ASCII except "#" and "\\".
//
// Errors wrap ErrUnsafe (as *Error) and never contain the target's bytes.
func Parse(raw string) (Target, error) {
	if raw == "" {
		return Target{}, unsafe(ReasonEmpty)
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c <= ' ' || c >= 0x7f:
			return Target{}, unsafe(ReasonByte)
		case c == '\\':
			return Target{}, unsafe(ReasonBackslash)
		case c == '#':
			return Target{}, unsafe(ReasonFragment)
		}
	}
	if raw == "*" {
		return Target{}, unsafe(ReasonAsterisk)
	}
	var t Target
	rest := raw
	if !strings.HasPrefix(raw, "/") {
		scheme, after, ok := strings.Cut(raw, "://")
		if !ok || !isScheme(scheme) {
			return Target{}, unsafe(ReasonNotOrigin)
		}
		if !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https") {
			return Target{}, unsafe(ReasonScheme)
		}
		end := strings.IndexAny(after, "/?")
		if end < 0 {
			end = len(after)
		}
		host := after[:end]
		if strings.Contains(host, "@") {
			return Target{}, unsafe(ReasonUserinfo)
		}
		if !validHost(host) {
			return Target{}, unsafe(ReasonHost)
		}
		t.Host = host
		rest = after[end:]
		if !strings.HasPrefix(rest, "/") {
			rest = "/" + rest // "http://h" and "http://h?q" have the path "/"
		}
	}
	path, query, hasQuery := strings.Cut(rest, "?")
	if err := checkPath(path); err != nil {
		return Target{}, err
	}
	t.Path, t.Query, t.ForceQuery = path, query, hasQuery
	return t, nil
}

// checkPath checks an escaped path that starts with "/".
func checkPath(p string) error {
	if strings.HasPrefix(p, "//") {
		return unsafe(ReasonDoubleSlash)
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return unsafe(ReasonEscape)
	}
	if strings.HasPrefix(dec, "//") {
		return unsafe(ReasonEncodedSlash)
	}
	for i := 0; i < len(dec); i++ {
		if c := dec[i]; c < ' ' || c == 0x7f || c == '\\' {
			return unsafe(ReasonEncodedSlash)
		}
	}
	// Dot segments would climb out of the replay target's base path; check
	// them as captured and decoded, with or without ";params".
	for _, s := range [2]string{p, dec} {
		for seg := range strings.SplitSeq(s, "/") {
			seg, _, _ = strings.Cut(seg, ";")
			if seg == "." || seg == ".." {
				return unsafe(ReasonDotSegment)
			}
		}
	}
	return nil
}

// isScheme reports whether s is an RFC 3986 scheme.
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// validHost reports whether h is host[:port] with a registered name of
// letters, digits, "-", "_" and "." (not starting with "." nor holding ".."),
// an IPv4 address or a bracketed IPv6 address, and a decimal port.
func validHost(h string) bool {
	name, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 2 {
			return false
		}
		name, port = h[:end+1], h[end+1:]
		if !allBytes(name[1:end], "0123456789abcdefABCDEF:.") {
			return false
		}
	} else {
		if i := strings.IndexByte(h, ':'); i >= 0 {
			name, port = h[:i], h[i:]
		}
		if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "..") ||
			!allBytes(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") {
			return false
		}
	}
	if port == "" {
		return true
	}
	return port[0] == ':' && len(port) >= 2 && len(port) <= 6 && allBytes(port[1:], "0123456789")
}

func allBytes(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}
