package redactor

import (
	"context"
	"os"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// loopBrokers is the Kafka broker of KAFKA_BROKERS, else an embedded one
// (stopped when the test ends), with svc's topics created (one partition)
// and exs written to its raw topic in order, all on the key conn-1.
func loopBrokers(ctx context.Context, t *testing.T, svc string, exs ...*mlv1.Exchange) []string {
	t.Helper()
	var brokers []string
	if os.Getenv("KAFKA_BROKERS") != "" {
		brokers = kafkatest.Brokers(t)
	} else {
		e, err := broker.StartEmbedded()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		brokers = e.Addrs()
	}
	cl, err := broker.NewClient(broker.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := broker.CreateTopics(ctx, kadm.NewClient(cl), svc, broker.TopicSpec{Partitions: 1, Replication: 1}); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for _, ex := range exs {
		v, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: broker.Topic(broker.Raw, svc), Key: []byte("conn-1"), Value: v})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return brokers
}

// runLoop runs the redactor's exactly-once loop of svc on brokers with
// engine until the returned stop is called; stop fails the test if the loop
// ended with an error.
func runLoop(ctx context.Context, t *testing.T, brokers []string, svc string, engine *Engine, opts ...Option) (stop func()) {
	t.Helper()
	kopts, err := broker.Config{Brokers: brokers}.Opts()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := kgo.NewGroupTransactSession(append(kopts, SessionOpts(svc, DefaultGroup(svc), "txn-"+svc)...)...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewProcessor(sess, engine, svc, opts...)
	if err != nil {
		sess.Close()
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("redactor stopped: %v", err)
		}
		sess.Close()
	}
}
