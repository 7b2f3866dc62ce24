// Package kubeschema turns the official Kubernetes OpenAPI document
// (k8s.io/kubernetes api/openapi-spec/swagger.json) and CustomResourceDefinitions
// (e.g. KEDA's) into the strict, standalone JSON schemas kubeconform reads from a
// local -schema-location, so manifests are validated offline.
//
// The conversion follows kubeconform's own openapi2jsonschema (strict variant):
// objects with declared properties reject undeclared ones (unless marked
// x-kubernetes-preserve-unknown-fields), int-or-string fields accept both,
// quantities accept numbers and strings, and optional fields accept null.
package kubeschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FileName is kubeconform's name for the schema of kind in apiVersion with the
// location template "{{ .ResourceKind }}{{ .KindSuffix }}.json".
func FileName(apiVersion, kind string) string {
	group, version, ok := strings.Cut(apiVersion, "/")
	suffix := "-" + strings.ToLower(strings.Split(group, ".")[0])
	if ok {
		suffix += "-" + strings.ToLower(version)
	}
	return strings.ToLower(kind) + suffix + ".json"
}

// LocationTemplate is the kubeconform -schema-location for schemas in dir.
func LocationTemplate(dir string) string {
	return filepath.Join(dir, "{{ .ResourceKind }}{{ .KindSuffix }}.json")
}

// Source holds the schemas of known kinds.
type Source struct {
	defs map[string]any // swagger definitions, by name
	// byGVK maps "apiVersion kind" to a definition name (built-in kinds) ...
	byGVK map[string]string
	// ... or directly to a converted schema (CRD kinds).
	crds map[string]map[string]any
}

// New returns an empty Source.
func New() *Source {
	return &Source{defs: map[string]any{}, byGVK: map[string]string{}, crds: map[string]map[string]any{}}
}

func gvkKey(apiVersion, kind string) string { return apiVersion + " " + kind }

// LoadSwagger adds the built-in kinds of a Kubernetes swagger.json.
func (s *Source) LoadSwagger(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(doc.Definitions) == 0 {
		return fmt.Errorf("%s: no definitions", path)
	}
	for name, d := range doc.Definitions {
		s.defs[name] = d
		gvks, _ := d["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m, _ := g.(map[string]any)
			group, _ := m["group"].(string)
			version, _ := m["version"].(string)
			kind, _ := m["kind"].(string)
			apiVersion := version
			if group != "" {
				apiVersion = group + "/" + version
			}
			// A kind listed by several definitions (watch events) keeps the
			// definition named after its own package.
			if prev, ok := s.byGVK[gvkKey(apiVersion, kind)]; ok && strings.HasSuffix(prev, "."+kind) {
				continue
			}
			s.byGVK[gvkKey(apiVersion, kind)] = name
		}
	}
	return nil
}

