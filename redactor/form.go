// Form bodies, query strings, URLs and paths: scrubbed by the form_fields
// rules and the detectors.

package redactor

import (
	"fmt"
	"net/url"
	"strings"
	"unsafe"
)

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
	fc := st.formClass(rules, name)
	if r := fc.r; r != nil {
		switch r.act {
		case actKeep:
			return pair, true, false, nil
		case actRemove:
			st.hit(r.name, 1)
			return "", false, true, nil
		}
		var nv string
		if r.act == actUnsign {
			st.hit(r.name, 1)
			var ok bool
			if nv, ok = st.unsign(val); !ok {
				return "", false, true, nil // not a JWT: the pair is removed
			}
		} else {
			nv = st.applyRule(r, val)
		}
		if !fc.clean {
			if nn, ok := st.scrubString(name); ok {
				rawName = queryEscape(nn)
			}
		}
		return rawName + "=" + queryEscape(nv), true, true, nil
	}
	nn, nameChanged := name, false
	if !fc.clean {
		nn, nameChanged = st.scrubString(name)
	}
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
func (st *state) formRule(rules *nameRules, name string) *rule { return st.formClass(rules, name).r }

// formClass is the classification of a form field or query parameter name:
// its rule (formRule) and whether the detectors find nothing in it.
type formClass struct {
	r     *rule
	clean bool
}

// formClass returns the class of a form field or query parameter name
// (rules is &e.form or &e.query), cached per engine.
func (st *state) formClass(rules *nameRules, name string) formClass {
	e := st.e
	if rules == &e.query {
		return e.queryNames.get(name, e.classQuery)
	}
	return e.formNames.get(name, e.classForm)
}

// classifyFormName is formClass for a form field (query false) or query
// parameter name, without the cache.
func (e *Engine) classifyFormName(name string, query bool) formClass {
	rules, off, secret := &e.form, e.offForm, &e.secretForm
	if query {
		rules, off, secret = &e.query, e.offQuery, &e.secretQuery
	}
	c := formClass{clean: e.detClean(name)}
	if c.r = rules.match(name, 0); c.r == nil && e.secretMatch(off, name) {
		c.r = secret
	}
	return c
}

// plusDigits rewrites a '+' that starts a value or follows a
// non-alphanumeric byte and precedes a digit as "%2B": clients often send
// "phone=+14155550100" unescaped, and that '+' is a plus sign, not a space.
// queryEscape never produces that shape, so the reading is stable.
func plusDigits(raw string) string { return replacePlusDigit(raw, "%2B") }

// replacePlusDigit replaces with repl every '+' of s that starts s or follows
// a non-alphanumeric byte and precedes a digit.
func replacePlusDigit(s, repl string) string {
	if strings.IndexByte(s, '+') < 0 {
		return s
	}
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+1 < len(s) && isDigit(s[i+1]) && (i == 0 || !isAlnum(s[i-1])) {
			if b == nil {
				b = append(make([]byte, 0, len(s)+4), s[:i]...)
			}
			b = append(b, repl...)
			continue
		}
		if b != nil {
			b = append(b, s[i])
		}
	}
	if b == nil {
		return s
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
	return replacePlusDigit(e, "%20")
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
	if len(p) < 6 || !st.e.detOn {
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
		nv, ok := "", false
		if len(seg) >= 6 {
			dec, err := url.PathUnescape(seg)
			if err != nil {
				dec = seg
			}
			nv, ok = st.scrubString(dec)
		}
		switch {
		case ok:
			if !changed {
				changed = true
				b.Grow(len(p))
				b.WriteString(p[:segStart])
			}
			b.WriteString(pathEscape(nv))
		case changed:
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
