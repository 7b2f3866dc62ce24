package comparator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/testproc"
)

const gatewayDep = "POST gateway:8080/charge"

// egressEx is an outbound call to the card gateway made for parent.
func egressEx(id, parent, body string, at time.Time) *mlv1.Exchange {
	return &mlv1.Exchange{Id: id, Kind: mlv1.Kind_KIND_EGRESS, ParentId: parent, ConnectionId: "e-" + id, CaptureTimeNs: at.UnixNano(),
		Request: &mlv1.Request{Method: "POST", Url: "http://gateway:8080/charge", Host: "gateway:8080",
			Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}}, Body: []byte(body)},
		Response: resp(200, "application/json", `{"authorized":true}`)}
}

// fieldsOf lists "field kind noise" of d's downstream differences.
func fieldsOf(d *mlv1.Diff) []string {
	var out []string
	for _, df := range d.GetDifferences() {
		if strings.HasPrefix(df.GetField(), DownstreamPrefix) {
			out = append(out, fmt.Sprintf("%s %s %v", df.GetField(), KindLabel(df.GetKind()), df.GetNoise()))
		}
	}
	return out
}

// TestDownstreamDifferences: the calls the primary and the shadow made for
// one exchange are compared per dependency endpoint.
func TestDownstreamDifferences(t *testing.T) {
	const body = `{"amount_cents":1250,"currency":"EUR"}`
	f := DownstreamPrefix + gatewayDep + "]"
	tests := []struct {
		name     string
		prim     []string // request bodies of the primary's calls
		shad     []string // of the shadow's calls
		want     []string
		verdict  mlv1.Verdict
		downKind string
	}{
		{name: "identical children", prim: []string{body}, shad: []string{body}, verdict: mlv1.Verdict_VERDICT_SAME},
		{name: "no children", verdict: mlv1.Verdict_VERDICT_SAME},
		{name: "extra call", prim: []string{body}, shad: []string{body, body}, want: []string{f + " added false"}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, downKind: DownstreamExtra},
		{name: "extra call, primary made none", shad: []string{body}, want: []string{f + " added false"}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, downKind: DownstreamExtra},
		{name: "missing call", prim: []string{body}, want: []string{f + " removed false"}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, downKind: DownstreamMissing},
		{name: "differing body field", prim: []string{body}, shad: []string{`{"amount":12.5,"currency":"EUR"}`},
			want: []string{f + ".body.amount added false", f + ".body.amount_cents removed false"}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, downKind: DownstreamBody},
		{name: "changed amount", prim: []string{body}, shad: []string{`{"amount_cents":1300,"currency":"EUR"}`},
			want: []string{f + ".body.amount_cents changed false"}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, downKind: DownstreamBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			c := mustNew(t, noWarmup(), WithMetrics(NewMetrics(reg)))
			off := int64(0)
			ref := func(topic string) Ref { off++; return Ref{Topic: topic, Offset: off} }
			// Children first, as they are usually written before their parent.
			for i, b := range tc.prim {
				if _, kept := c.Add(Primary, egressEx(fmt.Sprint("p", i), "x", b, t0.Add(time.Duration(i))), ref("clean"), t0); !kept {
					t.Fatal("primary egress record not kept")
				}
			}
			for i, b := range tc.shad {
				if _, kept := c.Add(Shadow, egressEx(fmt.Sprint("s", i), "x", b, t0.Add(time.Duration(i))), ref("shadow"), t0); !kept {
					t.Fatal("shadow egress record not kept")
				}
			}
			c.Add(Primary, primaryEx("x", "POST", "/payments", resp(201, "application/json", `{"ok":true}`)), ref("clean"), t0)
			ds, _ := c.Add(Shadow, shadowEx("x", "POST", "/payments", "live", resp(201, "application/json", `{"ok":true}`)), ref("shadow"), t0)
			if len(tc.prim)+len(tc.shad) > 0 {
				if len(ds) != 0 {
					t.Fatal("decided before downstream_wait passed")
				}
				ds = c.Tick(t0.Add(DefaultDownstreamWait))
			}
			if len(ds) != 1 || ds[0].Diff == nil {
				t.Fatalf("%d decisions, want 1", len(ds))
			}
			d := ds[0].Diff
			if got := fieldsOf(d); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("downstream differences\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if d.Verdict != tc.verdict || d.Endpoint != "POST /payments" {
				t.Errorf("verdict %v endpoint %q, want %v", d.Verdict, d.Endpoint, tc.verdict)
			}
			// Every record, children included, is released with the decision.
			if n := len(ds[0].Refs); n != int(off) {
				t.Errorf("decision holds %d records, want %d", n, off)
			}
			if tc.downKind != "" {
				if n := testutil.ToFloat64(c.metrics.Downstream.WithLabelValues("POST /payments", tc.downKind)); n < 1 {
					t.Errorf("downstream_differences_total{kind=%s} = %v", tc.downKind, n)
				}
			}
			if c.Pending() != 0 {
				t.Errorf("%d pending", c.Pending())
			}
		})
	}
}

