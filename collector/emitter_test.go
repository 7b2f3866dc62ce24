package collector

import (
	"bytes"
	"context"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// An exchange larger than the raw topic accepts is cut to its record budget
// and published, flagged and with its sizes, instead of being dropped whole;
// only what cannot fit even without bodies and headers is dropped, counted
// as too_large.
func TestEmitterFitsRecordBudget(t *testing.T) {
	const topicMax = 1_000_000 // a topic made elsewhere with Kafka's usual limit
	big := strings.Repeat("h", 950_000)
	cases := []struct {
		name      string
		known     bool // the budget has looked up the topic's limit
		ex        func() *mlv1.Exchange
		published bool
		dropped   string
	}{
		{"0.95 MB header and 1.5 MB body", true, func() *mlv1.Exchange {
			return &mlv1.Exchange{ConnectionId: "c1", Request: &mlv1.Request{Method: "POST", Url: "/up",
				Headers: []*mlv1.Header{{Name: "X-Big", Value: big}}, Body: bytes.Repeat([]byte("b"), 1_500_000), BodySize: 1_500_000},
				Response: &mlv1.Response{Status: 200, Body: bytes.Repeat([]byte("r"), 300_000), BodySize: 300_000}}
		}, true, ""},
		{"URL over the budget", true, func() *mlv1.Exchange {
			return &mlv1.Exchange{ConnectionId: "c2", Request: &mlv1.Request{Method: "GET", Url: "/" + strings.Repeat("u", 1_100_000)}}
		}, false, DropTooLarge},
		{"topic limit not known yet: Kafka rejects, counted too_large", false, func() *mlv1.Exchange {
			// Random bytes: Kafka measures the compressed batch.
			noise := make([]byte, 2_000_000)
			_, _ = rand.New(rand.NewSource(1)).Read(noise)
			return &mlv1.Exchange{ConnectionId: "c3", Request: &mlv1.Request{Method: "POST", Url: "/up", Body: noise, BodySize: 2_000_000}}
		}, false, DropTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, err := broker.StartEmbedded()
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			cl, err := broker.NewClient(broker.Config{Brokers: e.Addrs()})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			adm := kadm.NewClient(cl)
			if _, err := broker.CreateTopics(ctx, adm, "svc", broker.TopicSpec{Partitions: 1, MaxMessageBytes: topicMax}); err != nil {
				t.Fatal(err)
			}
			budget := broker.NewBudget(broker.DefaultMaxMessageBytes)
			if tc.known {
				if err := budget.Lookup(ctx, adm, broker.Topic(broker.Raw, "svc")); err != nil {
					t.Fatal(err)
				}
			}
			m := NewMetrics(nil)
			em := NewEmitter(cl, "svc", m, nil, WithBudget(budget))
			ex := tc.ex()
			orig := &mlv1.Exchange{Request: &mlv1.Request{BodySize: ex.GetRequest().GetBodySize(), Url: ex.GetRequest().GetUrl()}}
			if err := em.Emit(ex); err != nil {
				t.Fatal(err)
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if !tc.published {
				if got := testutil.ToFloat64(m.Dropped.WithLabelValues(tc.dropped)); got != 1 {
					t.Fatalf("dropped{%s} = %v, want 1", tc.dropped, got)
				}
				return
			}
			if got := testutil.ToFloat64(m.Published); got != 1 {
				t.Fatalf("published = %v, want 1 (dropped publish_error %v)", got, testutil.ToFloat64(m.Dropped.WithLabelValues(DropPublishError)))
			}
			if got := testutil.ToFloat64(m.Truncated); got != 1 {
				t.Fatalf("truncated = %v, want 1", got)
			}
			got := kafkatest.ReadExchanges(t, e.Addrs(), broker.Topic(broker.Raw, "svc"), 1, 10*time.Second)[0]
			req := got.GetRequest()
			if !req.BodyTruncated || req.BodySize != orig.Request.BodySize || len(req.Body) == 0 || len(req.Body) >= int(orig.Request.BodySize) {
				t.Fatalf("request body %d bytes, truncated %v, size %d: want cut, flagged, size %d", len(req.Body), req.BodyTruncated, req.BodySize, orig.Request.BodySize)
			}
			if len(req.Headers) != 1 || len(req.Headers[0].Value) != len(big) || req.HeadersTruncated {
				t.Fatalf("the 0.95 MB header was not kept whole")
			}
			if req.Url != orig.Request.Url || got.Id == "" {
				t.Fatal("URL or id lost")
			}
		})
	}
}
