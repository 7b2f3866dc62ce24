package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// readRaw reads n records of topic (read_committed) from its start.
func readRaw(t *testing.T, brokers []string, topic string, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: %d of %d records within %s", topic, len(out), n, timeout)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// smallTopicsWithGrowingRecord creates a service's topics with Kafka's usual
// 1 MB max.message.bytes (as topics made before mirrorline set one) and
// writes to its raw topic, on one connection: three small JSON records, one
// of about 900 KB of short emails that the hash action grows to about
// 1.5 MB, three small ones. It returns the service and the big record's
// body size.
func smallTopicsWithGrowingRecord(t *testing.T, prefix string) (string, int) {
	t.Helper()
	cfg := kafkatest.Config(t)
	svc := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano())
	cl := kafkatest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	limit := "1000000"
	for _, st := range broker.Stages {
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"max.message.bytes": &limit}, broker.Topic(st, svc)); err != nil {
			t.Fatal(err)
		}
	}
	var big bytes.Buffer
	big.WriteString(`{"emails":[`)
	for i := range 64_000 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `"e%06d@x.io"`, i)
	}
	big.WriteString(`]}`)
	exchange := func(id string, body []byte) *kgo.Record {
		ex := &mlv1.Exchange{Id: id, Service: svc, ConnectionId: "conn-1", Request: &mlv1.Request{
			Method: "POST", Url: "/signup?ref=" + id, Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}},
			Body: body, BodySize: int64(len(body)),
		}, Response: &mlv1.Response{Status: 201, Body: []byte(`{"ok":true}`), BodySize: 11}}
		v, _ := proto.Marshal(ex)
		return &kgo.Record{Topic: broker.Topic(broker.Raw, svc), Key: []byte(ex.ConnectionId), Value: v}
	}
	var recs []*kgo.Record
	for i := range 3 {
		recs = append(recs, exchange(fmt.Sprintf("before-%d", i), []byte(fmt.Sprintf(`{"email":"b%d@x.io"}`, i))))
	}
	recs = append(recs, exchange("big", big.Bytes()))
	for i := range 3 {
		recs = append(recs, exchange(fmt.Sprintf("after-%d", i), []byte(fmt.Sprintf(`{"email":"a%d@x.io"}`, i))))
	}
	prod, err := broker.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce raw records: %v", err)
	}

	return svc, big.Len()
}

// A raw record of about 900 KB whose redacted form grows past what the clean
// topic accepts (short emails hashed into longer tokens; the topics have
// Kafka's usual 1 MB limit, as topics made before mirrorline set one) does
// not stop the redactor: it is quarantined with its reason and without
// payload, the records after it on the same partition reach the clean topic
// exactly once, and the redactor stays ready and exits cleanly.
func TestRedactorQuarantinesRecordTooLargeOnceRedacted(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc, bigSize := smallTopicsWithGrowingRecord(t, "budget-redact")
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("detectors:\n  email: {action: hash}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testproc.FreeAddr(t)
	clean := readCommitted(t, brokers, broker.Topic(broker.Clean, svc), []string{"@x.io"})
	out := startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ","), "MIRRORLINE_REDACT_HASH_KEY=e2e-budget-key-0123456789"},
		"redact", "--service", svc, "--rules", rules, "--batch", "50", "--metrics-addr", addr)

	q := readRaw(t, brokers, broker.Topic(broker.Quarantine, svc), 1, time.Minute)[0]
	testproc.Eventually(t, time.Minute, "the six small records on the clean topic", func() bool { d, _ := clean.snapshot(); return d == 6 })
	waitReady(t, addr, out)

	hdr := map[string]string{}
	for _, h := range q.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if r := hdr["mirrorline-quarantine-reason"]; !strings.Contains(r, "exceeds the record budget") {
		t.Errorf("quarantine reason %q", r)
	}
	if hdr["mirrorline-source-topic"] != broker.Topic(broker.Raw, svc) || hdr["mirrorline-source-offset"] != "3" {
		t.Errorf("quarantine source %s@%s, want %s@3", hdr["mirrorline-source-topic"], hdr["mirrorline-source-offset"], broker.Topic(broker.Raw, svc))
	}
	qx := &mlv1.Exchange{}
	if err := proto.Unmarshal(q.Value, qx); err != nil {
		t.Fatal(err)
	}
	if qx.Id != "big" || qx.Request.GetUrl() != "/signup" || qx.Request.GetBodySize() < int64(bigSize) {
		t.Errorf("quarantine record: id %q url %q body_size %d", qx.Id, qx.Request.GetUrl(), qx.Request.GetBodySize())
	}
	if len(q.Value) > 1024 || bytes.Contains(q.Value, []byte("@x.io")) || bytes.Contains(q.Value, []byte("hmac:")) {
		t.Errorf("quarantine record carries payload (%d bytes)", len(q.Value))
	}
	// Every small record exactly once, none of their emails, and not the big one.
	counts := kafkatest.ReadCommittedAll(t, brokers, broker.Topic(broker.Clean, svc), 1)
	for _, id := range []string{"before-0", "before-1", "before-2", "after-0", "after-1", "after-2"} {
		if counts[id] != 1 {
			t.Errorf("clean topic holds %s %d times, want once", id, counts[id])
		}
	}
	if counts["big"] != 0 || len(counts) != 6 {
		t.Errorf("clean topic holds %v", counts)
	}
	clean.mu.Lock()
	leaks := clean.leaks
	clean.mu.Unlock()
	if len(leaks) > 0 {
		t.Errorf("personal data on the clean topic: %v", leaks)
	}
}

