package broker

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The topics mirrorline creates and its producers share one record limit, so
// a record of a few MB (a 1 MiB request and a 1 MiB response, plus what
// redaction adds) is accepted end to end instead of failing MESSAGE_TOO_LARGE.
func TestTopicsAndProducerShareOneBudget(t *testing.T) {
	e, err := StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cfg := Config{Brokers: e.Addrs()}
	cl, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := CreateTopics(ctx, adm, "svc", TopicSpec{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	infos, err := DescribeTopics(ctx, adm, "svc")
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range infos {
		if ti.MaxMessageBytes != strconv.Itoa(DefaultMaxMessageBytes) {
			t.Errorf("%s: max.message.bytes %q, want %d", ti.Topic, ti.MaxMessageBytes, DefaultMaxMessageBytes)
		}
	}
	b := NewBudget(cfg.ProducerMaxBytes())
	if err := b.Lookup(ctx, adm, Topic(Raw, "svc")); err != nil {
		t.Fatal(err)
	}
	if got := b.MaxMessageBytes(); got != DefaultMaxMessageBytes {
		t.Fatalf("budget %d, want %d", got, DefaultMaxMessageBytes)
	}
	big := &kgo.Record{Topic: Topic(Raw, "svc"), Key: []byte("conn-1"), Value: bytes.Repeat([]byte("x"), 2<<20)}
	if !b.Fits(big) {
		t.Fatalf("a 2 MiB record does not fit the budget of %d bytes", b.MaxMessageBytes())
	}
	if err := cl.ProduceSync(ctx, big).FirstErr(); err != nil {
		t.Fatalf("produce a 2 MiB record within the budget: %v", err)
	}
	tooBig := &kgo.Record{Topic: big.Topic, Value: make([]byte, b.MaxValue(nil, nil)+1)}
	if b.Fits(tooBig) {
		t.Fatal("a record one byte over the budget fits")
	}
}

// A topic made elsewhere with a smaller max.message.bytes lowers the budget
// to it, so records are cut to what that topic accepts.
func TestBudgetFollowsTopicSetting(t *testing.T) {
	e, err := StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl, err := NewClient(Config{Brokers: e.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	small := "1000000"
	if _, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &small}, "mirror.clean.old"); err != nil {
		t.Fatal(err)
	}
	b := NewBudget(DefaultMaxMessageBytes)
	b.Watch(ctx, adm, "mirror.clean.old", nil)
	if got := b.MaxMessageBytes(); got != 1000000 {
		t.Fatalf("budget %d after the lookup, want the topic's 1000000", got)
	}
	key, hdrs := []byte("k"), []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}
	limit := b.MaxValue(key, hdrs)
	if limit <= 990000 || limit >= 1000000 {
		t.Fatalf("value limit %d: want a little under 1000000", limit)
	}
	rec := &kgo.Record{Topic: "mirror.clean.old", Key: key, Headers: hdrs, Value: make([]byte, limit)}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatalf("a record of exactly the value limit is rejected: %v", err)
	}
	b.Lower(2 << 20)
	if got := b.MaxMessageBytes(); got != 1000000 {
		t.Fatalf("Lower raised the budget to %d", got)
	}
	if _, err := TopicMaxMessageBytes(ctx, adm, "mirror.clean.missing"); err == nil {
		t.Fatal("looking up a missing topic succeeded")
	}
}

func TestMaxMessageBytesValidated(t *testing.T) {
	for _, n := range []int{-1, 1000, 2 << 30} {
		if _, err := (Config{Brokers: []string{"127.0.0.1:1"}, MaxMessageBytes: n}).Opts(); err == nil {
			t.Errorf("max_message_bytes %d accepted", n)
		}
	}
	if _, err := (Config{Brokers: []string{"127.0.0.1:1"}, MaxMessageBytes: 8 << 20}).Opts(); err != nil {
		t.Errorf("max_message_bytes 8 MiB: %v", err)
	}
}

// Clients made from a Config cap their batches at each topic's
// max.message.bytes: small records bound for a topic with a lower limit than
// the producers' are sent in batches it accepts, never refused as one
// oversized batch.
func TestBatchesCappedAtTopicLimit(t *testing.T) {
	e, err := StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl, err := NewClient(Config{Brokers: e.Addrs()}, kgo.ProducerLinger(time.Second), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	small := "1000000"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"max.message.bytes": &small}, "mirror.raw.old"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for range 30 {
		recs = append(recs, &kgo.Record{Topic: "mirror.raw.old", Value: make([]byte, 100_000)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("30 records of 100 KB to a 1 MB topic: %v", err)
	}
}
