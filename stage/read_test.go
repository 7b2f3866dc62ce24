package stage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/stage"
)

// Read ends with ctx's error when ctx ends before its spans are read to
// their end, so that no caller takes a part of a span for all of it (a
// lookup deciding records missing, a report built from some of the diffs);
// read to the end, it returns nil.
func TestReadEndsWithContextError(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	pcl, err := kgo.NewClient(append(opts, kgo.DefaultProduceTopic("t"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, v := range []string{"a", "b", "c"} { // one batch each
		if err := pcl.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	span := []stage.Span{{Topic: "t", Partition: 0, From: 0, To: 3}}
	// One batch per fetch: the span is not read to its end when ctx ends.
	small := append(opts[:len(opts):len(opts)], kgo.FetchMaxBytes(1), kgo.FetchMaxPartitionBytes(1))
	rctx, stop := context.WithCancel(ctx)
	read := 0
	err = stage.Read(rctx, small, span, func(*kgo.Record) stage.Next {
		read++
		stop()
		return stage.Continue
	})
	if !errors.Is(err, context.Canceled) || read == 3 {
		t.Fatalf("read %d of 3 records, then ctx ended: error %v, want context.Canceled", read, err)
	}
	read = 0
	if err := stage.Read(ctx, small, span, func(*kgo.Record) stage.Next { read++; return stage.Continue }); err != nil || read != 3 {
		t.Fatalf("read %d of 3 records, error %v; want all, no error", read, err)
	}
}
