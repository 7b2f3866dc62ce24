package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/sjson"
	"golang.org/x/net/http/httpguts"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Transform rewrites a selected request before it is sent. The steps run in
// the order of the fields: remove, rename, set headers; rewrite the path;
// add query parameters; delete, then set JSON body fields.
type Transform struct {
	// RemoveHeaders are header names (case-insensitive) to delete.
	RemoveHeaders []string `yaml:"remove_headers,omitempty"`
	// RenameHeaders maps a header name to its new name (values kept).
	// Headers that already had the new name are removed first when the
	// request has the old one. A new name may not be an old name too.
	RenameHeaders map[string]string `yaml:"rename_headers,omitempty"`
	// SetHeaders maps a header name to the value it is set to (replacing
	// every value it had).
	SetHeaders map[string]string `yaml:"set_headers,omitempty"`
	// Path rewrites the path (not the query) by a regular expression.
	Path *PathRewrite `yaml:"path,omitempty"`
	// AddQuery maps a query parameter to a value appended to the query
	// (encoded; existing parameters kept).
	AddQuery map[string]string `yaml:"add_query,omitempty"`
	// JSONDelete are paths (sjson syntax: "user.email", "items.0.id") of
	// fields deleted from a JSON body.
	JSONDelete []string `yaml:"json_delete,omitempty"`
	// JSONSet maps a path (sjson syntax) to the value (any YAML value,
	// written as JSON) it is set to in a JSON body; missing objects are
	// created.
	JSONSet map[string]any `yaml:"json_set,omitempty"`
}

// PathRewrite replaces the first match of Match in the decoded path by
// Replace (Go regexp syntax, $1 for groups).
type PathRewrite struct {
	Match   string `yaml:"match"`
	Replace string `yaml:"replace"`
}

// ErrNotJSON is returned (wrapped) by Transformer.Apply when JSON fields are
// to be changed in a body that is not JSON (or is compressed).
var ErrNotJSON = errors.New("body is not JSON")

// Transformer is a compiled Transform; it is safe for concurrent use.
type Transformer struct {
	remove  map[string]bool // lower-case names
	renames []headerValue   // name: old, value: new; sorted by old name
	sets    []headerValue   // sorted by name
	re      *regexp.Regexp
	replace string
	query   string        // the encoded pairs of AddQuery, sorted by name
	deletes []string      // sjson paths
	jsonSet []headerValue // name: sjson path, value: the JSON value; sorted by path
}

// headerValue is a name and a value (a header, a rename, a JSON field).
type headerValue struct{ name, value string }

// managedHeaders are headers a transform may not set or rename to: the
// replayer writes Host and Content-Length itself and never forwards the
// hop-by-hop ones, so such a rule would be silently lost.
var managedHeaders = map[string]bool{
	"host": true, "content-length": true, "connection": true, "proxy-connection": true, "keep-alive": true,
	"proxy-authenticate": true, "proxy-authorization": true, "te": true, "trailer": true,
	"transfer-encoding": true, "upgrade": true,
}

