package collector

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
)

// Route selects requests to capture, like a match block of an Istio VirtualService
// with a mirrorPercentage: every condition given must hold.
type Route struct {
	// Name labels the route in mirrorline_collector_sample_ratio{route}
	// (default: "route<i>", its index in the list).
	Name string `yaml:"name"`
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

// DefaultRoute is the route label of the global sample fraction when no
// routes are configured.
const DefaultRoute = "default"

type compiledRoute struct {
	name    string
	prefix  string
	methods map[string]bool
	headers map[string]*regexp.Regexp
	sampler *sampler
}

// Filter decides whether a request is captured. It is safe for concurrent use.
type Filter struct {
	routes []compiledRoute
	all    *sampler // no routes: every request, sampled at the global fraction
	rand   func() float64
}

// NewFilter compiles routes; sample is the fraction of matching requests captured
// when a route has no sample of its own. No routes means every request matches.
func NewFilter(sample float64, routes []Route) (*Filter, error) {
	if math.IsNaN(sample) || sample < 0 || sample > 1 {
		return nil, fmt.Errorf("sample: %v is not between 0 and 1", sample)
	}
	f := &Filter{rand: rand.Float64}
	if len(routes) == 0 {
		f.all = newSampler(sample)
	}
	names := map[string]bool{}
	for i, r := range routes {
		cr := compiledRoute{name: r.Name, prefix: r.PathPrefix}
		if cr.name == "" {
			cr.name = fmt.Sprintf("route%d", i)
		}
		if names[cr.name] {
			return nil, fmt.Errorf("routes[%d].name: %q is used twice", i, cr.name)
		}
		names[cr.name] = true
		s := sample
		if r.Sample != nil {
			if math.IsNaN(*r.Sample) || *r.Sample < 0 || *r.Sample > 1 {
				return nil, fmt.Errorf("routes[%d].sample: %v is not between 0 and 1", i, *r.Sample)
			}
			s = *r.Sample
		}
		cr.sampler = newSampler(s)
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

// skipReasons label mirrorline_collector_skipped_total{reason}, by Decision.
var skipReasons = [...]string{SkipFiltered: "filtered", SkipSampled: "sampled_out"}

// Skip counts a request d skips in mirrorline_collector_skipped_total{reason}
// and reports whether it is skipped.
func (m *Metrics) Skip(d Decision) bool {
	if d == Capture {
		return false
	}
	if c := m.skipped[d]; c != nil {
		c.Inc() // the child, looked up once in NewMetrics
	} else {
		m.Skipped.WithLabelValues(skipReasons[d]).Inc()
	}
	return true
}

// Match decides whether r is captured.
func (f *Filter) Match(r *http.Request) Decision {
	s := f.all
	if s == nil {
		for i := range f.routes {
			if f.routes[i].match(r) {
				s = f.routes[i].sampler
				break
			}
		}
		if s == nil {
			return SkipFiltered
		}
	}
	if !s.take(f.rand) {
		return SkipSampled
	}
	return Capture
}

// Ratios returns the sample fraction of each route by its label (DefaultRoute
// when there are no routes).
func (f *Filter) Ratios() map[string]float64 {
	out := map[string]float64{}
	if f.all != nil {
		out[DefaultRoute] = f.all.ratio
	}
	for _, cr := range f.routes {
		out[cr.name] = cr.sampler.ratio
	}
	return out
}

func (cr *compiledRoute) match(r *http.Request) bool {
	if cr.prefix != "" && !strings.HasPrefix(r.URL.Path, cr.prefix) {
		return false
	}
	if cr.methods != nil && !cr.methods[r.Method] {
		return false
	}
	for name, re := range cr.headers {
		if !slices.ContainsFunc(r.Header.Values(name), re.MatchString) && (name != "Host" || !re.MatchString(r.Host)) {
			return false
		}
	}
	return true
}

// sampler captures a fraction of the requests it is asked about, random but
// never far from the fraction: each request adds ratio to a balance, a request
// is captured with the balance's probability (clamped to 0..1), and a capture
// takes 1 from it. The balance stays within (-1, 1+ratio], so of any run of n
// requests between ratio*n-2 and ratio*n+2 are captured, whatever the
// randomness draws, while which ones is still random (no fixed period a
// client's request pattern could line up with).
type sampler struct {
	ratio   float64
	balance atomic.Uint64 // float64 bits
}

func newSampler(ratio float64) *sampler { return &sampler{ratio: ratio} }

// take reports whether the next request is captured.
func (s *sampler) take(rnd func() float64) bool {
	switch {
	case s.ratio >= 1:
		return true
	case s.ratio <= 0:
		return false
	}
	r := rnd() // in [0, 1)
	for {
		old := s.balance.Load()
		b := math.Float64frombits(old) + s.ratio
		capture := r < b // always when b >= 1, never when b <= 0
		if capture {
			b--
		}
		if s.balance.CompareAndSwap(old, math.Float64bits(b)) {
			return capture
		}
	}
}
