package redactor

import (
	"fmt"
	"strings"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// nameRules matches names (header, form field, query parameter) against
// case-insensitive patterns where '*' matches any run of characters.
type nameRules struct {
	exact map[string]*rule // lower-case literal names
	globs []globRule
}

type globRule struct {
	g glob
	r *rule
}

// glob is a compiled case-insensitive name pattern.
type glob struct {
	shape uint8  // globExact, globPrefix, ...
	lit   string // lower case: the literal part for the simple shapes
	pat   string // lower case: the whole pattern
}

const (
	globExact    uint8 = iota // "abc"
	globPrefix                // "abc*"
	globSuffix                // "*abc"
	globContains              // "*abc*"
	globAll                   // "*"
	globGeneral               // anything else with '*'
)

func compileGlob(p string) glob {
	p = strings.ToLower(p)
	g := glob{pat: p, lit: p}
	n := strings.Count(p, "*")
	switch {
	case n == 0:
		g.shape = globExact
	case strings.Trim(p, "*") == "":
		g.shape = globAll
	case n == 1 && p[len(p)-1] == '*':
		g.shape, g.lit = globPrefix, p[:len(p)-1]
	case n == 1 && p[0] == '*':
		g.shape, g.lit = globSuffix, p[1:]
	case n == 2 && p[0] == '*' && p[len(p)-1] == '*':
		g.shape, g.lit = globContains, p[1:len(p)-1]
	default:
		g.shape = globGeneral
	}
	return g
}

func (g *glob) match(name string) bool {
	switch g.shape {
	case globExact:
		return asciiEqualFold(name, g.lit)
	case globPrefix:
		return len(name) >= len(g.lit) && asciiEqualFold(name[:len(g.lit)], g.lit)
	case globSuffix:
		// The last byte first: most names end otherwise.
		return len(name) >= len(g.lit) && len(g.lit) > 0 && lowerByte(name[len(name)-1]) == g.lit[len(g.lit)-1] &&
			asciiEqualFold(name[len(name)-len(g.lit):], g.lit)
	case globContains:
		for i := 0; i+len(g.lit) <= len(name); i++ {
			if asciiEqualFold(name[i:i+len(g.lit)], g.lit) {
				return true
			}
		}
		return false
	case globAll:
		return true
	}
	return globMatch(g.pat, name)
}

// lastByte is the byte a matching name must end with, or -1 when any.
func (g *glob) lastByte() int {
	switch g.shape {
	case globExact, globSuffix, globGeneral:
		if c := g.pat[len(g.pat)-1]; c != '*' {
			return int(c)
		}
	}
	return -1
}

func (n *nameRules) empty() bool { return len(n.exact) == 0 && len(n.globs) == 0 }

// match returns the most specific rule matching name for the directions dir
// (0 for rules without direction), or nil.
func (n *nameRules) match(name string, dir uint8) *rule {
	if n.empty() {
		return nil
	}
	var best *rule
	if len(n.exact) > 0 && len(name) <= 128 {
		var buf [128]byte
		for i := 0; i < len(name); i++ {
			c := name[i]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			buf[i] = c
		}
		if r := n.exact[string(buf[:len(name)])]; r != nil && (dir == 0 || r.on&dir != 0) {
			best = r
		}
	}
	for i := range n.globs {
		g := &n.globs[i]
		if (dir == 0 || g.r.on&dir != 0) && g.g.match(name) && g.r.better(best) {
			best = g.r
		}
	}
	return best
}

// globMatch reports whether name matches the lower-case pattern pat, where '*'
// matches any (possibly empty) run of bytes, ignoring ASCII case.
func globMatch(pat, name string) bool {
	px, nx := 0, 0
	nextPx, nextNx := -1, -1
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			c := pat[px]
			if c == '*' {
				nextPx, nextNx = px, nx+1
				px++
				continue
			}
			if nx < len(name) && lowerByte(name[nx]) == c {
				px++
				nx++
				continue
			}
		}
		if nextNx > 0 && nextNx <= len(name) {
			px, nx = nextPx, nextNx
			continue
		}
		return false
	}
	return true
}

// asciiLower lower-cases the ASCII letters of s only (strings.ToLower would
// also fold non-ASCII letters, such as U+212A Kelvin into 'k').
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if isUpper(s[i]) {
			b := []byte(s)
			for k := i; k < len(b); k++ {
				b[k] = lowerByte(b[k])
			}
			return string(b)
		}
	}
	return s
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// patternScore is the specificity of a name pattern: literal names beat any
// glob, and globs with more literal characters beat shorter ones.
func patternScore(pat string) int {
	if !strings.Contains(pat, "*") {
		return 1000 + len(pat)
	}
	return len(pat) - strings.Count(pat, "*")
}

