package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// isoCharge is an egress record: the call to the card gateway a payments
// instance made for inbound exchange parent.
func isoCharge(id, parent, body string) *mlv1.Exchange {
	return &mlv1.Exchange{
		Id: id, Kind: mlv1.Kind_KIND_EGRESS, ParentId: parent, TraceId: strings.Repeat("0a", 16),
		ConnectionId: "egress-" + id, CaptureTimeNs: time.Now().UnixNano(),
		Request: &mlv1.Request{Method: "POST", Url: "/charge", Host: "gateway:8080",
			Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}}, Body: []byte(body)},
		Response: &mlv1.Response{Status: 200, Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}},
			Body: []byte(`{"authorization_id":"a-1","status":"approved"}`), LatencyNs: int64(time.Millisecond)},
	}
}

// The comparator's downstream differences through the mirrorline binary on
// a real Kafka: inbound and egress records of payments on the clean topic
// (the primary's, as the egress proxy and the redactor write them) and the
// shadow topic (the replayer's and the stub's). v2 sends the gateway the
// amount in units: the report names the request body field per dependency
// endpoint, the responses being the same; egress records are never judged
// as exchanges of their own, and children written after their parent, in
// another partition, are still compared (downstream_wait).
func TestIsolationCompareDownstream(t *testing.T) {
	kcfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 2)
	cl := kafkatest.Client(t)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(kcfg.Brokers, ",")}
	clean, shadow := broker.Topic(broker.Clean, svc), broker.Topic(broker.Shadow, svc)

	const n = 6
	resp := `{"status":"authorized","amount":1250}`
	var late []func()
	for i := range n {
		id := fmt.Sprintf("pay-%d", i)
		p := cmpExchange(id, 201, resp, "")
		p.Request = &mlv1.Request{Method: "POST", Url: "/payments"}
		s := cmpExchange(id, 201, resp, "live")
		s.Request = p.Request
		pc := isoCharge(id+"-charge", id, `{"amount_cents":1250,"currency":"EUR"}`)
		sc := isoCharge(id+"-shadow-charge", id, `{"amount_cents":12.5,"currency":"EUR"}`)
		sc.Stub = &mlv1.StubAnswer{Outcome: "hit", MatchedId: pc.Id, Score: 97}
		children := func() {
			cmpProduce(t, cl, clean, pc)
			cmpProduce(t, cl, shadow, sc)
		}
		if i%2 == 0 {
			children() // before the parent, as usual
		} else {
			late = append(late, children) // after every parent
		}
		cmpProduce(t, cl, clean, p)
		cmpProduce(t, cl, shadow, s)
	}
	for _, f := range late {
		f()
	}
	// A primary's call whose inbound exchange was never replayed: an orphan.
	cmpProduce(t, cl, clean, isoCharge("lost-charge", "lost", `{"amount_cents":1,"currency":"EUR"}`))

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "mirrorline.yaml")
	cmpWriteFile(t, cfgFile, fmt.Sprintf(`service: %s
compare:
  start: earliest
  join_window: 5s
  downstream_wait: 5s
`, svc))
	if out, code := runML(t, env, "compare", "-c", cfgFile, "--until-done", "--metrics-addr", ""); code != 0 {
		t.Fatalf("compare --until-done: exit %d\n%s", code, out)
	}

	diffs := cmpReadDiffs(t, kcfg, svc)
	if len(diffs) != n {
		ids := make([]string, 0, len(diffs))
		for id := range diffs {
			ids = append(ids, id)
		}
		t.Fatalf("diff records for %q, want the %d inbound exchanges only", ids, n)
	}
	field := comparator.DownstreamPrefix + "POST gateway:8080/charge].body.amount_cents"
	for id, ds := range diffs {
		d := ds[0]
		if d.Verdict != mlv1.Verdict_VERDICT_DIFFERENT || len(d.Differences) != 1 || d.Differences[0].Field != field ||
			d.Differences[0].Primary != "1250" || d.Differences[0].Shadow != "12.5" {
			t.Errorf("%s: verdict %v differences %v, want only %s 1250 → 12.5", id, d.Verdict, d.Differences, field)
		}
	}

	out, code := runML(t, env, "compare", "report", "-c", cfgFile, "--json")
	if code != 0 {
		t.Fatalf("compare report --json: exit %d\n%s", code, out)
	}
	var rep comparator.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out)
	}
	if len(rep.Endpoints) != 1 || rep.Endpoints[0].Endpoint != "POST /payments" {
		t.Fatalf("report endpoints %+v, want POST /payments only", rep.Endpoints)
	}
	e := rep.Endpoints[0]
	if len(e.Fields) != 0 || len(e.Downstream) != 1 || e.Downstream[0].Field != field || e.Downstream[0].Count != n {
		t.Errorf("POST /payments fields %+v downstream %+v, want only %s in %d exchanges", e.Fields, e.Downstream, field, n)
	}
	text, code := runML(t, env, "compare", "report", "-c", cfgFile)
	if code != 0 {
		t.Fatalf("compare report: exit %d\n%s", code, text)
	}
	for _, want := range []string{"downstream (calls to dependencies, primary → shadow)", "POST gateway:8080/charge", "body.amount_cents", "1250 → 12.5"} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	t.Logf("mirrorline compare report:\n%s", text)
}