// TestEgressNeverJoinedAsInbound: egress records are never decided as
// exchanges of their own, even with the same id on both sides or no parent.
func TestEgressNeverJoinedAsInbound(t *testing.T) {
	c := mustNew(t, noWarmup(), WithMetrics(NewMetrics(prometheus.NewRegistry())))
	var ds []Decision
	d, _ := c.Add(Primary, egressEx("e1", "p1", `{}`, t0), Ref{Topic: "clean", Offset: 1}, t0)
	ds = append(ds, d...)
	d, _ = c.Add(Shadow, egressEx("e1", "p1", `{}`, t0), Ref{Topic: "shadow", Offset: 1}, t0)
	ds = append(ds, d...)
	d, kept := c.Add(Primary, egressEx("e2", "", `{}`, t0), Ref{Topic: "clean", Offset: 2}, t0)
	ds = append(ds, d...)
	if kept {
		t.Error("egress record without parent kept")
	}
	ds = append(ds, c.Tick(t0.Add(time.Hour))...)
	ds = append(ds, c.Flush(t0.Add(2*time.Hour))...)
	refs := 0
	for _, d := range ds {
		if d.Diff != nil {
			t.Errorf("egress record decided as exchange %q endpoint %q verdict %v", d.Diff.Id, d.Diff.Endpoint, d.Diff.Verdict)
		}
		refs += len(d.Refs)
	}
	if refs != 2 {
		t.Errorf("%d records released, want the 2 orphans", refs)
	}
	if n := testutil.ToFloat64(c.metrics.Egress.WithLabelValues("primary", EgressNoParent)); n != 1 {
		t.Errorf("no_parent = %v, want 1", n)
	}
	if n := testutil.ToFloat64(c.metrics.Egress.WithLabelValues("shadow", EgressOrphan)); n != 1 {
		t.Errorf("shadow orphan = %v, want 1", n)
	}
}

