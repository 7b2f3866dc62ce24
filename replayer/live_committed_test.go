package replayer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

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
