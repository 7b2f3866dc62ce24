package comparator

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/testproc"
)

var update = flag.Bool("update", false, "rewrite golden files")

// caseStudyDiffs runs the comparator without warm-up (so early exchanges are
// judged live with nothing learned) over the demo's payments and users
// traffic and returns the diff records it published.
func caseStudyDiffs(t *testing.T) []*mlv1.Diff {
	t.Helper()
	c := mustNew(t, noWarmup())
	var out []*mlv1.Diff
	add := func(id, method, url string, p, s *mlv1.Response) {
		c.Add(Primary, primaryEx(id, method, url, p), Ref{}, t0)
		ds, _ := c.Add(Shadow, shadowEx(id, method, url, "live", s), Ref{}, t0)
		for _, d := range ds {
			out = append(out, d.Diff)
		}
	}
	for i := range 100 {
		p, s := payment(i, i%5 < 2)
		if i%20 == 0 {
			s.LatencyNs = int64(50 * time.Millisecond) // the slow tail
		}
		add(fmt.Sprintf("pay-%03d", i), "POST", "/payments", p, s)
	}
	for i := range 40 {
		user := func(side string) *mlv1.Response {
			r := resp(200, "application/json", fmt.Sprintf(`{"id":"c-%d","name":"Ada Lovelace","request_id":%q}`, i, testUUID("user "+side, i)))
			r.LatencyNs = int64(2 * time.Millisecond)
			return r
		}
		add(fmt.Sprintf("usr-%03d", i), "GET", fmt.Sprintf("/users/c-%d?include=profile", i), user("primary"), user("shadow"))
	}
	return out
}

func TestBuildReport(t *testing.T) {
	diffs := caseStudyDiffs(t)
	// Live, without warm-up, the first exchanges were judged different.
	if diffs[0].Verdict != mlv1.Verdict_VERDICT_DIFFERENT {
		t.Fatalf("first exchange judged %s live; the test expects an unlearned verdict", VerdictLabel(diffs[0].Verdict))
	}
	// A duplicate record (at-least-once) must not count twice.
	dup := &mlv1.Diff{}
	*dup = mlv1.Diff{Id: diffs[1].Id, Endpoint: diffs[1].Endpoint, Verdict: diffs[1].Verdict, PrimaryStatus: diffs[1].PrimaryStatus, ShadowStatus: diffs[1].ShadowStatus, Differences: diffs[1].Differences, VolatileKeys: diffs[1].VolatileKeys}
	diffs = Dedupe(append(diffs, dup))
	rep := BuildReport("payments", Config{}, diffs, t0)

	if rep.Exchanges != 140 || rep.Verdicts["same"] != 100 || rep.Verdicts["different"] != 40 {
		t.Fatalf("exchanges %d verdicts %v", rep.Exchanges, rep.Verdicts)
	}
	post := rep.Endpoints[0]
	if post.Endpoint != "POST /payments" || !post.Significant || post.Differing != 40 || post.Comparable != 100 {
		t.Fatalf("first endpoint %+v", post)
	}
	var fields []string
	for _, f := range post.Fields {
		fields = append(fields, f.Field+" "+f.Kind)
	}
	if want := []string{"status changed", "body.error added", "body removed"}; !slices.Equal(fields, want) {
		t.Fatalf("fields %q, want %q", fields, want)
	}
	if f := post.Fields[1]; !f.UnderStatus || f.Shadow != `"invalid address"` || f.Count != 40 {
		t.Errorf("body.error row %+v", f)
	}
	if f := post.Fields[2]; !slices.Equal(f.Fields, []string{"body.amount", "body.card_last4", "body.created_at", "body.currency", "body.id", "body.status"}) {
		t.Errorf("removed-under-status row %+v", f)
	}
	var noise []string
	for _, f := range post.Noise {
		noise = append(noise, f.Field+" "+f.Reason)
	}
	if want := []string{"body.created_at volatile", "body.id volatile"}; !slices.Equal(noise, want) {
		t.Errorf("noise %q, want %q", noise, want)
	}
	if post.StatusTransitions["201 → 422"] != 40 {
		t.Errorf("transitions %v", post.StatusTransitions)
	}
	if post.Example == nil || post.Example.ShadowStatus != 422 || post.Example.Differences[0].Field != FieldStatus {
		t.Errorf("example %+v", post.Example)
	}
	if !post.Latency.TailRegression || !post.Latency.MeanImproved {
		t.Errorf("latency %+v", post.Latency)
	}
	users := rep.Endpoints[1]
	if users.Endpoint != "GET /users/{id}" || users.Significant || len(users.Fields) != 0 || users.Noise[0].Field != "body.request_id" {
		t.Errorf("users endpoint %+v", users)
	}

	checkReportOutputs(t, rep)
}

// caseStudyReport is TestBuildReport's report: the case study's diffs, a
// duplicate record dropped, built at t0.
func caseStudyReport(t *testing.T) *Report {
	t.Helper()
	return BuildReport("payments", Config{}, Dedupe(caseStudyDiffs(t)), t0)
}

