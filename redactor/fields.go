package redactor

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// ---- JSON paths ----

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

// ---- JSON editor ----

// jsonEd edits a JSON text in place: untouched bytes are copied verbatim, so
// key order, number formatting and white space survive. Output is created
// lazily on the first edit.
type jsonEd struct {
	st     *state
	in     []byte
	out    []byte
	copied int
	// pend is the removal run of the innermost open container; a parent's is
	// always flushed before a kept child is entered, so one suffices.
	pend   pending
	stepLo int // first state of the step being computed (for dedupe)
	// rootLo:rootHi are the NFA states of the document root in jstates.
	rootLo, rootHi int
	rootArray      bool // the document is an array (of GraphQL requests)
	nest           int  // levels of JSON-in-a-string around this document
	gqlQuery       bool // the next string is a GraphQL document
}

// maxNestedJSON bounds JSON documents nested in JSON strings.
const maxNestedJSON = 8

// pending is a run of removed members or elements not yet cut.
type pending struct {
	active  bool
	leading bool // no kept member before: cut up to the next kept one
	start   int
	end     int
}

// syntaxError is a JSON syntax error; it carries an offset, never input bytes.
type syntaxError struct {
	msg string
	off int
}

func (e *syntaxError) Error() string { return fmt.Sprintf("json: %s at offset %d", e.msg, e.off) }
func (e *syntaxError) Unwrap() error { return ErrUnparseable }

func jsonErr(msg string, off int) error { return &syntaxError{msg, off} }

// replace substitutes in[a:b] with r in the output.
func (j *jsonEd) replace(a, b int, r []byte) {
	if j.out == nil {
		j.out = make([]byte, 0, len(j.in)+len(r)+16)
	}
	j.out = append(j.out, j.in[j.copied:a]...)
	j.out = append(j.out, r...)
	j.copied = b
}

