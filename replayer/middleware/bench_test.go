package middleware

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// BenchmarkRequestEcho measures Request round-trips through one program
// (the Go echo helper): JSON out, JSON back, validation, a 1 KiB body.
func BenchmarkRequestEcho(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		name := "serial"
		if parallel {
			name = "parallel"
		}
		b.Run(name, func(b *testing.B) {
			b.Setenv(helperEnv, "echo")
			mw, err := Start(context.Background(), Config{Command: []string{os.Args[0]}, Timeout: generous}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer mw.Close()
			req := &mlv1.Request{
				Method: "POST", Url: "/api/orders?page=2", Host: "shop.example",
				Headers: []*mlv1.Header{
					{Name: "Content-Type", Value: "application/json"},
					{Name: "User-Agent", Value: "bench/1.0"},
					{Name: "Accept", Value: "*/*"},
				},
				Body: make([]byte, 1024),
			}
			var seq atomic.Int64
			one := func() {
				id := "ex-" + strconv.FormatInt(seq.Add(1), 10)
				if _, _, err := mw.Request(context.Background(), Meta{ID: id}, req); err != nil {
					b.Error(err)
				}
			}
			b.ResetTimer()
			if parallel {
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						one()
					}
				})
			} else {
				for range b.N {
					one()
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
