package stub

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/url"
	"strconv"
)

// maxJSONLeaves bounds the leaves compared per JSON body; beyond it the
// bodies are compared as bytes.
const maxJSONLeaves = 10000

// Similarity says how alike two request bodies are, in percent: 100 when
// equal (two empty bodies too). Two JSON documents are compared field by
// field: the share of leaves (path and value) they have in common (Dice
// coefficient), so {"amount":100,"currency":"EUR"} and
// {"amount":120,"currency":"EUR"} are 50% alike whatever their key order
// and spacing. Other bodies are compared as bytes: the share of the longer
// body covered by their common prefix and suffix. (The stub compares HTML
// form bodies, application/x-www-form-urlencoded, field by field too.)
func Similarity(a, b []byte) int { return newShape(a, "").similarity(newShape(b, "")) }

// shape is a body parsed once for the comparisons it takes part in.
type shape struct {
	raw    []byte
	leaves map[string]int // nil: not JSON
}

// newShape parses b, a body of Content-Type contentType.
func newShape(b []byte, contentType string) shape {
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt == "application/x-www-form-urlencoded" {
		if l, ok := formLeaves(b); ok {
			return shape{raw: b, leaves: l}
		}
	}
	l, _ := jsonLeaves(b)
	return shape{raw: b, leaves: l}
}

// formLeaves flattens a form body to its fields ("name[i]=value"), or
// reports that it is not one.
func formLeaves(data []byte) (map[string]int, bool) {
	if len(data) == 0 {
		return nil, false
	}
	vs, err := url.ParseQuery(string(data))
	if err != nil {
		return nil, false
	}
	out, n := map[string]int{}, 0
	for k, list := range vs {
		for i, v := range list {
			if !leaf("$."+strconv.Quote(k)+"["+strconv.Itoa(i)+"]="+strconv.Quote(v), out, &n) {
				return nil, false
			}
		}
	}
	return out, true
}

func (a shape) similarity(b shape) int {
	if bytes.Equal(a.raw, b.raw) {
		return 100
	}
	if a.leaves != nil && b.leaves != nil {
		return leafSimilarity(a.leaves, b.leaves)
	}
	return byteSimilarity(a.raw, b.raw)
}

func leafSimilarity(a, b map[string]int) int {
	na, nb, common := 0, 0, 0
	for k, n := range a {
		na += n
		common += min(n, b[k])
	}
	for _, n := range b {
		nb += n
	}
	if na+nb == 0 {
		return 100
	}
	return 200 * common / (na + nb)
}

func byteSimilarity(a, b []byte) int {
	n := max(len(a), len(b))
	if n == 0 {
		return 100
	}
	p := 0
	for p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	s := 0
	for s < len(a)-p && s < len(b)-p && a[len(a)-1-s] == b[len(b)-1-s] {
		s++
	}
	return 100 * (p + s) / n
}

// jsonLeaves flattens a JSON document to its leaves ("path=value" with a
// count each), or reports that data is not JSON.
func jsonLeaves(data []byte) (map[string]int, bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || (data[0] != '{' && data[0] != '[') {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return nil, false
	}
	out := map[string]int{}
	if !flatten("$", v, out, new(int)) {
		return nil, false
	}
	return out, true
}

func flatten(path string, v any, out map[string]int, n *int) bool {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			return leaf(path+"={}", out, n)
		}
		for k, e := range t {
			if !flatten(path+"."+strconv.Quote(k), e, out, n) {
				return false
			}
		}
		return true
	case []any:
		if len(t) == 0 {
			return leaf(path+"=[]", out, n)
		}
		for i, e := range t {
			if !flatten(path+"["+strconv.Itoa(i)+"]", e, out, n) {
				return false
			}
		}
		return true
	default:
		b, _ := json.Marshal(t)
		return leaf(path+"="+string(b), out, n)
	}
}

func leaf(k string, out map[string]int, n *int) bool {
	if *n++; *n > maxJSONLeaves {
		return false
	}
	out[k]++
	return true
}