// compileRule validates a Rule of section[key].
func compileRule(section, key, defName string, r Rule, allowOn bool) (rule, error) {
	a, ok := parseAction(r.Action)
	if !ok {
		if r.Action == "" {
			return rule{}, fmt.Errorf("%s[%q].action: missing", section, key)
		}
		return rule{}, fmt.Errorf("%s[%q].action: unknown action %q (want remove, drop, mask, hash, fake, shape, keep, off or unsign)", section, key, r.Action)
	}
	cr := rule{act: a, name: defName, on: dirRequest | dirResponse}
	if r.Name != "" {
		cr.name = r.Name
	}
	switch r.On {
	case "", OnBoth:
	case OnRequest:
		cr.on = dirRequest
	case OnResponse:
		cr.on = dirResponse
	default:
		return rule{}, fmt.Errorf("%s[%q].on: %q is not one of request, response, both", section, key, r.On)
	}
	if r.On != "" && !allowOn {
		return rule{}, fmt.Errorf("%s[%q].on: only header rules have a direction", section, key)
	}
	fk, ok := parseFakeKind(r.Kind)
	if !ok {
		return rule{}, fmt.Errorf("%s[%q].kind: unknown kind %q (want %s, text or shape)", section, key, r.Kind, strings.Join(kindNames[:], ", "))
	}
	if a == actUnsign && r.Kind != "" {
		return rule{}, fmt.Errorf("%s[%q].kind: the unsign action takes no kind", section, key)
	}
	if r.Action == ActionShape {
		if fk != kindAuto && fk != kindShape {
			return rule{}, fmt.Errorf("%s[%q].kind: the shape action takes no kind (it is fake with kind shape)", section, key)
		}
		fk = kindShape
	}
	cr.fake = fk
	return cr, nil
}

// compileNameRules compiles a name -> rule section; "off" rules are dropped.
func compileNameRules(section, prefix string, m map[string]Rule, allowOn bool, need func(section, key string, r rule)) (nameRules, error) {
	var n nameRules
	seen := map[string]string{}
	for _, key := range sortedKeys(m) {
		if key == "" || strings.Trim(key, "*") == "" {
			return n, fmt.Errorf("%s[%q]: a name pattern needs at least one literal character", section, key)
		}
		for i := 0; i < len(key); i++ {
			if c := key[i]; c <= ' ' || c >= 0x7f {
				return n, fmt.Errorf("%s[%q]: control character, space or non-ASCII byte in name", section, key)
			}
		}
		low := strings.ToLower(key)
		if other, dup := seen[low]; dup {
			return n, fmt.Errorf("%s[%q]: duplicate of %q (names are case-insensitive)", section, key, other)
		}
		seen[low] = key
		cr, err := compileRule(section, key, prefix+low, m[key], allowOn)
		if err != nil {
			return n, err
		}
		if cr.act == actNone {
			continue
		}
		need(section, key, cr)
		cr.score = patternScore(low)
		r := &cr
		if strings.Contains(low, "*") {
			n.globs = append(n.globs, globRule{g: compileGlob(low), r: r})
		} else {
			if n.exact == nil {
				n.exact = map[string]*rule{}
			}
			n.exact[low] = r
		}
	}
	return n, nil
}

// structuralHeader reports headers the detectors never scan: they describe
// the body's framing and a false positive there would corrupt the record.
func structuralHeader(name string) bool {
	switch len(name) {
	case 12:
		return asciiEqualFold(name, "Content-Type")
	case 14:
		return asciiEqualFold(name, "Content-Length")
	case 16:
		return asciiEqualFold(name, "Content-Encoding")
	case 17:
		return asciiEqualFold(name, "Transfer-Encoding")
	}
	return false
}

// urlHeader reports headers holding a URL whose query gets query_params rules.
func urlHeader(name string) bool {
	switch len(name) {
	case 7:
		return asciiEqualFold(name, "Referer")
	case 8:
		return asciiEqualFold(name, "Location")
	case 16:
		return asciiEqualFold(name, "Content-Location")
	}
	return false
}

// scrubHeaders applies header rules, then URL scrubbing of Referer/Location,
// then (scan_headers) the detectors to the other values. Dropped lines are
// removed from the slice in place.
func (st *state) scrubHeaders(hs []*mlv1.Header, dir uint8) []*mlv1.Header {
	e := st.e
	out := hs[:0]
	for _, h := range hs {
		if h == nil {
			continue
		}
		hc := e.hdrs.get(h.Name, e.classHeader)
		r := hc.rule[dir-1]
		structural := hc.structural
		if r == nil && !structural && hc.secret {
			r = &e.secretHeader
		}
		if r != nil {
			switch r.act {
			case actRemove:
				st.hit(r.name, 1)
				continue
			case actUnsign:
				st.hit(r.name, 1)
				v, ok := st.unsign(h.Value)
				if !ok {
					continue // not a JWT: the line is removed
				}
				h.Value = v
			case actKeep:
			default:
				h.Value = st.applyRule(r, h.Value)
			}
			out = append(out, h)
			continue
		}
		switch {
		case structural:
		case hc.url:
			h.Value = st.scrubURL(h.Value)
		case e.scanHeaders:
			h.Value, _ = st.scrubString(h.Value)
		}
		out = append(out, h)
	}
	for i := len(out); i < len(hs); i++ {
		hs[i] = nil
	}
	return out
}
