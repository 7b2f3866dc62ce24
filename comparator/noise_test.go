package comparator

import (
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// TestNoiseClassification checks the noise rules on learned counts: Diffy's
// relative and absolute thresholds for differences a secondary shows too,
// and the volatile ratio for volatile-looking values.
func TestNoiseClassification(t *testing.T) {
	changed := mlv1.DiffKind_DIFF_KIND_CHANGED
	tests := []struct {
		name                 string
		compared, raw        int
		withSecondary, sec   int
		volPresent, volDiff  int
		kind                 mlv1.DiffKind
		bySecondary, byVolat bool
	}{
		{name: "never differs", compared: 100},
		{name: "differs, no evidence of noise", compared: 100, raw: 40},
		{name: "secondary differs as often", compared: 100, raw: 60, withSecondary: 100, sec: 60, bySecondary: true},
		{name: "secondary differs a bit less: within absolute threshold", compared: 100, raw: 62, withSecondary: 100, sec: 60, bySecondary: true},
		{name: "excess over absolute but within relative", compared: 100, raw: 70, withSecondary: 100, sec: 60, bySecondary: true},
		{name: "excess over both thresholds", compared: 100, raw: 90, withSecondary: 100, sec: 60},
		{name: "rare noise, frequent difference", compared: 100, raw: 40, withSecondary: 100, sec: 2},
		{name: "secondary never differs", compared: 100, raw: 40, withSecondary: 100},
		{name: "too few secondary samples", compared: 100, raw: 60, withSecondary: 10, sec: 6},
		{name: "volatile in every exchange", compared: 100, raw: 60, volPresent: 60, volDiff: 60, byVolat: true},
		{name: "volatile in nearly every exchange", compared: 100, raw: 60, volPresent: 60, volDiff: 55, byVolat: true},
		{name: "volatile-looking but rarely differs", compared: 100, raw: 10, volPresent: 100, volDiff: 10},
		{name: "too few samples with the field", compared: 100, raw: 9, volPresent: 9, volDiff: 9},
		{name: "volatile applies to changed values only", compared: 100, raw: 60, volPresent: 60, volDiff: 60, kind: mlv1.DiffKind_DIFF_KIND_REMOVED},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewStats(Config{})
			kind := tc.kind
			if kind == 0 {
				kind = changed
			}
			es := s.ep("GET /x")
			k := fkey{"body.f", kind}
			es.compared, es.raw[k] = tc.compared, tc.raw
			es.withSecondary, es.sec[k] = tc.withSecondary, tc.sec
			es.volPresent["body.f"], es.volDiff["body.f"] = tc.volPresent, tc.volDiff
			ni := s.classify(es, k)
			if ni.bySecondary != tc.bySecondary || ni.byVolatile != tc.byVolat {
				t.Errorf("bySecondary %v byVolatile %v, want %v %v (%+v)", ni.bySecondary, ni.byVolatile, tc.bySecondary, tc.byVolat, ni)
			}
		})
	}
}

// TestNoiseOfDifference: volatile noise covers only volatile-looking
// differences of the field; secondary noise the whole field; a status that
// is noise takes the differences under it along.
func TestNoiseOfDifference(t *testing.T) {
	s := NewStats(Config{})
	es := s.ep("GET /x")
	es.compared = 100
	vol := fkey{"body.created_at", mlv1.DiffKind_DIFF_KIND_CHANGED}
	es.raw[vol], es.volPresent["body.created_at"], es.volDiff["body.created_at"] = 100, 100, 97
	sec := fkey{"body.card_last4", mlv1.DiffKind_DIFF_KIND_CHANGED}
	es.raw[sec], es.withSecondary, es.sec[sec] = 100, 100, 100
	tests := []struct {
		name        string
		df          *mlv1.Difference
		statusNoise bool
		want        bool
	}{
		{"volatile difference of a volatile field", &mlv1.Difference{Key: vol.key, Kind: vol.kind, Volatile: true}, false, true},
		{"format change of a volatile field", &mlv1.Difference{Key: vol.key, Kind: vol.kind}, false, false},
		{"removal of a volatile field", &mlv1.Difference{Key: vol.key, Kind: mlv1.DiffKind_DIFF_KIND_REMOVED}, false, false},
		{"secondary-noisy field, any value", &mlv1.Difference{Key: sec.key, Kind: sec.kind}, false, true},
		{"unknown field", &mlv1.Difference{Key: "body.amount", Kind: mlv1.DiffKind_DIFF_KIND_CHANGED}, false, false},
		{"under a noisy status", &mlv1.Difference{Key: "body.error", Kind: mlv1.DiffKind_DIFF_KIND_ADDED, UnderStatus: true}, true, true},
		{"under a real status change", &mlv1.Difference{Key: "body.error", Kind: mlv1.DiffKind_DIFF_KIND_ADDED, UnderStatus: true}, false, false},
	}
	for _, tc := range tests {
		if got, _ := s.noiseOf(es, tc.df, tc.statusNoise); got != tc.want {
			t.Errorf("%s: noise = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLearnCountsOncePerExchange: a field differing at several array
// indices counts once per exchange; differences under a status change are
// not learned from.
func TestLearnCountsOncePerExchange(t *testing.T) {
	s := NewStats(Config{})
	s.Learn(&mlv1.Diff{Endpoint: "GET /x", Differences: []*mlv1.Difference{
		{Key: "body.items.*.id", Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Volatile: true},
		{Key: "body.items.*.id", Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Volatile: true},
		{Key: "body.error", Kind: mlv1.DiffKind_DIFF_KIND_ADDED, UnderStatus: true},
	}, VolatileKeys: []string{"body.items.*.id"}})
	s.Learn(&mlv1.Diff{Endpoint: "GET /x", Verdict: mlv1.Verdict_VERDICT_MISSING})
	es := s.eps["GET /x"]
	k := fkey{"body.items.*.id", mlv1.DiffKind_DIFF_KIND_CHANGED}
	if es.compared != 1 || es.raw[k] != 1 || es.volDiff[k.key] != 1 || es.volPresent[k.key] != 1 || len(es.raw) != 1 {
		t.Fatalf("compared %d raw %v volDiff %v volPresent %v", es.compared, es.raw, es.volDiff, es.volPresent)
	}
}
