package comparator

import (
	"fmt"
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
	for _, h := range c.Headers {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" && !seen[h] {
			seen[h] = true
			r.headers = append(r.headers, h)
		}
	}
	for _, h := range c.Ignore.Headers {
		r.ignoreHeaders = append(r.ignoreHeaders, strings.ToLower(strings.TrimSpace(h)))
	}
	for i, p := range c.Ignore.JSONPaths {
		pp, err := compilePath(p)
		if err != nil {
			return nil, fmt.Errorf("ignore.json_paths[%d]: %w", i, err)
		}
		r.ignorePaths = append(r.ignorePaths, pp)
	}
	for i, e := range c.Ignore.Endpoints {
		er := endpointRule{glob: strings.TrimSpace(e.Endpoint)}
		for _, h := range e.Headers {
			er.headers = append(er.headers, strings.ToLower(strings.TrimSpace(h)))
		}
		for j, p := range e.JSONPaths {
			pp, err := compilePath(p)
			if err != nil {
				return nil, fmt.Errorf("ignore.endpoints[%d].json_paths[%d]: %w", i, j, err)
			}
			er.paths = append(er.paths, pp)
		}
		r.endpoints = append(r.endpoints, er)
	}
	for i, p := range c.JSON.UnorderedPaths {
		pp, err := compilePath(p)
		if err != nil {
			return nil, fmt.Errorf("json.unordered_paths[%d]: %w", i, err)
		}
		r.unordered = append(r.unordered, pp)
	}
	return r, nil
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
	for _, g := range er.ignoreHeaders {
		if globMatch(g, name) {
			return true
		}
	}
	return false
}

func (er *epRules) ignorePath(path []seg) bool {
	for _, pp := range er.ignorePaths {
		if pp.match(path) {
			return true
		}
	}
	return false
}

func (er *epRules) unorderedArray(path []seg) bool {
	if er.r.unorderedAll {
		return true
	}
	for _, pp := range er.r.unordered {
		if pp.match(path) {
			return true
		}
	}
	return false
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
