package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// Scaling out (docs/capacity.md): N live replayers in one consumer group and
// N comparators in another, each its own process, share a 6-partition topic
// evenly (records per instance within ±10 % of an even share once every
// record is processed), the shadow gets every exchange exactly once, and
// every exchange is judged exactly once in mirror.diff.S for the live job.
func TestScaleReplayersAndComparatorsShareLoad(t *testing.T) {
	const (
		instances  = 3
		partitions = 6
		connsPer   = 4  // connections (record keys) per partition
		perConn    = 25 // records per connection
		total      = partitions * connsPer * perConn
	)
	brokers := kafkatest.Brokers(t)
	kcfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, partitions)
	clean := broker.Topic(broker.Clean, svc)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	adm := kadm.NewClient(kafkatest.Client(t))

	// Keys spread evenly: connsPer keys for each partition under the default
	// (Kafka murmur2) key partitioner, which the replayer also uses for its
	// shadow records, so the primary and shadow of an exchange share a
	// partition number and one comparator sees both.
	part := kgo.StickyKeyPartitioner(nil).ForTopic(clean)
	keys := map[int][]string{}
	for i := 0; len(keys) < partitions || !evenKeys(keys, partitions, connsPer); i++ {
		if i > 100_000 {
			t.Fatal("could not spread keys over the partitions")
		}
		k := fmt.Sprintf("conn-%d", i)
		p := part.Partition(&kgo.Record{Key: []byte(k)}, partitions)
		if len(keys[p]) < connsPer {
			keys[p] = append(keys[p], k)
		}
	}

	sh := newScaleShadow(t)
	repGroup, cmpGroup := "scale-replay-"+svc, "scale-compare-"+svc
	repMetrics, cmpMetrics := make([]string, instances), make([]string, instances)
	for i := range instances {
		repMetrics[i] = testproc.FreeAddr(t)
		startML(t, env, "replay", "--live", "--service", svc, "--target", sh.URL, "--group", repGroup, "--start", "earliest",
			"--instance", fmt.Sprintf("replayer-%d", i), "--metrics-addr", repMetrics[i])
		cmpMetrics[i] = testproc.FreeAddr(t)
		startML(t, env, "compare", "--service", svc, "--group", cmpGroup, "--start", "earliest", "--prime", "off",
			"--join-window", "5s", "--metrics-addr", cmpMetrics[i])
	}

	// The assignment settles before any record is produced: every member of
	// both groups holds partitions.
	testproc.EventuallyEvery(t, 120*time.Second, 200*time.Millisecond, "both groups stable, every instance holding partitions", func() bool {
		return groupSpread(adm, repGroup, instances) && groupSpread(adm, cmpGroup, instances)
	})

	t0 := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	var recs []*kgo.Record
	n := 0
	for p := range partitions {
		for _, k := range keys[p] {
			for s := range perConn {
				recs = append(recs, scaleCapture(t, clean, k, n, s, t0.Add(time.Duration(n)*time.Microsecond)))
				n++
			}
		}
	}
	pcl := kafkatest.Client(t)
	pctx, pcancel := context.WithTimeout(context.Background(), 60*time.Second)
	if err := pcl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pcancel()

	sum := func(addrs []string, name string) ([]float64, float64) {
		per := make([]float64, len(addrs))
		all := 0.0
		for i, a := range addrs {
			e, err := scrapeMetrics(a)
			if err != nil {
				return nil, -1
			}
			for _, s := range e.find(name) {
				per[i] += s.value
			}
			all += per[i]
		}
		return per, all
	}
	testproc.EventuallyEvery(t, 180*time.Second, 250*time.Millisecond, "every record replayed and judged", func() bool {
		_, sent := sum(repMetrics, "mirrorline_replayer_sent_total")
		_, judged := sum(cmpMetrics, "mirrorline_comparator_exchanges_total")
		return sent >= total && judged >= total
	})

	// Exactly once: the shadow saw every id once; mirror.diff.S holds every id
	// once for the live job.
	if got := sh.counts(); len(got) != total {
		t.Errorf("shadow saw %d distinct exchanges, want %d", len(got), total)
	} else {
		for id, c := range got {
			if c != 1 {
				t.Errorf("shadow got %s %d times", id, c)
			}
		}
	}
	judged := map[string]int{}
	instOf := map[string]bool{}
	testproc.EventuallyEvery(t, 60*time.Second, 500*time.Millisecond, "every exchange in mirror.diff", func() bool {
		clear(judged)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := comparator.ReadDiffs(ctx, kcfg, broker.Topic(broker.Diff, svc), time.Time{}, 0, func(d *mlv1.Diff) {
			if d.GetShadowJob() == "" || d.GetShadowJob() == comparator.LiveJob {
				judged[d.GetId()]++
				instOf[d.GetShadowInstance()] = true
			}
		})
		return err == nil && len(judged) >= total
	})
	if len(judged) != total {
		t.Errorf("%d exchanges judged, want %d", len(judged), total)
	}
	for id, c := range judged {
		if c != 1 {
			t.Errorf("exchange %s judged %d times", id, c)
		}
	}
	if len(instOf) != instances {
		t.Errorf("diff records name replayer instances %v, want %d", instOf, instances)
	}

	// Even shares, once every record is processed.
	even := float64(total) / instances
	for _, c := range []struct {
		what, metric string
		addrs        []string
	}{
		{"replayer", "mirrorline_replayer_sent_total", repMetrics},
		{"comparator", "mirrorline_comparator_exchanges_total", cmpMetrics},
	} {
		per, all := sum(c.addrs, c.metric)
		if all != total {
			t.Errorf("%ss processed %v records in all, want %d", c.what, all, total)
		}
		for i, v := range per {
			if v < 0.9*even || v > 1.1*even {
				t.Errorf("%s %d processed %v records, want %v ±10%% (all: %v)", c.what, i, v, even, per)
			}
		}
		t.Logf("%ss: records per instance %v", c.what, per)
	}
}

