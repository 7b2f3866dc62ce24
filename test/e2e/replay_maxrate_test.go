package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// `replay --live --start earliest --max-rate 200/s` against the real broker,
// the built binary, and a backlog already in mirror.clean.S: the replayer
// catches up no faster than the cap (the shadow timestamps each arrival), and
// it catches up (every record arrives). 1,500 records keep the test to about
// 8 s of sending; 5,000 would take 25 s for the same check.
//
// The bounds hold under a loaded CI machine: the cap lets 400 requests go in
// any 2 s after the first (a 1-request burst); a request stalled between the
// limiter and the shadow arrives late and bunches with the next, so up to
// 420 are allowed in a 2 s window of arrivals, which a replayer without the
// cap (thousands per second on a backlog) is far above; over the whole run
// the rate must be at most 210/s.
func TestReplayLiveMaxRate(t *testing.T) {
	const (
		records = 1500
		perSec  = 200
		window  = 2 * time.Second
		maxIn   = 420 // per window: 200/s × 2 s + 5 %
		maxRate = 210.0
	)
	svc, topic := replaySetup(t, 2)
	now := time.Now()
	recs := make([]*kgo.Record, 0, records)
	for i := range records {
		recs = append(recs, capture(t, topic, fmt.Sprintf("r-%d", i), int32(i%2), now))
	}
	produceRecords(t, recs)
	shadow := newShadowServer(t, 0, 0)
	metrics := testproc.FreeAddr(t)
	out := startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}, "replay", "--live", "--service", svc,
		"--target", shadow.URL, "--group", "maxrate-"+svc, "--start", "earliest", "--max-rate", fmt.Sprintf("%d/s", perSec),
		"--metrics-addr", metrics)

	testproc.Eventually(t, 90*time.Second, fmt.Sprintf("all %d records replayed", records), func() bool {
		return len(shadow.received()) >= records
	})
	hits := shadow.received()
	if len(hits) != records {
		t.Fatalf("%d requests at the shadow, want %d\n%s", len(hits), records, out)
	}
	first, last := hits[0].at, hits[len(hits)-1].at
	busiest, from := 0, time.Duration(0)
	for i, j := 0, 0; i < len(hits); i++ {
		if hits[i].at.Sub(first) < time.Second {
			continue // the start: the burst token
		}
		for j < len(hits) && hits[j].at.Sub(hits[i].at) < window {
			j++
		}
		if n := j - i; n > busiest {
			busiest, from = n, hits[i].at.Sub(first)
		}
	}
	took := last.Sub(first)
	rate := float64(len(hits)-1) / took.Seconds()
	t.Logf("%d records in %s: %.1f/s overall, busiest %s window %d requests (at +%s)", len(hits), took.Round(time.Millisecond), rate, window, busiest, from.Round(time.Millisecond))
	if busiest > maxIn {
		t.Errorf("%d requests arrived within %s (from +%s) under --max-rate %d/s; want at most %d", busiest, window, from, perSec, maxIn)
	}
	if rate > maxRate {
		t.Errorf("%d requests in %s: %.1f/s under --max-rate %d/s; want at most %.0f/s", len(hits), took, rate, perSec, maxRate)
	}
	throttled := -1.0
	if e, err := scrapeMetrics(metrics); err == nil {
		for _, s := range e.find("mirrorline_replayer_throttled_seconds_total") {
			throttled = s.value
		}
	}
	if throttled <= 0 {
		t.Errorf("mirrorline_replayer_throttled_seconds_total = %v, want > 0 (the backlog waited for the cap)", throttled)
	}
}
