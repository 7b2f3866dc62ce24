package collector

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// TestEmitRequestTarget: every collector's records pass Emit, which publishes
// a safe request-target in origin-form (an absolute-form authority becoming
// the Host) and drops an unsafe one, counting dropped{reason="unsafe_target"}.
func TestEmitRequestTarget(t *testing.T) {
	tests := []struct {
		method, url string
		wantURL     string // "" when dropped
		wantHost    string
	}{
		{"GET", "/x?y=1", "/x?y=1", "primary.example"},
		{"GET", "http://primary.example:8080/x?y", "/x?y", "primary.example:8080"},
		{"GET", "HTTP://other.example", "/", "other.example"},
		{"GET", "http:@localhost/x", "", ""},
		{"GET", "@evil.example/x", "", ""},
		{"GET", ".evil.example/x", "", ""},
		{"GET", "//evil/x", "", ""},
		{"GET", `\\evil\x`, "", ""},
		{"GET", `/\evil`, "", ""},
		{"GET", "http://user@evil/x", "", ""},
		{"GET", "%2F%2Fevil/x", "", ""},
		{"GET", "/%2F%2Fevil/x", "", ""},
		{"GET", "evil.localhost:80/x", "", ""},
		{"OPTIONS", "*", "", ""},
		{"CONNECT", "evil:80", "", ""},
		{"GET", "x", "", ""},
		{"GET", "/x\r\nHost: evil", "", ""},
		{"GET", "/a/../../admin", "", ""},
		{"GET", "", "", ""},
	}
	for _, tc := range tests {
		prod := &collectortest.Recorder{}
		m := NewMetrics(nil)
		em := NewEmitter(prod, "svc", m, nil)
		ex := &mlv1.Exchange{Source: mlv1.Source_SOURCE_VPC, Request: &mlv1.Request{Method: tc.method, Url: tc.url, Host: "primary.example"}}
		if err := em.Emit(ex); err != nil {
			t.Fatalf("Emit(%q): %v", tc.url, err)
		}
		dropped := testutil.ToFloat64(m.Dropped.WithLabelValues(DropUnsafeTarget))
		if n := m.UnsafeTargetDrops(); float64(n) != dropped {
			t.Errorf("UnsafeTargetDrops() = %d, counter %v", n, dropped)
		}
		if tc.wantURL == "" {
			if len(prod.Records()) != 0 || dropped != 1 {
				t.Errorf("%s %q: %d records published, dropped{unsafe_target} %v; want dropped", tc.method, tc.url, len(prod.Records()), dropped)
			}
			continue
		}
		if len(prod.Records()) != 1 || dropped != 0 {
			t.Fatalf("%s %q: %d records published, dropped{unsafe_target} %v; want published", tc.method, tc.url, len(prod.Records()), dropped)
		}
		var got mlv1.Exchange
		if err := proto.Unmarshal(prod.Records()[0].Value, &got); err != nil {
			t.Fatal(err)
		}
		if got.Request.Url != tc.wantURL || got.Request.Host != tc.wantHost {
			t.Errorf("%s %q published as %q host %q, want %q host %q", tc.method, tc.url, got.Request.Url, got.Request.Host, tc.wantURL, tc.wantHost)
		}
	}
}