// TestDownstreamLateChildren: children arriving after their parent joined
// are compared when they come within downstream_wait; after the decision
// they are counted late and not kept.
func TestDownstreamLateChildren(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := mustNew(t, noWarmup(), WithMetrics(NewMetrics(reg)))
	ok := resp(201, "application/json", `{"ok":true}`)
	// A first exchange's child makes the comparator wait for children.
	c.Add(Primary, egressEx("c0", "x0", `{"amount_cents":1}`, t0), Ref{Topic: "clean", Offset: 1}, t0)
	c.Add(Primary, primaryEx("x", "POST", "/payments", ok), Ref{Topic: "clean", Offset: 2}, t0)
	if ds, _ := c.Add(Shadow, shadowEx("x", "POST", "/payments", "live", ok), Ref{Topic: "shadow", Offset: 1}, t0); len(ds) != 0 {
		t.Fatal("decided at once although egress records were seen")
	}
	// The children arrive after the parent joined, in another partition.
	late := t0.Add(DefaultDownstreamWait - time.Second)
	c.Add(Primary, egressEx("p", "x", `{"amount_cents":1250}`, t0), Ref{Topic: "clean", Partition: 1, Offset: 1}, late)
	c.Add(Shadow, egressEx("s", "x", `{"amount_cents":1300}`, t0), Ref{Topic: "shadow", Partition: 1, Offset: 1}, late)
	if ds := c.Tick(late); len(ds) != 0 {
		t.Fatal("decided before downstream_wait passed")
	}
	ds := c.Tick(t0.Add(DefaultDownstreamWait))
	if len(ds) != 1 || ds[0].Diff == nil {
		t.Fatalf("%d decisions, want 1", len(ds))
	}
	want := DownstreamPrefix + gatewayDep + "].body.amount_cents changed false"
	if got := fieldsOf(ds[0].Diff); len(got) != 1 || got[0] != want {
		t.Errorf("downstream differences %q, want %q", got, want)
	}
	if len(ds[0].Refs) != 4 {
		t.Errorf("decision holds %d records, want 4 (2 + 2 children)", len(ds[0].Refs))
	}
	// After the decision: late, not kept.
	if _, kept := c.Add(Shadow, egressEx("s2", "x", `{}`, t0), Ref{Topic: "shadow", Offset: 9}, t0.Add(time.Minute)); kept {
		t.Error("child of a decided exchange kept")
	}
	if n := testutil.ToFloat64(c.metrics.Egress.WithLabelValues("shadow", EgressLate)); n != 1 {
		t.Errorf("late = %v, want 1", n)
	}
}

