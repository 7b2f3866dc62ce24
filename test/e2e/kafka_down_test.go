package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// privateBroker starts a broker of this test's own (so it can be stopped) with
// the project's script and returns its address and a stop function.
func privateBroker(t *testing.T, port int) (string, func()) {
	t.Helper()
	if _, err := exec.LookPath("java"); err != nil && os.Getenv("KAFKA_BROKERS") != "" {
		t.Skip("needs java to run a private broker; KAFKA_BROKERS points at a shared one that must not be stopped")
	}
	dir := filepath.Join(t.TempDir(), "kafka")
	args := []string{"--port", fmt.Sprint(port), "--dir", dir}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "../kafka/start", args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("start private broker: %v\n%s", err, msg)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		if out, err := exec.Command("../kafka/stop", args...).CombinedOutput(); err != nil {
			t.Errorf("stop private broker: %v\n%s", err, out)
		}
	}
	t.Cleanup(stop)
	return strings.TrimSpace(string(out)), stop
}

// With Kafka stopped the primary keeps answering every request, captures are
// dropped and counted, and nothing waits on Kafka.
func TestPrimaryAnswersWithKafkaStopped(t *testing.T) {
	addr, stop := privateBroker(t, 19392)
	cfg := broker.Config{Brokers: []string{addr}}
	adm := kadm.NewClient(kafkatest.Client(t, kgo.SeedBrokers(addr)))
	if _, err := broker.CreateTopics(context.Background(), adm, "down", broker.TopicSpec{Partitions: 2, Replication: 1}); err != nil {
		t.Fatal(err)
	}
	primary := newRecorder(t, http.StatusOK, "primary")
	const queue = 50
	proxyAddr, m := runProxy(t, cfg, "down", primary.URL, kgo.MaxBufferedRecords(queue), kgo.RecordRetries(1<<30))

	get := func(i int) {
		t.Helper()
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(fmt.Sprintf("http://%s/item/%d", proxyAddr, i))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "primary" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
	}
	for i := 0; i < 20; i++ {
		get(i)
	}
	kafkatest.ReadExchanges(t, []string{addr}, broker.Topic(broker.Raw, "down"), 20, 30*time.Second)
	eventually(t, 30*time.Second, "20 acknowledged", func() bool { return testutil.ToFloat64(m.Published) == 20 })

	stop()
	const n = 500
	start := time.Now()
	for i := 0; i < n; i++ {
		get(1000 + i)
	}
	elapsed := time.Since(start)
	t.Logf("%d requests answered by the primary with Kafka stopped in %s", n, elapsed)
	if got := len(primary.requests()); got != 20+n {
		t.Fatalf("primary saw %d requests, want %d", got, 20+n)
	}
	dropped := m.Dropped.WithLabelValues(collector.DropQueueFull)
	eventually(t, 30*time.Second, "drops counted", func() bool { return testutil.ToFloat64(dropped) == n-queue })
	if got := testutil.ToFloat64(m.Captured); got != 20+n {
		t.Fatalf("captured = %v, want %d", got, 20+n)
	}
}
