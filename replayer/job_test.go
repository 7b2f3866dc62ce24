package replayer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A window job that cannot run is refused before Kafka is asked, with an
// error naming the flag and marked ErrInvalidJob (exit code 2).
func TestCheckJob(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	base := func() JobSpec {
		return JobSpec{
			Service: "s", From: "-1h", MaxRate: "10000/s", MaxLag: time.Second, Workers: 1,
			DryRun: true, ProgressInterval: time.Second, Timeout: time.Second,
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*JobSpec)
		want string // error prefix; "" accepts
	}{
		{"dry run", func(*JobSpec) {}, ""},
		{"no from", func(s *JobSpec) { s.From = "" }, "from: required for a window replay"},
		{"from after to", func(s *JobSpec) { s.To = "-2h" }, "from: "},
		{"before the epoch", func(s *JobSpec) { s.From = "1969-12-31T23:59:59Z"; s.To = "1970-01-01T00:00:01Z" }, "from: 1969-12-31T23:59:59Z is 1969-12-31T23:59:59Z, before 1970-01-01T00:00:00Z"},
		{"to in the future", func(s *JobSpec) { s.To = "+1h" }, "to: "},
		{"rate above the cap", func(s *JobSpec) { s.Rate = "500/s"; s.MaxRate = "100/s" }, "rate: rate 500/s goes up to 500/s, above --max-rate 100/s"},
		{"bad cap", func(s *JobSpec) { s.MaxRate = "0/s" }, "max-rate: "},
		{"max lag", func(s *JobSpec) { s.MaxLag = 0 }, "max-lag: must be positive, got 0s"},
		{"concurrency", func(s *JobSpec) { s.Concurrency = -1 }, "concurrency: must be positive, got -1"},
		{"workers", func(s *JobSpec) { s.Workers = 0 }, "workers: must be 1..10000, got 0"},
		{"worker", func(s *JobSpec) { s.Workers, s.Worker, s.Job = 2, 2, "j" }, "worker: must be 0..1 (--workers 2), got 2"},
		{"job", func(s *JobSpec) { s.Workers = 2 }, "job: required with --workers 2"},
		{"start-at", func(s *JobSpec) { s.StartAt = "noon" }, `start-at: "noon" is not RFC 3339`},
		{"start-delay", func(s *JobSpec) { s.StartDelay = -time.Second }, "start-delay: must not be negative"},
		{"error rate", func(s *JobSpec) { s.MaxErrorRate = "2" }, `max-error-rate: "2": an error rate is from 0 to 1`},
		{"progress interval", func(s *JobSpec) { s.ProgressInterval = 0 }, "progress-interval: must be positive, got 0s"},
		{"target required", func(s *JobSpec) { s.DryRun = false }, "target: required (or --dry-run)"},
		{"timeout", func(s *JobSpec) { s.Target = "http://127.0.0.1:9"; s.Timeout = 0 }, "timeout: must be positive, got 0s"},
		{"target not allowed", func(s *JobSpec) { s.Target = "http://10.1.2.3:9" }, "target "},
		{"target allowed", func(s *JobSpec) { s.Target = "http://10.1.2.3:9"; s.AllowTargets = []string{"10.0.0.0/8"} }, ""},
		{"trusted target", func(s *JobSpec) { s.Target = "http://10.1.2.3:9"; s.TrustedTarget = "http://10.1.2.3:9" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := base()
			tc.edit(&spec)
			j, err := checkJob(spec, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidJob) {
				t.Errorf("%v is not marked ErrInvalidJob", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %q, want prefix %q", err, tc.want)
			}
			_ = j
		})
	}
}

// What the spec leaves out takes the window defaults: the in-flight cap of
// window replays, --to now (as the job's parameters), the clean topic, a
// job name from the service and the time.
func TestCheckJobDefaults(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	j, err := checkJob(JobSpec{Service: "pay", From: "-1h", MaxRate: "10000/s", MaxLag: time.Second, Workers: 1, DryRun: true, ProgressInterval: time.Second}, now)
	if err != nil {
		t.Fatal(err)
	}
	if j.concurrency != DefaultInFlight || j.spec.To != "now" || j.spec.Topic != "mirror.clean.pay" ||
		j.spec.Job != "replay-pay-20260301T120000.000Z" || j.maxErrRate != 1 || !j.to.Equal(now) {
		t.Fatalf("defaults: concurrency %d, to %q (%s), topic %q, job %q, max error rate %v", j.concurrency, j.spec.To, j.to, j.spec.Topic, j.spec.Job, j.maxErrRate)
	}
}
