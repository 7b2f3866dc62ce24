package replayer

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// runTruth replays n records at 500/s to target and returns the summary, its text and the metrics.
func runTruth(t *testing.T, target string, n int, opts ...Option) (*Summary, string, *Metrics) {
	t.Helper()
	s, err := NewSender(target, 4, Timeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	m := NewMetrics(prometheus.NewRegistry())
	opts = append([]Option{WithMetrics(m), Job("truth", "test"), Concurrency(4), MaxLag(time.Hour)}, opts...)
	w := NewWindow(NewSliceSource(items(t0, n, time.Millisecond)), NewSchedule(Rate(500), t0, 1, 0), s, opts...)
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var b strings.Builder
	if err := sum.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return sum, b.String(), m
}

// A replay against a dead port used to end with "status error 300" and no
// reason, judged a success. Now every failure has its reason in the summary,
// the JSON report and request_errors_total, and the job failed.
func TestWindowDeadTargetFailsWithReason(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	sum, text, m := runTruth(t, dead, 6)
	if sum.Sent != 6 || sum.RequestErrors[ReasonRefused] != 6 || len(sum.RequestErrors) != 1 {
		t.Fatalf("sent %d, request errors %v; want 6 refused", sum.Sent, sum.RequestErrors)
	}
	if !sum.Failed || sum.ErrorRate != 1 || sum.Failure != "6 of 6 requests errored (refused 6)" {
		t.Fatalf("failed %v, rate %v, failure %q", sum.Failed, sum.ErrorRate, sum.Failure)
	}
	for _, want := range []string{"  failed    6 of 6 requests (100%): refused 6\n", "\nreplay failed: 6 of 6 requests errored (refused 6)\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if !strings.HasSuffix(text, "replay failed: 6 of 6 requests errored (refused 6)\n") {
		t.Errorf("the summary's last line is not why the replay failed:\n%s", text)
	}
	var buf bytes.Buffer
	if err := sum.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		RequestErrors map[string]int64 `json:"request_errors"`
		ErrorRate     float64          `json:"error_rate"`
		Failed        bool             `json:"failed"`
		Failure       string           `json:"failure"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.RequestErrors["refused"] != 6 || rep.ErrorRate != 1 || !rep.Failed || rep.Failure == "" {
		t.Errorf("JSON report %+v", rep)
	}
	if got := testutil.ToFloat64(m.RequestErrors.WithLabelValues(ReasonRefused)); got != 6 {
		t.Errorf("request_errors_total{reason=refused} = %v, want 6", got)
	}
	if got := testutil.ToFloat64(m.Sent.WithLabelValues("error")); got != 6 {
		t.Errorf("sent_total{status_class=error} = %v, want 6 (kept as it was)", got)
	}
}

// A shadow that answers 500 to every 4th request: 25% of the requests
// errored. That fails the job only with a --max-error-rate below 25%; a dry
// run never fails.
func TestWindowMaxErrorRate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name       string
		opts       []Option
		wantFailed bool
		wantWhy    string
	}{
		{"default: fails only when every request errored", nil, false, ""},
		{"max 50%", []Option{MaxErrorRate(0.5)}, false, ""},
		{"max 25%: not above", []Option{MaxErrorRate(0.25)}, false, ""},
		{"max 10%", []Option{MaxErrorRate(0.1)}, true, "2 of 8 requests errored (5xx 2): error rate 25% is above --max-error-rate 10%"},
		{"max 0", []Option{MaxErrorRate(0)}, true, "2 of 8 requests errored (5xx 2): error rate 25% is above --max-error-rate 0%"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n.Store(0)
			sum, text, m := runTruth(t, srv.URL, 8, tc.opts...)
			if sum.RequestErrors[Reason5xx] != 2 || sum.ErrorRate != 0.25 || sum.Status["5xx"] != 2 {
				t.Fatalf("request errors %v, rate %v, status %v", sum.RequestErrors, sum.ErrorRate, sum.Status)
			}
			if sum.Failed != tc.wantFailed || sum.Failure != tc.wantWhy {
				t.Fatalf("failed %v %q, want %v %q", sum.Failed, sum.Failure, tc.wantFailed, tc.wantWhy)
			}
			if strings.Contains(text, "replay failed") != tc.wantFailed {
				t.Errorf("summary:\n%s", text)
			}
			if !strings.Contains(text, "  failed    2 of 8 requests (25%): 5xx 2\n") {
				t.Errorf("summary lacks the failed line:\n%s", text)
			}
			if got := testutil.ToFloat64(m.RequestErrors.WithLabelValues(Reason5xx)); got != 2 {
				t.Errorf("request_errors_total{reason=5xx} = %v, want 2", got)
			}
		})
	}
	t.Run("dry run", func(t *testing.T) {
		n.Store(0)
		sum, text, _ := runTruth(t, srv.URL, 8, DryRun(true), MaxErrorRate(0))
		if sum.Failed || n.Load() != 0 || strings.Contains(text, "failed") {
			t.Fatalf("dry run: failed %v, %d requests sent\n%s", sum.Failed, n.Load(), text)
		}
	})
}

// A dry run said "sends over 0.598s" while its report showed the first send
// 10m15s after the start: the summary now states the lead-in apart from the
// send span, the report's times agree with it, and the replay says at its
// start that the window starts idle.
func TestWindowLeadInApartFromSendSpan(t *testing.T) {
	from := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	first := from.Add(10*time.Minute + 15*time.Second)
	its := items(first, 300, 2*time.Millisecond) // 300 records over 0.598s
	start := time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)
	var logs bytes.Buffer
	lg := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), from, 1, 0), nil,
		WithClock(NewVirtualClock(start)), DryRun(true), WithLogger(lg), Job("idle", "test"))
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.SendSpan != 0.598 || sum.LeadIn != 615 || sum.IdleStart != 615 || sum.StartWait != 0 {
		t.Fatalf("send span %v, lead-in %v, idle %v, start wait %v; want 0.598, 615, 615, 0", sum.SendSpan, sum.LeadIn, sum.IdleStart, sum.StartWait)
	}
	if got := sum.FirstSend.Sub(sum.Started).Seconds(); got != sum.LeadIn {
		t.Errorf("report: first_send - started = %v, lead_in %v", got, sum.LeadIn)
	}
	if got := sum.LastSend.Sub(sum.FirstSend).Seconds(); got != sum.SendSpan {
		t.Errorf("report: last_send - first_send = %v, send_span %v", got, sum.SendSpan)
	}
	var b strings.Builder
	if err := sum.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"sends over 0.598s",
		"  lead-in   10m15s before the first send (the window starts idle: its first record was due 10m15s after the job start)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
	for _, want := range []string{"window starts idle", "first_record=2026-05-01T10:10:15Z", "wait=10m15s", `timing="speed 1x"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, logs.String())
		}
	}

	// A window that does not start idle says nothing of it.
	logs.Reset()
	w = NewWindow(NewSliceSource(items(from, 3, time.Millisecond)), NewSchedule(Speed(1), from, 1, 0), nil,
		WithClock(NewVirtualClock(start)), DryRun(true), WithLogger(lg))
	if sum, err = w.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	_ = sum.WriteText(&b)
	if sum.LeadIn != 0 || strings.Contains(b.String(), "idle") || strings.Contains(logs.String(), "idle") {
		t.Errorf("lead-in %v; summary:\n%s\nlog:\n%s", sum.LeadIn, b.String(), logs.String())
	}
}

