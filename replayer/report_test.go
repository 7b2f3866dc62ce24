package replayer

import (
	"bytes"
	"context"
	"flag"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/testproc"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenSummaries are summaries built from fixed inputs: by hand, judged,
// and from a dry run on a virtual clock.
func goldenSummaries(t *testing.T) map[string]*Summary {
	t.Helper()
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	nightly := &Summary{Job: "nightly", Instance: "h-1", Worker: 1, Workers: 2, Topic: "mirror.clean.s", Timing: "speed 5x",
		From: t0, To: t0.Add(15 * time.Minute), Started: t0.Add(time.Hour), Finished: t0.Add(time.Hour + 3*time.Minute),
		FirstSend: t0.Add(time.Hour + time.Second), LastSend: t0.Add(time.Hour + time.Second + 80400*time.Microsecond), LeadIn: 1,
		Target: "http://127.0.0.1:8082", Offsets: 12, Scheduled: 10, Sent: 9, Dropped: 1, Late: 2,
		Status: map[string]int64{"2xx": 8, "5xx": 1}, Errors: map[string]int64{"decode": 2, "build": 1},
		RequestErrors: map[string]int64{Reason5xx: 1},
		AskedRate:     100, AchievedRate: 99.5, PlannedSpan: 0.09, SendSpan: 0.0804,
		Latency: Quantiles{Count: 9, P50: 0.001, P90: 0.002, P99: 0.003, P999: 0.003, Max: 0.004}, ScheduleLag: Quantiles{Count: 9, Max: 0.012}}
	nightly.judge(0.05)

	failed := &Summary{Job: "canary", Instance: "h-2", Worker: 0, Workers: 1, Topic: "mirror.clean.s", Timing: "rate 500/s",
		From: t0, To: t0.Add(time.Minute), Started: t0, Finished: t0.Add(time.Second), FirstSend: t0, LastSend: t0.Add(10 * time.Millisecond),
		Target: "http://127.0.0.1:1", Offsets: 6, Scheduled: 6, Sent: 6, Status: map[string]int64{"error": 6},
		RequestErrors: map[string]int64{ReasonRefused: 4, ReasonTimeout: 2}, AskedRate: 500, AchievedRate: 500, PlannedSpan: 0.01, SendSpan: 0.01,
		Latency: Quantiles{Count: 6, P50: 0.0005, P90: 0.001, P99: 0.001, P999: 0.001, Max: 0.001}}
	failed.judge(0)

	// A dry run of a window that starts idle, on a virtual clock: every
	// time in the summary follows from the input.
	w := NewWindow(NewSliceSource(items(t0.Add(10*time.Minute+15*time.Second), 300, 2*time.Millisecond)), NewSchedule(Speed(1), t0, 1, 0), nil,
		WithClock(NewVirtualClock(time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC))), DryRun(true), Job("idle", "test"))
	idle, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// As the replay command completes it.
	idle.Topic, idle.From, idle.To, idle.Timing = "mirror.clean.s", t0, t0.Add(15*time.Minute), "speed 1x"
	idle.Worker, idle.Workers = 0, 1
	return map[string]*Summary{"nightly": nightly, "failed": failed, "dryrun_idle": idle}
}

// The window replay's summary, text and JSON, byte for byte:
// go test ./replayer -run TestSummaryGolden -update rewrites
// testdata/summary_*.golden.
func TestSummaryGolden(t *testing.T) {
	for name, sum := range goldenSummaries(t) {
		t.Run(name, func(t *testing.T) {
			var text, js bytes.Buffer
			if err := sum.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if err := sum.WriteJSON(&js); err != nil {
				t.Fatal(err)
			}
			testproc.Golden(t, filepath.Join("testdata", "summary_"+name+".txt.golden"), text.Bytes(), *update)
			testproc.Golden(t, filepath.Join("testdata", "summary_"+name+".json.golden"), js.Bytes(), *update)
		})
	}
}
