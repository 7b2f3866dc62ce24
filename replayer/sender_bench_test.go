package replayer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// BenchmarkSenderSend replays one small exchange at a time to a loopback
// target, from as many goroutines as GOMAXPROCS: through the Sender's own
// transport (h1client: the round trip on the sending goroutine) and through
// Go's http.Transport alone, as the Sender did before. cpu-µs/op is the
// process's CPU time (the target's included, the same for both) per send.
func BenchmarkSenderSend(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(srv.Close)
	ex := &mlv1.Exchange{Id: "id", Request: &mlv1.Request{Method: "GET", Url: "/api/v1/payments/12345?expand=lines",
		Headers: []*mlv1.Header{{Name: "Accept", Value: "application/json"}, {Name: "Traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}}
	for _, tc := range []struct {
		name  string
		plain bool
	}{{"h1client", false}, {"http.Transport", true}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := NewSender(srv.URL, 64)
			if err != nil {
				b.Fatal(err)
			}
			if tc.plain {
				s.client.Transport = newTransport(s.conns, 64, nil, nil)
			}
			ctx := context.Background()
			b.ReportAllocs()
			c0 := testproc.CPUTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := s.Send(ctx, ex)
					if err != nil || resp.GetStatus() != http.StatusOK {
						b.Errorf("send: %v, response %v", err, resp)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((testproc.CPUTime()-c0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