// LoadCRDs adds the kinds of the CustomResourceDefinitions in a YAML file.
func (s *Source) LoadCRDs(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	n := 0
	for {
		var crd struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Group string `yaml:"group"`
				Names struct {
					Kind string `yaml:"kind"`
				} `yaml:"names"`
				Versions []struct {
					Name   string `yaml:"name"`
					Schema struct {
						OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
					} `yaml:"schema"`
				} `yaml:"versions"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&crd); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			root := convert(normalize(v.Schema.OpenAPIV3Schema).(map[string]any), nil)
			root["$schema"] = "http://json-schema.org/draft-04/schema#"
			s.crds[gvkKey(crd.Spec.Group+"/"+v.Name, crd.Spec.Names.Kind)] = root
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("%s: no CustomResourceDefinition with a schema", path)
	}
	return nil
}

// Schema returns the standalone strict schema of kind in apiVersion.
func (s *Source) Schema(apiVersion, kind string) (map[string]any, error) {
	if c, ok := s.crds[gvkKey(apiVersion, kind)]; ok {
		return c, nil
	}
	name, ok := s.byGVK[gvkKey(apiVersion, kind)]
	if !ok {
		return nil, fmt.Errorf("no schema for %s %s", apiVersion, kind)
	}
	defs := map[string]any{}
	var walk func(string) error
	walk = func(n string) error {
		if _, done := defs[n]; done {
			return nil
		}
		d, ok := s.defs[n].(map[string]any)
		if !ok {
			return fmt.Errorf("definition %s is missing", n)
		}
		var refs []string
		defs[n] = convertDef(n, d, &refs)
		for _, r := range refs {
			if err := walk(r); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(name); err != nil {
		return nil, err
	}
	return map[string]any{
		"$schema":     "http://json-schema.org/draft-04/schema#",
		"allOf":       []any{map[string]any{"$ref": "#/definitions/" + name}},
		"definitions": defs,
	}, nil
}

// WriteSchemas writes the schema of every apiVersion/kind pair in kinds to dir
// under its kubeconform file name.
func (s *Source) WriteSchemas(dir string, kinds [][2]string) error {
	for _, k := range kinds {
		sch, err := s.Schema(k[0], k[1])
		if err != nil {
			return err
		}
		b, err := json.Marshal(sch)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, FileName(k[0], k[1])), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

const (
	intOrStringDef = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
	quantityDef    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
)

func convertDef(name string, d map[string]any, refs *[]string) map[string]any {
	switch name {
	case intOrStringDef:
		return stringOr("integer")
	case quantityDef:
		return stringOr("number")
	}
	return convert(d, refs)
}

// stringOr is the schema of a string or a value of type typ.
func stringOr(typ string) map[string]any {
	return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": typ}}}
}

// convert returns the strict JSON schema of an OpenAPI schema node. Refs to
// other definitions are appended to refs (nil: the node has none, as in CRDs).
func convert(n map[string]any, refs *[]string) map[string]any {
	if ref, ok := n["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		if refs != nil {
			*refs = append(*refs, name)
		}
		return map[string]any{"$ref": "#/definitions/" + name}
	}
	if b, _ := n["x-kubernetes-int-or-string"].(bool); b || n["format"] == "int-or-string" {
		return stringOr("integer")
	}
	out := map[string]any{}
	for _, k := range []string{"type", "format", "enum", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties"} {
		if v, ok := n[k]; ok {
			out[k] = v
		}
	}
	if f, _ := out["format"].(string); f != "date-time" && f != "" {
		// OpenAPI formats (int32, byte, ...) are not JSON Schema formats.
		delete(out, "format")
	}
	preserve, _ := n["x-kubernetes-preserve-unknown-fields"].(bool)
	required := map[string]bool{}
	if req, ok := n["required"].([]any); ok && len(req) > 0 {
		out["required"] = req
		for _, r := range req {
			if s, ok := r.(string); ok {
				required[s] = true
			}
		}
	}
	if props, ok := n["properties"].(map[string]any); ok {
		po := map[string]any{}
		for _, k := range slices.Sorted(maps.Keys(props)) {
			p, _ := props[k].(map[string]any)
			c := convert(p, refs)
			if !required[k] {
				c = nullable(c)
			}
			po[k] = c
		}
		out["properties"] = po
		if _, has := n["additionalProperties"]; !has && !preserve {
			out["additionalProperties"] = false
		}
	}
	switch ap := n["additionalProperties"].(type) {
	case map[string]any:
		out["additionalProperties"] = convert(ap, refs)
	case bool:
		out["additionalProperties"] = ap
	}
	if it, ok := n["items"].(map[string]any); ok {
		out["items"] = convert(it, refs)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if l, ok := n[k].([]any); ok {
			var cl []any
			for _, e := range l {
				if m, ok := e.(map[string]any); ok {
					cl = append(cl, convert(m, refs))
				}
			}
			out[k] = cl
		}
	}
	if b, _ := n["nullable"].(bool); b {
		out = nullable(out)
	}
	return out
}

// nullable lets a schema also accept null, as the API server does for optional fields.
func nullable(s map[string]any) map[string]any {
	switch t := s["type"].(type) {
	case string:
		if t != "null" {
			s["type"] = []any{t, "null"}
		}
		return s
	case []any:
		if !slices.Contains(t, any("null")) {
			s["type"] = append(t, "null")
		}
		return s
	}
	return map[string]any{"anyOf": []any{map[string]any{"type": "null"}, s}}
}

// normalize turns YAML-decoded maps into JSON-shaped ones.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = normalize(e)
		}
		return t
	case map[any]any:
		m := map[string]any{}
		for k, e := range t {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = normalize(e)
		}
		return t
	}
	return v
}
