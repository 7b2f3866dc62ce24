package faults

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// arrivals records when requests reached a shadow.
type arrivals struct {
	mu sync.Mutex
	at []time.Time
}

func (a *arrivals) add(t time.Time) {
	a.mu.Lock()
	a.at = append(a.at, t)
	a.mu.Unlock()
}

// most returns the most requests that arrived within any window of length w.
func (a *arrivals) most(w time.Duration) int {
	a.mu.Lock()
	at := slices.Clone(a.at)
	a.mu.Unlock()
	slices.SortFunc(at, time.Time.Compare)
	most, lo := 0, 0
	for hi := range at {
		for at[hi].Sub(at[lo]) >= w {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	return most
}

// refusedShadow is a shadow that is down: its port refuses connections.
func refusedShadow(t *testing.T) (string, *arrivals) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr, nil
}

// hangingShadow is a shadow that accepts requests and never answers; it
// records when each request arrived.
func hangingShadow(t *testing.T) (string, *arrivals) {
	a := &arrivals{}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.add(time.Now())
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	return srv.URL, a
}

// With the shadow down, or hanging past the request timeout, the live
// replayer keeps consuming: every record is sent once, counted as
// sent_total{status_class="error"}, its (failed) response is published to the
// shadow topic, and the group commits to the end of the topic, so consumer
// lag does not grow. At most --concurrency requests are in flight, and the
// heap stays bounded.
func TestShadowDownOrHanging(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test; skipped with -short")
	}
	const (
		n       = 2000
		conc    = 100
		timeout = 200 * time.Millisecond
		// heapBound is how much the heap in use may grow over the run.
		heapBound = 64 << 20
	)
	for _, tc := range []struct {
		name   string
		shadow func(*testing.T) (string, *arrivals)
		// ordered: one connection's requests in order (the default), or
		// spread over every slot (--order none).
		ordered bool
	}{
		{"refused", refusedShadow, true},
		{"hanging", hangingShadow, true},
		{"hanging-unordered", hangingShadow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := kafkatest.Config(t)
			svc := kafkatest.Service(t, 4)
			clean, shadowTopic := broker.Topic(broker.Clean, svc), broker.Topic(broker.Shadow, svc)
			want := produceClean(t, svc, n)
			target, inflight := tc.shadow(t)

			s, err := replayer.NewSender(target, conc, replayer.Timeout(timeout))
			if err != nil {
				t.Fatal(err)
			}
			group := "faults-" + svc
			m := replayer.NewMetrics(nil)
			live := replayer.NewLive(s, svc, replayer.WithMetrics(m), replayer.Concurrency(conc), replayer.Order(tc.ordered))
			cl, err := broker.NewClient(cfg, live.ClientOpts(group, clean, true)...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.Close)

			adm := admin(t, cfg.Brokers)
			base := heapInUse()
			samples := sample(t, func() (uint64, int64) { return heapInUse(), committed(adm, group, clean) })
			start := time.Now()
			serve(t, "live replayer", func(ctx context.Context) error { return live.Run(ctx, cl) })
			sentErr := m.Sent.WithLabelValues("error")
			testproc.Eventually(t, 2*time.Minute, fmt.Sprintf("%d records sent and counted as errors", n), func() bool { return count(sentErr) >= n })
			took := time.Since(start)
			testproc.Eventually(t, 30*time.Second, "the group committed every record", func() bool { return groupCaughtUp(t, adm, group, clean) })
			caughtUp := time.Since(start)
			heaps, commits := samples()

			if got := count(sentErr); got != n {
				t.Errorf("sent_total{status_class=error} = %d, want %d", got, n)
			}
			for _, class := range []string{"2xx", "3xx", "4xx", "5xx"} {
				if got := count(m.Sent.WithLabelValues(class)); got != 0 {
					t.Errorf("sent_total{status_class=%s} = %d, want 0", class, got)
				}
			}
			checkExactlyOnce(t, "shadow topic", want, readAll(t, cfg.Brokers, shadowTopic))

			var most uint64
			for _, h := range heaps {
				most = max(most, h)
			}
			grew := int64(most) - int64(base)
			if grew > heapBound {
				t.Errorf("heap in use grew by %d MiB over the run, want < %d MiB", grew>>20, heapBound>>20)
			}
			// Commits happen as batches complete (every 5 s, kgo's auto-commit
			// interval for marked offsets), not only at the end: a run longer
			// than two intervals has a sample in between with part of the
			// topic committed.
			mid := false
			for _, c := range commits {
				mid = mid || (c > 0 && c < n)
			}
			if took > 10*time.Second && !mid {
				t.Errorf("no commit seen during a %s run (samples %v)", took.Round(time.Millisecond), commits)
			}
			t.Logf("%d records in %s (all sent once, errors counted, responses published), group at the end %s after the start; heap in use %d MiB at the start, at most +%d MiB; %d commit samples, mid-run commit seen %v",
				n, took.Round(time.Millisecond), caughtUp.Round(time.Millisecond), base>>20, max(grew, 0)>>20, len(commits), mid)
			if inflight != nil {
				// Every request to a hanging shadow holds its slot for the whole
				// timeout, so with at most conc in flight the n records take at
				// least n/conc timeouts: an exact bound that a loaded machine
				// (which only slows the run) cannot break, and that twice the
				// slots (half the time) or no limit (one timeout) would.
				if floor := time.Duration(n/conc) * timeout; took < floor {
					t.Errorf("%d requests to a hanging shadow done in %s, want at least %s (%d timeouts of %s with --concurrency %d)", n, took.Round(time.Millisecond), floor, n/conc, timeout, conc)
				}
				// How bunched the arrivals were is logged, not asserted: the
				// server's handlers take the times, and a loaded machine runs
				// them late and together (153 within 100 ms was seen with the
				// floor above met), so the count measures the machine.
				most := inflight.most(timeout / 2)
				t.Logf("at most %d requests reached the shadow within %s by its clock (--concurrency %d); mean in flight %.1f (%.0f records/s, at most %.0f/s with every slot busy)",
					most, timeout/2, conc, float64(n)*timeout.Seconds()/took.Seconds(), float64(n)/took.Seconds(), float64(conc)/timeout.Seconds())
			}
		})
	}
}

