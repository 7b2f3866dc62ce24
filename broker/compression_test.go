package broker

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// batchCodecs passes on the compression of each produced batch (the hook
// may run after the produce's promise).
type batchCodecs chan uint8

func (b batchCodecs) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	b <- m.CompressionType
}

// The configured codec is the one the batches are sent with.
func TestCompressionApplied(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Attribute bits of a record batch (Kafka's protocol).
	for _, tc := range []struct {
		name string
		want uint8
	}{{"", 2}, {"none", 0}, {"gzip", 1}, {"snappy", 2}, {"lz4", 3}, {"zstd", 4}} {
		t.Run(tc.name, func(t *testing.T) {
			hook := make(batchCodecs, 16)
			cl, err := NewClient(Config{Brokers: c.ListenAddrs(), Compression: tc.name}, kgo.WithHooks(hook))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			value := bytes.Repeat([]byte("card=4111111111111111 "), 200)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: value}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-hook:
				if got != tc.want {
					t.Fatalf("compression %q: batch sent with codec %d, want %d", tc.name, got, tc.want)
				}
			case <-ctx.Done():
				t.Fatal("no batch written")
			}
		})
	}
}

func TestCompressionValidated(t *testing.T) {
	for _, bad := range []string{"brotli", "Snappy", "lz5"} {
		if _, err := (Config{Brokers: []string{"127.0.0.1:1"}, Compression: bad}).Opts(); err == nil {
			t.Errorf("compression %q accepted", bad)
		}
	}
}
