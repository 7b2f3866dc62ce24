package proxy

import "github.com/mirrorline/mirrorline/collector"

// Route, Filter and the decisions are the collector's, shared with the sink:
// these names keep the proxy's own spelling.
type (
	// Route selects requests to capture (see collector.Route).
	Route = collector.Route
	// Filter decides whether a request is captured (see collector.Filter).
	Filter = collector.Filter
	// Decision is the outcome of Filter.Match.
	Decision = collector.Decision
)

// Decisions: captured, or skipped and why.
const (
	Capture      = collector.Capture
	SkipFiltered = collector.SkipFiltered
	SkipSampled  = collector.SkipSampled
)

// NewFilter compiles routes (see collector.NewFilter).
func NewFilter(sample float64, routes []Route) (*Filter, error) {
	return collector.NewFilter(sample, routes)
}
