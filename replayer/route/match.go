package route

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
	"golang.org/x/net/http/httpguts"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// SafeMethods are the methods `replay --safe` replays: those RFC 9110
// defines as safe and that have no body semantics.
var SafeMethods = []string{"GET", "HEAD", "OPTIONS"}

// Match selects captured requests. Every non-empty part must match (AND);
// within a list, any entry may match (OR). The zero Match selects
// everything.
type Match struct {
	// Methods are HTTP methods, case-insensitive ("GET", "post").
	Methods []string `yaml:"methods,omitempty"`
	// Paths are globs on the decoded path: '*' matches within one segment,
	// '**' across segments, '?' one character, [...] a class (doublestar
	// syntax). Without a query.
	Paths []string `yaml:"paths,omitempty"`
	// ExcludePaths are globs like Paths; a request matching one is not
	// selected, whatever else matches.
	ExcludePaths []string `yaml:"exclude_paths,omitempty"`
	// Headers maps a header name (case-insensitive) to a glob on its value
	// ('*' any run of characters, '?' one); a request is selected when each
	// named header has a value the glob matches. "Host" matches the
	// request's Host (or :authority), which is not among its headers.
	Headers map[string]string `yaml:"headers,omitempty"`
}

// Matcher is a compiled Match; it is safe for concurrent use.
type Matcher struct {
	methods  []string // upper case
	paths    []string
	excludes []string
	headers  []headerGlob // sorted by name
}

// headerGlob is one compiled entry of Match.Headers.
type headerGlob struct {
	name string // as configured; compared case-insensitively
	glob string
}

// Compile checks m (methods are tokens, globs are valid, header names are
// tokens) and returns its Matcher; the error names the field and entry.
func (m Match) Compile() (*Matcher, error) {
	c := &Matcher{}
	for i, meth := range m.Methods {
		if !httpguts.ValidHeaderFieldName(meth) { // a method is a token too
			return nil, fmt.Errorf("methods[%d]: %q is not a method (a token)", i, meth)
		}
		c.methods = append(c.methods, strings.ToUpper(meth))
	}
	var err error
	if c.paths, err = compileGlobs("paths", m.Paths); err != nil {
		return nil, err
	}
	if c.excludes, err = compileGlobs("exclude_paths", m.ExcludePaths); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(m.Headers))
	for name := range m.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]string{}
	for _, name := range names {
		glob := m.Headers[name]
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("headers[%q]: not a valid header name", name)
		}
		if prev, ok := seen[strings.ToLower(name)]; ok {
			return nil, fmt.Errorf("headers[%q]: the same header as %q (names are case-insensitive)", name, prev)
		}
		seen[strings.ToLower(name)] = name
		if i := ctlIndex(glob); i >= 0 {
			return nil, fmt.Errorf("headers[%q]: the glob holds a control character at byte %d", name, i)
		}
		c.headers = append(c.headers, headerGlob{name: name, glob: glob})
	}
	return c, nil
}

// compileGlobs checks the path globs of field.
func compileGlobs(field string, globs []string) ([]string, error) {
	for i, g := range globs {
		if !doublestar.ValidatePattern(g) {
			return nil, fmt.Errorf("%s[%d]: %q is not a valid glob", field, i, g)
		}
		// A decoded path starts with "/": a glob that cannot is a mistake
		// ("api/**"), not a filter that happens to select nothing.
		if g == "" || !strings.ContainsRune("/*{", rune(g[0])) {
			return nil, fmt.Errorf("%s[%d]: %q never matches: a path starts with \"/\"", field, i, g)
		}
	}
	return slices.Clone(globs), nil
}

// Empty reports whether m selects everything.
func (m Match) Empty() bool {
	return len(m.Methods) == 0 && len(m.Paths) == 0 && len(m.ExcludePaths) == 0 && len(m.Headers) == 0
}

// Matches reports whether req is selected. A request whose request-target
// does not parse (see reqtarget.Parse) matches no path glob (and is
// therefore selected only by a Match without Paths and ExcludePaths). A nil
// Matcher selects everything.
func (m *Matcher) Matches(req *mlv1.Request) bool {
	if m == nil {
		return true
	}
	if len(m.methods) > 0 && !slices.ContainsFunc(m.methods, func(s string) bool { return strings.EqualFold(s, req.GetMethod()) }) {
		return false
	}
	if len(m.paths) > 0 || len(m.excludes) > 0 {
		rt, err := reqtarget.Check(req.GetMethod(), req.GetUrl())
		if err != nil {
			return false
		}
		p := rt.DecodedPath()
		if slices.ContainsFunc(m.excludes, func(g string) bool { return doublestar.MatchUnvalidated(g, p) }) {
			return false
		}
		if len(m.paths) > 0 && !slices.ContainsFunc(m.paths, func(g string) bool { return doublestar.MatchUnvalidated(g, p) }) {
			return false
		}
	}
	for _, hg := range m.headers {
		if strings.EqualFold(hg.name, "Host") {
			if !globMatch(hg.glob, req.GetHost()) {
				return false
			}
			continue
		}
		if !slices.ContainsFunc(req.GetHeaders(), func(h *mlv1.Header) bool {
			return strings.EqualFold(h.GetName(), hg.name) && globMatch(hg.glob, h.GetValue())
		}) {
			return false
		}
	}
	return true
}

// ParseHeaderMatch parses the value of `--header-match`: "Name: glob" or
// "Name=glob" (spaces around the name and the glob are trimmed). The name
// must be a header name (a token); the glob is a Match.Headers glob.
func ParseHeaderMatch(s string) (name, glob string, err error) {
	i := strings.IndexAny(s, ":=")
	if i < 0 {
		return "", "", fmt.Errorf("header match %q: want \"Name: glob\" or \"Name=glob\"", s)
	}
	name, glob = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
	if !httpguts.ValidHeaderFieldName(name) {
		return "", "", fmt.Errorf("header match %q: %q is not a valid header name", s, name)
	}
	if j := ctlIndex(glob); j >= 0 {
		return "", "", fmt.Errorf("header match %q: the glob holds a control character", s)
	}
	return name, glob, nil
}

// globMatch reports whether the whole of s matches glob, where '*' matches
// any run of characters (also none) and '?' one character (a UTF-8 sequence,
// or one byte of a value that is not UTF-8); every other byte matches
// itself. It backtracks only to the last '*', so it runs in
// O(len(glob)*len(s)) at worst.
func globMatch(glob, s string) bool {
	gi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case gi < len(glob) && glob[gi] == '*':
			star, mark = gi, si
			gi++
		case gi < len(glob) && glob[gi] == '?':
			_, w := utf8.DecodeRuneInString(s[si:])
			gi++
			si += w
		case gi < len(glob) && glob[gi] == s[si]:
			gi++
			si++
		case star >= 0:
			_, w := utf8.DecodeRuneInString(s[mark:])
			gi = star + 1
			mark += w
			si = mark
		default:
			return false
		}
	}
	for gi < len(glob) && glob[gi] == '*' {
		gi++
	}
	return gi == len(glob)
}

// ctlIndex returns the index of the first control byte (below 0x20, or DEL)
// in s, or -1.
func ctlIndex(s string) int {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
