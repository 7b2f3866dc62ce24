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

// `replay --live --skip-older-than` against the real broker: a replayer that
// starts behind (a backlog captured an hour ago) sheds it and shadows only
// the recent traffic; the skipped records are counted and committed, so the
// group has no lag left.
func TestReplayLiveSkipsOldRecords(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	now := time.Now()
	var recs []*kgo.Record
	const old, recent = 200, 50
	for i := range old {
		recs = append(recs, capture(t, topic, fmt.Sprintf("old-%d", i), int32(i%2), now.Add(-time.Hour)))
	}
	for i := range recent {
		recs = append(recs, capture(t, topic, fmt.Sprintf("new-%d", i), int32(i%2), now))
	}
	produceRecords(t, recs)
	shadow := newShadowServer(t, 0, 0)
	metrics := testproc.FreeAddr(t)
	group := "live-" + svc
	out := startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(kafkaBrokers, ",")}, "replay", "--live", "--service", svc,
		"--target", shadow.URL, "--group", group, "--start", "earliest", "--skip-older-than", "10m", "--metrics-addr", metrics)

	dropped := func() float64 {
		e, err := scrapeMetrics(metrics)
		if err != nil {
			return -1
		}
		for _, s := range e.find("mirrorline_replayer_dropped_total") {
			if s.labels["reason"] == "too_old" {
				return s.value
			}
		}
		return -1
	}
	adm := kadm.NewClient(kafkatest.Client(t))
	testproc.Eventually(t, 60*time.Second, "the recent records replayed, the old ones skipped and the group at the end", func() bool {
		if len(shadow.received()) < recent || dropped() < old {
			return false
		}
		lag, err := adm.Lag(t.Context(), group)
		if err != nil {
			return false
		}
		total := int64(0)
		lag.Each(func(l kadm.DescribedGroupLag) { total += l.Lag.Total() })
		return lag.Error() == nil && total == 0
	})
	hits := shadow.received()
	for _, h := range hits {
		if !strings.HasPrefix(h.id, "new-") {
			t.Fatalf("old record %s replayed\n%s", h.id, out)
		}
	}
	if len(hits) != recent || dropped() != old {
		t.Fatalf("%d replayed (want %d), dropped{too_old} %v (want %d)", len(hits), recent, dropped(), old)
	}
}
