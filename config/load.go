package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// checkNode walks a decoded YAML document against the schema of t (the
// yaml struct tags, found by reflection) and returns the first problem as
// "line N: a.b.c: what is wrong", naming the YAML path and the kind of value
// wanted, never a Go type. The decoder's own errors name Go types ("field
// smaple not found in type config.Proxy"); this walker runs first so a
// user sees the key as written in the file.
func checkNode(n *yaml.Node, t reflect.Type) error {
	if n.Kind == 0 {
		return nil // an empty file (or only comments) keeps the defaults
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	return walkNode(n, t, "")
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// kindHints overrides the wanted kind of a few keys whose range matters.
var kindHints = map[string]string{
	"proxy.sample": "a number between 0 and 1",
}

// walkNode checks n against t at the YAML path.
func walkNode(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty value keeps the default
	}
	custom := reflect.PointerTo(t).Implements(unmarshalerType)
	if custom && !(n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct) {
		// The type reads itself (e.g. a redaction rule: an action or a
		// mapping): let it say what is wrong.
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return nodeErr(n, path, "%s", stripLine(err.Error()))
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(time.Time{}) {
			return checkScalar(n, t, path)
		}
		return walkStruct(n, t, path)
	case reflect.Map:
		return walkMap(n, t, path)
	case reflect.Slice, reflect.Array:
		return walkList(n, t, path)
	case reflect.Interface:
		return nil
	}
	return checkScalar(n, t, path)
}

// walkStruct checks the mapping n against the yaml keys of struct t.
func walkStruct(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.MappingNode {
		return nodeErr(n, path, "want a mapping of keys, got %s", describeNode(n))
	}
	fields := map[string]reflect.Type{}
	collectFields(t, fields)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		ft, ok := fields[k.Value]
		if !ok {
			return nodeErr(k, joinPath(path, k.Value), "unknown key%s", suggestKey(k.Value, fields))
		}
		if err := walkNode(v, ft, joinPath(path, k.Value)); err != nil {
			return err
		}
	}
	return nil
}

// walkMap checks the keys and values of the mapping n against map type t.
func walkMap(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.MappingNode {
		return nodeErr(n, path, "want a mapping, got %s", describeNode(n))
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if err := walkNode(k, t.Key(), path+"[key]"); err != nil {
			return err
		}
		if err := walkNode(v, t.Elem(), joinPath(path, k.Value)); err != nil {
			return err
		}
	}
	return nil
}

// walkList checks the elements of the sequence n against t's element type.
func walkList(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.SequenceNode {
		return nodeErr(n, path, "want a list, got %s", describeNode(n))
	}
	for i, e := range n.Content {
		if err := walkNode(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return err
		}
	}
	return nil
}

// checkScalar checks that n decodes as a value of t.
func checkScalar(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.ScalarNode {
		return nodeErr(n, path, "want %s, got %s", wantKind(t, path), describeNode(n))
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		return nodeErr(n, path, "want %s, got %s", wantKind(t, path), describeNode(n))
	}
	return nil
}

// collectFields maps each yaml key of struct t to its field type; inline
// fields contribute their own keys.
func collectFields(t reflect.Type, out map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if strings.Contains(","+opts+",", ",inline,") {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				collectFields(ft, out)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = ft
	}
}

// wantKind says in words what a value of t looks like.
func wantKind(t reflect.Type, path string) string {
	if h, ok := kindHints[path]; ok {
		return h
	}
	if t == durationType {
		return "a duration such as 30s or 5m"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprintf("a whole number from 0 to %d", uint64(1)<<(t.Bits())-1)
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	if t == reflect.TypeOf(time.Time{}) {
		return "an RFC 3339 time"
	}
	return "a value"
}

// describeNode shows what the file holds at n: the scalar, quoted and cut
// short, or its shape.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	return strconv.Quote(v)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func nodeErr(n *yaml.Node, path, format string, args ...any) error {
	if path == "" {
		path = "(top level)"
	}
	return fmt.Errorf("line %d: %s: %s", n.Line, path, fmt.Sprintf(format, args...))
}

// stripLine drops a leading "line N: " an unmarshaler put in its error: the
// caller names the line itself.
func stripLine(s string) string {
	s = strings.TrimPrefix(s, "yaml: ")
	if rest, ok := strings.CutPrefix(s, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, err := strconv.Atoi(rest[:i]); err == nil {
				return rest[i+2:]
			}
		}
	}
	return s
}

// suggestKey returns "; did you mean K?" for the known key closest to key
// (edit distance at most 2), or "" when none is close.
func suggestKey(key string, fields map[string]reflect.Type) string {
	best, bestD := "", 3
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if d := editDistance(key, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return "; did you mean " + best + "?"
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Load decodes the YAML file path into f, over the values already in it
// (usually Default()), and records the keys it sets (see File.Set). It is
// strict: an unknown key, a value of the wrong kind or a syntax error is an
// error naming the file, the line and the YAML path, with the closest known
// key ("config x.yaml: line 3: proxy.smaple: unknown key; did you mean
// sample?"), never a Go type. Zero values of the vpc, ebpf and import
// sections take their defaults.
func Load(path string, f *File) error {
	doc, b, err := readDoc("config", path, reflect.TypeOf(*f))
	if err != nil {
		return err
	}
	set := map[string]bool{}
	if len(doc.Content) > 0 {
		setKeys(doc.Content[0], "", set)
	}
	// The walker found nothing wrong; the strict decoder stays as a
	// backstop.
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return fmt.Errorf("config %s: %s", path, strings.Join(te.Errors, "; "))
		}
		return fmt.Errorf("config %s: %s", path, stripYAMLPrefix(err.Error()))
	}
	f.set = set
	f.fillDefaults()
	return nil
}

// CheckFile checks the YAML file path against the schema of v's type (e.g.
// a redactor.Config for a --rules file) as Load does; what names the file in
// the error ("rules").
func CheckFile(what, path string, v any) error {
	_, _, err := readDoc(what, path, reflect.TypeOf(v))
	return err
}

// readDoc reads path and checks its YAML document against the schema of t.
func readDoc(what, path string, t reflect.Type) (*yaml.Node, []byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%s %s: %s", what, path, stripYAMLPrefix(err.Error()))
	}
	if err := checkNode(&doc, t); err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return &doc, b, nil
}

// setKeys records the dotted path of every key of the mappings under n
// (lists and scalars are values).
func setKeys(n *yaml.Node, prefix string, set map[string]bool) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := joinPath(prefix, n.Content[i].Value)
		set[k] = true
		setKeys(n.Content[i+1], k, set)
	}
}

// stripYAMLPrefix drops the "yaml: " the parser puts before its messages.
func stripYAMLPrefix(s string) string { return strings.TrimPrefix(s, "yaml: ") }