// Inside `up`, the same record no longer takes the redactor down: it is
// quarantined, the records after it reach the clean topic, and /readyz stays
// 200 (a stopped stage would turn it 503).
func TestUpStaysReadyWithRecordTooLargeOnceRedacted(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc, _ := smallTopicsWithGrowingRecord(t, "budget-up")
	metricsAddr := testproc.FreeAddr(t)
	cfg := fmt.Sprintf(`service: %s
brokers: [%s]
metrics_addr: %s
topics:
  partitions: 1
  replication: 1
redact:
  batch: 50
  rules:
    detectors:
      email: {action: hash}
`, svc, strings.Join(brokers, ", "), metricsAddr)
	cfgPath := filepath.Join(t.TempDir(), "up.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	clean := readCommitted(t, brokers, broker.Topic(broker.Clean, svc), []string{"@x.io"})
	out := startML(t, []string{"MIRRORLINE_BROKERS=", "MIRRORLINE_REDACT_HASH_KEY=e2e-budget-key-0123456789"}, "up", "-c", cfgPath)
	q := readRaw(t, brokers, broker.Topic(broker.Quarantine, svc), 1, time.Minute)[0]
	testproc.Eventually(t, time.Minute, "the six small records on the clean topic", func() bool { d, _ := clean.snapshot(); return d == 6 })
	waitReady(t, metricsAddr, out)
	for _, h := range q.Headers {
		if h.Key == "mirrorline-quarantine-reason" && !strings.Contains(string(h.Value), "exceeds the record budget") {
			t.Errorf("quarantine reason %q", h.Value)
		}
	}
	// Outcomes are counted once the transaction's commit returns, which is
	// after its records are visible on the clean topic: wait for the count.
	testproc.Eventually(t, time.Minute, `mirrorline_redactor_records_total{outcome="quarantined"} 1`, func() bool {
		_, body, err := httpGet("http://" + metricsAddr + "/metrics")
		return err == nil && strings.Contains(body, `mirrorline_redactor_records_total{outcome="quarantined"} 1`)
	})
}

// Through the proxy, a request with a 0.95 MB header and a 1.5 MB body is
// published (body cut at the body limit, flagged, its size kept; the header
// whole), not dropped as larger than Kafka accepts.
func TestProxyPublishesLargeExchange(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 1)
	primary := newRecorder(t, http.StatusOK, "ok")
	addr, m := runProxy(t, cfg, svc, primary.URL)
	hdr := strings.Repeat("h", 950_000)
	body := bytes.Repeat([]byte("b"), 1_500_000)
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/upload", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Big", hdr)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("proxy answered %d", resp.StatusCode)
	}
	ex := kafkatest.ReadExchanges(t, cfg.Brokers, broker.Topic(broker.Raw, svc), 1, 30*time.Second)[0]
	r := ex.GetRequest()
	if !r.BodyTruncated || r.BodySize != int64(len(body)) || len(r.Body) == 0 || !bytes.HasPrefix(body, r.Body) {
		t.Fatalf("request body %d bytes, truncated %v, size %d", len(r.Body), r.BodyTruncated, r.BodySize)
	}
	var got string
	for _, h := range r.Headers {
		if strings.EqualFold(h.Name, "X-Big") {
			got = h.Value
		}
	}
	if got != hdr {
		t.Fatalf("the 0.95 MB header was not kept (%d bytes)", len(got))
	}
	if v := testutil.ToFloat64(m.Dropped.WithLabelValues("publish_error")); v != 0 {
		t.Fatalf("dropped{publish_error} = %v", v)
	}
}

// A 2 MB shadow response reaches mirror.shadow.S cut to the replayer's
// response body limit and flagged, with its size, instead of being lost.
func TestShadowLargeResponsePublished(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 1)
	const size = 2_000_000
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("s"), size))
	}))
	t.Cleanup(target.Close)
	cl := kafkatest.Client(t)
	v, _ := proto.Marshal(&mlv1.Exchange{Id: "shadow-big", Service: svc, ConnectionId: "c", Request: &mlv1.Request{Method: "GET", Url: "/report"},
		Response: &mlv1.Response{Status: 200, Body: []byte("primary"), BodySize: 7}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: broker.Topic(broker.Clean, svc), Key: []byte("c"), Value: v}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	m := runLive(t, cfg, svc, broker.Topic(broker.Clean, svc), "replay-"+svc, target.URL)
	ex := kafkatest.ReadExchanges(t, cfg.Brokers, broker.Topic(broker.Shadow, svc), 1, 30*time.Second)[0]
	r := ex.GetResponse()
	if ex.Id != "shadow-big" || r.Status != 200 || !r.BodyTruncated || r.BodySize != size || len(r.Body) != 1<<20 {
		t.Fatalf("shadow record %q: status %d, body %d bytes, truncated %v, size %d", ex.Id, r.Status, len(r.Body), r.BodyTruncated, r.BodySize)
	}
	if v := testutil.ToFloat64(m.Errors.WithLabelValues("publish")); v != 0 {
		t.Fatalf("errors{publish} = %v", v)
	}
}
