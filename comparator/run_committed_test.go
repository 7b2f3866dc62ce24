package comparator

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// The comparator's consumer reads committed: records of aborted transactions
// on the clean and shadow topics never reach a comparison.
func TestRunnerReadsCommitted(t *testing.T) {
	brokers := kafkatest.Embedded(t, "svc", 1)
	cmp, err := New("svc", Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(cmp, WithFromStart(true))
	for _, topic := range []string{r.clean, r.shadow} {
		kafkatest.WriteTxn(t, brokers, topic, false, "aborted-1", "aborted-2")
		kafkatest.WriteTxn(t, brokers, topic, true, "committed-1", "committed-2")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, r.ClientOpts("mirrorline-compare-svc")...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	defer cl.AllowRebalance()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := map[string][]string{}
	for len(got[r.clean]) < 2 || len(got[r.shadow]) < 2 {
		fs := cl.PollRecords(ctx, 100)
		if ctx.Err() != nil {
			t.Fatalf("committed records not all read within 30s: %v", got)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			ex := &mlv1.Exchange{}
			if err := proto.Unmarshal(rec.Value, ex); err != nil {
				t.Fatal(err)
			}
			got[rec.Topic] = append(got[rec.Topic], ex.Id)
		})
		cl.AllowRebalance()
	}
	for _, topic := range []string{r.clean, r.shadow} {
		if ids := got[topic]; len(ids) != 2 || ids[0] != "committed-1" || ids[1] != "committed-2" {
			t.Errorf("%s: read %v; want the committed records only", topic, ids)
		}
	}
}
