package replayer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// A live replayer reads committed: the records of an aborted transaction (a
// redactor killed mid-transaction, whose successor writes them again) are
// never sent to the shadow.
func TestLiveSkipsAbortedTransactions(t *testing.T) {
	brokers := kafkatest.Embedded(t, "svc", 1)
	const topic = "mirror.clean.svc"
	kafkatest.WriteTxn(t, brokers, topic, false, "aborted-1", "aborted-2", "aborted-3")
	kafkatest.WriteTxn(t, brokers, topic, true, "committed-1", "committed-2", "committed-3")

	var mu sync.Mutex
	var got []string
	arrived := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("X-Mirrorline-Id"))
		mu.Unlock()
		arrived <- struct{}{}
	}))
	defer srv.Close()
	s, err := NewSender(srv.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	l := NewLive(s, "svc", Concurrency(1))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, l.ClientOpts("mirrorline-replay-svc", topic, true)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, cl) }()
	defer func() { cancel(); <-done }()

	// One partition, in order: an aborted record would arrive before the
	// committed ones.
	deadline := time.After(30 * time.Second)
	for n := 0; n < 3; {
		select {
		case <-arrived:
			mu.Lock()
			last := got[len(got)-1]
			mu.Unlock()
			if strings.HasPrefix(last, "committed-") {
				n++
			}
		case <-deadline:
			t.Fatalf("the committed records did not all arrive within 30s; got %v", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, " ") != "committed-1 committed-2 committed-3" {
		t.Fatalf("the shadow received %v; want the three committed records only", got)
	}
}

// Run on the stage runtime: an undecodable record is counted in the
// replayer's errors{reason="decode"} and the runtime's undecodable records,
// never sent nor holding its partition back; the shadow records are
// published, and on stop the group's offsets are committed past every
// record, the runtime's metrics labelled stage="replayer".
func TestLiveRunCommitsPastUndecodable(t *testing.T) {
	brokers := kafkatest.Embedded(t, "svc", 1)
	const topic, group = "mirror.clean.svc", "mirrorline-replay-svc"
	kafkatest.WriteTxn(t, brokers, topic, true, "r1")
	pcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	if err := pcl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Key: []byte("c"), Value: []byte{0xff, 0xff}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	kafkatest.WriteTxn(t, brokers, topic, true, "r2")

	arrived := make(chan string, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		arrived <- r.Header.Get("X-Mirrorline-Id")
	}))
	defer srv.Close()
	s, err := NewSender(srv.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	l := NewLive(s, "svc", WithMetrics(m))
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, l.ClientOpts(group, topic, true)...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, cl) }()
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < 2 {
		select {
		case id := <-arrived:
			got = append(got, id)
		case <-deadline:
			cancel()
			t.Fatalf("requests %v within 30s, want r1 and r2", got)
		}
	}
	if strings.Join(got, " ") != "r1 r2" {
		t.Fatalf("requests %v, want r1 r2", got)
	}
	kafkatest.ReadExchanges(t, brokers, "mirror.shadow.svc", 2, 30*time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	if n := testutil.ToFloat64(m.Errors.WithLabelValues("decode")); n != 1 {
		t.Errorf("errors{reason=decode} = %v, want 1", n)
	}
	if n := testutil.ToFloat64(m.Stage.Undecodable); n != 1 {
		t.Errorf("mirrorline_stage_undecodable_records_total = %v, want 1", n)
	}
	if n, err := testutil.GatherAndCount(reg, "mirrorline_stage_commits_total"); err != nil || n == 0 {
		t.Errorf("mirrorline_stage_commits_total not registered: %d series, %v", n, err)
	}
	adm := kadm.NewClient(pcl)
	offs, err := adm.FetchOffsets(context.Background(), group)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := offs.Lookup(topic, 0)
	e, _ := end.Lookup(topic, 0)
	// The log ends with r2 and its transaction's commit marker.
	if want := e.Offset - 1; o.At != want {
		t.Fatalf("group committed up to %d, want %d: past r2, behind the undecodable record", o.At, want)
	}
}
