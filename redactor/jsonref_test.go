package redactor

// The JSON editor as it was before its fast paths (the name caches, the
// inline members, the word-at-a-time string scan): the oracle of
// TestJSONWalkMatchesReference and FuzzJSONWalkMatchesReference. Only its
// names differ (refEd, refScrubJSON, refScanString).

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// refEd edits a JSON text in place: untouched bytes are copied verbatim, so
// key order, number formatting and white space survive. Output is created
// lazily on the first edit.
type refEd struct {
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

// replace substitutes in[a:b] with r in the output.
func (j *refEd) replace(a, b int, r []byte) {
	if j.out == nil {
		j.out = make([]byte, 0, len(j.in)+len(r)+16)
	}
	j.out = append(j.out, j.in[j.copied:a]...)
	j.out = append(j.out, r...)
	j.copied = b
}

func (j *refEd) ws(i int) int {
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
func (st *state) refScrubJSON(in []byte, multi bool) ([]byte, bool, error) {
	st.jstates = st.jstates[:0]
	return st.refScrubJSONNested(in, multi, 0)
}

// refScrubJSONNested is scrubJSON for a document nested nest levels deep in
// JSON strings; its NFA states live above the enclosing document's.
func (st *state) refScrubJSONNested(in []byte, multi bool, nest int) ([]byte, bool, error) {
	j := refEd{st: st, in: in, nest: nest}
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
func (j *refEd) completed(lo, hi int, best *rule) *rule {
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
func (j *refEd) step(lo, hi int, t token, inherited *rule) (int, int, *rule) {
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
		for _, ks := range [2][]uint16{cand, pr.anyLast} {
			for _, k := range ks {
				if a := &pr.anywhere[k]; a.segs[0].match(t) && a.r.better(best) {
					best = a.r
				}
			}
		}
	}
	if best == nil && !t.isIdx && st.e.secretMatch(st.e.offJSON, t.key) {
		best = &st.e.secretJSON
	}
	return nlo, nhi, best
}

func (j *refEd) advance(r, p uint16, t token) {
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

func (j *refEd) addState(r, p uint16) {
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
func (j *refEd) value(i, lo, hi int, r *rule, depth int) (int, error) {
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

func (j *refEd) literal(i int, lit string) (int, error) {
	if !bytes.HasPrefix(j.in[i:], []byte(lit)) {
		return 0, jsonErr("invalid literal", i)
	}
	return i + len(lit), nil
}

// container processes the object or array at in[i] ('{' or '[').
func (j *refEd) container(i, lo, hi int, inherited *rule, depth int) (int, error) {
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
		if obj {
			if i >= len(in) || in[i] != '"' {
				return 0, jsonErr("expected object key", i)
			}
			var esc bool
			var err error
			if keyEnd, esc, err = refScanString(in, i); err != nil {
				return 0, err
			}
			t = token{key: j.decode(start, keyEnd, esc)}
			i = j.ws(keyEnd)
			if i >= len(in) || in[i] != ':' {
				return 0, jsonErr("expected ':'", i)
			}
			i = j.ws(i + 1)
		}
		nlo, nhi, r := j.step(lo, hi, t, inherited)
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
		if i, prevKeptEnd, err = j.member(i, start, keyEnd, t, obj, nlo, nhi, r, depth, prevKeptEnd); err != nil {
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
func (j *refEd) member(i, start, keyEnd int, t token, obj bool, nlo, nhi int, r *rule, depth, prevKeptEnd int) (int, int, error) {
	in := j.in
	if r != nil && r.act == actUnsign {
		j.st.hit(r.name, 1)
		if i < len(in) && in[i] == '"' {
			end, esc, err := refScanString(in, i)
			if err != nil {
				return 0, 0, err
			}
			if unsigned, ok := j.st.unsign(j.decode(i, end, esc)); ok {
				j.flushPending(start)
				if obj {
					j.scrubKey(start, keyEnd, t.key)
				}
				j.replace(i, end, appendJSONString(nil, unsigned))
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
		j.scrubKey(start, keyEnd, t.key)
	}
	end, err := j.value(i, nlo, nhi, r, depth+1)
	return end, end, err
}

// removeItem records the removal of the member or element in[start:end].
// After a kept item, the cut runs from the end of that item (taking the
// separator before the removed one); before any kept item, it runs from the
// removed item up to the next kept one (taking the separator after it).
func (j *refEd) removeItem(start, end, prevKeptEnd int) {
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
func (j *refEd) flushPending(next int) {
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
func (j *refEd) scrubKey(start, end int, key string) {
	if v, ok := j.st.scrubString(key); ok {
		j.replace(start, end, appendJSONString(nil, v))
	}
}

// str processes the string at in[i].
func (j *refEd) str(i int, r *rule) (int, error) {
	end, esc, err := refScanString(j.in, i)
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
		out, changed, err := st.refScrubJSONNested(doc, false, j.nest+1)
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

// number processes the number at in[i]. A rule masks or hashes it into a
// string, or fakes it into a number with the same shape; the card detector
// runs over integers of 13 to 19 digits.
func (j *refEd) number(i int, r *rule) (int, error) {
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

// skip validates and skips the value at in[i] without editing. Objects and
// arrays stay inline: this is the scanner of every subtree no rule reaches,
// and a call per object or array cost ~25% there.
func (j *refEd) skip(i, depth int) (int, error) {
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
				end, _, err := refScanString(in, i)
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
		end, _, err := refScanString(in, i)
		return end, err
	case c == '-' || isDigit(c):
		return scanNumber(in, i)
	case jsonLiterals[c] != "":
		return j.literal(i, jsonLiterals[c])
	}
	return 0, jsonErr("invalid character", i)
}

// scanString validates the string starting at in[i] == '"' and returns the
// offset after its closing quote and whether it has escapes.
func refScanString(in []byte, i int) (int, bool, error) {
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

// decode returns the value of the string token in[start:end]. Without
// escapes it aliases the input (no copy); with escapes it is decoded into the
// state's scratch buffer, valid until the next decode.
func (j *refEd) decode(start, end int, esc bool) string {
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
