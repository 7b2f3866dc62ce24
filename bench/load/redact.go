package main

import (
	"context"
	"runtime"
	"strconv"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
)

// redactInProcess is the fallback when the redactor's Go benchmark cannot run:
// the default engine on the same 1 KB payments request, one goroutine, with
// GOMAXPROCS=1 so that garbage collection is paid on the same core.
func redactInProcess(ctx context.Context, d time.Duration) (recordsPerSec, nsPerOp float64, err error) {
	e, err := redactor.NewEngine(redactor.Config{})
	if err != nil {
		return 0, 0, err
	}
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	mk := func() *mlv1.Exchange {
		h := func(kv ...string) []*mlv1.Header {
			var hs []*mlv1.Header
			for i := 0; i+1 < len(kv); i += 2 {
				hs = append(hs, &mlv1.Header{Name: kv[i], Value: kv[i+1]})
			}
			return hs
		}
		return &mlv1.Exchange{
			Id: "0190d9a0-0000-7000-8000-000000000001", Service: "payments",
			Request: &mlv1.Request{
				Method: "POST", Url: "/v1/payments?expand=customer&idempotency=ik_5521&locale=de-CH",
				Host: "api.example.com", Proto: "HTTP/1.1", Scheme: "https",
				Headers: h("Content-Type", "application/json", "Content-Length", strconv.Itoa(len(paymentJSON)),
					"Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc", "Accept", "application/json"),
				Body: []byte(paymentJSON), BodySize: int64(len(paymentJSON)), RemoteAddr: "10.0.3.17:41234",
			},
			Response: &mlv1.Response{Status: 201, Headers: h("Content-Type", "application/json"), Body: []byte(`{"id":"pay_01HQ","ok":true}`)},
		}
	}
	const batch = 256
	pool := make([]*mlv1.Exchange, batch)
	var n int64
	var busy time.Duration
	for busy < d && ctx.Err() == nil {
		for i := range pool {
			pool[i] = mk()
		}
		t0 := time.Now()
		for _, ex := range pool {
			if _, err := e.Redact(ex); err != nil {
				return 0, 0, err
			}
		}
		busy += time.Since(t0)
		n += batch
	}
	if n == 0 {
		return 0, 0, ctx.Err()
	}
	return float64(n) / busy.Seconds(), float64(busy.Nanoseconds()) / float64(n), nil
}