// TestDownstreamNoise: a volatile field of the dependency's request body (an
// idempotency key) is learned as noise; the amount that differs is not.
func TestDownstreamNoise(t *testing.T) {
	c := mustNew(t, Config{})
	ok := resp(201, "application/json", `{"ok":true}`)
	var all []Decision
	for i := range 30 {
		id := fmt.Sprint("x", i)
		at := t0.Add(time.Duration(i) * time.Millisecond)
		amount := 1250
		if i%3 == 0 {
			amount = 1300
		}
		c.Add(Primary, egressEx(id+"p", id, fmt.Sprintf(`{"amount_cents":1250,"idempotency_key":"%s"}`, uuidOf(i, 1)), at), Ref{Topic: "clean", Offset: int64(3 * i)}, at)
		c.Add(Shadow, egressEx(id+"s", id, fmt.Sprintf(`{"amount_cents":%d,"idempotency_key":"%s"}`, amount, uuidOf(i, 2)), at), Ref{Topic: "shadow", Offset: int64(3 * i)}, at)
		c.Add(Primary, primaryEx(id, "POST", "/payments", ok), Ref{Topic: "clean", Offset: int64(3*i + 1)}, at)
		d, _ := c.Add(Shadow, shadowEx(id, "POST", "/payments", "live", ok), Ref{Topic: "shadow", Offset: int64(3*i + 1)}, at)
		all = append(all, d...)
	}
	all = append(all, c.Tick(t0.Add(time.Hour))...)
	all = append(all, c.Flush(t0.Add(time.Hour))...)
	key := DownstreamPrefix + gatewayDep + "].body.idempotency_key"
	amount := DownstreamPrefix + gatewayDep + "].body.amount_cents"
	n := 0
	for _, d := range all {
		if d.Diff == nil {
			continue
		}
		n++
		for _, df := range d.Diff.Differences {
			switch df.Field {
			case key:
				if !df.Noise {
					t.Errorf("%s: idempotency key not noise", d.Diff.Id)
				}
			case amount:
				if df.Noise {
					t.Errorf("%s: amount judged noise", d.Diff.Id)
				}
				if d.Diff.Verdict != mlv1.Verdict_VERDICT_DIFFERENT {
					t.Errorf("%s: verdict %v with a differing amount", d.Diff.Id, d.Diff.Verdict)
				}
			}
		}
	}
	if n != 30 {
		t.Errorf("%d diffs, want 30", n)
	}
	rep := c.Stats().Report("payments", t0)
	found := false
	for _, e := range rep.Endpoints {
		for _, f := range e.Downstream {
			if f.Field == amount {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("report does not name %s", amount)
	}
}

func uuidOf(i, side int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", i*7919+side*104729, side, i, side, i*31+side)
}

// downstreamReport is the report of n payments whose shadow sends the card
// gateway another amount every fourth time, makes an extra call once, and
// always another idempotency key (noise).
func downstreamReport(t *testing.T, n int) *Report {
	t.Helper()
	c := mustNew(t, noWarmup())
	ok := resp(201, "application/json", `{"ok":true}`)
	var diffs []*mlv1.Diff
	for i := range n {
		id := fmt.Sprintf("pay-%03d", i)
		amount := 1250
		if i%4 == 0 {
			amount = 1300
		}
		c.Add(Primary, egressEx(id+"-p", id, fmt.Sprintf(`{"amount_cents":1250,"idempotency_key":"%s"}`, uuidOf(i, 1)), t0), Ref{}, t0)
		c.Add(Shadow, egressEx(id+"-s", id, fmt.Sprintf(`{"amount_cents":%d,"idempotency_key":"%s"}`, amount, uuidOf(i, 2)), t0), Ref{}, t0)
		if i == 7 {
			c.Add(Shadow, egressEx(id+"-s2", id, `{"amount_cents":1250}`, t0.Add(1)), Ref{}, t0)
		}
		c.Add(Primary, primaryEx(id, "POST", "/payments", ok), Ref{}, t0)
		c.Add(Shadow, shadowEx(id, "POST", "/payments", "live", ok), Ref{}, t0)
	}
	for _, d := range c.Flush(t0.Add(time.Minute)) {
		if d.Diff != nil {
			diffs = append(diffs, d.Diff)
		}
	}
	return BuildReport("payments", Config{}, Dedupe(diffs), t0)
}

// TestReportDownstreamGolden: the downstream differences of an endpoint in
// the text, JSON and HTML reports: go test ./comparator -run
// TestReportDownstreamGolden -update rewrites the golden files.
func TestReportDownstreamGolden(t *testing.T) {
	rep := downstreamReport(t, 60)
	if len(rep.Endpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(rep.Endpoints))
	}
	e := rep.Endpoints[0]
	var got []string
	for _, f := range e.Downstream {
		got = append(got, fmt.Sprintf("%s %s %d", f.Field, f.Kind, f.Count))
	}
	f := DownstreamPrefix + gatewayDep + "]"
	want := []string{f + ".body.amount_cents changed 15", f + " added 1"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("downstream\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(e.Fields) != 0 || e.Differing != 16 || !e.Significant {
		t.Errorf("fields %+v, differing %d, significant %v, want none, 16, true", e.Fields, e.Differing, e.Significant)
	}
	for _, tc := range []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"report_downstream.txt.golden", func(b *bytes.Buffer) error { return WriteText(b, rep, TextOptions{ShowNoise: true}) }},
		{"report_downstream.json.golden", func(b *bytes.Buffer) error {
			e := json.NewEncoder(b)
			e.SetIndent("", "  ")
			return e.Encode(rep)
		}},
		{"report_downstream.html.golden", func(b *bytes.Buffer) error { return WriteHTML(b, rep, HTMLOptions{}) }},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			testproc.Golden(t, filepath.Join("testdata", tc.golden), b.Bytes(), *update)
		})
	}
}

// TestReportDownstreamNotSignificant: an endpoint with too few exchanges to
// be significant still shows its downstream differences.
func TestReportDownstreamNotSignificant(t *testing.T) {
	rep := downstreamReport(t, 8)
	var txt, html bytes.Buffer
	if err := WriteText(&txt, rep, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&html, rep, HTMLOptions{}); err != nil {
		t.Fatal(err)
	}
	if rep.Endpoints[0].Significant {
		t.Fatal("significant with 8 exchanges")
	}
	for _, want := range []string{"downstream (calls to dependencies, primary → shadow)", "1250 → 1300", "extra calls by the shadow: 1 call → 2 calls"} {
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}
	if !strings.Contains(html.String(), `data-field="downstream[POST gateway:8080/charge].body.amount_cents"`) {
		t.Errorf("HTML report lacks the downstream row")
	}
}

