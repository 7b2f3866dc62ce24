package collector

import (
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestFilter(t *testing.T) {
	half := 0.5
	routes := []Route{
		{PathPrefix: "/api/", Methods: []string{"get", "POST"}, Headers: map[string]string{"X-Env": "prod|staging"}},
		{PathPrefix: "/half", Sample: &half},
	}
	f, err := NewFilter(1, routes)
	if err != nil {
		t.Fatal(err)
	}
	seq := []float64{0.2, 0.7}
	f.rand = func() float64 { v := seq[0]; seq = seq[1:]; return v }
	tests := []struct {
		method, path, env string
		want              Decision
	}{
		{"GET", "/api/x", "prod", Capture},
		{"POST", "/api/x", "staging", Capture},
		{"DELETE", "/api/x", "prod", SkipFiltered},
		{"GET", "/api/x", "production", SkipFiltered},
		{"GET", "/api/x", "", SkipFiltered},
		{"GET", "/other", "prod", SkipFiltered},
		{"GET", "/half/1", "", Capture},     // rand 0.2 < 0.5
		{"GET", "/half/2", "", SkipSampled}, // rand 0.7 >= 0.5
	}
	for _, tc := range tests {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if tc.env != "" {
			r.Header.Set("X-Env", tc.env)
		}
		if got := f.Match(r); got != tc.want {
			t.Errorf("%s %s env=%q: got %v, want %v", tc.method, tc.path, tc.env, got, tc.want)
		}
	}
	for _, bad := range []struct {
		sample float64
		routes []Route
	}{
		{1.5, nil},
		{1, []Route{{Headers: map[string]string{"A": "("}}}},
		{1, []Route{{Sample: new(float64(-1))}}},
	} {
		if _, err := NewFilter(bad.sample, bad.routes); err == nil {
			t.Errorf("NewFilter(%v, %+v): want error", bad.sample, bad.routes)
		}
	}
}

func TestSampleFraction(t *testing.T) {
	f, err := NewFilter(0.5, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	f.rand = func() float64 { i++; return float64(i%100) / 100 }
	captured := 0
	for j := 0; j < 1000; j++ {
		if f.Match(httptest.NewRequest("GET", "/", nil)) == Capture {
			captured++
		}
	}
	if captured != 500 {
		t.Fatalf("captured %d of 1000 at 0.5", captured)
	}
}

// The sampler captures ratio*n requests of any n, give or take 2, whatever
// the random draws: a ramp's share is what was configured even over a few
// hundred requests.
func TestSamplerShareIsExact(t *testing.T) {
	draws := map[string]func() float64{
		"random": rand.Float64,
		"low":    func() float64 { return 0 },
		"high":   func() float64 { return math.Nextafter(1, 0) },
	}
	for _, ratio := range []float64{0, 0.001, 0.1, 0.25, 1.0 / 3, 0.5, 0.9, 0.999, 1} {
		for name, rnd := range draws {
			s := newSampler(ratio)
			captured := 0
			for n := 1; n <= 20000; n++ {
				if s.take(rnd) {
					captured++
				}
				if d := float64(captured) - ratio*float64(n); d > 2 || d < -2 {
					t.Fatalf("ratio %v, %s draws: %d of %d captured, want %v±2", ratio, name, captured, n, ratio*float64(n))
				}
			}
		}
	}
}

// Concurrent requests share one balance: the share holds under -race with
// many goroutines.
func TestSamplerConcurrent(t *testing.T) {
	f, err := NewFilter(0.1, nil)
	if err != nil {
		t.Fatal(err)
	}
	var captured atomic.Int64
	var wg sync.WaitGroup
	const goroutines, each = 8, 2500
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("GET", "/", nil)
			for range each {
				if f.Match(r) == Capture {
					captured.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if got := captured.Load(); got < 1998 || got > 2002 {
		t.Fatalf("captured %d of %d at 0.1, want 2000±2", got, goroutines*each)
	}
}

func TestRouteNamesAndRatios(t *testing.T) {
	half := 0.5
	f, err := NewFilter(0.2, []Route{{Name: "api", PathPrefix: "/api"}, {PathPrefix: "/half", Sample: &half}})
	if err != nil {
		t.Fatal(err)
	}
	got := f.Ratios()
	if len(got) != 2 || got["api"] != 0.2 || got["route1"] != 0.5 {
		t.Fatalf("ratios %v, want api=0.2 route1=0.5", got)
	}
	if _, err := NewFilter(1, []Route{{Name: "a"}, {Name: "a"}}); err == nil {
		t.Fatal("two routes named a: want error")
	}
	f, _ = NewFilter(0.3, nil)
	if got := f.Ratios(); len(got) != 1 || got[DefaultRoute] != 0.3 {
		t.Fatalf("ratios without routes %v, want default=0.3", got)
	}
}

// The gauge shows the ratios of the policy in force, and only those: a route
// removed by a reload disappears.
func TestLivePolicyGauge(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p1, err := NewPolicy(0.1, []Route{{Name: "old"}}, 10)
	if err != nil {
		t.Fatal(err)
	}
	lp := NewLivePolicy("proxy", m, p1)
	if got := testutil.ToFloat64(m.SampleRatio.WithLabelValues("proxy", "old")); got != 0.1 {
		t.Fatalf("ratio{old} = %v", got)
	}
	p2, err := NewPolicy(0.5, nil, 20)
	if err != nil {
		t.Fatal(err)
	}
	lp.Store(p2)
	if lp.Load() != p2 {
		t.Fatal("Load after Store: not the new policy")
	}
	if n := testutil.CollectAndCount(m.SampleRatio); n != 1 {
		t.Fatalf("%d sample_ratio series after reload, want 1 (default)", n)
	}
	if got := testutil.ToFloat64(m.SampleRatio.WithLabelValues("proxy", DefaultRoute)); got != 0.5 {
		t.Fatalf("ratio{default} = %v", got)
	}
	if _, err := NewPolicy(0.5, nil, -1); err == nil {
		t.Fatal("negative body limit: want error")
	}
	if _, err := NewPolicy(math.NaN(), nil, 1); err == nil {
		t.Fatal("NaN sample: want error")
	}
}

// The sampler's shared balance under contention: one CAS per sampled request.
func BenchmarkFilterMatchSampledParallel(b *testing.B) {
	f, err := NewFilter(0.5, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		r := httptest.NewRequest("GET", "/", nil)
		for pb.Next() {
			f.Match(r)
		}
	})
}
