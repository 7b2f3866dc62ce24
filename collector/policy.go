package collector

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Policy is the part of an HTTP collector's settings (proxy, sink) that can
// change while it runs: which requests are captured (routes and sample
// fractions) and how many body bytes are kept. A Policy never changes once
// built; a reload builds a new one and swaps it in (see LivePolicy), so every
// request is handled by one whole policy, old or new, never a mix.
type Policy struct {
	filter    *Filter
	bodyLimit int64
}

// NewPolicy checks and compiles a policy: sample is the fraction captured of
// requests matching no route of their own sample (0..1), routes select what is
// captured (none: every request), bodyLimit is how many body bytes are kept.
func NewPolicy(sample float64, routes []Route, bodyLimit int64) (*Policy, error) {
	if bodyLimit < 0 {
		return nil, fmt.Errorf("body_limit: %d is negative", bodyLimit)
	}
	f, err := NewFilter(sample, routes)
	if err != nil {
		return nil, err
	}
	return &Policy{filter: f, bodyLimit: bodyLimit}, nil
}

// PolicyOf is a policy with an already compiled filter (nil: capture every
// request).
func PolicyOf(f *Filter, bodyLimit int64) (*Policy, error) {
	if bodyLimit < 0 {
		return nil, fmt.Errorf("body limit: %d is negative", bodyLimit)
	}
	if f == nil {
		f, _ = NewFilter(1, nil)
	}
	return &Policy{filter: f, bodyLimit: bodyLimit}, nil
}

// Filter returns the policy's request filter.
func (p *Policy) Filter() *Filter { return p.filter }

// BodyLimit is how many body bytes are captured per request and response.
func (p *Policy) BodyLimit() int64 { return p.bodyLimit }

// LivePolicy holds the current Policy of one collector. Every request Loads it
// once; Store swaps in a new one (a reload) without stopping anything, and
// sets mirrorline_collector_sample_ratio{collector,route} to the new
// fractions once the new policy is in force.
type LivePolicy struct {
	name  string
	ratio *prometheus.GaugeVec
	mu    sync.Mutex // orders Stores, so the gauge shows the policy in force
	cur   atomic.Pointer[Policy]
}

// NewLivePolicy returns the live policy of collector name (proxy, sink),
// starting with p; m's sample-ratio gauge follows it (m may be nil).
func NewLivePolicy(name string, m *Metrics, p *Policy) *LivePolicy {
	lp := &LivePolicy{name: name}
	if m != nil {
		lp.ratio = m.SampleRatio
	}
	lp.Store(p)
	return lp
}

// Load returns the policy in force.
func (lp *LivePolicy) Load() *Policy { return lp.cur.Load() }

// Store puts p in force for every request that starts from now on; requests
// already running finish under the policy they started with.
func (lp *LivePolicy) Store(p *Policy) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	lp.cur.Store(p)
	if lp.ratio == nil {
		return
	}
	lp.ratio.DeletePartialMatch(prometheus.Labels{"collector": lp.name})
	for route, r := range p.filter.Ratios() {
		lp.ratio.WithLabelValues(lp.name, route).Set(r)
	}
}
