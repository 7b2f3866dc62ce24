package collector

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// acceptProducer takes every record at once and acknowledges it synchronously.
type acceptProducer struct{ records atomic.Int64 }

func (p *acceptProducer) TryProduce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.records.Add(1)
	promise(r, nil)
}

// benchExchange is what the proxy captures for a 1 KB JSON POST: eight request
// headers in wire order, the body, and a small JSON answer.
func benchExchange() *mlv1.Exchange {
	body := `{"payment_id":"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B","customer":{"email":"zoe.angstrom@example.org","phone":"+41 44 668 18 00"},` +
		`"card":{"number":"4111 1111 1111 1111","cvv":"123"},"notes":"` + strings.Repeat("x", 850) + `"}`
	answer := `{"id":"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B","status":"authorized","risk":{"score":12,"decision":"accept"}}`
	hs := func(kv ...string) []*mlv1.Header {
		out := make([]*mlv1.Header, 0, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, &mlv1.Header{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	return &mlv1.Exchange{
		Id:            "0190d9a0-0000-7000-8000-000000000001",
		ConnectionId:  "5f2a9c1b7e3d-42",
		Sequence:      7,
		Source:        mlv1.Source_SOURCE_PROXY,
		Collector:     "bench",
		CaptureTimeNs: time.Now().UnixNano(),
		Request: &mlv1.Request{
			Method: "POST", Url: "/v1/payments?expand=customer", Host: "api.example.com", Proto: "HTTP/1.1", Scheme: "http",
			Headers: hs("Content-Type", "application/json", "Content-Length", strconv.Itoa(len(body)), "Accept", "application/json",
				"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
				"Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc", "X-Request-Id", "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b",
				"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Forwarded-For", "10.0.3.17"),
			Body: []byte(body), BodySize: int64(len(body)), RemoteAddr: "10.0.3.17:41234",
		},
		Response: &mlv1.Response{
			Status: 200, Proto: "HTTP/1.1", LatencyNs: 1_250_000,
			Headers: hs("Content-Length", strconv.Itoa(len(answer)), "Content-Type", "application/json", "X-Request-Id", "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b"),
			Body:    []byte(answer), BodySize: int64(len(answer)),
		},
	}
}

// BenchmarkEmit is the emitter's hot path: encode one captured exchange and
// hand it to a producer that accepts it (Kafka itself is not involved).
func BenchmarkEmit(b *testing.B) {
	prod := &acceptProducer{}
	e := NewEmitter(prod, "payments", nil, nil)
	ex := benchExchange()
	b.SetBytes(int64(proto.Size(ex)))
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Emit(ex); err != nil {
			b.Fatal(err)
		}
	}
	if prod.records.Load() == 0 {
		b.Fatal("nothing was produced")
	}
}

// BenchmarkEmitParallel emits from all GOMAXPROCS goroutines at once
// (contention on the shared metrics).
func BenchmarkEmitParallel(b *testing.B) {
	prod := &acceptProducer{}
	e := NewEmitter(prod, "payments", nil, nil)
	b.SetBytes(int64(proto.Size(benchExchange())))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ex := benchExchange()
		for pb.Next() {
			if err := e.Emit(ex); err != nil {
				b.Fatal(err)
			}
		}
	})
}