// Compile checks t (header names are tokens, values have no control
// characters, the regular expression compiles, JSON paths are valid) and
// returns its Transformer; the error names the field and entry.
func (t Transform) Compile() (*Transformer, error) {
	c := &Transformer{remove: map[string]bool{}}
	for i, name := range t.RemoveHeaders {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("remove_headers[%d]: %q is not a valid header name", i, name)
		}
		if strings.EqualFold(name, "Host") {
			return nil, fmt.Errorf("remove_headers[%d]: Host is the request's authority, not one of its headers", i)
		}
		c.remove[strings.ToLower(name)] = true
	}

	olds := map[string]bool{}
	news := map[string]string{}
	for _, old := range sortedKeys(t.RenameHeaders) {
		olds[strings.ToLower(old)] = true
	}
	for _, old := range sortedKeys(t.RenameHeaders) {
		nu := t.RenameHeaders[old]
		switch {
		case !httpguts.ValidHeaderFieldName(old):
			return nil, fmt.Errorf("rename_headers[%q]: not a valid header name", old)
		case strings.EqualFold(old, "Host"):
			return nil, fmt.Errorf("rename_headers[%q]: Host is the request's authority, not one of its headers", old)
		case !httpguts.ValidHeaderFieldName(nu):
			return nil, fmt.Errorf("rename_headers[%q]: %q is not a valid header name", old, nu)
		case managedHeaders[strings.ToLower(nu)]:
			return nil, fmt.Errorf("rename_headers[%q]: %q is written by the replayer or never forwarded", old, nu)
		case olds[strings.ToLower(nu)]:
			return nil, fmt.Errorf("rename_headers[%q]: %q is renamed too (no chains or swaps)", old, nu)
		}
		if prev, ok := news[strings.ToLower(nu)]; ok {
			return nil, fmt.Errorf("rename_headers[%q]: %q is already the new name of %q", old, nu, prev)
		}
		news[strings.ToLower(nu)] = old
		c.renames = append(c.renames, headerValue{name: old, value: nu})
	}

	seen := map[string]string{}
	for _, name := range sortedKeys(t.SetHeaders) {
		value := t.SetHeaders[name]
		switch {
		case !httpguts.ValidHeaderFieldName(name):
			return nil, fmt.Errorf("set_headers[%q]: not a valid header name", name)
		case managedHeaders[strings.ToLower(name)]:
			return nil, fmt.Errorf("set_headers[%q]: written by the replayer or never forwarded", name)
		case ctlIndex(value) >= 0:
			return nil, fmt.Errorf("set_headers[%q]: the value holds a control character (CR, LF, NUL, ...)", name)
		}
		if prev, ok := seen[strings.ToLower(name)]; ok {
			return nil, fmt.Errorf("set_headers[%q]: the same header as %q (names are case-insensitive)", name, prev)
		}
		seen[strings.ToLower(name)] = name
		c.sets = append(c.sets, headerValue{name: name, value: value})
	}

	if t.Path != nil {
		if t.Path.Match == "" {
			return nil, errors.New("path.match: empty")
		}
		re, err := regexp.Compile(t.Path.Match)
		if err != nil {
			return nil, fmt.Errorf("path.match: %q does not compile: %w", t.Path.Match, err)
		}
		c.re, c.replace = re, t.Path.Replace
	}

	var pairs []string
	for _, name := range sortedKeys(t.AddQuery) {
		if name == "" {
			return nil, errors.New("add_query: a parameter name is empty")
		}
		pairs = append(pairs, url.QueryEscape(name)+"="+url.QueryEscape(t.AddQuery[name]))
	}
	c.query = strings.Join(pairs, "&")

	for i, p := range t.JSONDelete {
		if err := checkJSONPath(p); err != nil {
			return nil, fmt.Errorf("json_delete[%d]: %w", i, err)
		}
		c.deletes = append(c.deletes, p)
	}
	for _, p := range sortedKeys(t.JSONSet) {
		if err := checkJSONPath(p); err != nil {
			return nil, fmt.Errorf("json_set[%q]: %w", p, err)
		}
		raw, err := json.Marshal(t.JSONSet[p])
		if err != nil {
			return nil, fmt.Errorf("json_set[%q]: the value is not JSON: %w", p, err)
		}
		c.jsonSet = append(c.jsonSet, headerValue{name: p, value: string(raw)})
	}
	return c, nil
}

// checkJSONPath accepts the plain sjson paths: keys separated by '.', none
// empty, with '.', '|', '#', '@', '*' and '?' escaped by a backslash (the
// others are gjson queries and modifiers, which sjson cannot delete and sets
// only where they already match).
func checkJSONPath(p string) error {
	if p == "" {
		return errors.New("empty path")
	}
	start := 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			if i+1 == len(p) {
				return fmt.Errorf("path %q ends with a lone backslash", p)
			}
			i++
		case '.':
			if i == start {
				return fmt.Errorf("path %q has an empty key", p)
			}
			start = i + 1
		case '|', '#', '@', '*', '?':
			return fmt.Errorf("path %q: %q is a gjson query character (escape it with a backslash)", p, p[i])
		}
	}
	if start == len(p) {
		return fmt.Errorf("path %q has an empty key", p)
	}
	// What sjson itself thinks of it, on an empty object.
	if _, err := sjson.SetRawBytes([]byte("{}"), p, []byte("1")); err != nil {
		return fmt.Errorf("path %q: %w", p, err)
	}
	return nil
}

// Empty reports whether t changes nothing.
func (t Transform) Empty() bool {
	return len(t.RemoveHeaders) == 0 && len(t.RenameHeaders) == 0 && len(t.SetHeaders) == 0 && t.Path == nil &&
		len(t.AddQuery) == 0 && len(t.JSONDelete) == 0 && len(t.JSONSet) == 0
}

