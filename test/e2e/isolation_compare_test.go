package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	gatewayapp "github.com/mirrorline/mirrorline/test/demo/gateway/app"
	"github.com/mirrorline/mirrorline/test/demo/payments/app"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
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
// another partition when their keys say so, are still compared
// (downstream_wait).
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

// The whole isolation chain with mirrorline processes on the real broker:
// clients → proxy → payments v1 → egress proxy (reverse, one dependency) →
// card gateway; redact; replay --live → payments v2 → stub; compare. The
// gateway receives no call from the shadow; every shadow call is a stub hit
// answered with the primary's recorded answer; the report names v2's one
// downstream regression by field: it sends the gateway the amount in units.
func TestIsolationWholeChain(t *testing.T) {
	kcfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 2)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(kcfg.Brokers, ","), "MIRRORLINE_DEMO_HASH_KEY=e2e-isolation-key-0123456789"}

	gw := gatewayapp.New(gatewayapp.Config{})
	gs := httptest.NewServer(gw)
	t.Cleanup(gs.Close)
	gwHost := strings.TrimPrefix(gs.URL, "http://")
	egressAddr, stubAddr := testproc.FreeAddr(t), testproc.FreeAddr(t)
	primary := app.New(app.Config{Name: "primary", Version: app.V1, Seed: 1, SlowTail: &app.SlowTail{}, Gateway: "http://" + egressAddr})
	shadow := app.New(app.Config{Name: "shadow", Version: app.V2, Seed: 2, SlowTail: &app.SlowTail{}, Gateway: "http://" + stubAddr})
	ps, ss := httptest.NewServer(primary), httptest.NewServer(shadow)
	t.Cleanup(ps.Close)
	t.Cleanup(ss.Close)

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "mirrorline.yaml")
	cmpWriteFile(t, cfgFile, fmt.Sprintf(`service: %s
redact:
  rules:
    hash_key_env: MIRRORLINE_DEMO_HASH_KEY
    json_fields:
      card.number: fake
      customer.email: hash
      card.holder: shape
      customer.address: shape
compare:
  start: earliest
  join_window: 30s
  downstream_wait: 3s
  ignore:
    json_paths: ["card_last4"]
`, svc))
	proxyAddr, proxyMetrics, egressMetrics, stubMetrics := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	startML(t, env, "redact", "-c", cfgFile, "--transactional-id", "redact-"+svc, "--metrics-addr", "")
	stubOut := startML(t, env, "stub", "-c", cfgFile, "--listen", stubAddr, "--dependency", gwHost, "--since", "10m", "--metrics-addr", stubMetrics)
	cmpMetrics := testproc.FreeAddr(t)
	startML(t, env, "compare", "-c", cfgFile, "--metrics-addr", cmpMetrics)
	egressOut := startML(t, env, "proxy", "-c", cfgFile, "--egress", "--primary", gs.URL, "--listen", egressAddr, "--metrics-addr", egressMetrics)
	proxyOut := startML(t, env, "proxy", "-c", cfgFile, "--primary", ps.URL, "--listen", proxyAddr, "--metrics-addr", proxyMetrics)
	waitReady(t, egressMetrics, egressOut)
	waitReady(t, proxyMetrics, proxyOut)
	testproc.Eventually(t, 2*time.Minute, "the stub ready", func() bool {
		code, _, err := httpGet("http://" + stubMetrics + "/readyz")
		return err == nil && code == http.StatusOK
	})
	_ = stubOut

	const n = 20
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range n {
		body := fmt.Sprintf(`{"amount":%d,"currency":"EUR","card":{"number":"4111111111111111","expiry":"12/29","holder":"Ada Lovelace"},"customer":{"id":"c-%d","email":"ada@example.com","address":"221B Baker Street, London"}}`, 1000+i*25, i)
		resp, err := client.Post("http://"+proxyAddr+"/payments", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("payment %d through the proxy: status %d", i, resp.StatusCode)
		}
	}
	if s := gw.Stats(); s.Instances["primary"] != n {
		t.Fatalf("gateway stats %+v, want %d calls by the primary", s, n)
	}
	// The replayer starts once the primary's calls are on the clean topic:
	// the stub's index then has each before the shadow makes it (a call the
	// egress proxy emits after its inbound exchange is replayed may miss).
	kafkatest.ReadExchanges(t, kcfg.Brokers, broker.Topic(broker.Clean, svc), 2*n, 90*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	startML(t, env, "replay", "--live", "-c", cfgFile, "--target", ss.URL, "--group", "replay-"+svc, "--start", "earliest", "--metrics-addr", "")

	// Every exchange judged and published.
	adm := kadm.NewClient(kafkatest.Client(t))
	testproc.Eventually(t, 2*time.Minute, fmt.Sprintf("%d diff records", n), func() bool {
		return cmpEndOffsets(adm, broker.Topic(broker.Diff, svc)) >= n
	})
	if got := shadow.Stats().ShadowRoutes["POST /payments"]; got != n {
		t.Fatalf("shadow received %d replayed payments, want %d", got, n)
	}
	// Isolation: the gateway never heard from the shadow; the stub answered
	// every shadow call with a recorded one.
	if s := gw.Stats(); s.Instances["shadow"] != 0 || s.Total != n {
		t.Errorf("gateway stats %+v: want 0 shadow calls and the %d primary ones only", s, n)
	}
	if hits, _ := metricValue(stubMetrics, "mirrorline_stub_calls_total", "outcome", "hit"); hits != n {
		miss, _ := metricValue(stubMetrics, "mirrorline_stub_calls_total", "outcome", "miss")
		t.Errorf("stub hits %v (misses %v), want %d", hits, miss, n)
	}

	out, code := runML(t, env, "compare", "report", "-c", cfgFile, "--json")
	if code != 0 {
		t.Fatalf("compare report --json: exit %d\n%s", code, out)
	}
	var rep comparator.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out)
	}
	text, _ := runML(t, env, "compare", "report", "-c", cfgFile)
	t.Logf("mirrorline compare report:\n%s", text)
	if rep.Exchanges != n || len(rep.Endpoints) != 1 {
		t.Fatalf("report: %d exchanges, endpoints %d; want %d on POST /payments", rep.Exchanges, len(rep.Endpoints), n)
	}
	e := rep.Endpoints[0]
	field := comparator.DownstreamPrefix + "POST " + gwHost + "/charge].body.amount_cents"
	var down []string
	for _, f := range e.Downstream {
		down = append(down, fmt.Sprintf("%s %s %d", f.Field, f.Kind, f.Count))
	}
	if want := fmt.Sprintf("%s changed %d", field, n); len(down) != 1 || down[0] != want {
		t.Errorf("downstream differences %q, want exactly %q", down, want)
	}
	var fields []string
	for _, f := range e.Fields {
		fields = append(fields, f.Field)
	}
	if len(fields) != 0 {
		t.Errorf("response differences %q, want none: v2 answers payments as v1", fields)
	}
	if !strings.Contains(text, "body.amount_cents") || !strings.Contains(text, "downstream (calls to dependencies") {
		t.Errorf("text report lacks the downstream difference")
	}
}
