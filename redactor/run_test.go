package redactor

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
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
// commits its offset, and the records after it on the same partition reach
// the clean topic exactly once: the redactor neither stops nor stalls.
// Whether the budget knows the topic's limit (checked before producing) or
// not (the record is refused; the transaction is aborted and retried with the
// record quarantined), the outcome is the same.
func TestProcessorQuarantinesRecordTooLargeOnceRedacted(t *testing.T) {
	t.Setenv("MIRRORLINE_REDACT_HASH_KEY", "test-key-0123456789")
	const topicMax = 1_000_000
	marshal := func(ex *mlv1.Exchange) []byte { v, _ := proto.Marshal(ex); return v }
	bigRaw := marshal(jsonExchange("big", growingBody()))
	before := marshal(jsonExchange("before", []byte(`{"email":"a@x.io"}`)))
	after := marshal(jsonExchange("after", []byte(`{"email":"b@x.io"}`)))
	type quarantined struct{ offset, id, reason string }
	cases := []struct {
		name  string
		known bool // the processor's budget has read the topic's limit
		// wholeBatch: the producer's batches are not capped to the
		// topic's limit either, so Kafka refuses the batch holding the
		// record and the small record after it.
		wholeBatch bool
		raw        [][]byte
		want       []quarantined
	}{
		{"checked against the budget", true, false, [][]byte{before, bigRaw, after},
			[]quarantined{{"1", "big", "exceeds the record budget"}}},
		{"producer refuses the record", false, false, [][]byte{before, bigRaw, after},
			[]quarantined{{"1", "big", "rejected as too large for mirror.clean.svc"}}},
		{"Kafka refuses the whole batch", false, true, [][]byte{before, bigRaw, after},
			[]quarantined{{"1", "big", "rejected as too large for mirror.clean.svc"}}},
		{"undecodable and failing closed", true, false, [][]byte{before, []byte("\xff\xff not protobuf"), marshal(jsonExchange("badjson", []byte(`{"email":"c@x.io",`))), after},
			[]quarantined{{"1", "", "undecodable record"}, {"2", "badjson", "redact request body"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := broker.StartEmbedded()
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			cfg := broker.Config{Brokers: e.Addrs()}
			cl, err := broker.NewClient(cfg, kgo.ProducerBatchCompression(kgo.NoCompression()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			adm := kadm.NewClient(cl)
			if _, err := broker.CreateTopics(ctx, adm, "svc", broker.TopicSpec{Partitions: 1, MaxMessageBytes: topicMax}); err != nil {
				t.Fatal(err)
			}
			raw, clean, quarantine := broker.Topic(broker.Raw, "svc"), broker.Topic(broker.Clean, "svc"), broker.Topic(broker.Quarantine, "svc")
			var recs []*kgo.Record
			for _, v := range tc.raw {
				recs = append(recs, &kgo.Record{Topic: raw, Key: []byte("conn-1"), Value: v})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}

			engine, err := NewEngine(Config{Detectors: map[string]Rule{"email": {Action: ActionHash}}})
			if err != nil {
				t.Fatal(err)
			}
			opts, _ := cfg.Opts()
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
			budget := broker.NewBudget(cfg.ProducerMaxBytes())
			if tc.known {
				if err := budget.Lookup(ctx, adm, clean); err != nil {
					t.Fatal(err)
				}
			}
			m := NewMetrics(nil)
			p, err := NewProcessor(sess, engine, "svc", WithMetrics(m), WithBudget(budget), WithLogger(hclog.New(&hclog.LoggerOptions{Output: tlog{t}})))
			if err != nil {
				t.Fatal(err)
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(rctx) }()

			got := readAll(ctx, t, e.Addrs(), clean, 2)
			q := readAll(ctx, t, e.Addrs(), quarantine, len(tc.want))
			// Records are visible once Kafka wrote the commit markers, a
			// moment before the redactor learns its commit succeeded and
			// counts them: wait for the counts before stopping it.
			wantQ := 0
			for _, w := range tc.want {
				if w.id != "" {
					wantQ++
				}
			}
			counted := func() bool {
				return testutil.ToFloat64(m.Records.WithLabelValues(OutcomeQuarantined)) >= float64(wantQ) &&
					testutil.ToFloat64(m.Records.WithLabelValues(OutcomeClean)) >= 2
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
			for i, want := range tc.want {
				qr := q[i]
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
				if qx.Id != want.id || (want.id != "" && qx.Request.GetUrl() != "/signup") {
					t.Errorf("quarantine record: id %q url %q", qx.Id, qx.Request.GetUrl())
				}
				if want.id == "big" && qx.Request.GetBodySize() < int64(len(growingBody())) {
					t.Errorf("quarantine record: body_size %d, want the redacted size", qx.Request.GetBodySize())
				}
				if len(qr.Value) > 1024 || bytes.Contains(qr.Value, []byte("@x.io")) || bytes.Contains(qr.Value, []byte("hmac:")) || bytes.Contains(qr.Value, []byte("ref=")) {
					t.Errorf("quarantine record carries payload (%d bytes)", len(qr.Value))
				}
			}
			if n := testutil.ToFloat64(m.Records.WithLabelValues(OutcomeQuarantined)); n != float64(wantQ) {
				t.Errorf("records{quarantined} = %v, want %d", n, wantQ)
			}
			if n := testutil.ToFloat64(m.Records.WithLabelValues(OutcomeClean)); n != 2 {
				t.Errorf("records{clean} = %v, want 2", n)
			}
		})
	}
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
