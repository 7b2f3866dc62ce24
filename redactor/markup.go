package redactor

import "strings"

// Text, XML and HTML bodies carry secrets under names as well as in formats
// the detectors know: "password=hunter2" in a log line or .env file,
// "api_key: abc" in YAML, <password>hunter2</password> and
// <Credentials><Secret>…</Secret></Credentials> in XML, <input type="password"
// value="…"> and <meta name="csrf-token" content="…"> in HTML, and
// login(password: "hunter2") in a GraphQL document. scrubNamed finds them
// without parsing the document: only the values are replaced, so tags,
// attributes, quotes and the text around them stay byte-identical.

// maxNamedValue bounds the value taken after a name (a quoted value that
// does not close within it is left to the detectors).
const maxNamedValue = 64 << 10

// isNameByte reports bytes of a name in text: letters, digits, '_' and '-'.
func isNameByte(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

// textSpan is a value to replace in a text.
type textSpan struct {
	start, end int
	r          *rule
}

// namedScan is one scrubNamed pass over s. Searches forward for a byte are
// memoised (next), so that hostile input (thousands of unclosed quotes or
// tags) costs linear time, not quadratic.
type namedScan struct {
	st    *state
	s     string
	spans []textSpan
	// next[c] is the offset of the next byte c at or after from[c] (len(s):
	// none).
	next, from [256]int
	memo       [256]bool
	// The last quoteEnd result: from qFrom, the value closed at qEnd (-1:
	// not within maxNamedValue).
	qFrom, qEnd int
	qByte       byte
}

// index returns the offset of the first c at or after i, or -1.
func (ns *namedScan) index(c byte, i int) int {
	n := len(ns.s)
	if i >= n {
		return -1
	}
	if ns.memo[c] && ns.from[c] <= i && ns.next[c] >= i {
		if ns.next[c] == n {
			return -1
		}
		return ns.next[c]
	}
	k := strings.IndexByte(ns.s[i:], c)
	ns.memo[c], ns.from[c] = true, i
	if k < 0 {
		ns.next[c] = n
		return -1
	}
	ns.next[c] = i + k
	return i + k
}

// scrubNamed applies the form_fields rules and secret_names to values written
// after a name in free text. It reports whether s changed.
func (st *state) scrubNamed(s string) (string, bool) {
	e := st.e
	if !e.secretOn && e.form.empty() {
		return s, false
	}
	ns := &namedScan{st: st, s: s, qFrom: -1}
	n := len(s)
	for i := 0; i < n; i++ {
		c := s[i]
		if c == '<' && i+1 < n {
			// A tag: element content or HTML attributes.
			if k := ns.tag(i); k > i {
				i = k - 1
			}
			continue
		}
		if !isAlnum(c) && c != '_' || (i > 0 && (isNameByte(s[i-1]) || s[i-1] == '$')) {
			continue
		}
		j := i
		for j < n && isNameByte(s[j]) {
			j++
		}
		r := st.textRule(s[i:j])
		if r == nil {
			i = j - 1
			continue
		}
		if vs, ve, ok := ns.assignedValue(i, j); ok {
			if r.act != actKeep && ve > vs {
				ns.spans = append(ns.spans, textSpan{vs, ve, r})
			}
			i = ve - 1
			continue
		}
		i = j - 1
	}
	if len(ns.spans) == 0 {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, sp := range ns.spans {
		if sp.start < last {
			continue
		}
		b.WriteString(s[last:sp.start])
		b.WriteString(st.applyRule(sp.r, s[sp.start:sp.end]))
		last = sp.end
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// textRule is the rule for a name found in text: form_fields, then
// secret_names.
func (st *state) textRule(name string) *rule {
	if len(name) < 2 {
		return nil
	}
	e := st.e
	if r := e.form.match(name, 0); r != nil {
		return r
	}
	if e.secretMatch(e.offForm, name) {
		return &e.secretText
	}
	return nil
}

// assignedValue finds the value assigned to the name s[i:j]: an optional
// closing quote (when the name was quoted), spaces, '=' or ':' (not "==",
// "::", "=>"), spaces, then a quoted value (without its quotes) or a bare
// one running to white space or one of & ; , < > " ' ) } ] |.
func (ns *namedScan) assignedValue(i, j int) (int, int, bool) {
	s := ns.s
	n := len(s)
	if i > 0 && (s[i-1] == '"' || s[i-1] == '\'') && j < n && s[j] == s[i-1] {
		j++
	}
	for j < n && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= n || (s[j] != '=' && s[j] != ':') {
		return 0, 0, false
	}
	if j+1 < n && (s[j+1] == '=' || s[j+1] == ':' || s[j+1] == '>') {
		return 0, 0, false
	}
	colon := s[j] == ':'
	j++
	for j < n && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= n {
		return 0, 0, false
	}
	if q := s[j]; q == '"' || q == '\'' {
		end := ns.quoteEnd(j+1, q)
		if end < 0 {
			return 0, 0, false
		}
		return j + 1, end, true
	}
	// A bare value: after '=' it ends at white space (name=value pairs on a
	// line); after ':' (YAML, header lines, "Authorization: Bearer x") it
	// runs to the end of the line, trailing blanks excluded.
	if s[j] == '$' {
		return 0, 0, false // a variable reference ($password, ${SECRET}), not a value
	}
	k := j
	for k < n && !bareStop(s[k], colon) {
		k++
	}
	for k > j && (s[k-1] == ' ' || s[k-1] == '\t') {
		k--
	}
	return j, k, k > j
}

// quoteEnd returns the offset of the quote q closing a value starting at
// s[i], skipping backslash escapes; -1 if none within maxNamedValue. A value
// starting inside the previous one ends where it ended.
func (ns *namedScan) quoteEnd(i int, q byte) int {
	if q == ns.qByte && ns.qFrom >= 0 && i >= ns.qFrom && (i <= ns.qEnd || (ns.qEnd < 0 && i-ns.qFrom < maxNamedValue)) {
		return ns.qEnd
	}
	end := -1
	for k := i; k < len(ns.s) && k-i < maxNamedValue; {
		k = ns.index(q, k)
		if k < 0 || k-i >= maxNamedValue {
			break
		}
		bs := 0
		for b := k - 1; b >= i && ns.s[b] == '\\'; b-- {
			bs++
		}
		if bs%2 == 0 {
			end = k
			break
		}
		k++
	}
	ns.qByte, ns.qFrom, ns.qEnd = q, i, end
	return end
}

func bareStop(c byte, colon bool) bool {
	switch c {
	case ' ', '\t':
		return !colon
	case '\r', '\n', '&', ';', ',', '<', '>', '"', '\'', ')', '}', ']', '|':
		return true
	}
	return false
}

// tag handles the tag at s[i] == '<'. For an element with a secret-like
// name, it adds the text content up to the matching end tag (every text node
// and CDATA section inside it, to the end of the text if it never closes) to
// the spans. For any start tag, it adds the values of secret-named
// attributes, and the value/content attribute of a tag whose name, id or
// property attribute names a rule or whose type is password. It returns the
// offset to continue from, or i when s[i] does not start a tag.
func (ns *namedScan) tag(i int) int {
	s := ns.s
	n := len(s)
	j := i + 1
	for j < n && (isNameByte(s[j]) || s[j] == ':' || s[j] == '.') {
		j++
	}
	if j == i+1 || !isAlnum(s[i+1]) || ns.index('>', j) < 0 {
		return i // no tag can close: text
	}
	qname := s[i+1 : j]
	local := qname
	if k := strings.LastIndexByte(local, ':'); k >= 0 {
		local = local[k+1:]
	}
	// Attributes up to '>'.
	var ta tagAttrs
	first := len(ns.spans)
	k := j
	for k < n && s[k] != '>' {
		if s[k] == '<' {
			return k // not a tag after all
		}
		if k-i > maxNamedValue {
			ns.spans = ns.spans[:first]
			return j // too long for a tag: read on as text
		}
		if !isNameByte(s[k]) || isNameByte(s[k-1]) {
			k++
			continue
		}
		a := k
		for k < n && (isNameByte(s[k]) || s[k] == ':') {
			k++
		}
		vs, ve, next, ok := ns.attrValue(k)
		if next < 0 {
			return j // unclosed quote
		}
		if ok {
			ns.attr(s[a:k], vs, ve, &ta)
			k = next
		}
	}
	if k >= n {
		ns.spans = ns.spans[:first]
		return j
	}
	if ta.rule != nil && ta.rule.act != actKeep && ta.haveValue && ta.value[1] > ta.value[0] {
		ns.spans = insertSpan(ns.spans, textSpan{ta.value[0], ta.value[1], ta.rule})
	}
	end := k + 1
	if s[k-1] == '/' {
		return end // empty element
	}
	r := ns.st.textRule(local)
	if r == nil || r.act == actKeep {
		return end
	}
	return ns.content(end, qname, r)
}

// tagAttrs is what the attributes read so far say about a start tag's value.
type tagAttrs struct {
	value     [2]int // value or content attribute value span
	haveValue bool
	rule      *rule // rule of the value attribute, from name/id/type
}

// attrValue reads "= value" after an attribute name ending at s[m] (white
// space around '=' allowed; the value quoted or bare). It returns the value's
// span and the offset after it; ok is false when no '=' follows, next is -1
// when a quoted value never closes.
func (ns *namedScan) attrValue(m int) (vs, ve, next int, ok bool) {
	s := ns.s
	n := len(s)
	for m < n && isSpace(s[m]) {
		m++
	}
	if m >= n || s[m] != '=' {
		return 0, 0, 0, false
	}
	m++
	for m < n && isSpace(s[m]) {
		m++
	}
	if m < n && (s[m] == '"' || s[m] == '\'') {
		vs = m + 1
		ve = ns.index(s[m], vs)
		if ve < 0 {
			return 0, 0, -1, false
		}
		return vs, ve, ve + 1, true
	}
	vs, ve = m, m
	for ve < n && !isSpace(s[ve]) && s[ve] != '>' {
		ve++
	}
	return vs, ve, ve, true
}

// attr applies the attribute named name with the value s[vs:ve]: value and
// content are remembered, name, id, property and type may give the value a
// rule, and any other attribute with a secret-like name has its value added
// to the spans.
func (ns *namedScan) attr(name string, vs, ve int, ta *tagAttrs) {
	st, val := ns.st, ns.s[vs:ve]
	switch {
	case asciiEqualFold(name, "value") || asciiEqualFold(name, "content"):
		ta.value, ta.haveValue = [2]int{vs, ve}, true
	case asciiEqualFold(name, "name") || asciiEqualFold(name, "id") || asciiEqualFold(name, "property"):
		if r := st.textRule(val); r != nil && ta.rule == nil {
			ta.rule = r
		}
	case asciiEqualFold(name, "type"):
		if asciiEqualFold(val, "password") && st.e.secretOn {
			ta.rule = &st.e.secretText
		}
	default:
		if r := st.textRule(name); r != nil && r.act != actKeep && ve > vs {
			ns.spans = append(ns.spans, textSpan{vs, ve, r})
		}
	}
}

// content adds the text of a secret element starting at s[p] to the spans,
// up to its end tag </qname> (nested elements of the same name counted), and
// returns the offset of that end tag, or len(s) if it never closes.
func (ns *namedScan) content(p int, qname string, r *rule) int {
	s := ns.s
	n := len(s)
	depth := 1
	for p < n {
		switch {
		case strings.HasPrefix(s[p:], "<![CDATA["):
			cs := p + len("<![CDATA[")
			ce := strings.Index(s[cs:], "]]>")
			if ce < 0 {
				ce = n - cs
			}
			if strings.TrimLeft(s[cs:cs+ce], " \t\n\r\f") != "" { // not blank
				ns.spans = append(ns.spans, textSpan{cs, cs + ce, r})
			}
			p = min(cs+ce+3, n)
		case s[p] == '<':
			closing := p+1 < n && s[p+1] == '/'
			nameAt := p + 1
			if closing {
				nameAt++
			}
			if strings.HasPrefix(s[nameAt:], qname) && nameAt+len(qname) < n &&
				(s[nameAt+len(qname)] == '>' || isSpace(s[nameAt+len(qname)]) || s[nameAt+len(qname)] == '/') {
				if closing {
					depth--
					if depth == 0 {
						return p
					}
				} else {
					depth++
				}
			}
			q := ns.index('>', p)
			if q < 0 {
				return n
			}
			if !closing && s[q-1] == '/' && strings.HasPrefix(s[nameAt:], qname) {
				depth-- // <qname/> opened nothing
			}
			p = q + 1
		default:
			q := ns.index('<', p)
			if q < 0 {
				q = n
			}
			a, b := p, q
			for a < b && isSpace(s[a]) {
				a++
			}
			for b > a && isSpace(s[b-1]) {
				b--
			}
			if b > a {
				// The text, without the white space around it (indentation).
				ns.spans = append(ns.spans, textSpan{a, b, r})
			}
			p = q
		}
	}
	return n
}

// insertSpan appends sp keeping spans sorted by start.
func insertSpan(spans []textSpan, sp textSpan) []textSpan {
	spans = append(spans, sp)
	for k := len(spans) - 1; k > 0 && spans[k].start < spans[k-1].start; k-- {
		spans[k], spans[k-1] = spans[k-1], spans[k]
	}
	return spans
}