// waitLines waits (bounded) until out holds n lines and returns them.
func waitLines(t *testing.T, out *testproc.Output, n int) []string {
	t.Helper()
	var lines []string
	if !testproc.Wait(10*time.Second, func() bool {
		lines = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		return out.String() != "" && len(lines) >= n
	}) {
		t.Fatalf("after 10s, progress output %q, want %d lines", out.String(), n)
	}
	return lines
}

// waitTimer waits (bounded) until the window waits on a timer of clk.
func waitTimer(t *testing.T, clk *manualClock) {
	t.Helper()
	testproc.Eventually(t, 10*time.Second, "the window to wait on a timer", func() bool {
		clk.mu.Lock()
		defer clk.mu.Unlock()
		return len(clk.timers) > 0
	})
}

// Without a terminal the replay was silent for minutes: ProgressLines prints
// one line per tick (the ticker is injected: no waiting on real time).
func TestWindowProgressLines(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	clk := newManualClock(t0)
	target := newFakeTarget(clk)
	ticks := make(chan time.Time)
	wall := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var out testproc.Output
	w := NewWindow(NewSliceSource(items(t0, 4, time.Second)), NewSchedule(Speed(1), t0, 1, 0), target,
		WithClock(clk), StartAt(t0), Job("prog", "test"), ProgressLines(&out, 10*time.Second), PlannedSpan(4*time.Second))
	w.ticker = func(d time.Duration) (<-chan time.Time, func()) {
		if d != 10*time.Second {
			t.Errorf("ticker interval %s, want 10s", d)
		}
		return ticks, func() {}
	}
	w.wall = func() time.Time { return wall }
	done, cancel := runWindow(t, w)
	defer cancel()

	recv(t, target) // record 0 at t0; record 1 is read and waits for t0+1s
	waitTimer(t, clk)
	ticks <- wall.Add(10 * time.Second)
	lines := waitLines(t, &out, 1)
	if want := "replay prog: sent 1/4 (50%), 0.1/s, errors 0, ETA 4s"; lines[0] != want {
		t.Fatalf("progress line %q, want %q", lines[0], want)
	}
	clk.fireNext()
	recv(t, target)
	clk.fireNext()
	recv(t, target)
	waitTimer(t, clk) // record 3 read, waiting for t0+3s
	ticks <- wall.Add(15 * time.Second)
	lines = waitLines(t, &out, 2)
	if want := "replay prog: sent 3/4 (100%), 0.4/s, errors 0, ETA 2s"; lines[1] != want {
		t.Fatalf("progress line %q, want %q", lines[1], want)
	}
	clk.fireNext()
	recv(t, target)
	<-done
}

