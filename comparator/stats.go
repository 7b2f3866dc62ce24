package comparator

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Bounds of the per-endpoint statistics.
const (
	maxFieldsPerEndpoint = 1000
	maxRowPaths          = 50
	latencyMaxMicros     = 60_000_000 // 60 s
)

// fkey is a field key and a kind of difference: what noise is learned under.
type fkey struct {
	key  string
	kind mlv1.DiffKind
}

// rowKey groups the differences of a report row.
type rowKey struct {
	fkey
	// removedUnderStatus collects every field a status change removed.
	removedUnderStatus bool
}

// row is one kind of difference of an endpoint, over the judged exchanges.
type row struct {
	key         rowKey
	count       int
	underStatus int
	example     *mlv1.Difference
	exampleID   string
	exampleDiff *mlv1.Diff
	paths       map[string]bool
}

// epStats are the statistics of one endpoint.
type epStats struct {
	name string

	// Learning (Learn): compared exchanges, with a secondary, and how often
	// each field differed (raw), differed primary/secondary (sec), differed
	// with volatile values (volDiff) or was present with a volatile value (volPresent).
	compared      int
	withSecondary int
	raw           map[fkey]int
	sec           map[fkey]int
	volDiff       map[string]int
	volPresent    map[string]int

	// Judged (Record).
	verdicts    [mlv1.Verdict_VERDICT_MISSING + 1]int
	rows        map[rowKey]*row
	noise       map[fkey]*row
	transitions map[string]int
	reasons     map[string]int
	// grpcStatuses counts gRPC exchanges by "primary → shadow" status.
	grpcStatuses map[string]int
	lat          [numSides]*hdrhistogram.Histogram
	example      *mlv1.Diff
	firstNs      int64
	lastNs       int64
}

func newEPStats(name string) *epStats {
	es := &epStats{
		name: name,
		raw:  map[fkey]int{}, sec: map[fkey]int{}, volDiff: map[string]int{}, volPresent: map[string]int{},
		rows: map[rowKey]*row{}, noise: map[fkey]*row{}, transitions: map[string]int{}, reasons: map[string]int{},
		grpcStatuses: map[string]int{},
	}
	for i := range es.lat {
		es.lat[i] = hdrhistogram.New(1, latencyMaxMicros, 2)
	}
	return es
}

// Stats aggregates diff records per endpoint: it learns noise (Learn),
// judges exchanges with what it learned (Judge) and counts the judged ones
// (Record). The live comparator and the report share it. Not safe for
// concurrent use.
type Stats struct {
	cfg Config
	eps map[string]*epStats
}

// NewStats returns empty statistics under cfg (defaults applied).
func NewStats(cfg Config) *Stats {
	return &Stats{cfg: cfg.WithDefaults(), eps: map[string]*epStats{}}
}

func (s *Stats) ep(name string) *epStats {
	es := s.eps[name]
	if es == nil {
		es = newEPStats(name)
		s.eps[name] = es
	}
	return es
}

// bump increments m[k] unless that would grow m past the cap.
func bump[K comparable](m map[K]int, k K) {
	if _, ok := m[k]; ok || len(m) < maxFieldsPerEndpoint {
		m[k]++
	}
}

// compared reports whether d is a primary/shadow comparison (not an error or
// missing verdict).
func compared(d *mlv1.Diff) bool {
	switch d.GetVerdict() {
	case mlv1.Verdict_VERDICT_UNSPECIFIED, mlv1.Verdict_VERDICT_SAME, mlv1.Verdict_VERDICT_DIFFERENT:
		return true
	}
	return false
}

// Learn adds a compared exchange to noise learning. Differences that are a
// consequence of a status difference are not learned from.
func (s *Stats) Learn(d *mlv1.Diff) {
	if !compared(d) {
		return
	}
	es := s.ep(d.GetEndpoint())
	es.compared++
	seen := map[fkey]bool{}
	vol := map[string]bool{}
	for _, df := range d.GetDifferences() {
		if df.GetUnderStatus() {
			continue
		}
		k := fkey{df.GetKey(), df.GetKind()}
		if !seen[k] {
			seen[k] = true
			bump(es.raw, k)
		}
		if df.GetVolatile() && df.GetKind() == mlv1.DiffKind_DIFF_KIND_CHANGED && !vol[df.GetKey()] {
			vol[df.GetKey()] = true
			bump(es.volDiff, df.GetKey())
		}
	}
	for _, k := range d.GetVolatileKeys() {
		bump(es.volPresent, k)
	}
	if d.GetSecondary() {
		es.withSecondary++
		clear(seen)
		for _, df := range d.GetSecondaryDifferences() {
			k := fkey{df.GetKey(), df.GetKind()}
			if !seen[k] {
				seen[k] = true
				bump(es.sec, k)
			}
		}
	}
}

