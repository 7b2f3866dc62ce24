package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// The live --max-rate checks hold under a loaded CI machine: the cap lets
// 401 requests go in any 2 s (a 1-request burst); a request stalled between
// the limiter and the shadow arrives late and bunches with the next (up to
// 416 arrivals in 2 s were measured on a loaded 2-core machine), so up to
// 440 are allowed in a 2 s window of arrivals: a replayer without the cap
// sends thousands per second on a backlog, two replayers each taking the
// whole cap 800 per 2 s. Over the whole run, where stalls even out, the rate
// must be at most 210/s (200/s + 5 %).
const (
	maxRateRecords = 1500 // about 8 s at 200/s; 5,000 would take 25 s for the same check
	maxRatePerSec  = 200
	maxRateWindow  = 2 * time.Second
	maxRateInWin   = 440 // 200/s × 2 s + 10 %
	maxRateOverall = 210.0
)

// backlog writes maxRateRecords records to the clean topic, over its
// partitions, and returns the shadow that timestamps their arrivals.
func backlog(t *testing.T, topic string, partitions int32) *shadowServer {
	t.Helper()
	writeBacklog(t, topic, partitions)
	return newShadowServer(t, 0, 0)
}

// writeBacklog writes maxRateRecords records to the clean topic, over its
// partitions.
func writeBacklog(t *testing.T, topic string, partitions int32) {
	t.Helper()
	now := time.Now()
	recs := make([]*kgo.Record, 0, maxRateRecords)
	for i := range maxRateRecords {
		recs = append(recs, capture(t, topic, fmt.Sprintf("r-%d", i), int32(i)%partitions, now))
	}
	produceRecords(t, recs)
}

// liveMaxRate starts `replay --live --start earliest --max-rate 200/s` in
// group and returns its metrics address and output.
func liveMaxRate(t *testing.T, svc, group, target string) (string, *testproc.Output) {
	t.Helper()
	metrics := testproc.FreeAddr(t)
	out := startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}, "replay", "--live", "--service", svc,
		"--target", target, "--group", group, "--start", "earliest", "--max-rate", fmt.Sprintf("%d/s", maxRatePerSec),
		"--metrics-addr", metrics)
	return metrics, out
}

// metricSum is the sum of the series of name at addr (-1: not scraped).
func metricSum(addr, name string) float64 {
	e, err := scrapeMetrics(addr)
	if err != nil {
		return -1
	}
	sum := 0.0
	for _, s := range e.find(name) {
		sum += s.value
	}
	return sum
}

// checkMaxRate waits for every record at the shadow and checks its arrivals
// kept to the cap.
func checkMaxRate(t *testing.T, shadow *shadowServer, out fmt.Stringer) {
	t.Helper()
	testproc.Eventually(t, 90*time.Second, fmt.Sprintf("all %d records replayed", maxRateRecords), func() bool {
		return len(shadow.received()) >= maxRateRecords
	})
	hits := shadow.received()
	if len(hits) != maxRateRecords {
		t.Fatalf("%d requests at the shadow, want %d\n%s", len(hits), maxRateRecords, out)
	}
	first, last := hits[0].at, hits[len(hits)-1].at
	busiest, from := 0, time.Duration(0)
	for i, j := 0, 0; i < len(hits); i++ {
		if hits[i].at.Sub(first) < time.Second {
			continue // the start: the burst token
		}
		for j < len(hits) && hits[j].at.Sub(hits[i].at) < maxRateWindow {
			j++
		}
		if n := j - i; n > busiest {
			busiest, from = n, hits[i].at.Sub(first)
		}
	}
	took := last.Sub(first)
	rate := float64(len(hits)-1) / took.Seconds()
	t.Logf("%d records in %s: %.1f/s overall, busiest %s window %d requests (at +%s)", len(hits), took.Round(time.Millisecond), rate, maxRateWindow, busiest, from.Round(time.Millisecond))
	if busiest > maxRateInWin {
		t.Errorf("%d requests arrived within %s (from +%s) under --max-rate %d/s; want at most %d", busiest, maxRateWindow, from, maxRatePerSec, maxRateInWin)
	}
	if rate > maxRateOverall {
		t.Errorf("%d requests in %s: %.1f/s under --max-rate %d/s; want at most %.0f/s", len(hits), took, rate, maxRatePerSec, maxRateOverall)
	}
}

// `replay --live --start earliest --max-rate 200/s` against the real broker,
// the built binary, and a backlog already in mirror.clean.S: the replayer
// catches up no faster than the cap (the shadow timestamps each arrival), and
// it catches up (every record arrives); the wait is counted.
func TestReplayLiveMaxRate(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	shadow := backlog(t, topic, 2)
	metrics, out := liveMaxRate(t, svc, "maxrate-"+svc, shadow.URL)
	checkMaxRate(t, shadow, out)
	if s := metricSum(metrics, "mirrorline_replayer_throttled_seconds_total"); s <= 0 {
		t.Errorf("mirrorline_replayer_throttled_seconds_total = %v, want > 0 (the backlog waited for the cap)", s)
	}
}

// Two live replayers of one job (one consumer group, 4 partitions) share
// --max-rate 200/s: each takes 200/s × its partitions / 4, so together they
// catch the backlog up no faster than one would, and both send. The backlog
// is written once both hold partitions (a lone first member would take it
// all into its queue, and hand revoked partitions over only once their
// queued records are sent).
func TestReplayLiveMaxRateSharedByGroup(t *testing.T) {
	svc, topic := replaySetup(t, 4)
	group := "maxrate-" + svc
	shadow := newShadowServer(t, 0, 0)
	m1, out1 := liveMaxRate(t, svc, group, shadow.URL)
	m2, out2 := liveMaxRate(t, svc, group, shadow.URL)
	adm := kadm.NewClient(kafkatest.Client(t))
	testproc.Eventually(t, 60*time.Second, "both replayers holding partitions of "+topic, func() bool {
		gs, err := adm.DescribeGroups(t.Context(), group)
		if err != nil || gs.Error() != nil {
			return false
		}
		g := gs[group]
		if g.State != "Stable" || len(g.Members) != 2 {
			return false
		}
		for _, m := range g.Members {
			a, ok := m.Assigned.AsConsumer()
			if !ok || len(a.Topics) == 0 || len(a.Topics[0].Partitions) == 0 {
				return false
			}
		}
		return true
	})
	writeBacklog(t, topic, 4)
	checkMaxRate(t, shadow, outputs{out1, out2})
	for i, m := range []string{m1, m2} {
		if n := metricSum(m, "mirrorline_replayer_sent_total"); n <= 0 {
			t.Errorf("replayer %d sent %v requests, want some: the group's partitions were not shared", i+1, n)
		}
	}
}

// outputs prints the output of several processes, one after the other.
type outputs []*testproc.Output

func (o outputs) String() string {
	var b strings.Builder
	for i, out := range o {
		fmt.Fprintf(&b, "--- process %d\n%s\n", i+1, out)
	}
	return b.String()
}
