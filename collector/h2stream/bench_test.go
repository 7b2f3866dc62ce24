package h2stream

import (
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// BenchmarkGRPCUnary measures parsing unary gRPC calls (request and answer
// of a 200-byte message, metadata, trailers) on one connection, fed as whole
// frames.
func BenchmarkGRPCUnary(b *testing.B) {
	s := newScript(b)
	const calls = 100
	for i := range uint32(calls) {
		id := 1 + 2*i
		s.headers(cli, id, false, ":method", "POST", ":scheme", "http", ":authority", "orders:50051", ":path", "/orders.v1.Orders/GetOrder",
			"content-type", "application/grpc", "te", "trailers", "grpc-timeout", "1S", "x-tenant", "acme")
		s.data(cli, id, true, grpcMsg(false, string(make([]byte, 200))))
		s.headers(srv, id, false, ":status", "200", "content-type", "application/grpc")
		s.data(srv, id, false, grpcMsg(false, string(make([]byte, 200))))
		s.headers(srv, id, true, "grpc-status", "0", "grpc-message", "")
	}
	preamble, calls1 := s.chunks[:5], s.chunks[5:]
	bytes := 0
	for _, ch := range calls1 {
		bytes += len(ch.data)
	}
	b.SetBytes(int64(bytes))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		// A fresh connection each round: HPACK state must start over.
		c := New(func(*mlv1.Exchange) { n++ })
		for _, ch := range preamble {
			c.Feed(ch.dir, ch.data, ch.at)
		}
		for _, ch := range calls1 {
			c.Feed(ch.dir, ch.data, ch.at)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "calls/s")
	if n == 0 {
		b.Fatal("no exchanges")
	}
}
