package redactor

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// Through the redactor's exactly-once loop (the Kafka broker of
// KAFKA_BROKERS, else the embedded one), a gRPC exchange's emails, in its
// messages (plain, gzip, nested, with and without a schema) and trailers,
// never reach the clean topic: the scrubbed calls are published, the one
// whose encoding cannot be read is quarantined without its messages, and
// the gRPC metrics count both once committed.
func TestProcessorGRPCEmailNeverReachesClean(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	svc := fmt.Sprintf("grpcredact-%d", time.Now().UnixNano())

	order := demoOrder()
	order.Shipping.Street = "c/o nina@example.com"
	gz, err := grpcwire.Compress("gzip", mustMarshal(t, order))
	if err != nil {
		t.Fatal(err)
	}
	getOrder := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder",
		mustMarshal(t, &ordersv1.GetOrderRequest{Id: "o-17", CustomerEmail: "omar@example.com"}), gz)
	getOrder.Id = "get"
	getOrder.Response.Messages[0].Compressed = true
	getOrder.Response.Headers = append(getOrder.Response.Headers, &mlv1.Header{Name: "grpc-encoding", Value: "gzip"})
	getOrder.Response.Trailers = hdr("grpc-status", "0", "grpc-message", "mailed pia@example.com")
	unknown := grpcExchange("/other.v1.Svc/Do", nil, mustMarshal(t, order))
	unknown.Id = "unknown"
	brotli := grpcExchange("/mirrorline.demo.orders.v1.Orders/GetOrder", nil, []byte("compressed quinn@example.com"))
	brotli.Id = "brotli"
	brotli.Response.Messages[0].Compressed = true
	brotli.Response.Headers = append(brotli.Response.Headers, &mlv1.Header{Name: "grpc-encoding", Value: "br"})

	brokers := loopBrokers(ctx, t, svc, getOrder, brotli, unknown)
	engine, err := NewEngine(Config{JSONFields: map[string]Rule{"customer_email": {Action: ActionHash}}}, WithHashKey(testKey), WithSchema(ordersSchema(t)))
	if err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewRegistry())
	stop := runLoop(ctx, t, brokers, svc, engine, WithMetrics(m))
	clean := readAll(ctx, t, brokers, broker.Topic(broker.Clean, svc), 2)
	quarantine := readAll(ctx, t, brokers, broker.Topic(broker.Quarantine, svc), 1)
	testproc.Eventually(t, 60*time.Second, "the gRPC metrics counted", func() bool {
		return testutil.ToFloat64(m.GRPCSetAside.WithLabelValues(ReasonEncoding)) == 1 &&
			testutil.ToFloat64(m.GRPCMessages.WithLabelValues(ModeSchema)) == 2 &&
			testutil.ToFloat64(m.GRPCMessages.WithLabelValues(ModeWire)) == 1
	})
	stop()

	if id := exID(t, quarantine[0]); id != "brotli" || bytes.Contains(quarantine[0].Value, []byte("@example.")) {
		t.Errorf("quarantined %q, or it holds an email", id)
	}
	for _, r := range clean {
		if bytes.Contains(r.Value, []byte("@example.")) {
			t.Errorf("an email reached the clean topic in %s", exID(t, r))
		}
		ex := &mlv1.Exchange{}
		if err := proto.Unmarshal(r.Value, ex); err != nil {
			t.Fatal(err)
		}
		for _, msg := range append(ex.Request.Messages, ex.Response.Messages...) {
			data := msg.Data
			if msg.Compressed {
				if data, err = grpcwire.Decompress("gzip", data, 0); err != nil {
					t.Fatalf("%s: scrubbed message is not gzip any more: %v", ex.Id, err)
				}
			}
			if bytes.Contains(data, []byte("@example.")) {
				t.Errorf("%s: an email in a message reached the clean topic", ex.Id)
			}
			if _, err := grpcwire.ParseMessage(data); err != nil {
				t.Errorf("%s: scrubbed message does not parse: %v", ex.Id, err)
			}
		}
		if ex.Id == "get" {
			var req ordersv1.GetOrderRequest
			if err := proto.Unmarshal(ex.Request.Messages[0].Data, &req); err != nil || req.Id != "o-17" || !bytes.HasPrefix([]byte(req.CustomerEmail), []byte(hashPrefix)) {
				t.Errorf("request = %v (%v)", &req, err)
			}
		}
	}
}
