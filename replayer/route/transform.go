package route

import (
	"errors"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Transform rewrites a selected request before it is sent. The steps run in
// the order of the fields: remove, rename, set headers; rewrite the path;
// add query parameters; delete, then set JSON body fields.
type Transform struct {
	// RemoveHeaders are header names (case-insensitive) to delete.
	RemoveHeaders []string `yaml:"remove_headers,omitempty"`
	// RenameHeaders maps a header name to its new name (values kept).
	RenameHeaders map[string]string `yaml:"rename_headers,omitempty"`
	// SetHeaders maps a header name to the value it is set to (replacing
	// every value it had).
	SetHeaders map[string]string `yaml:"set_headers,omitempty"`
	// Path rewrites the path (not the query) by a regular expression.
	Path *PathRewrite `yaml:"path,omitempty"`
	// AddQuery maps a query parameter to a value appended to the query
	// (encoded; existing parameters kept).
	AddQuery map[string]string `yaml:"add_query,omitempty"`
	// JSONDelete are paths (sjson syntax: "user.email", "items.0.id") of
	// fields deleted from a JSON body.
	JSONDelete []string `yaml:"json_delete,omitempty"`
	// JSONSet maps a path (sjson syntax) to the value (any YAML value,
	// written as JSON) it is set to in a JSON body; missing objects are
	// created.
	JSONSet map[string]any `yaml:"json_set,omitempty"`
}

// PathRewrite replaces the first match of Match in the decoded path by
// Replace (Go regexp syntax, $1 for groups).
type PathRewrite struct {
	Match   string `yaml:"match"`
	Replace string `yaml:"replace"`
}

// ErrNotJSON is returned (wrapped) by Transformer.Apply when JSON fields are
// to be changed in a body that is not JSON (or is compressed).
var ErrNotJSON = errors.New("body is not JSON")

// Transformer is a compiled Transform.
type Transformer struct{}

// Compile checks t (header names are tokens, values have no control
// characters, the regular expression compiles, JSON paths are valid) and
// returns its Transformer; the error names the field and entry.
func (t Transform) Compile() (*Transformer, error) { panic("route: Transform.Compile not written yet") }

// Empty reports whether t changes nothing.
func (t Transform) Empty() bool {
	return len(t.RemoveHeaders) == 0 && len(t.RenameHeaders) == 0 && len(t.SetHeaders) == 0 && t.Path == nil &&
		len(t.AddQuery) == 0 && len(t.JSONDelete) == 0 && len(t.JSONSet) == 0
}

// Apply rewrites req in place (the caller passes a copy): headers, Url
// (path and query; the result is a request-target the caller checks again
// before building a URL from it), Body and BodySize. An error leaves req in
// an unspecified state: the record is not sent.
func (t *Transformer) Apply(req *mlv1.Request) error { panic("route: Transformer.Apply not written yet") }
