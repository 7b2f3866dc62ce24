package redactor

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// growingBody is a JSON body of about 900 KB of short email addresses that
// the hash action turns into longer tokens: about 1.5 MB once redacted.
func growingBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"emails":[`)
	for i := range 64_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"e%06d@x.io"`, i)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func jsonExchange(id string, body []byte) *mlv1.Exchange {
	return &mlv1.Exchange{Id: id, ConnectionId: "conn-1", Request: &mlv1.Request{
		Method: "POST", Url: "/signup?ref=" + id, Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}},
		Body: body, BodySize: int64(len(body)),
	}, Response: &mlv1.Response{Status: 201, BodySize: 2, Body: []byte("ok")}}
}

// A record the redactor cannot scrub or publish (its redacted form larger
// than the clean topic accepts, undecodable, a rule failing closed) goes to
// quarantine (metadata and reason, no payload) in the transaction that
// commits its offset, or is dropped by the drop policy, and the records after
// it on the same partition reach the clean topic exactly once: the redactor
// neither stops nor stalls. Whether the budget knows the topic's limit
// (checked before producing) or not (the record is refused; the transaction
// is aborted and retried with the record quarantined), the outcome is the
// same. Outcomes are counted once, when their transaction commits; the stage
// runtime counts what it set aside, by kind, on the redactor's registry.
func TestProcessorQuarantinesRecordTooLargeOnceRedacted(t *testing.T) {
	t.Setenv("MIRRORLINE_REDACT_HASH_KEY", "test-key-0123456789")
	marshal := func(ex *mlv1.Exchange) []byte { v, _ := proto.Marshal(ex); return v }
	bigRaw := marshal(jsonExchange("big", growingBody()))
	before := marshal(jsonExchange("before", []byte(`{"email":"a@x.io"}`)))
	after := marshal(jsonExchange("after", []byte(`{"email":"b@x.io"}`)))
	garbage := []byte("\xff\xff not protobuf")
	badJSON := marshal(jsonExchange("badjson", []byte(`{"email":"c@x.io",`)))
	cases := []struct {
		name  string
		known bool // the processor's budget has read the topic's limit
		// wholeBatch: the producer's batches are not capped to the
		// topic's limit either, so Kafka refuses the batch holding the
		// record and the small record after it.
		wholeBatch bool
		drop       bool // the drop policy
		raw        [][]byte
		want       []quarantined
		aside      map[string]bool // kinds the runtime sets aside
	}{
		{"checked against the budget", true, false, false, [][]byte{before, bigRaw, after},
			[]quarantined{{"1", "big", "exceeds the record budget"}}, map[string]bool{stage.SetAsideFailed: true}},
		{"producer refuses the record", false, false, false, [][]byte{before, bigRaw, after},
			[]quarantined{{"1", "big", "rejected as too large for mirror.clean.svc"}}, map[string]bool{stage.SetAsideTooLarge: true}},
		{"Kafka refuses the whole batch", false, true, false, [][]byte{before, bigRaw, after},
			[]quarantined{{"1", "big", "rejected as too large for mirror.clean.svc"}}, map[string]bool{stage.SetAsideTooLarge: true}},
		{"undecodable and failing closed", true, false, false, [][]byte{before, garbage, badJSON, after},
			[]quarantined{{"1", "", "undecodable record"}, {"2", "badjson", "redact request body"}},
			map[string]bool{stage.SetAsideUndecodable: true, stage.SetAsideFailed: true}},
		{"dropped by policy", true, false, true, [][]byte{before, garbage, badJSON, after},
			nil, map[string]bool{stage.SetAsideUndecodable: true, stage.SetAsideFailed: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := broker.StartEmbedded()
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			raw, clean, quarantine := broker.Topic(broker.Raw, "svc"), broker.Topic(broker.Clean, "svc"), broker.Topic(broker.Quarantine, "svc")
			budget := produceRaw(ctx, t, e.Addrs(), tc.known, tc.raw)

			engine, err := NewEngine(Config{Detectors: map[string]Rule{"email": {Action: ActionHash}}})
			if err != nil {
				t.Fatal(err)
			}
			opts, _ := broker.Config{Brokers: e.Addrs()}.Opts()
			opts = append(opts, SessionOpts("svc", DefaultGroup("svc"), "txn-svc")...)
			opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
			if tc.wholeBatch {
				opts = append(opts, kgo.ProducerBatchMaxBytes(broker.DefaultMaxMessageBytes))
			}
			sess, err := kgo.NewGroupTransactSession(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			policy := Quarantine
			if tc.drop {
				policy = Drop
			}
			p, err := NewProcessor(sess, engine, "svc", WithMetrics(m), WithBudget(budget), WithOnFailure(policy), WithLogger(hclog.New(&hclog.LoggerOptions{Output: tlog{t}})))
			if err != nil {
				t.Fatal(err)
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(rctx) }()

			got := readAll(ctx, t, e.Addrs(), clean, 2)
			q := readAll(ctx, t, e.Addrs(), quarantine, len(tc.want))
			// What the records came to, counted once.
			want := map[string]float64{OutcomeClean: 2}
			for _, w := range tc.want {
				if w.id == "" {
					want[OutcomeInvalid]++
				} else {
					want[OutcomeQuarantined]++
				}
			}
			if tc.drop {
				want[OutcomeDropped] = float64(len(tc.raw) - 2)
			}
			// Records are visible once Kafka wrote the commit markers, a
			// moment before the redactor learns its commit succeeded and
			// counts them: wait for the counts before stopping it.
			counted := func() bool {
				for o, n := range want {
					if testutil.ToFloat64(m.Records.WithLabelValues(o)) < n {
						return false
					}
				}
				return true
			}
			testproc.Eventually(t, 30*time.Second, "the outcomes counted", counted)
			stop()
			if err := <-done; err != nil {
				t.Fatalf("redactor stopped: %v", err)
			}
			if ids := []string{exID(t, got[0]), exID(t, got[1])}; ids[0] != "before" || ids[1] != "after" {
				t.Fatalf("clean topic holds %v, want [before after]", ids)
			}
			// Nothing more arrives: each record exactly once.
			if all := readAll(ctx, t, e.Addrs(), clean, 3, 2*time.Second); len(all) != 2 {
				t.Fatalf("clean topic holds %d committed records, want 2", len(all))
			}
			if all := readAll(ctx, t, e.Addrs(), quarantine, len(tc.want)+1, time.Second); len(all) != len(tc.want) {
				t.Fatalf("quarantine topic holds %d committed records, want %d", len(all), len(tc.want))
			}
			for i, w := range tc.want {
				checkQuarantined(t, raw, q[i], w)
			}
			for _, o := range []string{OutcomeClean, OutcomeQuarantined, OutcomeInvalid, OutcomeDropped} {
				if n := testutil.ToFloat64(m.Records.WithLabelValues(o)); n != want[o] {
					t.Errorf("records{%s} = %v, want %v", o, n, want[o])
				}
			}
			checkSetAside(t, reg, tc.aside)
		})
	}
}

// quarantined is an expected quarantine record: the raw offset it stands
// for, its exchange id and a part of its reason.
type quarantined struct{ offset, id, reason string }

// checkQuarantined checks a quarantine record: reason and source in its
// headers, the envelope only (no payload) in its value.
func checkQuarantined(t *testing.T, raw string, qr *kgo.Record, want quarantined) {
	t.Helper()
	hdr := map[string]string{}
	for _, h := range qr.Headers {
		hdr[h.Key] = string(h.Value)
	}
	if !strings.Contains(hdr[HeaderReason], want.reason) {
		t.Errorf("quarantine reason %q, want it to say %q", hdr[HeaderReason], want.reason)
	}
	if hdr[HeaderSourceTopic] != raw || hdr[HeaderSourcePartition] != "0" || hdr[HeaderSourceOffset] != want.offset {
		t.Errorf("quarantine source %s/%s@%s, want %s/0@%s", hdr[HeaderSourceTopic], hdr[HeaderSourcePartition], hdr[HeaderSourceOffset], raw, want.offset)
	}
	qx := &mlv1.Exchange{}
	if err := proto.Unmarshal(qr.Value, qx); err != nil {
		t.Fatal(err)
	}
	if qx.Id != want.id || qx.Service != "svc" || (want.id != "" && qx.Request.GetUrl() != "/signup") {
		t.Errorf("quarantine record: id %q service %q url %q", qx.Id, qx.Service, qx.Request.GetUrl())
	}
	if want.id == "big" && qx.Request.GetBodySize() < int64(len(growingBody())) {
		t.Errorf("quarantine record: body_size %d, want the redacted size", qx.Request.GetBodySize())
	}
	if len(qr.Value) > 1024 || bytes.Contains(qr.Value, []byte("@x.io")) || bytes.Contains(qr.Value, []byte("hmac:")) || bytes.Contains(qr.Value, []byte("ref=")) {
		t.Errorf("quarantine record carries payload (%d bytes)", len(qr.Value))
	}
}

// checkSetAside checks mirrorline_stage_set_aside_records_total{stage="redactor"}
// on the redactor's registry: the kinds in want counted (an aborted
// transaction may count a record again), the others not.
func checkSetAside(t *testing.T, reg *prometheus.Registry, want map[string]bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, mf := range mfs {
		if mf.GetName() != "mirrorline_stage_set_aside_records_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			seen++
			if n := mt.GetCounter().GetValue(); labels["stage"] != "redactor" || (n > 0) != want[labels["kind"]] {
				t.Errorf("set aside %v = %v, want kinds %v (stage redactor)", labels, n, want)
			}
		}
	}
	if seen != 3 {
		t.Errorf("redactor registry holds %d series of mirrorline_stage_set_aside_records_total, want 3", seen)
	}
}

