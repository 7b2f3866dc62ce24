package credential

import "net/http"

// Header sets one request header from a secret source: File or Env (one of
// the two).
type Header struct {
	// Name is the header set (default Authorization).
	Name string `yaml:"header,omitempty"`
	// File holds the value (surrounding white space trimmed); it is read
	// again when it changes (a rotated token takes effect without a
	// restart).
	File string `yaml:"file,omitempty"`
	// Env names the environment variable holding the value (read once).
	Env string `yaml:"env,omitempty"`
	// Prefix is written before the value, e.g. "Bearer ".
	Prefix string `yaml:"prefix,omitempty"`
}

// Injector is a compiled Header.
type Injector struct{}

// Compile checks h (exactly one source, a valid header name, a source that
// can be read now and is not empty) and returns its Injector; the error
// names the field but never the value.
func (h Header) Compile() (*Injector, error) { panic("credential: Header.Compile not written yet") }

// HeaderName is the canonical name of the header the Injector sets.
func (i *Injector) HeaderName() string { panic("credential: Injector.HeaderName not written yet") }

// Apply sets the header in hdr, replacing any value. It fails when the file
// became unreadable or empty (the request must not go out without it).
func (i *Injector) Apply(hdr http.Header) error { panic("credential: Injector.Apply not written yet") }
