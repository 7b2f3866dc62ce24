package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// Egress capture with mirrorline processes on the real broker: a payments
// service behind `mirrorline proxy` calls a card gateway through
// `mirrorline proxy --egress` as its HTTP_PROXY (forward) and a fraud
// service through `mirrorline proxy --egress --primary` (reverse),
// propagating the trace context it got, as OpenTelemetry does. Every
// outbound call lands on mirror.raw.S as an egress record whose parent_id is
// the id of the inbound exchange it was made for, with the same trace id;
// after `mirrorline redact`, on mirror.clean.S too, trace context unchanged.
func TestIsolationCaptureEgressChildren(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	var gatewayCalls, fraudCalls atomic.Int64
	dep := func(n *atomic.Int64, answer string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, answer)
		}))
		t.Cleanup(s.Close)
		return s
	}
	gateway := dep(&gatewayCalls, `{"status":"charged"}`)
	fraud := dep(&fraudCalls, `{"risk":"low"}`)

	forward := startProxyProc(t, brokers, svc, "", "--egress", "--collector-id", "egress-forward")
	reverse := startProxyProc(t, brokers, svc, fraud.URL, "--egress", "--collector-id", "egress-fraud")
	proxyURL, _ := url.Parse("http://" + forward.addr)
	viaForward := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 30 * time.Second}
	direct := &http.Client{Timeout: 30 * time.Second}
	call := func(c *http.Client, u, body string, in *http.Request) error {
		out, err := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
		if err != nil {
			return err
		}
		for _, k := range []string{"Traceparent", "Tracestate"} {
			if v := in.Header.Values(k); len(v) > 0 {
				out.Header[k] = v
			}
		}
		resp, err := c.Do(out)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	payments := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := call(direct, "http://"+reverse.addr+"/score", string(body), r); err != nil {
			http.Error(w, "fraud service failed", http.StatusBadGateway)
			return
		}
		if err := call(viaForward, gateway.URL+"/charge", string(body), r); err != nil {
			http.Error(w, "gateway failed", http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, `{"paid":true}`)
	}))
	t.Cleanup(payments.Close)
	inbound := startProxyProc(t, brokers, svc, payments.URL)

	const n = 3
	for i := range n {
		resp, err := http.Post("http://"+inbound.addr+"/pay", "application/json", strings.NewReader(fmt.Sprintf(`{"amount":%d}`, 10+i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != `{"paid":true}` {
			t.Fatalf("payment %d: %d %q", i, resp.StatusCode, b)
		}
	}
	if gatewayCalls.Load() != n || fraudCalls.Load() != n {
		t.Fatalf("dependencies got %d gateway and %d fraud calls, want %d each", gatewayCalls.Load(), fraudCalls.Load(), n)
	}

	exs := kafkatest.ReadExchanges(t, brokers, "mirror.raw."+svc, 3*n, 60*time.Second)
	parents := map[string]*mlv1.Exchange{}
	var children []*mlv1.Exchange
	for _, ex := range exs {
		if ex.GetKind() == mlv1.Kind_KIND_EGRESS {
			children = append(children, ex)
		} else {
			parents[ex.GetId()] = ex
		}
	}
	if len(parents) != n || len(children) != 2*n {
		t.Fatalf("%d inbound and %d egress records, want %d and %d", len(parents), len(children), n, 2*n)
	}
	gw, _ := url.Parse(gateway.URL)
	fr, _ := url.Parse(fraud.URL)
	perParent := map[string][]string{}
	for _, c := range children {
		p := parents[c.GetParentId()]
		if p == nil {
			t.Fatalf("egress record %s: parent_id %q is no inbound exchange", c.GetId(), c.GetParentId())
		}
		if len(p.GetTraceId()) != 32 || c.GetTraceId() != p.GetTraceId() {
			t.Fatalf("egress record %s: trace id %q, inbound %q", c.GetId(), c.GetTraceId(), p.GetTraceId())
		}
		if c.GetService() != svc || string(c.GetRequest().GetBody()) != string(p.GetRequest().GetBody()) {
			t.Fatalf("egress record %s: service %q, body not the inbound one", c.GetId(), c.GetService())
		}
		req := c.GetRequest()
		switch {
		case c.GetCollector() == "egress-forward" && req.GetUrl() == "/charge" && req.GetHost() == gw.Host && string(c.GetResponse().GetBody()) == `{"status":"charged"}`:
		case c.GetCollector() == "egress-fraud" && req.GetUrl() == "/score" && req.GetHost() == fr.Host && string(c.GetResponse().GetBody()) == `{"risk":"low"}`:
		default:
			t.Fatalf("egress record %s: collector %q %s %s host %s", c.GetId(), c.GetCollector(), req.GetMethod(), req.GetUrl(), req.GetHost())
		}
		perParent[p.GetId()] = append(perParent[p.GetId()], c.GetCollector())
	}
	for id, cs := range perParent {
		if len(cs) != 2 || cs[0] == cs[1] {
			t.Fatalf("inbound %s has egress children %v, want one per dependency", id, cs)
		}
	}

	// The children go through the redactor like every record, and the
	// trace context that ties them to their parent survives it.
	startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ","), "MIRRORLINE_REDACT_HASH_KEY=e2e-isolation-key-0123456789"},
		"redact", "--service", svc, "--metrics-addr", testproc.FreeAddr(t))
	clean := kafkatest.ReadExchanges(t, brokers, "mirror.clean."+svc, 3*n, 90*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	cleanParents := map[string]*mlv1.Exchange{}
	for _, ex := range clean {
		if ex.GetKind() != mlv1.Kind_KIND_EGRESS {
			cleanParents[ex.GetId()] = ex
		}
	}
	for _, ex := range clean {
		if ex.GetKind() != mlv1.Kind_KIND_EGRESS {
			continue
		}
		p := cleanParents[ex.GetParentId()]
		if p == nil || p.GetTraceId() != ex.GetTraceId() {
			t.Fatalf("clean egress record %s: parent %q not an inbound record with its trace id", ex.GetId(), ex.GetParentId())
		}
		for _, name := range []string{"Traceparent", "Tracestate"} {
			if got, want := headerFold(ex.GetRequest().GetHeaders(), name), headerFold(exByID(exs, ex.GetId()).GetRequest().GetHeaders(), name); got == "" || got != want {
				t.Fatalf("clean egress record %s: %s %q, raw %q", ex.GetId(), name, got, want)
			}
		}
	}
}

// exByID returns the exchange of exs with id, nil without one.
func exByID(exs []*mlv1.Exchange, id string) *mlv1.Exchange {
	for _, ex := range exs {
		if ex.GetId() == id {
			return ex
		}
	}
	return nil
}
