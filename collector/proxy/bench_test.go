package proxy

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/collector"
)

// acceptProducer takes every record at once, as a Kafka client with room in
// its buffer does, and acknowledges it synchronously.
type acceptProducer struct {
	records, bytes atomic.Int64
}

func (p *acceptProducer) TryProduce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.records.Add(1)
	p.bytes.Add(int64(len(r.Value)))
	promise(r, nil)
}

// primaryRT answers like a small JSON API without touching the network, so the
// benchmarks measure the proxy, not loopback TCP.
type primaryRT struct{}

const benchAnswer = `{"id":"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B","status":"authorized","risk":{"score":12,"decision":"accept"}}`

func (primaryRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(benchAnswer)))
	h.Set("X-Request-Id", "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b")
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Body: io.NopCloser(strings.NewReader(benchAnswer)), ContentLength: int64(len(benchAnswer)), Request: r,
	}, nil
}

// benchBody is a ~1 KB JSON payments request.
var benchBody = `{"payment_id":"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B","merchant":{"id":"mch_8842","name":"Café Zürich GmbH","mcc":"5812","country":"CH"},` +
	`"amount":{"value":1249.90,"currency":"CHF"},"customer":{"id":"cus_4411","email":"zoe.angstrom@example.org","name":"Zoë Ångström",` +
	`"phone":"+41 44 668 18 00","locale":"de-CH"},"card":{"number":"4111 1111 1111 1111","exp_month":12,"exp_year":2029,"cvv":"123","brand":"visa"},` +
	`"billing_address":{"line1":"Bahnhofstrasse 1","city":"Zürich","postal_code":"8001","country":"CH"},"items":[{"sku":"SKU-1001",` +
	`"title":"Espresso beans 1kg","qty":2,"unit_price":24.50},{"sku":"SKU-2002","title":"Milk frother","qty":1,"unit_price":89.00}],` +
	`"metadata":{"order_ref":"ORD-2024-000123","channel":"web","created_at":"2024-01-15T10:20:30Z"},"capture":true,` +
	`"three_ds":{"version":"2.2.0","status":"authenticated"},"notes":"` + strings.Repeat("x", 200) + `"}`

func benchRequest(post bool) *http.Request {
	var r *http.Request
	if post {
		r = httptest.NewRequest(http.MethodPost, "http://api.example.com/v1/payments?expand=customer", strings.NewReader(benchBody))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(http.MethodGet, "http://api.example.com/v1/payments/p-1?expand=card", nil)
	}
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
	r.Header.Set("Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc")
	r.Header.Set("X-Request-Id", "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b")
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	return r
}

// BenchmarkProxyCapture is the proxy's hot path: one request through the
// proxy handler to a primary (in memory) with the exchange captured, encoded
// and handed to a producer that accepts it. BenchmarkProxyBaseline is the same
// request through a plain httputil.ReverseProxy: the difference is what
// capturing costs per request.
func BenchmarkProxyCapture(b *testing.B) {
	for _, tc := range []struct {
		name string
		post bool
	}{{"GET", false}, {"POST-1KB", true}} {
		b.Run(tc.name, func(b *testing.B) {
			prod := &acceptProducer{}
			em := collector.NewEmitter(prod, "payments", nil, nil)
			p, err := New("http://primary.internal:8080", em, WithTransport(primaryRT{}), WithCollectorID("bench"))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				p.ServeHTTP(w, benchRequest(tc.post))
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
			if prod.records.Load() == 0 {
				b.Fatal("nothing was captured")
			}
			b.ReportMetric(float64(prod.bytes.Load())/float64(prod.records.Load()), "record-bytes")
		})
	}
}

func BenchmarkProxyBaseline(b *testing.B) {
	u, _ := url.Parse("http://primary.internal:8080")
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: primaryRT{},
	}
	for _, tc := range []struct {
		name string
		post bool
	}{{"GET", false}, {"POST-1KB", true}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				rp.ServeHTTP(w, benchRequest(tc.post))
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkProxyCaptureParallel is BenchmarkProxyCapture (POST) from all
// GOMAXPROCS goroutines: contention in the capture path (metrics, emitter).
func BenchmarkProxyCaptureParallel(b *testing.B) {
	prod := &acceptProducer{}
	em := collector.NewEmitter(prod, "payments", nil, nil)
	p, err := New("http://primary.internal:8080", em, WithTransport(primaryRT{}), WithCollectorID("bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			p.ServeHTTP(w, benchRequest(true))
		}
	})
}