// Warm reports whether endpoint has enough compared exchanges for noise to
// be learned.
func (s *Stats) Warm(endpoint string) bool {
	es := s.eps[endpoint]
	return es != nil && es.compared >= s.cfg.Noise.MinSamples
}

// noiseInfo is what is learned about one field and kind of an endpoint.
type noiseInfo struct {
	raw         float64 // share of compared exchanges where it differs primary/shadow
	secondary   float64 // share of exchanges with a secondary where it differs primary/secondary
	volatile    float64 // share of exchanges with the field where it differs with volatile values
	bySecondary bool    // noise: the secondary explains the difference (Diffy)
	byVolatile  bool    // noise: its values are volatile and differ (nearly) always
}

func (s *Stats) classify(es *epStats, k fkey) noiseInfo {
	var ni noiseInfo
	if es == nil || es.compared == 0 {
		return ni
	}
	nc := s.cfg.Noise
	ni.raw = float64(es.raw[k]) / float64(es.compared)
	if es.withSecondary >= nc.MinSamples && es.withSecondary > 0 {
		ni.secondary = float64(es.sec[k]) / float64(es.withSecondary)
		if ni.secondary > 0 {
			excess := ni.raw - ni.secondary
			ni.bySecondary = !(excess > nc.Absolute && excess/ni.secondary > nc.Relative)
		}
	}
	if *nc.Volatile && k.kind == mlv1.DiffKind_DIFF_KIND_CHANGED {
		if p := es.volPresent[k.key]; p >= volatileMinSamples(nc.MinSamples) {
			ni.volatile = float64(es.volDiff[k.key]) / float64(p)
			ni.byVolatile = ni.volatile >= nc.VolatileRatio
		}
	}
	return ni
}

// volatileMinSamples is how many exchanges with a volatile-looking field
// are needed to judge it: half of noise.min_samples (at least 1), so a field
// missing from some responses (errors) is learned within the warm-up.
func volatileMinSamples(min int) int { return max(1, (min+1)/2) }

// noiseOf reports whether df is noise at its endpoint, and why.
func (s *Stats) noiseOf(es *epStats, df *mlv1.Difference, statusNoise bool) (bool, string) {
	if df.GetUnderStatus() && statusNoise {
		return true, "status"
	}
	reason := s.classify(es, fkey{df.GetKey(), df.GetKind()}).reason(df.GetVolatile())
	return reason != "", reason
}

// reason is why a difference is noise ("" when it is not); volatile tells
// whether the difference has volatile values.
func (ni noiseInfo) reason(volatile bool) string {
	switch {
	case ni.bySecondary && ni.byVolatile && volatile:
		return "secondary+volatile"
	case ni.bySecondary:
		return "secondary"
	case ni.byVolatile && volatile:
		return "volatile"
	}
	return ""
}

// Judge marks the noise among d's differences with what is learned so far
// and sets its verdict: different when a difference is not noise, else same.
// Records with an error or missing verdict are left alone.
func (s *Stats) Judge(d *mlv1.Diff) {
	if !compared(d) {
		return
	}
	es := s.eps[d.GetEndpoint()]
	statusNoise := false
	for _, df := range d.GetDifferences() {
		if df.GetField() == FieldStatus {
			statusNoise, _ = s.noiseOf(es, df, false)
		}
	}
	different := false
	for _, df := range d.GetDifferences() {
		df.Noise, _ = s.noiseOf(es, df, statusNoise)
		if !df.Noise {
			different = true
		}
	}
	d.Verdict = mlv1.Verdict_VERDICT_SAME
	if different {
		d.Verdict = mlv1.Verdict_VERDICT_DIFFERENT
	}
}