// checkReportOutputs asserts what the golden files cannot show by example:
// noise stays out of the default text report, and the HTML page loads
// nothing from elsewhere.
func checkReportOutputs(t *testing.T, rep *Report) {
	t.Helper()
	var text bytes.Buffer
	if err := WriteText(&text, rep, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, noisy := range []string{"created_at", "request_id", "body.id"} {
		if strings.Contains(text.String(), noisy) {
			t.Errorf("text report names noise field %q:\n%s", noisy, text.String())
		}
	}
	var html bytes.Buffer
	if err := WriteHTML(&html, rep, HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	h := html.String()
	if !strings.Contains(h, "Content-Security-Policy") {
		t.Error("HTML has no Content-Security-Policy")
	}
	for _, ext := range []string{"http://", "https://", "<script", "<link", "src="} {
		if strings.Contains(h, ext) {
			t.Errorf("HTML is not self-contained: has %q", ext)
		}
	}
}

// The case study's reports, text (with and without noise), JSON and HTML,
// byte for byte: go test ./comparator -run TestReportGolden -update
// rewrites testdata/*.golden.
func TestReportGolden(t *testing.T) {
	rep := caseStudyReport(t)
	tests := []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"report.txt.golden", func(b *bytes.Buffer) error { return WriteText(b, rep, TextOptions{}) }},
		{"report_noise.txt.golden", func(b *bytes.Buffer) error { return WriteText(b, rep, TextOptions{ShowNoise: true}) }},
		{"report.json.golden", func(b *bytes.Buffer) error {
			e := json.NewEncoder(b)
			e.SetIndent("", "  ")
			return e.Encode(rep)
		}},
		{"report.html.golden", func(b *bytes.Buffer) error { return WriteHTML(b, rep, HTMLOptions{}) }},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			testproc.Golden(t, filepath.Join("testdata", tc.golden), b.Bytes(), *update)
			// Built again, the report is the same: nothing in it depends on
			// map order or the clock.
			var again bytes.Buffer
			rep = caseStudyReport(t)
			if err := tc.write(&again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), again.Bytes()) {
				t.Errorf("%s differs between two builds of the same report", tc.golden)
			}
		})
	}
}

// An endpoint with a tail latency regression is flagged in the latency
// table and never listed among the endpoints without significant
// differences, whatever its verdicts.
func TestTailRegressionNotListedAsWithoutDifferences(t *testing.T) {
	ep := func(name string, significant, tail bool) EndpointReport {
		return EndpointReport{Endpoint: name, Exchanges: 40, Verdicts: map[string]int{"same": 40}, Comparable: 40, Significant: significant,
			Latency: LatencyReport{Judged: true, TailRegression: tail, Summary: "p99 2ms → 40ms"}}
	}
	tests := []struct {
		name      string
		endpoints []EndpointReport
		quiet     []string // listed under "Endpoints without significant differences"
		notQuiet  []string
	}{
		{"tail regression only", []EndpointReport{ep("GET /slow", false, true), ep("GET /ok", false, false)}, []string{"GET /ok"}, []string{"GET /slow"}},
		{"tail regression and differences", []EndpointReport{ep("GET /both", true, true), ep("GET /ok", false, false)}, []string{"GET /ok"}, []string{"GET /both"}},
		{"every endpoint regresses", []EndpointReport{ep("GET /slow", false, true)}, nil, []string{"GET /slow"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := &Report{Service: "payments", Verdicts: map[string]int{"same": 40 * len(tc.endpoints)}, Endpoints: tc.endpoints}
			var b bytes.Buffer
			if err := WriteText(&b, rep, TextOptions{}); err != nil {
				t.Fatal(err)
			}
			text := b.String()
			var quiet string
			if i := strings.Index(text, "Endpoints without significant differences\n"); i >= 0 {
				quiet = text[i:]
				if j := strings.Index(quiet, "\n\n"); j >= 0 {
					quiet = quiet[:j]
				}
			}
			for _, e := range tc.quiet {
				if !strings.Contains(quiet, e) {
					t.Errorf("%s not listed without significant differences:\n%s", e, text)
				}
			}
			for _, e := range tc.notQuiet {
				if strings.Contains(quiet, e) {
					t.Errorf("%s listed without significant differences though it regresses:\n%s", e, text)
				}
				if !strings.Contains(text, "  "+e) || !strings.Contains(text, "TAIL REGRESSION") {
					t.Errorf("%s not flagged in the latency table:\n%s", e, text)
				}
			}
			var h bytes.Buffer
			if err := WriteHTML(&h, rep, HTMLOptions{}); err != nil {
				t.Fatal(err)
			}
			if i := strings.Index(h.String(), `<table id="other">`); i >= 0 {
				other := h.String()[i:]
				other = other[:strings.Index(other, "</table>")]
				for _, e := range tc.endpoints {
					row := other[max(strings.Index(other, "<code>"+e.Endpoint+"</code>"), 0):]
					row = row[:strings.Index(row, "</tr>")]
					if strings.Contains(other, "<code>"+e.Endpoint+"</code>") && e.Latency.TailRegression != strings.Contains(row, "tail-regression") {
						t.Errorf("HTML other endpoints: %s row %q, tail regression %v", e.Endpoint, row, e.Latency.TailRegression)
					}
				}
			}
		})
	}
}
