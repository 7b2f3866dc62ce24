package faults

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// killOnWrite is a kgo hook that runs kill once, synchronously, right after
// the client has written its first request with the given key: a broker
// crash at a chosen step of a transaction.
type killOnWrite struct {
	key   int16
	kill  func() error
	once  sync.Once
	fired chan struct{}
	err   error
}

func (k *killOnWrite) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key != k.key || err != nil {
		return
	}
	k.once.Do(func() {
		k.err = k.kill()
		close(k.fired)
	})
}

// The broker crashes (SIGKILL) while the redactor ends a transaction, at the
// step named by the case, and is restarted on its data (about ten seconds
// down, a routine broker restart). The redactor must ride it out: it keeps
// running, and every raw record reaches the clean topic exactly once
// (read_committed). A live replayer downstream keeps going too and replays
// every clean record at least once.
func TestRedactorBrokerCrashAtCommit(t *testing.T) {
	b := startBroker(t, 19530)
	brokers := []string{b.Addr}
	for _, tc := range []struct {
		name string
		key  int16
	}{
		// The offsets of the transaction are sent to the group coordinator.
		{"TxnOffsetCommit", (&kmsg.TxnOffsetCommitRequest{}).Key()},
		// The commit itself: the broker may die before or after it applies it.
		{"EndTxn", (&kmsg.EndTxnRequest{}).Key()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.Up(t) // in case an earlier case failed with the broker down
			svc := "redact-" + tc.name
			createTopics(t, brokers, svc, 3, 1)
			kill := &killOnWrite{key: tc.key, fired: make(chan struct{}), kill: func() error {
				_, err := tryScript(time.Minute, "stop", append(b.args(), "--kill")...)
				return err
			}}
			rm, rs := startRedactor(t, brokers, svc, "faults-"+svc, kgo.WithHooks(kill))
			lm, ls := startLive(t, brokers, svc, newPrimary(t).URL)

			const n = 3000
			produced := produceRaw(t, brokers, svc, n)
			select {
			case <-kill.fired:
			case <-time.After(time.Minute):
				t.Fatalf("the redactor sent no %s within a minute", tc.name)
			}
			if kill.err != nil {
				t.Fatal(kill.err)
			}
			killedAt := time.Now()
			b.Up(t)
			t.Logf("broker killed after the redactor's first %s, back after %s", tc.name, time.Since(killedAt).Round(time.Millisecond))
			select {
			case err := <-produced:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("raw records not all produced within 2 minutes")
			}

			raw := broker.Topic(broker.Raw, svc)
			testproc.Eventually(t, 90*time.Second, "the redactor caught up with the raw topic", func() bool {
				rs.Running(t)
				return groupCaughtUp(t, admin(t, brokers), redactor.DefaultGroup(svc), raw)
			})
			rawIDs := readAll(t, brokers, raw)
			if len(rawIDs) != n {
				t.Fatalf("raw topic holds %d distinct records, want %d", len(rawIDs), n)
			}
			clean := kafkatest.ReadCommittedAll(t, brokers, broker.Topic(broker.Clean, svc), 3)
			checkExactlyOnce(t, "clean topic (read_committed)", rawIDs, clean)

			testproc.Eventually(t, 90*time.Second, "the live replayer caught up with the clean topic", func() bool {
				ls.Running(t)
				return groupCaughtUp(t, admin(t, brokers), replayer.DefaultGroup(svc), broker.Topic(broker.Clean, svc))
			})
			again := checkAtLeastOnce(t, "shadow topic", clean, readAll(t, brokers, broker.Topic(broker.Shadow, svc)))
			t.Logf("%d raw records on the clean topic exactly once (transactions committed %d, aborted %d); live replayer sent %d, so %d records were replayed again",
				n, count(rm.Transactions.WithLabelValues("committed")), count(rm.Transactions.WithLabelValues("aborted")), count(lm.Sent.WithLabelValues("2xx")), again)
		})
	}
}

// produceRaw writes n exchanges to the raw topic of service in batches of
// 100, paced like a live source, and reports the outcome on the channel.
func produceRaw(t *testing.T, brokers []string, service string, n int) <-chan error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += 100 {
			var recs []*kgo.Record
			for j := i; j < min(i+100, n); j++ {
				ex := &mlv1.Exchange{
					Id: fmt.Sprintf("%s-%05d", service, j), Service: service, ConnectionId: fmt.Sprintf("conn-%d", j%37),
					Source: mlv1.Source_SOURCE_PROXY, CaptureTimeNs: time.Now().UnixNano(),
					Request:  &mlv1.Request{Method: "GET", Url: fmt.Sprintf("/item/%d", j)},
					Response: &mlv1.Response{Status: 200, Body: []byte("ok")},
				}
				v, _ := proto.Marshal(ex)
				recs = append(recs, &kgo.Record{Topic: broker.Topic(broker.Raw, service), Key: []byte(ex.ConnectionId), Value: v})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err := cl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				done <- fmt.Errorf("produce raw records: %w", err)
				return
			}
			time.Sleep(10 * time.Millisecond) // the source's pace, not synchronisation
		}
		done <- nil
	}()
	return done
}