// Apply rewrites req in place (the caller passes a copy): headers, Url
// (path and query; the result is a request-target the caller checks again
// before building a URL from it), Body and BodySize. An error leaves req in
// an unspecified state: the record is not sent.
//
// A path rewrite or added query parameters need the request-target: when
// it does not parse, the error wraps reqtarget.ErrUnsafe. A rewritten path
// is percent-encoded again from its decoded form and the request-target
// becomes origin-form (path, then the captured query); a path the rewrite
// does not change is kept as captured. JSON changes need a JSON body
// (ErrNotJSON otherwise; a request without a body is left as it is); when
// the body changes, BodySize and Content-Length follow. Errors never hold
// the request's bytes. A nil Transformer changes nothing.
func (t *Transformer) Apply(req *mlv1.Request) error {
	if t == nil {
		return nil
	}
	t.applyHeaders(req)
	if t.re != nil || t.query != "" {
		if err := t.applyTarget(req); err != nil {
			return err
		}
	}
	if (len(t.deletes) > 0 || len(t.jsonSet) > 0) && (len(req.GetBody()) > 0 || req.GetBodyTruncated() || req.GetBodyIncomplete()) {
		if err := t.applyJSON(req); err != nil {
			return err
		}
	}
	return nil
}

// EditsBody reports whether t edits JSON bodies (json_delete, json_set).
func (t *Transformer) EditsBody() bool {
	return t != nil && (len(t.deletes) > 0 || len(t.jsonSet) > 0)
}

func (t *Transformer) applyHeaders(req *mlv1.Request) {
	hs := req.Headers
	if len(t.remove) > 0 {
		hs = dropHeaders(hs, func(h *mlv1.Header) bool { return t.remove[strings.ToLower(h.GetName())] })
	}
	for _, rn := range t.renames {
		if !hasHeader(hs, rn.name) {
			continue
		}
		hs = dropHeaders(hs, func(h *mlv1.Header) bool { return strings.EqualFold(h.GetName(), rn.value) })
		for _, h := range hs {
			if strings.EqualFold(h.GetName(), rn.name) {
				h.Name = rn.value
			}
		}
	}
	for _, s := range t.sets {
		first := -1
		for i, h := range hs {
			if strings.EqualFold(h.GetName(), s.name) {
				first = i
				break
			}
		}
		if first < 0 {
			hs = append(hs, &mlv1.Header{Name: s.name, Value: s.value})
			continue
		}
		hs[first].Name, hs[first].Value = s.name, s.value
		keep := hs[first]
		hs = dropHeaders(hs, func(h *mlv1.Header) bool { return h != keep && strings.EqualFold(h.GetName(), s.name) })
	}
	req.Headers = hs
}

// applyTarget rewrites the path and adds the query parameters.
func (t *Transformer) applyTarget(req *mlv1.Request) error {
	rt, err := reqtarget.Check(req.GetMethod(), req.GetUrl())
	if err != nil {
		return fmt.Errorf("transform path/query: %w", err)
	}
	path, changed := rt.Path, false
	if t.re != nil {
		dec := rt.DecodedPath()
		if loc := t.re.FindStringSubmatchIndex(dec); loc != nil {
			var b strings.Builder
			b.WriteString(dec[:loc[0]])
			b.Write(t.re.ExpandString(nil, t.replace, dec, loc))
			b.WriteString(dec[loc[1]:])
			if nu := b.String(); nu != dec {
				if hasEncodedSlash(rt.Path) {
					// Decoding merged "%2F" with "/": encoding again would
					// change the segments the client sent.
					return errors.New("transform path: the captured path holds an encoded slash (%2F); it is not rewritten")
				}
				if !strings.HasPrefix(nu, "/") {
					return fmt.Errorf("transform path: the rewritten path does not start with \"/\": %w", reqtarget.ErrUnsafe)
				}
				path, changed = (&url.URL{Path: nu}).EscapedPath(), true
			}
		}
	}
	query := rt.Query
	if t.query != "" {
		if query != "" {
			query += "&"
		}
		query += t.query
		changed = true
	}
	if !changed {
		return nil
	}
	if query != "" || rt.ForceQuery {
		path += "?" + query
	}
	req.Url = path
	return nil
}

// applyJSON deletes then sets the JSON fields.
func (t *Transformer) applyJSON(req *mlv1.Request) error {
	if err := jsonBody(req); err != nil {
		return fmt.Errorf("transform json: %w", err)
	}
	body := req.Body
	var err error
	for _, p := range t.deletes {
		if body, err = sjson.DeleteBytes(body, p); err != nil {
			return fmt.Errorf("transform json_delete %q: %w", p, err)
		}
	}
	for _, s := range t.jsonSet {
		if body, err = sjson.SetRawBytes(body, s.name, []byte(s.value)); err != nil {
			return fmt.Errorf("transform json_set %q: %w", s.name, err)
		}
	}
	if bytes.Equal(body, req.Body) {
		return nil
	}
	if !json.Valid(body) {
		// sjson works on well-formed JSON; checked all the same.
		return fmt.Errorf("transform json: the result is not valid JSON: %w", ErrNotJSON)
	}
	req.Body = body
	req.BodySize = int64(len(body))
	for _, h := range req.Headers {
		if strings.EqualFold(h.GetName(), "Content-Length") {
			h.Value = strconv.Itoa(len(body))
		}
	}
	return nil
}

