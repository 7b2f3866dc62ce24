package credential

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"golang.org/x/net/http/httpguts"
)

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

// Injector is a compiled Header. It is safe for concurrent use: a file
// source is checked for a change (stat of its mtime, size and inode) at most
// once per CheckInterval and re-read when it changed.
type Injector struct {
	name   string
	prefix string
	value  string       // Env source
	file   *watchedFile // File source
}

// Compile checks h (exactly one source, a valid header name, a source that
// can be read now and is not empty) and returns its Injector; the error
// names the field but never the value.
func (h Header) Compile() (*Injector, error) {
	name := h.Name
	if name == "" {
		name = "Authorization"
	}
	if !httpguts.ValidHeaderFieldName(name) {
		return nil, fmt.Errorf("credential header %q: not a valid header name", name)
	}
	i := &Injector{name: http.CanonicalHeaderKey(name), prefix: h.Prefix}
	if !validFieldValue(h.Prefix) {
		return nil, fmt.Errorf("credential %s: prefix: %w", i.name, ErrInvalidValue)
	}
	switch {
	case h.File != "" && h.Env != "":
		return nil, fmt.Errorf("credential %s: file and env are exclusive", i.name)
	case h.File != "":
		w, err := newWatchedFile("credential "+i.name+": file", h.File, trimmedValue)
		if err != nil {
			return nil, err
		}
		i.file = w
	case h.Env != "":
		v := strings.TrimSpace(os.Getenv(h.Env))
		if err := checkValue(v); err != nil {
			return nil, fmt.Errorf("credential %s: env %s: %w", i.name, h.Env, err)
		}
		i.value = v
	default:
		return nil, fmt.Errorf("credential %s: one of file or env is required", i.name)
	}
	return i, nil
}

// HeaderName is the canonical name of the header the Injector sets.
func (i *Injector) HeaderName() string { return i.name }

// Apply sets the header in hdr, replacing any value. It fails when the file
// became unreadable or empty (the request must not go out without it).
func (i *Injector) Apply(hdr http.Header) error {
	v := i.value
	if i.file != nil {
		x, err := i.file.get()
		if err != nil {
			return err
		}
		v = x.(string)
	}
	hdr[i.name] = []string{i.prefix + v}
	return nil
}

// Check stats a file source now, whatever CheckInterval, and re-reads it if
// it changed (e.g. after a rotation, to take it into account at once); it
// returns the error Apply would return. It does nothing for an env source.
func (i *Injector) Check() error {
	if i.file == nil {
		return nil
	}
	return i.file.Check()
}