// produceRaw creates the topics of service svc on brokers (clean limited to
// 1 MB) and produces raw to mirror.raw.svc; it returns the clean topic's
// budget, which has read the topic's limit when known.
func produceRaw(ctx context.Context, t *testing.T, brokers []string, known bool, raw [][]byte) *broker.Budget {
	t.Helper()
	cfg := broker.Config{Brokers: brokers}
	cl, err := broker.NewClient(cfg, kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := broker.CreateTopics(ctx, adm, "svc", broker.TopicSpec{Partitions: 1, MaxMessageBytes: 1_000_000}); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, v := range raw {
		recs = append(recs, &kgo.Record{Topic: broker.Topic(broker.Raw, "svc"), Key: []byte("conn-1"), Value: v})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	budget := broker.NewBudget(cfg.ProducerMaxBytes())
	if known {
		if err := budget.Lookup(ctx, adm, broker.Topic(broker.Clean, "svc")); err != nil {
			t.Fatal(err)
		}
	}
	return budget
}

type tlog struct{ t *testing.T }

func (l tlog) Write(b []byte) (int, error) { l.t.Log(strings.TrimSpace(string(b))); return len(b), nil }

func exID(t *testing.T, r *kgo.Record) string {
	t.Helper()
	ex := &mlv1.Exchange{}
	if err := proto.Unmarshal(r.Value, ex); err != nil {
		t.Fatal(err)
	}
	return ex.Id
}

// readAll reads committed records of topic from its start until it has n or,
// with a wait given, that long has passed (then it returns what it has).
func readAll(ctx context.Context, t *testing.T, brokers []string, topic string, n int, wait ...time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if len(wait) > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, wait[0])
		defer cancel()
	}
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			if len(wait) > 0 {
				return out
			}
			t.Fatalf("read %s: %d of %d records", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