// evenKeys reports whether keys holds want keys for each of n partitions.
func evenKeys(keys map[int][]string, n, want int) bool {
	for p := range n {
		if len(keys[p]) < want {
			return false
		}
	}
	return true
}

// groupSpread reports whether group is stable with members members, each
// holding at least one partition.
func groupSpread(adm *kadm.Client, group string, members int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return false
	}
	g, ok := gs[group]
	if !ok || g.Err != nil || g.State != "Stable" || len(g.Members) != members {
		return false
	}
	for _, m := range g.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			return false
		}
		held := 0
		for _, tp := range a.Topics {
			held += len(tp.Partitions)
		}
		if held == 0 {
			return false
		}
	}
	return true
}

// scaleCapture is a clean-topic record of GET /items/n on connection key,
// the primary having answered {"n":n}.
func scaleCapture(t *testing.T, topic, key string, n, seq int, at time.Time) *kgo.Record {
	t.Helper()
	ex := &mlv1.Exchange{
		Id: fmt.Sprintf("scale-%04d", n), ConnectionId: key, Sequence: uint64(seq + 1),
		CaptureTimeNs: at.UnixNano(), Source: mlv1.Source_SOURCE_PROXY,
		Request: &mlv1.Request{Method: "GET", Url: fmt.Sprintf("/items/%d", n), Host: "primary.example"},
		Response: &mlv1.Response{Status: 200, Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}},
			Body: []byte(fmt.Sprintf(`{"n":%d}`, n)), LatencyNs: int64(time.Millisecond)},
	}
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b, Timestamp: at}
}

// scaleShadow answers GET /items/N with {"n":N} and counts the exchange ids
// it receives.
type scaleShadow struct {
	*httptest.Server
	mu  sync.Mutex
	ids map[string]int
}

func newScaleShadow(t *testing.T) *scaleShadow {
	t.Helper()
	s := &scaleShadow{ids: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.ids[r.Header.Get(replayer.HeaderID)]++
		s.mu.Unlock()
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/items/%d", &n); err != nil {
			http.Error(w, "unknown", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"n":%d}`, n)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scaleShadow) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ids))
	for k, v := range s.ids {
		out[k] = v
	}
	return out
}