// Record counts a judged (or error / missing) exchange: verdicts, latency,
// the differences (by row) and noise, examples.
func (s *Stats) Record(d *mlv1.Diff) {
	es := s.ep(d.GetEndpoint())
	v := d.GetVerdict()
	if int(v) < len(es.verdicts) {
		es.verdicts[v]++
	}
	if t := d.GetCaptureTimeNs(); t > 0 {
		if es.firstNs == 0 || t < es.firstNs {
			es.firstNs = t
		}
		es.lastNs = max(es.lastNs, t)
	}
	if d.GetReason() != "" {
		bump(es.reasons, d.GetReason())
	}
	if bothAnswered(d) {
		recordLatency(es.lat[Primary], d.GetPrimaryLatencyNs())
		recordLatency(es.lat[Shadow], d.GetShadowLatencyNs())
		if d.GetSecondary() && d.GetSecondaryStatus() > 0 && d.GetSecondaryLatencyNs() > 0 {
			recordLatency(es.lat[Secondary], d.GetSecondaryLatencyNs())
		}
	}
	if !compared(d) {
		return
	}
	if p, s := d.GetPrimaryGrpcStatus(), d.GetShadowGrpcStatus(); p != "" || s != "" {
		bump(es.grpcStatuses, cmp.Or(p, "none")+" → "+cmp.Or(s, "none"))
	}
	seen := map[rowKey]bool{}
	seenNoise := map[fkey]bool{}
	var transition string
	for _, df := range d.GetDifferences() {
		k := fkey{df.GetKey(), df.GetKind()}
		if df.GetNoise() {
			if !seenNoise[k] {
				seenNoise[k] = true
				addRow(es.noise, k, rowKey{fkey: k}, df, d.GetId(), df.GetUnderStatus())
			}
			continue
		}
		if df.GetField() == FieldStatus {
			transition = df.GetPrimary() + " → " + df.GetShadow()
		}
		rk := rowKey{fkey: k}
		if df.GetUnderStatus() && df.GetKind() == mlv1.DiffKind_DIFF_KIND_REMOVED && !strings.HasPrefix(df.GetField(), DownstreamPrefix) {
			rk = rowKey{fkey: fkey{FieldBody, mlv1.DiffKind_DIFF_KIND_REMOVED}, removedUnderStatus: true}
		}
		r := es.rows[rk]
		if r == nil && len(es.rows) < maxFieldsPerEndpoint {
			r = &row{key: rk, example: df, exampleID: d.GetId(), exampleDiff: d}
			es.rows[rk] = r
		}
		if r == nil {
			continue
		}
		if rk.removedUnderStatus {
			if r.paths == nil {
				r.paths = map[string]bool{}
			}
			if len(r.paths) < maxRowPaths {
				r.paths[df.GetKey()] = true
			}
		}
		if !seen[rk] {
			seen[rk] = true
			r.count++
			if df.GetUnderStatus() {
				r.underStatus++
			}
		}
	}
	if transition != "" {
		bump(es.transitions, transition)
	}
	if d.GetVerdict() == mlv1.Verdict_VERDICT_DIFFERENT && es.example == nil {
		es.example = d
	}
}

func addRow(m map[fkey]*row, k fkey, rk rowKey, df *mlv1.Difference, id string, under bool) {
	r := m[k]
	if r == nil {
		if len(m) >= maxFieldsPerEndpoint {
			return
		}
		r = &row{key: rk, example: df, exampleID: id}
		m[k] = r
	}
	r.count++
	if under {
		r.underStatus++
	}
}

// bothAnswered reports whether primary and shadow both answered with a
// latency: only such exchanges are used to compare latency, so both sides
// are measured on the same requests.
func bothAnswered(d *mlv1.Diff) bool {
	return d.GetPrimaryStatus() > 0 && d.GetPrimaryLatencyNs() > 0 && d.GetShadowStatus() > 0 && d.GetShadowLatencyNs() > 0
}

func recordLatency(h *hdrhistogram.Histogram, ns int64) {
	_ = h.RecordValue(min(max(ns/1000, 1), latencyMaxMicros))
}

// Endpoints returns the names of the endpoints seen.
func (s *Stats) Endpoints() []string {
	return slices.Sorted(maps.Keys(s.eps))
}

// Latency compares the latency of primary and shadow at endpoint.
func (s *Stats) Latency(endpoint string) LatencyReport {
	es := s.eps[endpoint]
	if es == nil {
		return LatencyReport{}
	}
	return compareLatency(es.lat[Primary], es.lat[Shadow], es.lat[Secondary], s.cfg.Latency)
}

// Differing returns how many of an endpoint's exchanges count as differing
// (different or shadow-error) out of the comparable ones (same, different,
// shadow-error).
func (s *Stats) Differing(endpoint string) (differing, total int) {
	es := s.eps[endpoint]
	if es == nil {
		return 0, 0
	}
	d := es.verdicts[mlv1.Verdict_VERDICT_DIFFERENT] + es.verdicts[mlv1.Verdict_VERDICT_SHADOW_ERROR]
	return d, d + es.verdicts[mlv1.Verdict_VERDICT_SAME]
}

func statusText(code int32) string { return strconv.Itoa(int(code)) }

func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
