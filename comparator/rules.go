package comparator

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// seg is one segment of a JSON path: an object key or an array index.
type seg struct {
	s   string
	idx bool
}

// pathPattern is a compiled JSON path pattern ("items.*.id", "**.trace_id").
type pathPattern struct {
	segs []string // lower case; "**" matches any number of segments
	text string
}

// compilePath parses a dotted path pattern; '\' escapes '.', '*' and '\'.
func compilePath(p string) (pathPattern, error) {
	p = strings.TrimSpace(p)
	p = strings.TrimPrefix(p, "body.")
	if p == "" {
		return pathPattern{}, errEmptyPattern
	}
	pp := pathPattern{text: p}
	var cur strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			i++
			cur.WriteByte(p[i])
		case c == '.':
			pp.segs = append(pp.segs, strings.ToLower(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	pp.segs = append(pp.segs, strings.ToLower(cur.String()))
	for _, s := range pp.segs {
		if s == "" {
			return pp, fmt.Errorf("pattern %q: empty segment", p)
		}
	}
	return pp, nil
}

// match reports whether the concrete path matches the pattern.
func (pp pathPattern) match(path []seg) bool {
	return matchSegs(pp.segs, path)
}

func matchSegs(pat []string, path []seg) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			rest := pat[1:]
			for i := 0; i <= len(path); i++ {
				if matchSegs(rest, path[i:]) {
					return true
				}
			}
			return false
		}
		if len(path) == 0 || !globMatch(pat[0], strings.ToLower(path[0].s)) {
			return false
		}
		pat, path = pat[1:], path[1:]
	}
	return len(path) == 0
}

// globMatch matches s against p where '*' matches any run of characters.
func globMatch(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// rules are the compiled comparison rules.
type rules struct {
	headers       []string // compared headers, lower case
	ignoreHeaders []string // glob patterns, lower case
	ignorePaths   []pathPattern
	endpoints     []endpointRule
	unorderedAll  bool
	unordered     []pathPattern

	mu    sync.Mutex
	cache map[string]*epRules
}

type endpointRule struct {
	glob    string
	headers []string
	paths   []pathPattern
}

// epRules are the rules that apply to one endpoint.
type epRules struct {
	r             *rules
	ignoreHeaders []string
	ignorePaths   []pathPattern
}

func compileRules(c Config) (*rules, error) {
	r := &rules{unorderedAll: c.JSON.UnorderedArrays, cache: map[string]*epRules{}}
	seen := map[string]bool{}
	for _, h := range lowerAll(c.Headers) {
		if h != "" && !seen[h] {
			seen[h] = true
			r.headers = append(r.headers, h)
		}
	}
	r.ignoreHeaders = lowerAll(c.Ignore.Headers)
	var err error
	if r.ignorePaths, err = compilePaths(c.Ignore.JSONPaths, "ignore.json_paths"); err != nil {
		return nil, err
	}
	for i, e := range c.Ignore.Endpoints {
		er := endpointRule{glob: strings.TrimSpace(e.Endpoint), headers: lowerAll(e.Headers)}
		if er.paths, err = compilePaths(e.JSONPaths, fmt.Sprintf("ignore.endpoints[%d].json_paths", i)); err != nil {
			return nil, err
		}
		r.endpoints = append(r.endpoints, er)
	}
	if r.unordered, err = compilePaths(c.JSON.UnorderedPaths, "json.unordered_paths"); err != nil {
		return nil, err
	}
	return r, nil
}

// lowerAll returns the names trimmed and in lower case.
func lowerAll(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, strings.ToLower(strings.TrimSpace(n)))
	}
	return out
}

// compilePaths compiles the path patterns of the setting key.
func compilePaths(ps []string, key string) ([]pathPattern, error) {
	var out []pathPattern
	for i, p := range ps {
		pp, err := compilePath(p)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", key, i, err)
		}
		out = append(out, pp)
	}
	return out, nil
}

// forEndpoint returns the rules of endpoint ep.
func (r *rules) forEndpoint(ep string) *epRules {
	r.mu.Lock()
	defer r.mu.Unlock()
	if er, ok := r.cache[ep]; ok {
		return er
	}
	er := &epRules{r: r, ignoreHeaders: r.ignoreHeaders, ignorePaths: r.ignorePaths}
	for _, e := range r.endpoints {
		if globMatch(e.glob, ep) {
			er.ignoreHeaders = append(append([]string(nil), er.ignoreHeaders...), e.headers...)
			er.ignorePaths = append(append([]pathPattern(nil), er.ignorePaths...), e.paths...)
		}
	}
	if len(r.cache) < 10000 {
		r.cache[ep] = er
	}
	return er
}

func (er *epRules) ignoreHeader(name string) bool {
	name = strings.ToLower(name)
	return slices.ContainsFunc(er.ignoreHeaders, func(g string) bool { return globMatch(g, name) })
}

func (er *epRules) ignorePath(path []seg) bool {
	return matchAny(er.ignorePaths, path)
}

func (er *epRules) unorderedArray(path []seg) bool {
	return er.r.unorderedAll || matchAny(er.r.unordered, path)
}

// matchAny reports whether a pattern of pps matches the concrete path.
func matchAny(pps []pathPattern, path []seg) bool {
	return slices.ContainsFunc(pps, func(pp pathPattern) bool { return pp.match(path) })
}

// pathString renders a JSON path: segments joined by '.', with '.', '*' and
// '\' escaped; when key is set, array indices become '*'.
func pathString(path []seg, key bool) string {
	var b strings.Builder
	b.WriteString("body")
	for _, s := range path {
		b.WriteByte('.')
		if s.idx {
			if key {
				b.WriteByte('*')
			} else {
				b.WriteString(s.s)
			}
			continue
		}
		for i := 0; i < len(s.s); i++ {
			c := s.s[i]
			if c == '.' || c == '*' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
	}
	return b.String()
}
