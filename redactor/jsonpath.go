// JSON path rules: parsing and compiling the json_fields paths into the
// NFA the JSON editor walks.

package redactor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// segKind is the kind of one path segment.
type segKind uint8

const (
	segLiteral    segKind = iota // a key (case-insensitive) or an array index
	segGlob                      // a key pattern with '*'
	segAny                       // "*": any one key or index
	segDoubleStar                // "**": any number (zero or more) of keys or indexes
)

type pathSeg struct {
	kind segKind
	lit  string // lower case (literal or glob)
	g    glob   // compiled glob (segGlob)
	idx  int    // array index for an all-digit literal, else -1
}

// token is one step of the path to a JSON value: an object key or an index.
type token struct {
	key   string
	idx   int
	isIdx bool
	// keyClean: the detectors find nothing in key (its keyClass).
	keyClean bool
}

func (s *pathSeg) match(t token) bool {
	switch s.kind {
	case segAny:
		return true
	case segLiteral:
		if t.isIdx {
			return s.idx == t.idx
		}
		return asciiEqualFold(t.key, s.lit)
	case segGlob:
		return !t.isIdx && s.g.match(t.key)
	}
	return false
}

// lastByte is the byte a matching key must end with, or -1 when any.
func (s *pathSeg) lastByte() int {
	switch s.kind {
	case segLiteral:
		return int(s.lit[len(s.lit)-1])
	case segGlob:
		return s.g.lastByte()
	}
	return -1
}

// pathRule is a compiled JSON path rule.
type pathRule struct {
	segs []pathSeg
	r    *rule
}

// pathRules holds the JSON path rules: "**.<segment>" rules are checked
// directly against each key; the others run as an NFA over the path.
type pathRules struct {
	anywhere []pathRule // segs has exactly one segment (the one after "**")
	nfa      []pathRule
	// Index of anywhere: by the lower-case last byte a key must end with;
	// rules matching any last byte; rules that can match an array index.
	byLast  [256][]uint16
	anyLast []uint16
	byIdx   []uint16
}

// parsePath splits a JSON path on '.' into segments.
func parsePath(p string) ([]pathSeg, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	parts := strings.Split(p, ".")
	segs := make([]pathSeg, 0, len(parts))
	for _, part := range parts {
		switch {
		case part == "":
			return nil, errors.New("empty path segment")
		case part == "**":
			if len(segs) > 0 && segs[len(segs)-1].kind == segDoubleStar {
				continue
			}
			segs = append(segs, pathSeg{kind: segDoubleStar, idx: -1})
		case part == "*":
			segs = append(segs, pathSeg{kind: segAny, idx: -1})
		case strings.Contains(part, "**"):
			return nil, errors.New("\"**\" must be a whole segment")
		case strings.Contains(part, "*"):
			segs = append(segs, pathSeg{kind: segGlob, lit: strings.ToLower(part), g: compileGlob(part), idx: -1})
		default:
			idx := -1
			if n, err := strconv.Atoi(part); err == nil && n >= 0 && part[0] != '+' {
				idx = n
			}
			segs = append(segs, pathSeg{kind: segLiteral, lit: strings.ToLower(part), idx: idx})
		}
	}
	return segs, nil
}

// pathScore is the specificity of a path: literal segments weigh most, then
// globs by their literal characters, then "*"; "**" adds nothing.
func pathScore(segs []pathSeg) int {
	s := 0
	for _, g := range segs {
		switch g.kind {
		case segLiteral:
			s += 1000 + len(g.lit)
		case segGlob:
			s += 10 + len(g.lit) - strings.Count(g.lit, "*")
		case segAny:
			s++
		}
	}
	return s
}

func compilePathRules(m map[string]Rule, need func(section, key string, r rule)) (pathRules, error) {
	var p pathRules
	seen := map[string]string{}
	for _, key := range sortedKeys(m) {
		segs, err := parsePath(key)
		if err != nil {
			return p, fmt.Errorf("json_fields[%q]: %w", key, err)
		}
		low := strings.ToLower(key)
		if other, dup := seen[low]; dup {
			return p, fmt.Errorf("json_fields[%q]: duplicate of %q (paths are case-insensitive)", key, other)
		}
		seen[low] = key
		cr, err := compileRule("json_fields", key, "json:"+key, m[key], false)
		if err != nil {
			return p, err
		}
		if cr.act == actNone {
			continue
		}
		need("json_fields", key, cr)
		cr.score = pathScore(segs)
		r := &cr
		if len(segs) == 2 && segs[0].kind == segDoubleStar && segs[1].kind != segDoubleStar {
			k := uint16(len(p.anywhere))
			seg := &segs[1]
			p.anywhere = append(p.anywhere, pathRule{segs: segs[1:], r: r})
			if c := seg.lastByte(); c >= 0 {
				p.byLast[c] = append(p.byLast[c], k)
				if c >= 'a' && c <= 'z' {
					// Keys are matched ignoring case.
					p.byLast[c-'a'+'A'] = append(p.byLast[c-'a'+'A'], k)
				}
			} else {
				p.anyLast = append(p.anyLast, k)
			}
			if seg.kind == segLiteral && seg.idx >= 0 {
				p.byIdx = append(p.byIdx, k)
			}
		} else {
			p.nfa = append(p.nfa, pathRule{segs: segs, r: r})
		}
	}
	return p, nil
}

// pstate is an NFA state: rule index and position in its segments.
type pstate struct {
	rule, pos uint16
}