func (j *jsonEd) ws(i int) int {
	for i < len(j.in) {
		switch j.in[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scrubJSON scrubs a JSON document (or, with multi, a sequence of documents
// separated by white space, as in NDJSON). The result is nil when unchanged.
func (st *state) scrubJSON(in []byte, multi bool) ([]byte, bool, error) {
	st.jstates = st.jstates[:0]
	return st.scrubJSONNested(in, multi, 0)
}

// scrubJSONNested is scrubJSON for a document nested nest levels deep in
// JSON strings; its NFA states live above the enclosing document's.
func (st *state) scrubJSONNested(in []byte, multi bool, nest int) ([]byte, bool, error) {
	j := jsonEd{st: st, in: in, nest: nest}
	i := 0
	if bytes.HasPrefix(in, []byte("\xef\xbb\xbf")) {
		i = 3
	}
	i = j.ws(i)
	if i == len(in) {
		return nil, false, nil
	}
	base := len(st.jstates)
	defer func() { st.jstates = st.jstates[:base] }()
	for r := range st.e.json.nfa {
		st.jstates = append(st.jstates, pstate{uint16(r), 0})
	}
	j.rootLo, j.rootHi = base, len(st.jstates)
	lo, hi := j.rootLo, j.rootHi
	for {
		j.rootArray = in[i] == '['
		r := j.completed(lo, hi, nil)
		end, err := j.value(i, lo, hi, r, 0)
		if err != nil {
			return nil, false, err
		}
		i = j.ws(end)
		if i == len(in) {
			break
		}
		if !multi {
			return nil, false, jsonErr("data after top-level value", i)
		}
	}
	if j.out == nil {
		return nil, false, nil
	}
	j.out = append(j.out, in[j.copied:]...)
	return j.out, true, nil
}

// completed returns the best rule among states[lo:hi] that have consumed
// their whole path (trailing "**" may match nothing), starting from best.
func (j *jsonEd) completed(lo, hi int, best *rule) *rule {
	nfa := j.st.e.json.nfa
	for _, s := range j.st.jstates[lo:hi] {
		pr := &nfa[s.rule]
		p := int(s.pos)
		for p < len(pr.segs) && pr.segs[p].kind == segDoubleStar {
			p++
		}
		if p == len(pr.segs) && pr.r.better(best) {
			best = pr.r
		}
	}
	return best
}

// step computes the states after t from states[lo:hi], appending them to
// jstates; it returns their range and the best rule matching the child
// (inherited from the parent unless a more specific rule matches).
func (j *jsonEd) step(lo, hi int, t token, inherited *rule) (int, int, *rule) {
	st := j.st
	pr := &st.e.json
	nlo := len(st.jstates)
	j.stepLo = nlo
	for k := lo; k < hi; k++ {
		s := st.jstates[k]
		j.advance(s.rule, s.pos, t)
	}
	nhi := len(st.jstates)
	best := inherited
	if best != nil && best.act == actRemove {
		best = nil
	}
	best = j.completed(nlo, nhi, best)
	if len(pr.anywhere) > 0 {
		var cand []uint16
		switch {
		case t.isIdx:
			cand = pr.byIdx
		case t.key != "":
			cand = pr.byLast[t.key[len(t.key)-1]]
		}
		for _, k := range cand {
			if a := &pr.anywhere[k]; a.segs[0].match(t) && a.r.better(best) {
				best = a.r
			}
		}
		for _, k := range pr.anyLast {
			if a := &pr.anywhere[k]; a.segs[0].match(t) && a.r.better(best) {
				best = a.r
			}
		}
	}
	if best == nil && !t.isIdx && st.e.secretMatch(st.e.offJSON, t.key) {
		best = &st.e.secretJSON
	}
	return nlo, nhi, best
}

func (j *jsonEd) advance(r, p uint16, t token) {
	segs := j.st.e.json.nfa[r].segs
	for int(p) < len(segs) {
		seg := &segs[p]
		if seg.kind == segDoubleStar {
			j.addState(r, p) // "**" consumes t
			p++              // or matches nothing
			continue
		}
		if seg.match(t) {
			j.addState(r, p+1)
		}
		return
	}
}

func (j *jsonEd) addState(r, p uint16) {
	st := j.st
	for _, s := range st.jstates[j.stepLo:] {
		if s == (pstate{r, p}) {
			return
		}
	}
	st.jstates = append(st.jstates, pstate{r, p})
}

// value processes the value at in[i] under rule r (nil: no rule); lo:hi are
// the NFA states for its children. It returns the offset after the value.
func (j *jsonEd) value(i, lo, hi int, r *rule, depth int) (int, error) {
	in := j.in
	if i >= len(in) {
		return 0, jsonErr("unexpected end of input", i)
	}
	if depth > maxJSONDepth {
		return 0, jsonErr("nesting too deep", i)
	}
	switch c := in[i]; {
	case c == '{' || c == '[':
		if r != nil && r.act == actKeep {
			return j.skip(i, depth)
		}
		if c == '{' {
			return j.object(i, lo, hi, r, depth)
		}
		return j.array(i, lo, hi, r, depth)
	case c == '"':
		return j.str(i, r)
	case c == '-' || isDigit(c):
		return j.number(i, r)
	case c == 't':
		return j.literal(i, "true")
	case c == 'f':
		return j.literal(i, "false")
	case c == 'n':
		return j.literal(i, "null")
	}
	return 0, jsonErr("invalid character", i)
}

func (j *jsonEd) literal(i int, lit string) (int, error) {
	if !bytes.HasPrefix(j.in[i:], []byte(lit)) {
		return 0, jsonErr("invalid literal", i)
	}
	return i + len(lit), nil
}

// object processes the object at in[i] == '{'.
func (j *jsonEd) object(i, lo, hi int, inherited *rule, depth int) (int, error) {
	in := j.in
	i = j.ws(i + 1)
	if i < len(in) && in[i] == '}' {
		return i + 1, nil
	}
	prevKeptEnd := -1
	for {
		if i >= len(in) || in[i] != '"' {
			return 0, jsonErr("expected object key", i)
		}
		keyStart := i
		keyEnd, esc, err := scanString(in, i)
		if err != nil {
			return 0, err
		}
		key := j.decode(keyStart, keyEnd, esc)
		i = j.ws(keyEnd)
		if i >= len(in) || in[i] != ':' {
			return 0, jsonErr("expected ':'", i)
		}
		i = j.ws(i + 1)
		nlo, nhi, r := j.step(lo, hi, token{key: key}, inherited)
		if depth == 0 || (depth == 1 && j.rootArray) {
			// A GraphQL request ({"query": ..., "variables": {...}}, or a
			// batch of them): the variables get the rules of a document
			// root, and the query is a GraphQL document.
			switch key {
			case "variables":
				j.stepLo = nlo
				for k := j.rootLo; k < j.rootHi; k++ {
					j.addState(j.st.jstates[k].rule, 0)
				}
				nhi = len(j.st.jstates)
			case "query":
				j.gqlQuery = true
			}
		}
		if r != nil && r.act == actRemove {
			end, err := j.skip(i, depth+1)
			if err != nil {
				return 0, err
			}
			j.st.hit(r.name, 1)
			j.removeItem(keyStart, end, prevKeptEnd)
			i = end
		} else {
			j.flushPending(keyStart)
			if r == nil || r.act != actKeep {
				j.scrubKey(keyStart, keyEnd, key)
			}
			end, err := j.value(i, nlo, nhi, r, depth+1)
			if err != nil {
				return 0, err
			}
			prevKeptEnd = end
			i = end
		}
		j.gqlQuery = false
		j.st.jstates = j.st.jstates[:nlo]
		i = j.ws(i)
		if i >= len(in) {
			return 0, jsonErr("unexpected end of object", i)
		}
		switch in[i] {
		case ',':
			i = j.ws(i + 1)
			continue
		case '}':
			j.flushPendingEnd()
			return i + 1, nil
		}
		return 0, jsonErr("expected ',' or '}'", i)
	}
}

// array processes the array at in[i] == '['.
func (j *jsonEd) array(i, lo, hi int, inherited *rule, depth int) (int, error) {
	in := j.in
	i = j.ws(i + 1)
	if i < len(in) && in[i] == ']' {
		return i + 1, nil
	}
	prevKeptEnd := -1
	for idx := 0; ; idx++ {
		start := i
		nlo, nhi, r := j.step(lo, hi, token{idx: idx, isIdx: true}, inherited)
		if r != nil && r.act == actRemove {
			end, err := j.skip(i, depth+1)
			if err != nil {
				return 0, err
			}
			j.st.hit(r.name, 1)
			j.removeItem(start, end, prevKeptEnd)
			i = end
		} else {
			j.flushPending(start)
			end, err := j.value(i, nlo, nhi, r, depth+1)
			if err != nil {
				return 0, err
			}
			prevKeptEnd = end
			i = end
		}
		j.st.jstates = j.st.jstates[:nlo]
		i = j.ws(i)
		if i >= len(in) {
			return 0, jsonErr("unexpected end of array", i)
		}
		switch in[i] {
		case ',':
			i = j.ws(i + 1)
			continue
		case ']':
			j.flushPendingEnd()
			return i + 1, nil
		}
		return 0, jsonErr("expected ',' or ']'", i)
	}
}

// removeItem records the removal of the member or element in[start:end].
// After a kept item, the cut runs from the end of that item (taking the
// separator before the removed one); before any kept item, it runs from the
// removed item up to the next kept one (taking the separator after it).
func (j *jsonEd) removeItem(start, end, prevKeptEnd int) {
	if j.pend.active {
		j.pend.end = end
		return
	}
	if prevKeptEnd >= 0 {
		j.pend = pending{active: true, start: prevKeptEnd, end: end}
	} else {
		j.pend = pending{active: true, leading: true, start: start, end: end}
	}
}

// flushPending cuts a pending removal before the kept item at next.
func (j *jsonEd) flushPending(next int) {
	if !j.pend.active {
		return
	}
	if j.pend.leading {
		j.replace(j.pend.start, next, nil)
	} else {
		j.replace(j.pend.start, j.pend.end, nil)
	}
	j.pend = pending{}
}

// flushPendingEnd cuts a pending removal at the end of the container.
func (j *jsonEd) flushPendingEnd() {
	if !j.pend.active {
		return
	}
	j.replace(j.pend.start, j.pend.end, nil)
	j.pend = pending{}
}

// scrubKey runs the detectors over an object key.
func (j *jsonEd) scrubKey(start, end int, key string) {
	if v, ok := j.st.scrubString(key); ok {
		j.replace(start, end, appendJSONString(nil, v))
	}
}

// str processes the string at in[i].
func (j *jsonEd) str(i int, r *rule) (int, error) {
	end, esc, err := scanString(j.in, i)
	if err != nil {
		return 0, err
	}
	if r != nil && r.act == actKeep {
		return end, nil
	}
	v := j.decode(i, end, esc)
	if r != nil {
		j.replace(i, end, appendJSONString(nil, j.st.applyRule(r, v)))
		return end, nil
	}
	st := j.st
	if len(v) >= 2 && (v[0] == '{' || v[0] == '[' || isSpace(v[0])) && looksJSON(v) && j.nest < maxNestedJSON {
		// JSON in a JSON string: scrub it as a document and write it back
		// as a string. v may alias the decode scratch, which the nested
		// document reuses.
		doc := []byte(v)
		out, changed, err := st.scrubJSONNested(doc, false, j.nest+1)
		if err == nil {
			if changed {
				j.replace(i, end, appendJSONString(nil, unsafe.String(unsafe.SliceData(out), len(out))))
			}
			return end, nil
		}
		v = unsafe.String(unsafe.SliceData(doc), len(doc))
	}
	changed := false
	if j.gqlQuery {
		v, changed = st.scrubNamed(v)
	}
	if nv, ok := st.scrubString(v); ok {
		v, changed = nv, true
	}
	if changed {
		j.replace(i, end, appendJSONString(nil, v))
	}
	return end, nil
}

// looksJSON reports whether s, trimmed of white space, starts with '{' or '['
// and ends with the matching '}' or ']'.
func looksJSON(s string) bool {
	a, b := 0, len(s)
	for a < b && isSpace(s[a]) {
		a++
	}
	for b > a && isSpace(s[b-1]) {
		b--
	}
	if b-a < 2 {
		return false
	}
	return (s[a] == '{' && s[b-1] == '}') || (s[a] == '[' && s[b-1] == ']')
}

// number processes the number at in[i]. A rule masks or hashes it into a
// string, or fakes it into a number with the same shape; the card detector
// runs over integers of 13 to 19 digits.
func (j *jsonEd) number(i int, r *rule) (int, error) {
	end, err := scanNumber(j.in, i)
	if err != nil {
		return 0, err
	}
	if r != nil && r.act == actKeep {
		return end, nil
	}
	v := unsafe.String(&j.in[i], end-i)
	if r != nil {
		var nv string
		if r.act == actFake {
			j.st.hit(r.name, 1)
			nv = j.st.fakeNumber(r, v)
		} else {
			nv = string(appendJSONString(nil, j.st.applyRule(r, v)))
		}
		j.replace(i, end, []byte(nv))
		return end, nil
	}
	if end-i >= 13 && end-i <= 19 && j.st.e.det.on[kindCard] {
		if nv, ok := j.st.scrubString(v); ok {
			if isJSONInteger(nv) {
				j.replace(i, end, []byte(nv))
			} else {
				j.replace(i, end, appendJSONString(nil, nv))
			}
		}
	}
	return end, nil
}

// fakeNumber fakes a JSON number: a card-like integer gets a card fake; any
// other number keeps its sign, decimal point, exponent and digit count with
// fresh digits (a multi-digit integer part never gets a leading zero).
func (st *state) fakeNumber(r *rule, v string) string {
	kind := r.fake
	if kind == kindAuto {
		kind = st.wholeKind(v)
	}
	if piiKind(kind) == kindCard && isJSONInteger(v) {
		return st.e.keyed.fake(kind, v)
	}
	rs := st.e.keyed.newStream(kindText, v)
	f := []byte(v)
	for range 8 {
		for k, c := range f {
			if isDigit(c) {
				f[k] = rs.digit()
			}
		}
		k := 0
		if k < len(f) && f[k] == '-' {
			k++
		}
		if k+1 < len(f) && isDigit(f[k+1]) && f[k] == '0' {
			f[k] = rs.nonzero()
		}
		if string(f) != v {
			break
		}
	}
	return string(f)
}

func isJSONInteger(s string) bool {
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// skip validates and skips the value at in[i] without editing.
func (j *jsonEd) skip(i, depth int) (int, error) {
	in := j.in
	if i >= len(in) {
		return 0, jsonErr("unexpected end of input", i)
	}
	if depth > maxJSONDepth {
		return 0, jsonErr("nesting too deep", i)
	}
	switch c := in[i]; {
	case c == '{':
		i = j.ws(i + 1)
		if i < len(in) && in[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(in) || in[i] != '"' {
				return 0, jsonErr("expected object key", i)
			}
			end, _, err := scanString(in, i)
			if err != nil {
				return 0, err
			}
			i = j.ws(end)
			if i >= len(in) || in[i] != ':' {
				return 0, jsonErr("expected ':'", i)
			}
			if i, err = j.skip(j.ws(i+1), depth+1); err != nil {
				return 0, err
			}
			i = j.ws(i)
			if i < len(in) && in[i] == ',' {
				i = j.ws(i + 1)
				continue
			}
			if i < len(in) && in[i] == '}' {
				return i + 1, nil
			}
			return 0, jsonErr("expected ',' or '}'", i)
		}
	case c == '[':
		i = j.ws(i + 1)
		if i < len(in) && in[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = j.skip(i, depth+1); err != nil {
				return 0, err
			}
			i = j.ws(i)
			if i < len(in) && in[i] == ',' {
				i = j.ws(i + 1)
				continue
			}
			if i < len(in) && in[i] == ']' {
				return i + 1, nil
			}
			return 0, jsonErr("expected ',' or ']'", i)
		}
	case c == '"':
		end, _, err := scanString(in, i)
		return end, err
	case c == '-' || isDigit(c):
		return scanNumber(in, i)
	case c == 't':
		return j.literal(i, "true")
	case c == 'f':
		return j.literal(i, "false")
	case c == 'n':
		return j.literal(i, "null")
	}
	return 0, jsonErr("invalid character", i)
}

// scanString validates the string starting at in[i] == '"' and returns the
// offset after its closing quote and whether it has escapes.
func scanString(in []byte, i int) (int, bool, error) {
	esc := false
	k := i + 1
	for k < len(in) {
		// Plain bytes in a run first: one table look-up each.
		for k < len(in) && jsonPlain[in[k]] {
			k++
		}
		if k >= len(in) {
			break
		}
		c := in[k]
		switch {
		case c == '"':
			return k + 1, esc, nil
		case c == '\\':
			esc = true
			if k+1 >= len(in) {
				return 0, false, jsonErr("unterminated string", i)
			}
			switch in[k+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				k += 2
			case 'u':
				if k+6 > len(in) {
					return 0, false, jsonErr("invalid \\u escape", k)
				}
				for _, h := range in[k+2 : k+6] {
					if unhex(h) < 0 {
						return 0, false, jsonErr("invalid \\u escape", k)
					}
				}
				k += 6
			default:
				return 0, false, jsonErr("invalid escape", k)
			}
		case c < 0x20:
			return 0, false, jsonErr("control character in string", k)
		default:
			k++
		}
	}
	return 0, false, jsonErr("unterminated string", i)
}

// jsonPlain marks the bytes a JSON string holds as they are: not '"', '\\'
// or a control character.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x100; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanNumber validates the number at in[i] (RFC 8259 grammar).
func scanNumber(in []byte, i int) (int, error) {
	k := i
	if k < len(in) && in[k] == '-' {
		k++
	}
	switch {
	case k < len(in) && in[k] == '0':
		k++
	case k < len(in) && in[k] >= '1' && in[k] <= '9':
		for k < len(in) && isDigit(in[k]) {
			k++
		}
	default:
		return 0, jsonErr("invalid number", i)
	}
	if k < len(in) && in[k] == '.' {
		k++
		st := k
		for k < len(in) && isDigit(in[k]) {
			k++
		}
		if k == st {
			return 0, jsonErr("invalid number", i)
		}
	}
	if k < len(in) && (in[k] == 'e' || in[k] == 'E') {
		k++
		if k < len(in) && (in[k] == '+' || in[k] == '-') {
			k++
		}
		st := k
		for k < len(in) && isDigit(in[k]) {
			k++
		}
		if k == st {
			return 0, jsonErr("invalid number", i)
		}
	}
	return k, nil
}

// decode returns the value of the string token in[start:end]. Without
// escapes it aliases the input (no copy); with escapes it is decoded into the
// state's scratch buffer, valid until the next decode.
func (j *jsonEd) decode(start, end int, esc bool) string {
	raw := j.in[start+1 : end-1]
	if len(raw) == 0 {
		return ""
	}
	if !esc {
		return unsafe.String(&raw[0], len(raw))
	}
	b := j.st.scratch[:0]
	for k := 0; k < len(raw); {
		c := raw[k]
		if c != '\\' {
			b = append(b, c)
			k++
			continue
		}
		switch raw[k+1] {
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r := rune(unhex(raw[k+2])<<12 | unhex(raw[k+3])<<8 | unhex(raw[k+4])<<4 | unhex(raw[k+5]))
			k += 6
			if utf16.IsSurrogate(r) && k+6 <= len(raw) && raw[k] == '\\' && raw[k+1] == 'u' {
				r2 := rune(unhex(raw[k+2])<<12 | unhex(raw[k+3])<<8 | unhex(raw[k+4])<<4 | unhex(raw[k+5]))
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					k += 6
					r = d
				}
			}
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
			}
			b = utf8.AppendRune(b, r)
			continue
		default: // '"', '\\', '/'
			b = append(b, raw[k+1])
		}
		k += 2
	}
	j.st.scratch = b
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// appendJSONString appends s as a JSON string: only '"', '\\' and control
// characters are escaped; other bytes, including non-ASCII, are kept.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	last := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			const hexd = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xF])
		}
		last = i + 1
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}

// ---- form bodies and query strings ----

// scrubForm scrubs an application/x-www-form-urlencoded body with the
// form_fields rules and the detectors. An undecodable escape fails closed.
func (st *state) scrubForm(b []byte) ([]byte, bool, error) {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	out, changed, err := st.scrubPairs(s, &st.e.form, true)
	if err != nil || !changed {
		return nil, false, err
	}
	return []byte(out), true, nil
}

// errBadEscape is returned (wrapping ErrUnparseable) for a malformed form.
var errBadEscape = fmt.Errorf("form: invalid percent escape: %w", ErrUnparseable)

// scrubPairs scrubs "name=value&..." pairs. Pairs that no rule or detector
// touches keep their exact bytes. With strict, an invalid escape is an error;
// otherwise the raw text of that pair is scanned.
func (st *state) scrubPairs(s string, rules *nameRules, strict bool) (string, bool, error) {
	if s == "" {
		return s, false, nil
	}
	var b strings.Builder
	changed := false
	wrote := 0 // pairs written to b
	for pos := 0; pos <= len(s); {
		end := strings.IndexByte(s[pos:], '&')
		if end < 0 {
			end = len(s)
		} else {
			end += pos
		}
		pair := s[pos:end]
		np, keep, ok, err := st.scrubPair(pair, rules, strict)
		if err != nil {
			return "", false, err
		}
		if ok && !changed {
			// First change: copy the untouched pairs before it.
			changed = true
			b.Grow(len(s))
			if pos > 0 {
				b.WriteString(s[:pos-1])
				wrote = 1
			}
		}
		if changed && keep {
			if wrote > 0 {
				b.WriteByte('&')
			}
			b.WriteString(np)
			wrote++
		}
		pos = end + 1
	}
	if !changed {
		return s, false, nil
	}
	return b.String(), true, nil
}

// scrubPair scrubs one "name=value" pair. It returns the new pair text,
// whether the pair is kept, and whether it changed.
func (st *state) scrubPair(pair string, rules *nameRules, strict bool) (string, bool, bool, error) {
	rawName, rawVal, hasEq := strings.Cut(pair, "=")
	name, err1 := url.QueryUnescape(rawName)
	val, err2 := url.QueryUnescape(plusDigits(rawVal))
	if err1 != nil || err2 != nil {
		if strict {
			return "", false, false, errBadEscape
		}
		// Lenient (URLs): scan the raw text.
		if nv, ok := st.scrubString(pair); ok {
			return escapeLoose(nv), true, true, nil
		}
		return pair, true, false, nil
	}
	if r := st.formRule(rules, name); r != nil {
		switch r.act {
		case actKeep:
			return pair, true, false, nil
		case actRemove:
			st.hit(r.name, 1)
			return "", false, true, nil
		}
		nv := st.applyRule(r, val)
		if nn, ok := st.scrubString(name); ok {
			rawName = queryEscape(nn)
		}
		return rawName + "=" + queryEscape(nv), true, true, nil
	}
	nn, nameChanged := st.scrubString(name)
	nv, valChanged := st.scrubValue(name, val)
	if !nameChanged && !valChanged {
		return pair, true, false, nil
	}
	out := rawName
	if nameChanged {
		out = queryEscape(nn)
	}
	if hasEq || valChanged {
		if valChanged {
			out += "=" + queryEscape(nv)
		} else {
			out += "=" + rawVal
		}
	}
	return out, true, true, nil
}

// scrubValue scrubs a form or query value no rule names: a JSON document
// (GraphQL variables=, a JSON-encoded field) by the JSON rules, a GraphQL
// query= by the names in it, then the detectors.
func (st *state) scrubValue(name, val string) (string, bool) {
	if looksJSON(val) {
		out, changed, err := st.scrubJSONNested([]byte(val), false, 1)
		if err == nil {
			if !changed {
				return val, false
			}
			return string(out), true
		}
	}
	changed := false
	if asciiEqualFold(name, "query") {
		val, changed = st.scrubNamed(val)
	}
	if nv, ok := st.scrubString(val); ok {
		return nv, true
	}
	return val, changed
}

// formRule returns the rule of a form field or query parameter name: the
// most specific rule of rules, else the secret_names rule when the name looks
// like it holds a secret.
func (st *state) formRule(rules *nameRules, name string) *rule {
	if r := rules.match(name, 0); r != nil {
		return r
	}
	e := st.e
	if rules == &e.query {
		if e.secretMatch(e.offQuery, name) {
			return &e.secretQuery
		}
		return nil
	}
	if e.secretMatch(e.offForm, name) {
		return &e.secretForm
	}
	return nil
}

// plusDigits rewrites a '+' that starts a value or follows a
// non-alphanumeric byte and precedes a digit as "%2B": clients often send
// "phone=+14155550100" unescaped, and that '+' is a plus sign, not a space.
// queryEscape never produces that shape, so the reading is stable.
func plusDigits(raw string) string {
	if strings.IndexByte(raw, '+') < 0 {
		return raw
	}
	var b []byte
	for i := 0; i < len(raw); i++ {
		if raw[i] == '+' && i+1 < len(raw) && isDigit(raw[i+1]) && (i == 0 || !isAlnum(raw[i-1])) {
			if b == nil {
				b = append(make([]byte, 0, len(raw)+4), raw[:i]...)
			}
			b = append(b, "%2B"...)
			continue
		}
		if b != nil {
			b = append(b, raw[i])
		}
	}
	if b == nil {
		return raw
	}
	return string(b)
}

// queryEscape is url.QueryEscape except that '*', ':' and '@' (legal in a
// query, and produced by mask, hash and email fakes) stay literal, and a space
// that plusDigits would read as a plus sign is written "%20".
func queryEscape(s string) string {
	e := url.QueryEscape(s)
	if strings.Contains(e, "%") {
		e = queryUnescaper.Replace(e)
	}
	if strings.IndexByte(e, '+') >= 0 && plusDigits(e) != e {
		var b strings.Builder
		for i := 0; i < len(e); i++ {
			if e[i] == '+' && i+1 < len(e) && isDigit(e[i+1]) && (i == 0 || !isAlnum(e[i-1])) {
				b.WriteString("%20")
				continue
			}
			b.WriteByte(e[i])
		}
		e = b.String()
	}
	return e
}

// pathEscape is url.PathEscape keeping '*', ':' and '@' literal (legal in
// a path segment).
func pathEscape(s string) string {
	e := url.PathEscape(s)
	if !strings.Contains(e, "%") {
		return e
	}
	return queryUnescaper.Replace(e)
}

var queryUnescaper = strings.NewReplacer("%2A", "*", "%3A", ":", "%40", "@")

// escapeLoose escapes only what would break a query: '&', '#', space, '%'
// not starting a valid escape is left as is (the text was undecodable).
func escapeLoose(s string) string { return looseEscaper.Replace(s) }

var looseEscaper = strings.NewReplacer("&", "%26", "#", "%23", " ", "+")

// scrubURL scrubs a request target or URL header value: userinfo of an
// absolute URL is removed, each path segment goes through the detectors, the
// query through query_params rules and the detectors, and the fragment
// through the detectors. Untouched parts keep their exact bytes.
func (st *state) scrubURL(u string) string {
	if u == "" {
		return u
	}
	rest, frag, hasFrag := strings.Cut(u, "#")
	path, query, hasQuery := strings.Cut(rest, "?")
	prefix := ""
	changed := false
	if i := strings.Index(path, "://"); i > 0 && strings.IndexByte(path[:i], '/') < 0 {
		// Absolute URL: scheme://authority/path
		auth, p := path[i+3:], ""
		if k := strings.IndexByte(auth, '/'); k >= 0 {
			auth, p = auth[:k], auth[k:]
		}
		if k := strings.LastIndexByte(auth, '@'); k >= 0 {
			st.hit("url:userinfo", 1)
			auth = auth[k+1:]
			changed = true
		}
		prefix = path[:i+3] + auth
		path = p
	}
	if np, ok := st.scrubPath(path); ok {
		path, changed = np, true
	}
	if hasQuery {
		if nq, ok, _ := st.scrubPairs(query, &st.e.query, false); ok {
			query, changed = nq, true
		}
	}
	if hasFrag {
		if nf, ok := st.scrubString(frag); ok {
			frag, changed = pathEscape(nf), true
		}
	}
	if !changed {
		return u
	}
	var b strings.Builder
	b.Grow(len(u))
	b.WriteString(prefix)
	b.WriteString(path)
	if hasQuery {
		b.WriteByte('?')
		b.WriteString(query)
	}
	if hasFrag {
		b.WriteByte('#')
		b.WriteString(frag)
	}
	return b.String()
}

// scrubPath runs the detectors over each '/'-separated segment, decoded.
func (st *state) scrubPath(p string) (string, bool) {
	if len(p) < 6 || !st.e.det.any() {
		return p, false
	}
	var b strings.Builder
	changed := false
	rest := p
	done := 0
	for {
		seg, tail, more := strings.Cut(rest, "/")
		segStart := done
		done += len(seg) + 1
		if len(seg) >= 6 {
			dec, err := url.PathUnescape(seg)
			if err != nil {
				dec = seg
			}
			if nv, ok := st.scrubString(dec); ok {
				if !changed {
					changed = true
					b.Grow(len(p))
					b.WriteString(p[:segStart])
				}
				b.WriteString(pathEscape(nv))
			} else if changed {
				b.WriteString(seg)
			}
		} else if changed {
			b.WriteString(seg)
		}
		if !more {
			break
		}
		if changed {
			b.WriteByte('/')
		}
		rest = tail
	}
	if !changed {
		return p, false
	}
	return b.String(), true
}

// ---- multipart bodies ----

// maxMultipartDepth bounds nested multipart bodies.
const maxMultipartDepth = 4

var errMultipart = fmt.Errorf("multipart: malformed body: %w", ErrUnparseable)

// scrubMultipart scrubs a multipart body part by part, in place: a part whose
// name matches a form_fields rule gets that rule (remove drops the part);
// other parts are scrubbed according to their own Content-Type (text through
// the detectors, JSON through the JSON rules, form, nested multipart; binary
// parts follow the binary policy and keep their headers when dropped).
func (st *state) scrubMultipart(b []byte, ct string, depth int) ([]byte, bool, error) {
	if depth >= maxMultipartDepth {
		return nil, false, errMultipart
	}
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, false, errMultipart
	}
	boundary := params["boundary"]
	if boundary == "" || len(boundary) > 200 {
		return nil, false, errMultipart
	}
	dash := []byte("--" + boundary)
	nlDash := []byte("\n--" + boundary)
	first := -1
	if bytes.HasPrefix(b, dash) {
		first = 0
	} else if k := bytes.Index(b, nlDash); k >= 0 {
		first = k + 1
	} else {
		return nil, false, errMultipart
	}
	ed := jsonEd{st: st, in: b} // reused for its lazy replace
	open, openLB := first, 0    // where this part's delimiter line starts, and the line break before it
	pos := first + len(dash)
	for {
		if bytes.HasPrefix(b[pos:], []byte("--")) {
			break // closing delimiter; the epilogue is kept as is
		}
		for pos < len(b) && (b[pos] == ' ' || b[pos] == '\t') {
			pos++
		}
		switch {
		case bytes.HasPrefix(b[pos:], []byte("\r\n")):
			pos += 2
		case bytes.HasPrefix(b[pos:], []byte("\n")):
			pos++
		default:
			return nil, false, errMultipart
		}
		partStart := pos
		k := bytes.Index(b[partStart:], nlDash)
		if k < 0 {
			return nil, false, errMultipart
		}
		nl := partStart + k // the '\n' before the next delimiter
		nextOpen := nl
		if nl > partStart && b[nl-1] == '\r' {
			nextOpen = nl - 1
		}
		section := b[partStart:nextOpen]
		var hdr []byte
		bodyOff := -1
		switch {
		case bytes.HasPrefix(section, []byte("\r\n")):
			bodyOff = 2
		case bytes.HasPrefix(section, []byte("\n")):
			bodyOff = 1
		default:
			if h := bytes.Index(section, []byte("\r\n\r\n")); h >= 0 {
				hdr, bodyOff = section[:h], h+4
			}
			if h := bytes.Index(section, []byte("\n\n")); h >= 0 && (bodyOff < 0 || h < len(hdr)) {
				hdr, bodyOff = section[:h], h+2
			}
		}
		if bodyOff < 0 {
			return nil, false, errMultipart
		}
		ph := parsePartHeaders(hdr)
		newBody, keep, changed, err := st.scrubPart(ph, section[bodyOff:], depth)
		if err != nil {
			return nil, false, err
		}
		var newHdr []byte
		if keep {
			newHdr = st.scrubPartHeaders(hdr)
		}
		nextLB := nl + 1 - nextOpen
		switch {
		case !keep && openLB == 0:
			// First part: cut through the next delimiter's line break so
			// that delimiter becomes the first.
			ed.replace(open, nl+1, nil)
			open, openLB = nl+1, 0
		case !keep:
			ed.replace(open, nextOpen, nil)
			open, openLB = nextOpen, nextLB
		default:
			if newHdr != nil {
				ed.replace(partStart, partStart+len(hdr), newHdr)
			}
			if changed {
				ed.replace(partStart+bodyOff, nextOpen, newBody)
			}
			open, openLB = nextOpen, nextLB
		}
		pos = nl + 1 + len(dash)
	}
	if ed.out == nil {
		return nil, false, nil
	}
	ed.out = append(ed.out, b[ed.copied:]...)
	return ed.out, true, nil
}

// partHeaders is what the redactor needs of a part's headers.
type partHeaders struct {
	name     string
	filename bool
	ct       string
	encoding string // Content-Transfer-Encoding
}

// scrubPartHeaders runs the detectors over part header lines (a field name or
// file name can carry personal data), except Content-Type and
// Content-Transfer-Encoding, which frame the part. It returns nil when
// nothing changed.
func (st *state) scrubPartHeaders(h []byte) []byte {
	var out []byte
	for off := 0; off < len(h); {
		end := bytes.IndexByte(h[off:], '\n')
		if end < 0 {
			end = len(h)
		} else {
			end += off + 1
		}
		line := h[off:end]
		name, _, _ := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		if !asciiEqualFold(string(name), "Content-Type") && !asciiEqualFold(string(name), "Content-Transfer-Encoding") {
			if nv, ok := st.scrubString(string(line)); ok {
				if out == nil {
					out = append(make([]byte, 0, len(h)), h[:off]...)
				}
				out = append(out, nv...)
				off = end
				continue
			}
		}
		if out != nil {
			out = append(out, line...)
		}
		off = end
	}
	return out
}

func parsePartHeaders(h []byte) partHeaders {
	var ph partHeaders
	for _, line := range strings.Split(string(h), "\n") {
		line = strings.TrimRight(line, "\r")
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "Content-Disposition"):
			if _, params, err := mime.ParseMediaType(v); err == nil {
				ph.name = params["name"]
				_, ph.filename = params["filename"]
			}
		case asciiEqualFold(k, "Content-Type"):
			ph.ct = v
		case asciiEqualFold(k, "Content-Transfer-Encoding"):
			ph.encoding = strings.ToLower(v)
		}
	}
	return ph
}