// TestDownstreamWaitSetting: a positive downstream_wait holds every joined
// exchange, even before any egress record is seen; a negative one none.
func TestDownstreamWaitSetting(t *testing.T) {
	ok := resp(201, "application/json", `{"ok":true}`)
	for _, tc := range []struct {
		wait time.Duration
		held bool
	}{{0, false}, {3 * time.Second, true}, {-1, false}} {
		cfg := noWarmup()
		cfg.DownstreamWait = tc.wait
		c := mustNew(t, cfg)
		c.Add(Primary, primaryEx("x", "POST", "/payments", ok), Ref{}, t0)
		ds, _ := c.Add(Shadow, shadowEx("x", "POST", "/payments", "live", ok), Ref{}, t0)
		if held := len(ds) == 0; held != tc.held {
			t.Fatalf("wait %v: held %v, want %v", tc.wait, held, tc.held)
		}
		if tc.held {
			// A child in another partition, after its parent joined.
			c.Add(Primary, egressEx("p", "x", `{"amount_cents":1}`, t0), Ref{}, t0.Add(time.Second))
			if ds = c.Tick(t0.Add(tc.wait - time.Millisecond)); len(ds) != 0 {
				t.Fatal("decided before downstream_wait")
			}
			ds = c.Tick(t0.Add(tc.wait))
			if len(ds) != 1 || len(fieldsOf(ds[0].Diff)) != 1 {
				t.Fatalf("decisions %v", ds)
			}
		}
	}
}

// TestDownstreamTraceFallback: calls without a parent id (the service did
// not propagate tracestate) are joined by the trace id of the primary's
// inbound record; without either they are counted and not kept.
func TestDownstreamTraceFallback(t *testing.T) {
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	c := mustNew(t, noWarmup(), WithMetrics(NewMetrics(prometheus.NewRegistry())))
	ok := resp(201, "application/json", `{"ok":true}`)
	pc, sc := egressEx("pc", "", `{"amount_cents":1250}`, t0), egressEx("sc", "", `{"amount_cents":12.5}`, t0)
	pc.TraceId, sc.TraceId = tid, tid
	c.Add(Primary, pc, Ref{Offset: 1}, t0)
	c.Add(Shadow, sc, Ref{Offset: 2}, t0)
	bad := egressEx("bad", "", `{}`, t0)
	bad.TraceId = strings.Repeat("0", 32)
	if _, kept := c.Add(Shadow, bad, Ref{Offset: 3}, t0); kept {
		t.Error("call with neither parent nor valid trace id kept")
	}
	p := primaryEx("x", "POST", "/payments", ok)
	p.TraceId = tid
	c.Add(Primary, p, Ref{Offset: 4}, t0)
	c.Add(Shadow, shadowEx("x", "POST", "/payments", "live", ok), Ref{Offset: 5}, t0)
	ds := c.Tick(t0.Add(DefaultDownstreamWait))
	if len(ds) != 1 {
		t.Fatalf("%d decisions", len(ds))
	}
	want := DownstreamPrefix + gatewayDep + "].body.amount_cents changed false"
	if got := fieldsOf(ds[0].Diff); len(got) != 1 || got[0] != want {
		t.Errorf("downstream %q, want %q", got, want)
	}
	if len(ds[0].Refs) != 4 {
		t.Errorf("%d records released with the decision, want 4", len(ds[0].Refs))
	}
}

