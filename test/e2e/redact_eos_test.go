package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// committedReader collects every committed record of a topic by exchange id.
type committedReader struct {
	mu     sync.Mutex
	counts map[string]int
	leaks  []string
	total  int
}

func (c *committedReader) snapshot() (distinct, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.counts), c.total
}

func readCommitted(t *testing.T, brokers []string, topic string, forbidden []string) *committedReader {
	t.Helper()
	cr := &committedReader{counts: map[string]int{}}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				ex := &mlv1.Exchange{}
				if err := proto.Unmarshal(r.Value, ex); err != nil {
					t.Errorf("clean record does not decode: %v", err)
					return
				}
				cr.mu.Lock()
				cr.counts[ex.Id]++
				cr.total++
				for _, f := range forbidden {
					if strings.Contains(string(r.Value), f) {
						cr.leaks = append(cr.leaks, f)
					}
				}
				cr.mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	return cr
}

// startRedactor runs `mirrorline redact` as a process the test can kill.
func startRedactor(t *testing.T, brokers []string, svc, txnID string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(mlBin, "redact", "--service", svc, "--transactional-id", txnID,
		"--session-timeout", "6s", "--batch", "50", "--metrics-addr", "")
	cmd.Env = append(os.Environ(), "MIRRORLINE_BROKERS="+strings.Join(brokers, ","))
	out := &testproc.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("redactor output:\n%s", out)
		}
	})
	return cmd
}

// The redactor is killed (SIGKILL) mid-stream and restarted; the clean topic
// still holds every raw record exactly once, and none of their personal data.
func TestRedactorExactlyOnceAcrossKill(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 4)
	const n = 6000
	const card, email = "4111111111111111", "eos.person@example.com"
	clean := readCommitted(t, brokers, broker.Topic(broker.Clean, svc), []string{card, email, "secret-token"})

	// Produce raw records in the background at a steady pace so the kill lands
	// while records keep arriving.
	prod := kafkatest.Client(t)
	produced := make(chan error, 1)
	go func() {
		for i := 0; i < n; i += 100 {
			var recs []*kgo.Record
			for j := i; j < i+100; j++ {
				ex := &mlv1.Exchange{
					Id: fmt.Sprintf("eos-%05d", j), Service: svc, ConnectionId: fmt.Sprintf("conn-%d", j%37), Source: mlv1.Source_SOURCE_PROXY,
					CaptureTimeNs: time.Now().UnixNano(),
					Request: &mlv1.Request{Method: "POST", Url: fmt.Sprintf("/payments?n=%d", j),
						Headers: []*mlv1.Header{{Name: "Authorization", Value: "Bearer secret-token"}, {Name: "Content-Type", Value: "application/json"}},
						Body:    []byte(fmt.Sprintf(`{"n":%d,"card":{"number":"%s"},"email":"%s"}`, j, card, email))},
					Response: &mlv1.Response{Status: 201, Body: []byte(`{"ok":true}`), Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}}},
				}
				v, _ := proto.Marshal(ex)
				recs = append(recs, &kgo.Record{Topic: broker.Topic(broker.Raw, svc), Key: []byte(ex.ConnectionId), Value: v})
			}
			if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				produced <- err
				return
			}
			time.Sleep(20 * time.Millisecond) // pacing of the source, not synchronisation
		}
		produced <- nil
	}()

	txnID := "eos-" + svc
	a := startRedactor(t, brokers, svc, txnID)
	testproc.Eventually(t, 60*time.Second, "the first redactor to commit some records", func() bool {
		d, _ := clean.snapshot()
		return d >= 500
	})
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.Wait()
	killedAt, _ := clean.snapshot()
	t.Logf("killed the first redactor after %d committed records", killedAt)
	if killedAt >= n {
		t.Fatalf("the kill did not land mid-stream (%d of %d already done)", killedAt, n)
	}

	b := startRedactor(t, brokers, svc, txnID)
	if err := <-produced; err != nil {
		t.Fatalf("produce raw records: %v", err)
	}
	testproc.Eventually(t, 120*time.Second, "every record on the clean topic", func() bool {
		d, _ := clean.snapshot()
		return d >= n
	})
	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("restarted redactor did not exit cleanly: %v", err)
	}
	// The whole topic, read committed up to sentinels appended after the
	// redactor exited: nothing committed is missed, nothing more can appear.
	ids := kafkatest.ReadCommittedAll(t, brokers, broker.Topic(broker.Clean, svc), 4)
	clean.mu.Lock()
	defer clean.mu.Unlock()
	if len(clean.leaks) > 0 {
		t.Fatalf("personal data on the clean topic: %v", clean.leaks[:1])
	}
	total := 0
	for _, c := range ids {
		total += c
	}
	if len(ids) != n || total != n {
		t.Fatalf("clean topic: %d records, %d distinct; want exactly %d", total, len(ids), n)
	}
	for i := 0; i < n; i++ {
		if c := ids[fmt.Sprintf("eos-%05d", i)]; c != 1 {
			t.Fatalf("record eos-%05d is on the clean topic %d times", i, c)
		}
	}
}