// The progress line names failed requests by reason.
func TestProgressLineErrors(t *testing.T) {
	w := NewWindow(NewSliceSource(nil), NewSchedule(Rate(1), time.Time{}, 1, 0), newFakeTarget(RealClock{}), Job("j", "i"))
	got := w.progressLine(progressSnapshot{dispatched: 1200, dropped: 4, reqErrors: map[string]int64{"refused": 3, "5xx": 2}}, 2*time.Second, 996, 0)
	if want := "replay j: sent 1200, 498/s, errors 5 (refused 3, 5xx 2), dropped 4, ETA unknown"; got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

// An error rate just above --max-error-rate is not shown equal to it.
func TestJudgeJustAbove(t *testing.T) {
	s := &Summary{Sent: 10000, RequestErrors: map[string]int64{Reason5xx: 1001}}
	s.judge(0.1)
	if !s.Failed || !strings.HasSuffix(s.Failure, "error rate 10.01% is above --max-error-rate 10%") {
		t.Fatalf("failed %v %q", s.Failed, s.Failure)
	}
	s = &Summary{Sent: 10000, RequestErrors: map[string]int64{Reason5xx: 1000}}
	if s.judge(0.1); s.Failed {
		t.Fatalf("10%% of requests failed with --max-error-rate 10%%: %q", s.Failure)
	}
}

// A job that had records to send and sent none tested nothing: it fails,
// unless it was a dry run, interrupted, or had nothing scheduled.
func TestJudgeNothingSent(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Summary
		fail bool
	}{
		{"all dropped", Summary{Scheduled: 40, Dropped: 40}, true},
		{"none replayable", Summary{Scheduled: 3, Errors: map[string]int64{"build": 3}}, true},
		{"empty window", Summary{}, false},
		{"dry run", Summary{Scheduled: 40, Dropped: 40, DryRun: true}, false},
		{"interrupted", Summary{Scheduled: 40, Interrupted: true}, false},
		{"some sent", Summary{Scheduled: 40, Dropped: 39, Sent: 1}, false},
	} {
		s := tc.s
		s.judge(1)
		if s.Failed != tc.fail {
			t.Errorf("%s: failed %v (%q), want %v", tc.name, s.Failed, s.Failure, tc.fail)
		}
		if tc.fail && !strings.HasPrefix(s.Failure, "none of ") {
			t.Errorf("%s: failure %q does not say nothing was sent", tc.name, s.Failure)
		}
	}
}
