package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// A redactor killed after committing its offsets to a transaction and before
// ending it leaves those offsets pending. Its successor (same transactional
// id) must not wait for that transaction's timeout before it reads anything:
// it aborts the leftover transaction at start. The predecessor here is never
// closed, as a killed process is not, and its transaction timeout is 2
// minutes: a redactor that waited for it would process nothing for the
// whole test.
func TestRedactorResumesPastPendingTransactionalOffsets(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 1)
	raw, clean := broker.Topic(broker.Raw, svc), broker.Topic(broker.Clean, svc)
	group, txnID := redactor.DefaultGroup(svc), "fence-"+svc
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const n = 20
	prod := kafkatest.Client(t)
	var recs []*kgo.Record
	for i := range n {
		ex := &mlv1.Exchange{Id: fmt.Sprintf("fence-%02d", i), Service: svc, ConnectionId: "conn-1",
			CaptureTimeNs: time.Now().UnixNano(), Request: &mlv1.Request{Method: "GET", Url: fmt.Sprintf("/orders/%d", i)}}
		v, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: raw, Key: []byte(ex.ConnectionId), Value: v})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// The predecessor: a transaction with a clean record and the group's
	// offsets committed into it, never ended.
	dead, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(txnID), kgo.TransactionTimeout(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	if err := dead.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := dead.ProduceSync(ctx, &kgo.Record{Topic: clean, Value: []byte("aborted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := dead.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = txnID, pid, epoch, group
	addResp, err := add.RequestWith(ctx, dead)
	if err == nil {
		err = kerr.ErrorForCode(addResp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("add offsets to the transaction: %v", err)
	}
	commit := kmsg.NewPtrTxnOffsetCommitRequest()
	commit.TransactionalID, commit.Group, commit.ProducerID, commit.ProducerEpoch = txnID, group, pid, epoch
	commit.Generation, commit.MemberID = -1, ""
	ct := kmsg.NewTxnOffsetCommitRequestTopic()
	ct.Topic = raw
	cp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	cp.Partition, cp.Offset, cp.LeaderEpoch = 0, n/2, -1
	ct.Partitions = append(ct.Partitions, cp)
	commit.Topics = append(commit.Topics, ct)
	commitResp, err := commit.RequestWith(ctx, dead)
	if err != nil {
		t.Fatalf("commit offsets into the transaction: %v", err)
	}
	for _, tp := range commitResp.Topics {
		for _, p := range tp.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				t.Fatalf("commit offsets into the transaction: %v", err)
			}
		}
	}

	// The successor, with the predecessor's transactional id.
	started := time.Now()
	startRedactor(t, brokers, svc, txnID)
	cr := readCommitted(t, brokers, clean, []string{"aborted"})
	testproc.Eventually(t, 90*time.Second, "every raw record on the clean topic", func() bool {
		distinct, _ := cr.snapshot()
		return distinct >= n
	})
	took := time.Since(started)
	t.Logf("redactor resumed past a pending transaction in %s", took.Round(time.Millisecond))
	// The predecessor's transaction times out after 2 minutes; a redactor
	// waiting for it could not have finished within the 90 s above. Tell
	// the fix from that failure with room for a loaded machine.
	if took > 45*time.Second {
		t.Fatalf("redactor took %s to resume past a pending transaction (its timeout is 2m)", took)
	}
	distinct, total := cr.snapshot()
	if distinct != n || total != n {
		t.Fatalf("clean topic: %d records, %d distinct, want each of %d once (the pending offsets were aborted, so all are processed)", total, distinct, n)
	}
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if len(cr.leaks) > 0 {
		t.Fatalf("the predecessor's aborted record reached a read-committed reader")
	}
}
