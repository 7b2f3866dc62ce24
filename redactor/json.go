// The JSON editor: scrubs a JSON body in place by the json_fields rules and
// the detectors, keeping key order, number formatting and white space.

package redactor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

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

// replaceRaw substitutes in[a:b] with s as it is.
func (j *jsonEd) replaceRaw(a, b int, s string) {
	if j.out == nil {
		j.out = make([]byte, 0, len(j.in)+len(s)+16)
	}
	j.out = append(j.out, j.in[j.copied:a]...)
	j.out = append(j.out, s...)
	j.copied = b
}

// replaceString substitutes in[a:b] with s as a JSON string.
func (j *jsonEd) replaceString(a, b int, s string) {
	if j.out == nil {
		j.out = make([]byte, 0, len(j.in)+len(s)+16)
	}
	j.out = append(j.out, j.in[j.copied:a]...)
	j.out = appendJSONString(j.out, s)
	j.copied = b
}

func (j *jsonEd) ws(i int) int {
	if i < len(j.in) && j.in[i] > ' ' {
		return i // the common case: no white space
	}
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

// bestOf is step's rule for a child without path rule states: the inherited
// rule (unless it removes), a better "**.<segment>" rule, else secret_names.
func (j *jsonEd) bestOf(t token, kc *keyClass, inherited *rule) *rule {
	best := inherited
	if best != nil && best.act == actRemove {
		best = nil
	}
	if t.isIdx {
		return j.st.e.json.anywhereBest(t, best)
	}
	if kc.anywhere != nil && kc.anywhere.better(best) {
		best = kc.anywhere
	}
	if best == nil && kc.secret {
		best = &j.st.e.secretJSON
	}
	return best
}

// jsonScalar marks the first bytes of the JSON numbers and literals.
var jsonScalar = [256]bool{'-': true, '0': true, '1': true, '2': true, '3': true, '4': true, '5': true,
	'6': true, '7': true, '8': true, '9': true, 't': true, 'f': true, 'n': true}

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
// (inherited from the parent unless a more specific rule matches). A key's
// class comes from the engine's cache.
func (j *jsonEd) step(lo, hi int, t token, inherited *rule) (int, int, *rule) {
	var kc *keyClass
	if !t.isIdx {
		c := j.st.e.keys.get(t.key, j.st.e.classKey)
		kc = &c
	}
	return j.stepClass(lo, hi, t, kc, inherited)
}

// stepClass is step given kc, the class of t's key (nil for an index).
func (j *jsonEd) stepClass(lo, hi int, t token, kc *keyClass, inherited *rule) (int, int, *rule) {
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
	if t.isIdx {
		best = pr.anywhereBest(t, best)
	} else {
		// The key's class (container): anywhereBest from nil, then compared
		// with best, is anywhereBest from best.
		if kc.anywhere != nil && kc.anywhere.better(best) {
			best = kc.anywhere
		}
		if best == nil && kc.secret {
			best = &st.e.secretJSON
		}
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
		return j.container(i, lo, hi, r, depth)
	case c == '"':
		return j.str(i, r)
	case c == '-' || isDigit(c):
		return j.number(i, r)
	case jsonLiterals[c] != "":
		return j.literal(i, jsonLiterals[c])
	}
	return 0, jsonErr("invalid character", i)
}

func (j *jsonEd) literal(i int, lit string) (int, error) {
	if !bytes.HasPrefix(j.in[i:], []byte(lit)) {
		return 0, jsonErr("invalid literal", i)
	}
	return i + len(lit), nil
}

// container processes the object or array at in[i] ('{' or '[').
func (j *jsonEd) container(i, lo, hi int, inherited *rule, depth int) (int, error) {
	in := j.in
	obj := in[i] == '{'
	closer, what := byte(']'), "array"
	if obj {
		closer, what = '}', "object"
	}
	i = j.ws(i + 1)
	if i < len(in) && in[i] == closer {
		return i + 1, nil
	}
	prevKeptEnd := -1
	for idx := 0; ; idx++ {
		start, keyEnd, t := i, 0, token{idx: idx, isIdx: true}
		var kc *keyClass // nil for an element
		if obj {
			if i >= len(in) || in[i] != '"' {
				return 0, jsonErr("expected object key", i)
			}
			keys := j.st.e.keys
			if ke := keys.peekKey(in, i); ke != nil {
				// A key met before, found without scanning it.
				keyEnd = i + int(ke.n) + 2
				t = token{key: unsafe.String(&in[start+1], int(ke.n))}
				kc = &ke.v
			} else {
				var esc bool
				var err error
				if keyEnd, esc, err = scanString(in, i); err != nil {
					return 0, err
				}
				if esc {
					t = token{key: j.decode(start, keyEnd, esc)}
				} else if keyEnd-start > 2 {
					t = token{key: unsafe.String(&in[start+1], keyEnd-start-2)}
				} else {
					t = token{}
				}
				if ke := keys.entry(t.key, j.st.e.classKey); ke != nil {
					kc = &ke.v
					if !esc {
						keys.peekPut(in, i, ke)
					}
				} else {
					c := j.st.e.classKey(t.key)
					kc = &c
				}
			}
			t.keyClean = kc.clean
			i = j.ws(keyEnd)
			if i >= len(in) || in[i] != ':' {
				return 0, jsonErr("expected ':'", i)
			}
			i = j.ws(i + 1)
		}
		var nlo, nhi int
		var r *rule
		if lo == hi {
			// No path rule state: only the inherited rule and the key's
			// class (step without the NFA).
			nlo = len(j.st.jstates)
			nhi, j.stepLo = nlo, nlo
			r = j.bestOf(t, kc, inherited)
		} else {
			nlo, nhi, r = j.stepClass(lo, hi, t, kc, inherited)
		}
		if obj && (depth == 0 || (depth == 1 && j.rootArray)) {
			// A GraphQL request ({"query": ..., "variables": {...}}, or a
			// batch of them): the variables get the rules of a document
			// root, and the query is a GraphQL document.
			switch t.key {
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
		var err error
		if r == nil && i < len(in) && (in[i] == '"' || jsonScalar[in[i]]) && depth < maxJSONDepth {
			// A kept scalar under no rule (member and value, inline): the
			// common case.
			if j.pend.active {
				j.flushPending(start)
			}
			if obj && !t.keyClean {
				j.scrubKey(start, keyEnd, t)
			}
			var end int
			switch c := in[i]; {
			case c == '"':
				end, err = j.str(i, nil)
			case c == '-' || isDigit(c):
				end, err = j.number(i, nil)
			default:
				end, err = j.literal(i, jsonLiterals[c])
			}
			if err != nil {
				return 0, err
			}
			i, prevKeptEnd = end, end
		} else if i, prevKeptEnd, err = j.member(i, start, keyEnd, t, obj, nlo, nhi, r, depth, prevKeptEnd); err != nil {
			return 0, err
		}
		j.gqlQuery = false
		j.st.jstates = j.st.jstates[:nlo]
		i = j.ws(i)
		if i >= len(in) {
			return 0, jsonErr("unexpected end of "+what, i)
		}
		switch in[i] {
		case ',':
			i = j.ws(i + 1)
			continue
		case closer:
			j.flushPending(j.pend.end)
			return i + 1, nil
		}
		return 0, jsonErr("expected ',' or '"+string(closer)+"'", i)
	}
}

// member processes the value at in[i] of the item that starts at start (its
// key ending at keyEnd in an object) under rule r: removed, unsigned (a
// string holding a JWT; anything else is removed) or edited. It returns the
// value's end and the end of the last kept item.
func (j *jsonEd) member(i, start, keyEnd int, t token, obj bool, nlo, nhi int, r *rule, depth, prevKeptEnd int) (int, int, error) {
	in := j.in
	if r != nil && r.act == actUnsign {
		j.st.hit(r.name, 1)
		if i < len(in) && in[i] == '"' {
			end, esc, err := scanString(in, i)
			if err != nil {
				return 0, 0, err
			}
			if unsigned, ok := j.st.unsign(j.decode(i, end, esc)); ok {
				j.flushPending(start)
				if obj {
					j.scrubKey(start, keyEnd, t)
				}
				j.replaceString(i, end, unsigned)
				return end, end, nil
			}
		}
	}
	if r != nil && (r.act == actRemove || r.act == actUnsign) {
		end, err := j.skip(i, depth+1)
		if err != nil {
			return 0, 0, err
		}
		if r.act == actRemove {
			j.st.hit(r.name, 1)
		}
		j.removeItem(start, end, prevKeptEnd)
		return end, prevKeptEnd, nil
	}
	j.flushPending(start)
	if obj && (r == nil || r.act != actKeep) {
		j.scrubKey(start, keyEnd, t)
	}
	end, err := j.value(i, nlo, nhi, r, depth+1)
	return end, end, err
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

// flushPending cuts a pending removal before the kept item at next, or at
// the end of the container when next is j.pend.end.
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

// scrubKey runs the detectors over an object key.
func (j *jsonEd) scrubKey(start, end int, t token) {
	if t.keyClean {
		return
	}
	if v, ok := j.st.scrubStringTmp(t.key); ok {
		j.replaceString(start, end, v)
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
		j.replaceString(i, end, j.st.applyRule(r, v))
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
				j.replaceString(i, end, unsafe.String(unsafe.SliceData(out), len(out)))
			}
			return end, nil
		}
		v = unsafe.String(unsafe.SliceData(doc), len(doc))
	}
	changed := false
	if j.gqlQuery {
		v, changed = st.scrubNamed(v)
	}
	if nv, ok := st.scrubStringTmp(v); ok {
		v, changed = nv, true
	}
	if changed {
		j.replaceString(i, end, v)
	}
	return end, nil
}

// looksJSON reports whether s, trimmed of white space, starts with '{' or '['
// and ends with the matching '}' or ']'.
func looksJSON(s string) bool {
	// strings.Trim(s, " \t\n\r\f"), without building its cutset per call.
	a, b := 0, len(s)
	for a < b && isSpace(s[a]) {
		a++
	}
	for b > a && isSpace(s[b-1]) {
		b--
	}
	s = s[a:b]
	return len(s) >= 2 && (s[0] == '{' && s[len(s)-1] == '}' || s[0] == '[' && s[len(s)-1] == ']')
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
		if r.act == actFake {
			j.st.hit(r.name, 1)
			j.replaceRaw(i, end, j.st.fakeNumber(r, v))
		} else {
			j.replaceString(i, end, j.st.applyRule(r, v))
		}
		return end, nil
	}
	if end-i >= 13 && end-i <= 19 && j.st.e.det.on[kindCard] {
		if nv, ok := j.st.scrubStringTmp(v); ok {
			if isJSONInteger(nv) {
				j.replaceRaw(i, end, nv)
			} else {
				j.replaceString(i, end, nv)
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

// skip validates and skips the value at in[i] without editing. Objects and
// arrays stay inline: this is the scanner of every subtree no rule reaches,
// and a call per object or array cost ~25% there.
func (j *jsonEd) skip(i, depth int) (int, error) {
	in := j.in
	if i >= len(in) {
		return 0, jsonErr("unexpected end of input", i)
	}
	if depth > maxJSONDepth {
		return 0, jsonErr("nesting too deep", i)
	}
	switch c := in[i]; {
	case c == '{' || c == '[':
		obj, closer := c == '{', byte(']')
		if obj {
			closer = '}'
		}
		i = j.ws(i + 1)
		if i < len(in) && in[i] == closer {
			return i + 1, nil
		}
		for {
			if obj {
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
				i = j.ws(i + 1)
			}
			var err error
			if i, err = j.skip(i, depth+1); err != nil {
				return 0, err
			}
			i = j.ws(i)
			if i < len(in) && in[i] == ',' {
				i = j.ws(i + 1)
				continue
			}
			if i < len(in) && in[i] == closer {
				return i + 1, nil
			}
			return 0, jsonErr("expected ',' or '"+string(closer)+"'", i)
		}
	case c == '"':
		end, _, err := scanString(in, i)
		return end, err
	case c == '-' || isDigit(c):
		return scanNumber(in, i)
	case jsonLiterals[c] != "":
		return j.literal(i, jsonLiterals[c])
	}
	return 0, jsonErr("invalid character", i)
}

// jsonLiterals maps the first byte of a JSON literal to the literal.
var jsonLiterals = [256]string{'t': "true", 'f': "false", 'n': "null"}

// scanString validates the string starting at in[i] == '"' and returns the
// offset after its closing quote and whether it has escapes.
func scanString(in []byte, i int) (int, bool, error) {
	esc := false
	k := i + 1
	for k < len(in) {
		// Plain bytes in a run first: eight at a time, then one table
		// look-up each.
		k = plainRun(in, k)
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

// SWAR constants: a one in every byte, and every byte's top bit.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// plainRun skips the bytes of in from k that a JSON string holds as they are
// (jsonPlain), eight at a time while eight remain; it returns the first byte
// that is not plain, or where fewer than eight remain.
func plainRun(in []byte, k int) int {
	for k+8 <= len(in) {
		w := binary.LittleEndian.Uint64(in[k:])
		// The top bit of each byte that is a control character (< 0x20), a
		// '"' or a '\\'. A borrow can only flag bytes after a true one, so
		// the lowest flag is exact.
		q, b := w^(swarLo*'"'), w^(swarLo*'\\')
		m := ((w - swarLo*0x20) &^ w) | ((q - swarLo) &^ q) | ((b - swarLo) &^ b)
		if m &= swarHi; m != 0 {
			return k + bits.TrailingZeros64(m)/8
		}
		k += 8
	}
	return k
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

// hex4 decodes the four hex digits starting b (validated by scanString).
func hex4(b []byte) rune {
	return rune(unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3]))
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
			r := hex4(raw[k+2:])
			k += 6
			if utf16.IsSurrogate(r) && k+6 <= len(raw) && raw[k] == '\\' && raw[k+1] == 'u' {
				if d := utf16.DecodeRune(r, hex4(raw[k+2:])); d != utf8.RuneError {
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
