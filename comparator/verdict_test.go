package comparator

import (
	"testing"
)

func TestFailOnSignificant(t *testing.T) {
	ep := func(name string, significant, tail bool) EndpointReport {
		e := EndpointReport{Endpoint: name, Significant: significant}
		e.Latency.TailRegression = tail
		return e
	}
	for _, tc := range []struct {
		name      string
		endpoints []EndpointReport
		want      string
	}{
		{"none", nil, ""},
		{"only insignificant", []EndpointReport{ep("GET /a", false, false)}, ""},
		{"significant", []EndpointReport{ep("GET /a", true, false), ep("GET /b", false, false)}, "significant differences or tail regressions at GET /a"},
		{"tail regression", []EndpointReport{ep("GET /a", false, true)}, "significant differences or tail regressions at GET /a"},
		{"both, in report order", []EndpointReport{ep("POST /z", false, true), ep("GET /a", true, false), ep("GET /c", false, false)}, "significant differences or tail regressions at POST /z, GET /a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := FailOnSignificant(&Report{Endpoints: tc.endpoints})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