// produceClean writes n exchanges with 1000 connection ids to the clean topic
// of svc and returns their ids.
func produceClean(t *testing.T, svc string, n int) map[string]bool {
	t.Helper()
	prod := kafkatest.Client(t)
	want := map[string]bool{}
	var recs []*kgo.Record
	for i := range n {
		ex := &mlv1.Exchange{
			Id: fmt.Sprintf("shadow-%05d", i), Service: svc, ConnectionId: fmt.Sprintf("conn-%d", i%1000),
			Source: mlv1.Source_SOURCE_PROXY, CaptureTimeNs: time.Now().UnixNano(),
			Request:  &mlv1.Request{Method: "GET", Url: fmt.Sprintf("/item/%d", i), Headers: []*mlv1.Header{{Name: "Accept", Value: "*/*"}}},
			Response: &mlv1.Response{Status: 200, Body: []byte("ok")},
		}
		v, err := proto.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		want[ex.Id] = true
		recs = append(recs, &kgo.Record{Topic: broker.Topic(broker.Clean, svc), Key: []byte(ex.ConnectionId), Value: v})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce to the clean topic: %v", err)
	}
	return want
}

// heapInUse returns runtime.MemStats.HeapInuse after a garbage collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// committed returns the offsets group has committed on topic, summed over
// the partitions (-1 if they cannot be read).
func committed(adm *kadm.Client, group, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err != nil {
		return -1
	}
	var sum int64
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

// sample calls f every 250ms until the returned function is called, which
// returns what f returned.
func sample(t *testing.T, f func() (uint64, int64)) func() ([]uint64, []int64) {
	var (
		mu    sync.Mutex
		heaps []uint64
		comms []int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			h, c := f()
			mu.Lock()
			heaps, comms = append(heaps, h), append(comms, c)
			mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	stop := func() ([]uint64, []int64) {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return heaps, comms
	}
	t.Cleanup(func() { stop() })
	return stop
}