// scrubPart scrubs one part body; it returns the new body, whether the part
// is kept, and whether it changed.
func (st *state) scrubPart(h partHeaders, body []byte, depth int) ([]byte, bool, bool, error) {
	if h.name != "" {
		if r := st.formRule(&st.e.form, h.name); r != nil {
			switch r.act {
			case actKeep:
				return body, true, false, nil
			case actRemove:
				st.hit(r.name, 1)
				return nil, false, true, nil
			}
			return []byte(st.applyRule(r, string(body))), true, true, nil
		}
	}
	switch h.encoding {
	case "", "7bit", "8bit", "binary":
	default:
		// base64 or quoted-printable: not scanned; treat as binary.
		out, changed, _ := st.binary(body)
		return out, true, changed, nil
	}
	kind := classify(h.ct)
	if h.ct == "" {
		kind = bodyUnknown
		if !h.filename {
			kind = bodyText
		}
	}
	if kind == bodyUnknown {
		kind = sniff(body)
	}
	var out []byte
	var changed bool
	var err error
	switch kind {
	case bodyBinary:
		out, changed, _ = st.binary(body)
		if out == nil {
			out = []byte{}
		}
	case bodyJSON, bodyNDJSON:
		out, changed, err = st.scrubJSON(body, kind == bodyNDJSON)
	case bodyForm:
		out, changed, err = st.scrubForm(body)
	case bodyMultipart:
		out, changed, err = st.scrubMultipart(body, h.ct, depth+1)
	default:
		out, changed = st.scrubTextBody(body, false)
	}
	if err != nil {
		return nil, false, false, err
	}
	return out, true, changed, nil
}
