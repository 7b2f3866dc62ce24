package proxy

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
)

// Route selects requests to capture, like a match block of an Istio VirtualService
// with a mirrorPercentage: every condition given must hold.
type Route struct {
	// PathPrefix matches the URL path by prefix ("" matches all).
	PathPrefix string `yaml:"path_prefix"`
	// Methods lists accepted methods (empty accepts all); case-insensitive.
	Methods []string `yaml:"methods"`
	// Headers maps a header name to an RE2 expression that one of its values
	// must match in full.
	Headers map[string]string `yaml:"headers"`
	// Sample overrides the global sample fraction for this route (0..1).
	Sample *float64 `yaml:"sample"`
}

type compiledRoute struct {
	prefix  string
	methods map[string]bool
	headers map[string]*regexp.Regexp
	sample  float64
}

// Filter decides whether a request is captured.
type Filter struct {
	routes []compiledRoute
	sample float64
	rand   func() float64
}

// NewFilter compiles routes; sample is the fraction of matching requests captured
// when a route has no sample of its own. No routes means every request matches.
func NewFilter(sample float64, routes []Route) (*Filter, error) {
	if sample < 0 || sample > 1 {
		return nil, fmt.Errorf("sample: %v is not between 0 and 1", sample)
	}
	f := &Filter{sample: sample, rand: rand.Float64}
	for i, r := range routes {
		cr := compiledRoute{prefix: r.PathPrefix, sample: sample}
		if r.Sample != nil {
			if *r.Sample < 0 || *r.Sample > 1 {
				return nil, fmt.Errorf("routes[%d].sample: %v is not between 0 and 1", i, *r.Sample)
			}
			cr.sample = *r.Sample
		}
		if len(r.Methods) > 0 {
			cr.methods = map[string]bool{}
			for _, m := range r.Methods {
				cr.methods[strings.ToUpper(m)] = true
			}
		}
		if len(r.Headers) > 0 {
			cr.headers = map[string]*regexp.Regexp{}
			for name, expr := range r.Headers {
				re, err := regexp.Compile("^(?:" + expr + ")$")
				if err != nil {
					return nil, fmt.Errorf("routes[%d].headers[%s]: %w", i, name, err)
				}
				cr.headers[http.CanonicalHeaderKey(name)] = re
			}
		}
		f.routes = append(f.routes, cr)
	}
	return f, nil
}

// Decision is the outcome of Filter.Match.
type Decision int

// Decisions: captured, or skipped and why.
const (
	Capture Decision = iota
	SkipFiltered
	SkipSampled
)

// Match decides whether r is captured.
func (f *Filter) Match(r *http.Request) Decision {
	sample := f.sample
	if len(f.routes) > 0 {
		matched := false
		for i := range f.routes {
			if f.routes[i].match(r) {
				matched, sample = true, f.routes[i].sample
				break
			}
		}
		if !matched {
			return SkipFiltered
		}
	}
	if sample >= 1 {
		return Capture
	}
	if sample <= 0 || f.rand() >= sample {
		return SkipSampled
	}
	return Capture
}

func (cr *compiledRoute) match(r *http.Request) bool {
	if cr.prefix != "" && !strings.HasPrefix(r.URL.Path, cr.prefix) {
		return false
	}
	if cr.methods != nil && !cr.methods[r.Method] {
		return false
	}
	for name, re := range cr.headers {
		ok := false
		for _, v := range r.Header.Values(name) {
			if re.MatchString(v) {
				ok = true
				break
			}
		}
		if name == "Host" && re.MatchString(r.Host) {
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}