// jsonBody returns nil when the body of req may be changed as JSON: not cut
// at capture, not encoded (Content-Encoding absent or identity), every
// Content-Type (if any) a JSON media type (*/json or *+json), and the body
// parses. The errors wrap ErrNotJSON and never hold header values.
func jsonBody(req *mlv1.Request) error {
	if req.GetBodyTruncated() || req.GetBodyIncomplete() {
		return fmt.Errorf("%w: the body was cut at capture", ErrNotJSON)
	}
	for _, h := range req.GetHeaders() {
		switch {
		case strings.EqualFold(h.GetName(), "Content-Encoding"):
			for tok := range strings.SplitSeq(h.GetValue(), ",") {
				if tok = strings.TrimSpace(tok); tok != "" && !strings.EqualFold(tok, "identity") {
					return fmt.Errorf("%w: the body is encoded (Content-Encoding)", ErrNotJSON)
				}
			}
		case strings.EqualFold(h.GetName(), "Content-Type"):
			mt, _, err := mime.ParseMediaType(h.GetValue())
			if err != nil {
				return fmt.Errorf("%w: the Content-Type does not parse", ErrNotJSON)
			}
			_, sub, _ := strings.Cut(mt, "/")
			if sub != "json" && !strings.HasSuffix(sub, "+json") {
				return fmt.Errorf("%w: the Content-Type is not a JSON media type", ErrNotJSON)
			}
		}
	}
	body := req.GetBody()
	if !json.Valid(body) {
		return fmt.Errorf("%w: the body does not parse as JSON", ErrNotJSON)
	}
	if b := bytes.TrimLeft(body, " \t\r\n"); b[0] != '{' && b[0] != '[' {
		// sjson would replace a scalar body by a new object.
		return fmt.Errorf("%w: the body is not a JSON object or array", ErrNotJSON)
	}
	if dupKeys(body) {
		return fmt.Errorf("%w: an object of the body has a key twice", ErrNotJSON)
	}
	return nil
}

// dupKeys reports whether an object of the valid JSON b has a key twice
// (also when written with different escapes). sjson changes the first one
// only, while many servers read the last one: a deleted field would still
// reach the shadow, so such a body is refused. One pass over b, which
// json.Valid has checked.
func dupKeys(b []byte) bool {
	type frame struct {
		keys      map[string]struct{} // nil for an array
		expectKey bool
	}
	var stack []frame
	value := func() { // a value starts: the object holding it expects a key next
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].expectKey = true
		}
	}
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case ' ', '\t', '\r', '\n', ':', ',':
		case '{', '[':
			value()
			f := frame{}
			if c == '{' {
				f = frame{keys: map[string]struct{}{}, expectKey: true}
			}
			stack = append(stack, f)
		case '}', ']':
			stack = stack[:len(stack)-1]
		case '"':
			j, esc := i+1, false
			for ; j < len(b) && b[j] != '"'; j++ {
				if b[j] == '\\' {
					esc = true
					j++
				}
			}
			if n := len(stack); n > 0 && stack[n-1].keys != nil && stack[n-1].expectKey {
				key := string(b[i+1 : j])
				if esc {
					if err := json.Unmarshal(b[i:j+1], &key); err != nil {
						return true // cannot happen in valid JSON; refused all the same
					}
				}
				if _, ok := stack[n-1].keys[key]; ok {
					return true
				}
				stack[n-1].keys[key] = struct{}{}
				stack[n-1].expectKey = false
			} else {
				value()
			}
			i = j
		default: // a number, true, false or null
			value()
			for i+1 < len(b) && !strings.ContainsRune(" \t\r\n,]}", rune(b[i+1])) {
				i++
			}
		}
	}
	return false
}

// hasEncodedSlash reports whether an escaped path holds "%2F" (any case).
func hasEncodedSlash(p string) bool {
	return strings.Contains(p, "%2F") || strings.Contains(p, "%2f")
}

func hasHeader(hs []*mlv1.Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) {
			return true
		}
	}
	return false
}

// dropHeaders returns hs without the headers drop reports, in order.
func dropHeaders(hs []*mlv1.Header, drop func(*mlv1.Header) bool) []*mlv1.Header {
	out := hs[:0:0]
	for _, h := range hs {
		if !drop(h) {
			out = append(out, h)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
