package comparator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math/big"
	"slices"
	"sort"
	"strconv"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// maxValueLen bounds the values recorded in a Difference.
const maxValueLen = 200

// parseJSON decodes one JSON document keeping numbers exact.
func parseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}

// jsonDiffer diffs two decoded JSON documents structurally.
type jsonDiffer struct {
	rules     *epRules
	max       int
	out       []*mlv1.Difference
	truncated bool
	// volatile holds the keys of fields present on both sides whose primary
	// value looks volatile.
	volatile map[string]bool
	// messages is set when the documents are a gRPC response's messages
	// (path segment 0 is the message index): ignore patterns then match
	// paths inside a message as well as whole paths.
	messages bool
}

// ignored reports whether the rules ignore path.
func (d *jsonDiffer) ignored(path []seg) bool {
	return d.rules.ignorePath(path) || d.messages && len(path) > 1 && d.rules.ignorePath(path[1:])
}

// unordered reports whether the rules compare the array at path unordered.
func (d *jsonDiffer) unordered(path []seg) bool {
	return d.rules.unorderedArray(path) || d.messages && len(path) > 1 && d.rules.unorderedArray(path[1:])
}

func newJSONDiffer(r *epRules, max int) *jsonDiffer {
	return &jsonDiffer{rules: r, max: max, volatile: map[string]bool{}}
}

func jsonType(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "unknown"
}

// render is the compact JSON text of v, cut to maxValueLen bytes.
func render(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "?"
	}
	return cut(string(bytes.TrimRight(b.Bytes(), "\n")), maxValueLen)
}

// cut shortens s to at most n bytes on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}

func (d *jsonDiffer) add(path []seg, kind mlv1.DiffKind, p, s any, hasP, hasS, volatile bool) {
	if len(d.out) >= d.max {
		d.truncated = true
		return
	}
	df := &mlv1.Difference{Field: pathString(path, false), Key: pathString(path, true), Kind: kind, Volatile: volatile}
	if hasP {
		df.Primary = render(p)
	}
	if hasS {
		df.Shadow = render(s)
	}
	d.out = append(d.out, df)
}

// walk compares p and s found at path on both sides.
func (d *jsonDiffer) walk(path []seg, p, s any) {
	if len(path) > 0 && d.ignored(path) {
		return
	}
	if tp, ts := jsonType(p), jsonType(s); tp != ts {
		d.add(path, mlv1.DiffKind_DIFF_KIND_TYPE_CHANGED, p, s, true, true, false)
		return
	}
	switch pv := p.(type) {
	case map[string]any:
		sv := s.(map[string]any)
		keys := slices.Collect(maps.Keys(pv))
		for k := range sv {
			if _, ok := pv[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := append(path[:len(path):len(path)], seg{s: k})
			a, inP := pv[k]
			b, inS := sv[k]
			switch {
			case inP && inS:
				d.walk(child, a, b)
			case d.ignored(child):
			case inP:
				d.add(child, mlv1.DiffKind_DIFF_KIND_REMOVED, a, nil, true, false, false)
			default:
				d.add(child, mlv1.DiffKind_DIFF_KIND_ADDED, nil, b, false, true, false)
			}
		}
	case []any:
		sv := s.([]any)
		if d.unordered(path) {
			d.walkUnordered(path, pv, sv)
			return
		}
		for i := 0; i < max(len(pv), len(sv)); i++ {
			child := append(path[:len(path):len(path)], seg{s: strconv.Itoa(i), idx: true})
			switch {
			case i < len(pv) && i < len(sv):
				d.walk(child, pv[i], sv[i])
			case d.ignored(child):
			case i < len(pv):
				d.add(child, mlv1.DiffKind_DIFF_KIND_REMOVED, pv[i], nil, true, false, false)
			default:
				d.add(child, mlv1.DiffKind_DIFF_KIND_ADDED, nil, sv[i], false, true, false)
			}
		}
	case string:
		sv := s.(string)
		if looksVolatile(pv) {
			d.volatile[pathString(path, true)] = true
		}
		if pv != sv {
			d.add(path, mlv1.DiffKind_DIFF_KIND_CHANGED, pv, sv, true, true, volatilePair(pv, sv))
		}
	case json.Number:
		sv := s.(json.Number)
		ep := epochShape(pv)
		if ep != 0 {
			d.volatile[pathString(path, true)] = true
		}
		if !equalNumbers(pv, sv) {
			d.add(path, mlv1.DiffKind_DIFF_KIND_CHANGED, pv, sv, true, true, ep != 0 && ep == epochShape(sv))
		}
	case bool:
		if pv != s.(bool) {
			d.add(path, mlv1.DiffKind_DIFF_KIND_CHANGED, pv, s, true, true, false)
		}
	}
}

// walkUnordered compares two arrays as multisets: equal elements pair up
// wherever they are, the rest pair in order and are diffed, extras are
// added or removed.
func (d *jsonDiffer) walkUnordered(path []seg, pv, sv []any) {
	avail := map[string][]int{}
	for j, e := range sv {
		c := render2(e)
		avail[c] = append(avail[c], j)
	}
	usedS := make([]bool, len(sv))
	var restP []int
	for i, e := range pv {
		c := render2(e)
		if js := avail[c]; len(js) > 0 {
			usedS[js[0]] = true
			avail[c] = js[1:]
			continue
		}
		restP = append(restP, i)
	}
	var restS []int
	for j := range sv {
		if !usedS[j] {
			restS = append(restS, j)
		}
	}
	for k := 0; k < max(len(restP), len(restS)); k++ {
		switch {
		case k < len(restP) && k < len(restS):
			d.walk(append(path[:len(path):len(path)], seg{s: strconv.Itoa(restP[k]), idx: true}), pv[restP[k]], sv[restS[k]])
		case k < len(restP):
			child := append(path[:len(path):len(path)], seg{s: strconv.Itoa(restP[k]), idx: true})
			if !d.ignored(child) {
				d.add(child, mlv1.DiffKind_DIFF_KIND_REMOVED, pv[restP[k]], nil, true, false, false)
			}
		default:
			child := append(path[:len(path):len(path)], seg{s: strconv.Itoa(restS[k]), idx: true})
			if !d.ignored(child) {
				d.add(child, mlv1.DiffKind_DIFF_KIND_ADDED, nil, sv[restS[k]], false, true, false)
			}
		}
	}
}

// render2 is the full canonical JSON of v (object keys sorted).
func render2(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// equalNumbers compares JSON numbers by value (1 == 1.0 == 1e0).
func equalNumbers(a, b json.Number) bool {
	if a == b {
		return true
	}
	x, ok1 := new(big.Float).SetPrec(256).SetString(string(a))
	y, ok2 := new(big.Float).SetPrec(256).SetString(string(b))
	return ok1 && ok2 && x.Cmp(y) == 0
}
