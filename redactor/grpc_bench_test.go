package redactor

import (
	"testing"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// BenchmarkRedactGRPC redacts a unary GetOrder call (a demo Order with an
// email, a card and a nested address in the response) with the schema, and
// without; and the same Order gzip-compressed.
func BenchmarkRedactGRPC(b *testing.B) {
	order := mustMarshal(b, demoOrder())
	gz, err := grpcwire.Compress("gzip", order)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		schema *grpcwire.Schema
		data   []byte
		comp   bool
	}{
		{"schema", ordersSchema(b), order, false},
		{"wire", nil, order, false},
		{"schema-gzip", ordersSchema(b), gz, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := schemaEngine(b, Config{}, bc.schema)
			b.ReportAllocs()
			for b.Loop() {
				ex := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, bc.data)
				if bc.comp {
					ex.Response.Messages[0].Compressed = true
					ex.Response.Headers = append(ex.Response.Headers, &mlv1.Header{Name: "grpc-encoding", Value: "gzip"})
				}
				if _, err := e.Redact(ex); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
