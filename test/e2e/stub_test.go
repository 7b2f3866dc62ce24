package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// The shadow's downstream endpoint as users run it: the primary's egress
// records are on mirror.clean.S (committed in a transaction, as the
// redactor writes them), `mirrorline stub` indexes them, and a client
// calling with the primary's tracestate gets the recorded answers byte for
// byte, each once, by body similarity; a call with no match is a counted
// miss; every call is published to mirror.shadow.S with its answer.
func TestStubAnswersTheShadowsCallsWithTheRecordedOnes(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	svc := kafkatest.Service(t, 2)
	const (
		parentHex = "01938a7be5c47d0e9a3b5c6d7e8f9012"
		parentID  = "01938a7b-e5c4-7d0e-9a3b-5c6d7e8f9012"
		traceHex  = "0af7651916cd43dd8448eb211c80319c"
	)
	charge := func(id, amount, chargeID string) *mlv1.Exchange {
		return &mlv1.Exchange{Id: id, Service: svc, Kind: mlv1.Kind_KIND_EGRESS, ParentId: parentID, TraceId: traceHex,
			CaptureTimeNs: time.Now().UnixNano(),
			Request: &mlv1.Request{Method: "POST", Url: "/v1/charges", Host: "gateway.internal:8443",
				Body: []byte(`{"amount":` + amount + `,"currency":"EUR","card":"tok_visa"}`)},
			Response: &mlv1.Response{Status: 201, Body: []byte(`{"id":"` + chargeID + `","amount":` + amount + `,"status":"succeeded"}`),
				Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}, {Name: "X-Gateway-Request", Value: chargeID},
					{Name: "Set-Cookie", Value: "a=1"}, {Name: "Set-Cookie", Value: "b=2"}, {Name: "Connection", Value: "keep-alive"}}}}
	}
	inbound := &mlv1.Exchange{Id: parentID, Service: svc, TraceId: traceHex, Request: &mlv1.Request{Method: "POST", Url: "/pay", Host: "payments"},
		Response: &mlv1.Response{Status: 200}}
	writeCommitted(t, brokers, broker.Topic(broker.Clean, svc), charge("c100", "100", "ch_100"), charge("c250", "250", "ch_250"), inbound)

	addr, metrics := testproc.FreeAddr(t), testproc.FreeAddr(t)
	startML(t, env, "stub", "--service", svc, "--listen", addr, "--metrics-addr", metrics, "--since", "10m")
	testproc.Eventually(t, 2*time.Minute, "the stub is ready with its index read", func() bool {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if n, _ := metricValue(metrics, "mirrorline_stub_indexed_total"); n != 2 {
		t.Fatalf("indexed %v records, want the 2 egress records", n)
	}

	do := func(target, body string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("POST", "http://"+addr+target, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "gateway.internal:8443"
		req.Header.Set("Traceparent", "00-"+traceHex+"-b7ad6b7169203331-01")
		req.Header.Set("Tracestate", "vendor=x,mirrorline="+parentHex)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	// The shadow (v2) charges 250 first, then 100 with another card token:
	// each call gets the recorded answer of the call it is most like.
	for _, c := range []struct{ body, want string }{
		{`{"amount":250,"currency":"EUR","card":"tok_visa"}`, "c250"},
		{`{"amount":100,"currency":"EUR","card":"tok_mastercard"}`, "c100"},
	} {
		resp, body := do("/v1/charges", c.body)
		rec := charge(c.want, strings.TrimPrefix(c.want, "c"), "ch_"+strings.TrimPrefix(c.want, "c"))
		if resp.StatusCode != 201 || string(body) != string(rec.Response.Body) {
			t.Fatalf("call %s: %d %q, want the recorded 201 %q", c.body, resp.StatusCode, body, rec.Response.Body)
		}
		want := http.Header{"Content-Type": {"application/json"}, "X-Gateway-Request": {"ch_" + strings.TrimPrefix(c.want, "c")},
			"Set-Cookie": {"a=1", "b=2"}, "Content-Length": {fmt.Sprint(len(body))}}
		if len(resp.Header) != len(want) {
			t.Errorf("call %s: headers %v, want exactly %v", c.body, resp.Header, want)
		}
		for k, v := range want {
			if !slices.Equal(resp.Header[k], v) {
				t.Errorf("call %s: header %s = %q, want %q", c.body, k, resp.Header[k], v)
			}
		}
	}
	// A call the primary never made: the default miss answer, counted.
	resp, _ := do("/v1/refunds", `{"amount":5}`)
	if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Mirrorline-Stub") != "miss" {
		t.Errorf("refund: %d %q, want 502 with X-Mirrorline-Stub: miss", resp.StatusCode, resp.Header.Get("X-Mirrorline-Stub"))
	}
	testproc.Eventually(t, time.Minute, "hits and the miss counted on /metrics", func() bool {
		hit, _ := metricValue(metrics, "mirrorline_stub_calls_total", "outcome", "hit")
		miss, _ := metricValue(metrics, "mirrorline_stub_calls_total", "outcome", "miss")
		return hit == 2 && miss == 1
	})
	// Every call is on mirror.shadow.S with the parent and the answer.
	got := kafkatest.ReadExchanges(t, brokers, broker.Topic(broker.Shadow, svc), 3, time.Minute, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	outcomes := map[string]string{}
	for _, ex := range got {
		if ex.Kind != mlv1.Kind_KIND_EGRESS || ex.ParentId != parentID || ex.TraceId != traceHex {
			t.Errorf("shadow record %s: kind %v parent %q trace %q, want egress of %s", ex.Id, ex.Kind, ex.ParentId, ex.TraceId, parentID)
		}
		outcomes[ex.Request.Url+" "+string(ex.Request.Body)] = ex.Stub.GetOutcome() + " " + ex.Stub.GetMatchedId()
	}
	want := map[string]string{
		`/v1/charges {"amount":250,"currency":"EUR","card":"tok_visa"}`:       "hit c250",
		`/v1/charges {"amount":100,"currency":"EUR","card":"tok_mastercard"}`: "hit c100",
		`/v1/refunds {"amount":5}`: "miss ",
	}
	for k, v := range want {
		if outcomes[k] != v {
			t.Errorf("shadow record of %s: %q, want %q", k, outcomes[k], v)
		}
	}
}

// `mirrorline up` runs the stub when stub.listen is set: the recorded
// call is answered, another is a miss with the configured status.
func TestUpRunsTheStub(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 2)
	const parentID = "01938a7b-e5c4-7d0e-9a3b-5c6d7e8f0001"
	writeCommitted(t, brokers, broker.Topic(broker.Clean, svc), &mlv1.Exchange{Id: "rates-1", Kind: mlv1.Kind_KIND_EGRESS, ParentId: parentID,
		Request:  &mlv1.Request{Method: "GET", Url: "/rates?base=EUR", Host: "rates.internal"},
		Response: &mlv1.Response{Status: 200, Body: []byte(`{"USD":1.08}`)}})
	stubAddr, metrics := testproc.FreeAddr(t), testproc.FreeAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "up.yaml")
	cfg := fmt.Sprintf("service: %s\nbrokers: [%s]\nmetrics_addr: %s\nstub:\n  listen: %s\n  dependency: rates.internal\n  on_miss_status: 503\n",
		svc, strings.Join(brokers, ", "), metrics, stubAddr)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startML(t, []string{"MIRRORLINE_BROKERS="}, "up", "-c", cfgPath)
	testproc.Eventually(t, 2*time.Minute, "up is ready with the stub's index read", func() bool {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	get := func(target string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+stubAddr+target, nil)
		req.Header.Set("Tracestate", "mirrorline="+strings.ReplaceAll(parentID, "-", ""))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/rates?base=EUR"); code != 200 || body != `{"USD":1.08}` {
		t.Errorf("recorded call: %d %q, want the recorded answer", code, body)
	}
	if code, _ := get("/rates?base=USD"); code != 503 {
		t.Errorf("second call: %d, want the configured miss status 503 (the recorded call answered once)", code)
	}
}

// writeCommitted writes exs to topic in one committed transaction, keyed
// by parent as the redactor keys them.
func writeCommitted(t *testing.T, brokers []string, topic string, exs ...*mlv1.Exchange) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(fmt.Sprintf("stub-e2e-%d", time.Now().UnixNano())))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, ex := range exs {
		v, err := ex.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(parentKey(ex)), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
}

func parentKey(ex *mlv1.Exchange) string {
	if ex.ParentId != "" {
		return ex.ParentId
	}
	return ex.Id
}
