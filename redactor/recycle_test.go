package redactor

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// The loop decodes each record into the exchange of the record before
// (mlv1.UnmarshalExchangeRecycled). Through the real loop (the Kafka broker
// of KAFKA_BROKERS, else the embedded one), records of every shape, one
// after another on one partition (many headers then one, headers dropped by
// a rule, no response, gRPC messages, trailers), each reach the clean topic
// exactly as redacting that record alone, freshly decoded, gives it, also
// when the buffers of earlier clean records are reused for later ones.
func TestProcessorRecordsOneAfterAnotherAsAlone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	svc := fmt.Sprintf("recycle-%d", time.Now().UnixNano())

	withCookie := benchExchange(benchPaymentJSON)
	withCookie.Request.Headers = append(withCookie.Request.Headers,
		&mlv1.Header{Name: "Cookie", Value: "session=s3cr3t; theme=dark"},
		&mlv1.Header{Name: "X-Api-Key", Value: "ak_live_0123456789abcdef"})
	oneHeader := &mlv1.Exchange{Id: "one-header", Request: &mlv1.Request{Method: "GET", Url: "/users/ada@example.com",
		Headers: hdr("Accept", "text/plain")}}
	noResponse := jsonExchange("no-response", []byte(`{"email":"lin@example.com","card":"4111 1111 1111 1111"}`))
	noResponse.Response = nil
	grpcCall := grpcExchange("/other.v1.Svc/Do", nil, []byte("\x0a\x0fzoe@example.org"))
	grpcCall.Id = "grpc"
	grpcCall.Response.Trailers = hdr("grpc-status", "0", "grpc-message", "sent to pia@example.com")
	seq := []*mlv1.Exchange{withCookie, oneHeader, benchExchange(benchCleanJSON), noResponse, grpcCall, &mlv1.Exchange{Id: "empty"}, withCookie}

	engine, err := NewEngine(Config{}, WithHashKey(testKey))
	if err != nil {
		t.Fatal(err)
	}
	var want []*mlv1.Exchange
	for i, ex := range seq {
		v, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		alone := &mlv1.Exchange{}
		if err := proto.Unmarshal(v, alone); err != nil {
			t.Fatal(err)
		}
		res, err := engine.Redact(alone)
		if err != nil {
			t.Fatalf("record %d alone: %v", i, err)
		}
		if len(res.Rules) > 0 {
			alone.Redactions = res.Rules
		}
		want = append(want, alone)
	}
	// The sequence over and over, a few records per transaction: the
	// values of the clean records Kafka is done with serve later ones
	// (Processor.Recycle), large after small and small after large.
	const rounds = 30
	var all []*mlv1.Exchange
	for range rounds {
		all = append(all, seq...)
	}
	brokers := loopBrokers(ctx, t, svc, all...)
	stop := runLoop(ctx, t, brokers, svc, engine, WithMetrics(NewMetrics(prometheus.NewRegistry())), WithBatch(4))
	clean := readAll(ctx, t, brokers, broker.Topic(broker.Clean, svc), len(all))
	stop()
	for i, r := range clean {
		got := &mlv1.Exchange{}
		if err := proto.Unmarshal(r.Value, got); err != nil {
			t.Fatal(err)
		}
		if w := want[i%len(seq)]; !proto.Equal(got, w) {
			t.Fatalf("record %d (%s) after the others:\n%v\nredacted alone:\n%v", i, w.Id, got, w)
		}
	}
}
