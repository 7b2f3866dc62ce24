package route

import (
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// SafeMethods are the methods `replay --safe` replays: those RFC 9110
// defines as safe and that have no body semantics.
var SafeMethods = []string{"GET", "HEAD", "OPTIONS"}

// Match selects captured requests. Every non-empty part must match (AND);
// within a list, any entry may match (OR). The zero Match selects
// everything.
type Match struct {
	// Methods are HTTP methods, case-insensitive ("GET", "post").
	Methods []string `yaml:"methods,omitempty"`
	// Paths are globs on the decoded path: '*' matches within one segment,
	// '**' across segments, '?' one character, [...] a class (doublestar
	// syntax). Without a query.
	Paths []string `yaml:"paths,omitempty"`
	// ExcludePaths are globs like Paths; a request matching one is not
	// selected, whatever else matches.
	ExcludePaths []string `yaml:"exclude_paths,omitempty"`
	// Headers maps a header name (case-insensitive) to a glob on its value
	// ('*' any run of characters, '?' one); a request is selected when each
	// named header has a value the glob matches.
	Headers map[string]string `yaml:"headers,omitempty"`
}

// Matcher is a compiled Match.
type Matcher struct{}

// Compile checks m (methods are tokens, globs are valid, header names are
// tokens) and returns its Matcher; the error names the field and entry.
func (m Match) Compile() (*Matcher, error) { panic("route: Match.Compile not written yet") }

// Empty reports whether m selects everything.
func (m Match) Empty() bool {
	return len(m.Methods) == 0 && len(m.Paths) == 0 && len(m.ExcludePaths) == 0 && len(m.Headers) == 0
}

// Matches reports whether req is selected. A request whose request-target
// does not parse (see reqtarget.Parse) matches no path glob (and is
// therefore selected only by a Match without Paths and ExcludePaths).
func (m *Matcher) Matches(req *mlv1.Request) bool { panic("route: Matcher.Matches not written yet") }
