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

// scrubNamed applies the form_fields rules and secret_names to values written
// after a name in free text. It reports whether s changed.
func (st *state) scrubNamed(s string) (string, bool) {
	e := st.e
	if !e.secretOn && e.form.empty() {
		return s, false
	}
	var spans []textSpan
	n := len(s)
	for i := 0; i < n; i++ {
		c := s[i]
		if c == '<' && i+1 < n {
			// A tag: element content or HTML attributes.
			if k, sp := st.namedTag(s, i, spans); k > i {
				spans = sp
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
		name := s[i:j]
		r := st.textRule(name)
		if r == nil {
			i = j - 1
			continue
		}
		if vs, ve, ok := assignedValue(s, i, j); ok {
			if r.act != actKeep && ve > vs {
				spans = append(spans, textSpan{vs, ve, r})
			}
			i = ve - 1
			continue
		}
		i = j - 1
	}
	if len(spans) == 0 {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s))
	last := 0
	for _, sp := range spans {
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
func assignedValue(s string, i, j int) (int, int, bool) {
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
		end := quoteEnd(s, j+1, q)
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
// s[i], skipping backslash escapes; -1 if none within maxNamedValue.
func quoteEnd(s string, i int, q byte) int {
	for k := i; k < len(s) && k-i < maxNamedValue; k++ {
		switch s[k] {
		case '\\':
			k++
		case q:
			return k
		}
	}
	return -1
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

// namedTag handles the tag at s[i] == '<'. For an element with a secret-like
// name, it adds the text content up to the matching end tag (every text node
// and CDATA section inside it) to spans. For any start tag, it adds the values
// of secret-named attributes, and the value/content attribute of a tag whose
// name, id or property attribute is secret-like or whose type is password. It
// returns the offset to continue from (after the tag), or i when s[i] does not
// start a tag.
func (st *state) namedTag(s string, i int, spans []textSpan) (int, []textSpan) {
	n := len(s)
	j := i + 1
	for j < n && (isNameByte(s[j]) || s[j] == ':' || s[j] == '.') {
		j++
	}
	if j == i+1 || !isAlnum(s[i+1]) {
		return i, spans
	}
	qname := s[i+1 : j]
	local := qname
	if k := strings.LastIndexByte(local, ':'); k >= 0 {
		local = local[k+1:]
	}
	// Attributes up to '>'.
	var valueAttr [2]int // value or content attribute value span
	haveValue := false
	var tagRule *rule // rule of the value attribute, from name/id/type
	k := j
	for k < n && s[k] != '>' {
		if s[k] == '<' {
			return k, spans // not a tag after all
		}
		if !isNameByte(s[k]) || isNameByte(s[k-1]) {
			k++
			continue
		}
		a := k
		for k < n && (isNameByte(s[k]) || s[k] == ':') {
			k++
		}
		attr := s[a:k]
		m := k
		for m < n && (s[m] == ' ' || s[m] == '\t' || s[m] == '\n' || s[m] == '\r') {
			m++
		}
		if m >= n || s[m] != '=' {
			continue
		}
		m++
		for m < n && (s[m] == ' ' || s[m] == '\t' || s[m] == '\n' || s[m] == '\r') {
			m++
		}
		var vs, ve int
		if m < n && (s[m] == '"' || s[m] == '\'') {
			vs = m + 1
			ve = strings.IndexByte(s[vs:], s[m])
			if ve < 0 {
				return j, spans
			}
			ve += vs
			k = ve + 1
		} else {
			vs = m
			ve = m
			for ve < n && !isSpace(s[ve]) && s[ve] != '>' {
				ve++
			}
			k = ve
		}
		val := s[vs:ve]
		switch {
		case asciiEqualFold(attr, "value") || asciiEqualFold(attr, "content"):
			valueAttr, haveValue = [2]int{vs, ve}, true
		case asciiEqualFold(attr, "name") || asciiEqualFold(attr, "id") || asciiEqualFold(attr, "property"):
			if r := st.textRule(val); r != nil && tagRule == nil {
				tagRule = r
			}
		case asciiEqualFold(attr, "type"):
			if asciiEqualFold(val, "password") && st.e.secretOn {
				tagRule = &st.e.secretText
			}
		default:
			if r := st.textRule(attr); r != nil && r.act != actKeep && ve > vs {
				spans = append(spans, textSpan{vs, ve, r})
			}
		}
	}
	if k >= n {
		return j, spans
	}
	if tagRule != nil && tagRule.act != actKeep && haveValue && valueAttr[1] > valueAttr[0] {
		spans = insertSpan(spans, textSpan{valueAttr[0], valueAttr[1], tagRule})
	}
	end := k + 1
	if s[k-1] == '/' {
		return end, spans // empty element
	}
	r := st.textRule(local)
	if r == nil || r.act == actKeep {
		return end, spans
	}
	// Element content up to the matching end tag.
	closeTag := "</" + qname
	stop := strings.Index(s[end:], closeTag)
	if stop < 0 {
		stop = strings.IndexByte(s[end:], '<')
		if stop < 0 {
			stop = n - end
		}
	}
	stop += end
	for p := end; p < stop; {
		if strings.HasPrefix(s[p:], "<![CDATA[") {
			cs := p + len("<![CDATA[")
			ce := strings.Index(s[cs:], "]]>")
			if ce < 0 {
				ce = stop - cs
			}
			if ce > 0 && !blank(s[cs:cs+ce]) {
				spans = append(spans, textSpan{cs, cs + ce, r})
			}
			p = cs + ce + 3
			continue
		}
		if s[p] == '<' {
			q := strings.IndexByte(s[p:], '>')
			if q < 0 {
				break
			}
			p += q + 1
			continue
		}
		q := strings.IndexByte(s[p:stop], '<')
		if q < 0 {
			q = stop - p
		}
		if t := s[p : p+q]; !blank(t) {
			// Keep the white space around the text (indentation).
			a, b := p, p+q
			for a < b && isSpace(s[a]) {
				a++
			}
			for b > a && isSpace(s[b-1]) {
				b--
			}
			spans = append(spans, textSpan{a, b, r})
		}
		p += q
	}
	if stop > n {
		stop = n
	}
	return stop, spans
}

// insertSpan appends sp keeping spans sorted by start.
func insertSpan(spans []textSpan, sp textSpan) []textSpan {
	spans = append(spans, sp)
	for k := len(spans) - 1; k > 0 && spans[k].start < spans[k-1].start; k-- {
		spans[k], spans[k-1] = spans[k-1], spans[k]
	}
	return spans
}

func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			return false
		}
	}
	return true
}