// TestDownstreamScrubbed: the shadow's calls are redacted with the
// redactor's rules before their bodies are compared (the primary's are
// redacted on the clean topic); a call that cannot be redacted has its body
// left out, its count still compared.
func TestDownstreamScrubbed(t *testing.T) {
	ok := resp(201, "application/json", `{"ok":true}`)
	scrub := func(ex *mlv1.Exchange) error {
		if ex.GetId() == "broken" {
			return fmt.Errorf("cannot redact")
		}
		if ex.GetKind() == mlv1.Kind_KIND_EGRESS {
			ex.Request.Body = []byte(strings.ReplaceAll(string(ex.Request.Body), "4111111111111111", "REDACTED"))
		}
		return nil
	}
	c := mustNew(t, noWarmup(), WithScrubber(scrub), WithMetrics(NewMetrics(prometheus.NewRegistry())))
	c.Add(Primary, egressEx("pc", "x", `{"card":"REDACTED","amount_cents":1}`, t0), Ref{}, t0)
	c.Add(Shadow, egressEx("sc", "x", `{"card":"4111111111111111","amount_cents":1}`, t0), Ref{}, t0)
	c.Add(Primary, egressEx("pc2", "x", `{"amount_cents":2}`, t0.Add(1)), Ref{}, t0)
	c.Add(Shadow, egressEx("broken", "x", `{"amount_cents":3}`, t0.Add(1)), Ref{}, t0)
	c.Add(Shadow, egressEx("extra", "x", `{"card":"4111111111111111"}`, t0.Add(2)), Ref{}, t0)
	c.Add(Primary, primaryEx("x", "POST", "/payments", ok), Ref{}, t0)
	c.Add(Shadow, shadowEx("x", "POST", "/payments", "live", ok), Ref{}, t0)
	ds := c.Flush(t0.Add(time.Minute))
	if len(ds) != 1 {
		t.Fatalf("%d decisions", len(ds))
	}
	f := DownstreamPrefix + gatewayDep + "]"
	if got, want := fieldsOf(ds[0].Diff), []string{f + " added false"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("downstream %q, want %q", got, want)
	}
	for _, df := range ds[0].Diff.Differences {
		if strings.Contains(df.Shadow, "4111") {
			t.Errorf("unredacted shadow value in %s", df.Field)
		}
	}
}

// TestDownstreamOrphansBounded: egress records whose exchange never comes
// (its request was not captured) are released after two join windows, and
// beyond max_pending parents at the next tick.
func TestDownstreamOrphansBounded(t *testing.T) {
	cfg := noWarmup()
	cfg.JoinWindow, cfg.MaxPending = time.Minute, 3
	c := mustNew(t, cfg, WithMetrics(NewMetrics(prometheus.NewRegistry())))
	for i := range 5 {
		c.Add(Primary, egressEx(fmt.Sprint("c", i), fmt.Sprint("lost", i), `{}`, t0), Ref{Offset: int64(i)}, t0)
	}
	ds := c.Tick(t0.Add(time.Second))
	if len(ds) != 2 || ds[0].Diff != nil || ds[0].Refs[0].Offset != 0 || ds[1].Refs[0].Offset != 1 {
		t.Fatalf("beyond max_pending: decisions %+v, want the 2 oldest released", ds)
	}
	if ds = c.Tick(t0.Add(2*time.Minute - time.Second)); len(ds) != 0 {
		t.Fatalf("released %d before two join windows", len(ds))
	}
	if ds = c.Tick(t0.Add(2 * time.Minute)); len(ds) != 3 {
		t.Fatalf("released %d after two join windows, want 3", len(ds))
	}
	if n := testutil.ToFloat64(c.metrics.Egress.WithLabelValues("primary", EgressOrphan)); n != 5 {
		t.Errorf("orphans %v, want 5", n)
	}
}

