package sink

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/collector"
)

// acceptProducer takes every record at once and acknowledges it.
type acceptProducer struct{ records atomic.Int64 }

func (p *acceptProducer) TryProduce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.records.Add(1)
	promise(r, nil)
}

// BenchmarkSink is one mirrored copy (a 1 KB JSON POST, as nginx mirror
// sends it) through the sink's handler, captured and handed to a producer
// that accepts it: allocs/op and B/op are what the sink costs per copy.
func BenchmarkSink(b *testing.B) {
	prod := &acceptProducer{}
	em := collector.NewEmitter(prod, "payments", nil, nil)
	b.Cleanup(func() { _ = em.Close(context.Background()) })
	s, err := New(em, WithKeyHeader("X-Forwarded-For"), WithCollectorID("bench"))
	if err != nil {
		b.Fatal(err)
	}
	body := `{"payment_id":"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B","card":{"number":"4111 1111 1111 1111","cvv":"123"},"notes":"` + strings.Repeat("x", 900) + `"}`
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "http://payments-shadow/v1/payments?expand=customer", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
		r.Header.Set("Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc")
		r.Header.Set("X-Forwarded-For", "10.0.3.17")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	_ = em.Flush(context.Background())
	if prod.records.Load() == 0 {
		b.Fatal("nothing was captured")
	}
}