// TestDownstreamUnderStatus: a request the shadow rejects (201 → 422) never
// charges: the missing call is a consequence of the status difference, kept
// as its own downstream row (not folded into "body removed").
func TestDownstreamUnderStatus(t *testing.T) {
	c := mustNew(t, noWarmup())
	var diffs []*mlv1.Diff
	for i := range 3 {
		id := fmt.Sprint("x", i)
		c.Add(Primary, egressEx(id+"c", id, `{"amount_cents":1}`, t0), Ref{}, t0)
		c.Add(Primary, primaryEx(id, "POST", "/payments", resp(201, "application/json", `{"ok":true}`)), Ref{}, t0)
		c.Add(Shadow, shadowEx(id, "POST", "/payments", "live", resp(422, "application/json", `{"error":"invalid address"}`)), Ref{}, t0)
	}
	for _, d := range c.Flush(t0.Add(time.Minute)) {
		diffs = append(diffs, d.Diff)
	}
	f := DownstreamPrefix + gatewayDep + "]"
	for _, df := range diffs[0].Differences {
		if df.Field == f && !df.UnderStatus {
			t.Errorf("missing call not under the status difference")
		}
	}
	rep := BuildReport("payments", Config{}, diffs, t0)
	e := rep.Endpoints[0]
	if len(e.Downstream) != 1 || e.Downstream[0].Field != f || e.Downstream[0].Kind != "removed" || !e.Downstream[0].UnderStatus {
		t.Fatalf("downstream %+v", e.Downstream)
	}
	var b bytes.Buffer
	if err := WriteText(&b, rep, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "calls missing in the shadow: 1 call → 0 calls (with status 201 → 422)"; !strings.Contains(b.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, b.String())
	}
}

// TestReportDownstreamTailRegression: an endpoint listed neither as
// significant nor as without differences (a tail regression only) still
// shows its downstream differences.
func TestReportDownstreamTailRegression(t *testing.T) {
	rep := downstreamReport(t, 8)
	rep.Endpoints[0].Latency.TailRegression = true
	var b bytes.Buffer
	if err := WriteText(&b, rep, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := "Downstream differences of the other endpoints\n  POST /payments\n   downstream (calls to dependencies"; !strings.Contains(b.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, b.String())
	}
}

// TestDependencyEndpoint: dependency endpoint names carry no payload: hosts
// that do not look like host names become "(other)", paths are templated,
// default ports dropped, absolute-form targets read for their host.
func TestDependencyEndpoint(t *testing.T) {
	c := mustNew(t, noWarmup())
	tests := []struct{ method, url, host, want string }{
		{"POST", "/charge", "gateway:8080", "POST gateway:8080/charge"},
		{"post", "/charge?card=4111111111111111", "Gateway.Internal:443", "POST gateway.internal/charge"},
		{"GET", "/customers/zoe@example.com/cards/4111111111111111", "api:80", "GET api/customers/{id}/cards/{id}"},
		{"GET", "http://rates.internal:8443/rates?base=EUR", "", "GET rates.internal:8443/rates"},
		{"GET", "/x", "evil\x1b[31mhost", "GET (other)/x"},
		{"GET", "/x", "zoe@example.com", "GET (other)/x"},
		{"GET", "/x", "", "GET (other)/x"},
		{"BREW", "/pot", "tea:1", "OTHER tea:1/pot"},
	}
	for _, tc := range tests {
		ex := &mlv1.Exchange{Request: &mlv1.Request{Method: tc.method, Url: tc.url, Host: tc.host}}
		if got := c.dependency(ex); got != tc.want {
			t.Errorf("%s %q host %q: %q, want %q", tc.method, tc.url, tc.host, got, tc.want)
		}
	}
	for _, tc := range []struct{ field, dep, part string }{
		{"downstream[POST gateway:8080/charge]", "POST gateway:8080/charge", "calls"},
		{"downstream[POST gateway:8080/charge].body.a.b", "POST gateway:8080/charge", "body.a.b"},
		{"downstream[GET [::1]:8080/x].body", "GET [::1]:8080/x", "body"},
	} {
		if dep, part, ok := DownstreamParts(tc.field); !ok || dep != tc.dep || part != tc.part {
			t.Errorf("DownstreamParts(%q) = %q %q %v", tc.field, dep, part, ok)
		}
	}
	if _, _, ok := DownstreamParts("body.amount"); ok {
		t.Error("body.amount taken for a downstream field")
	}
}
