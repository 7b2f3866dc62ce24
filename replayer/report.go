package replayer

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Quantiles of a latency distribution, in seconds.
type Quantiles struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// Summary is the outcome of a window replay, printed at the end and written by
// --report as JSON. Rates are in records per second, times in seconds.
type Summary struct {
	Job      string    `json:"job"`
	Instance string    `json:"instance"`
	Worker   int       `json:"worker"`
	Workers  int       `json:"workers"`
	Topic    string    `json:"topic,omitempty"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Target   string    `json:"target,omitempty"`
	Timing   string    `json:"timing"`
	DryRun   bool      `json:"dry_run"`
	// Interrupted is set when the replay was stopped before its end.
	Interrupted bool `json:"interrupted"`

	// Offsets is the size of this worker's share of the window in offsets
	// (records, plus transaction markers and records outside the window).
	Offsets int64 `json:"offsets"`
	// Scheduled records were due to be sent (decoded, not truncated).
	Scheduled int64 `json:"scheduled"`
	// Sent requests reached the target or failed there (status "error"); in a
	// dry run, the requests that would have been sent.
	Sent int64 `json:"sent"`
	// Dropped records were more than --max-lag late (all --concurrency
	// requests in flight, the --max-rate cap, or Kafka reads falling behind).
	Dropped int64 `json:"dropped"`
	// Late sends went out more than LateAfter after their planned time.
	Late int64 `json:"late"`
	// Errors counts records not replayed or responses not recorded, by reason
	// (decode, truncated, build, publish, transform, middleware, credentials).
	Errors map[string]int64 `json:"errors"`
	// Skipped counts records not sent by choice, by reason: filtered (not
	// selected, or a skip route), middleware (dropped by it), breaker_open.
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// Status counts sent requests by response status class (2xx..5xx, error).
	Status map[string]int64 `json:"status"`
	// RequestErrors counts the sent requests that failed, by reason
	// (RequestErrorReasons).
	RequestErrors map[string]int64 `json:"request_errors"`
	// ErrorRate is the share of sent requests that failed, 0..1.
	ErrorRate float64 `json:"error_rate"`
	// MaxErrorRate is the error rate above which the job failed (see Failed).
	MaxErrorRate float64 `json:"max_error_rate"`
	// Failed is set when the job failed: every sent request failed, or more
	// than MaxErrorRate of them did, or records were scheduled and none was
	// sent. A dry run never fails. Failure says why.
	Failed  bool   `json:"failed"`
	Failure string `json:"failure,omitempty"`

	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	FirstSend time.Time `json:"first_send"`
	LastSend  time.Time `json:"last_send"`
	// LeadIn is the wait from Started to FirstSend, before the send span:
	// StartWait waiting for the job start (--start-at, or the start agreed by
	// the workers of a job), then IdleStart until the first record was due
	// (a window that starts idle), then the schedule lag of that send.
	LeadIn    float64 `json:"lead_in"`
	StartWait float64 `json:"start_wait"`
	IdleStart float64 `json:"idle_start"`
	// PlannedSpan is from the first to the last planned time of the scheduled
	// records, SendSpan from the first to the last actual send.
	PlannedSpan float64 `json:"planned_span"`
	SendSpan    float64 `json:"send_span"`
	// AskedRate is (scheduled-1)/planned span, AchievedRate (sends-1)/send
	// span: equal when every record was sent at its planned time.
	AskedRate    float64 `json:"asked_rate"`
	AchievedRate float64 `json:"achieved_rate"`

	Latency     Quantiles `json:"latency"`
	ScheduleLag Quantiles `json:"schedule_lag"`
}

// WriteJSON writes the summary as indented JSON.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteText writes the human summary.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	verb := "sent"
	if s.DryRun {
		verb = "would send"
	}
	fmt.Fprintf(&b, "replay %s", s.Job)
	if s.Workers > 1 {
		fmt.Fprintf(&b, " worker %d/%d", s.Worker, s.Workers)
	}
	fmt.Fprintf(&b, " (%s): %s [%s, %s) -> %s, %s", s.Instance, s.Topic, s.From.Format(time.RFC3339Nano), s.To.Format(time.RFC3339Nano), cmp.Or(s.Target, "(no target)"), s.Timing)
	if s.DryRun {
		b.WriteString(", dry run")
	}
	if s.Interrupted {
		b.WriteString(", INTERRUPTED")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  records   %d offsets, %d scheduled, %d %s, %d dropped, %d late, %d errors\n", s.Offsets, s.Scheduled, s.Sent, verb, s.Dropped, s.Late, sumCounts(s.Errors))
	ratio := 0.0
	if s.AskedRate > 0 {
		ratio = s.AchievedRate / s.AskedRate * 100
	}
	fmt.Fprintf(&b, "  rate      asked %.2f/s, achieved %.2f/s (%.1f%%), sends over %s (planned %s)\n", s.AskedRate, s.AchievedRate, ratio, secs(s.SendSpan), secs(s.PlannedSpan))
	if !s.FirstSend.IsZero() {
		fmt.Fprintf(&b, "  lead-in   %s before the first send%s\n", dur(s.LeadIn), s.leadInWhy())
	}
	if !s.DryRun {
		fmt.Fprintf(&b, "  latency   %s\n", s.Latency)
	}
	fmt.Fprintf(&b, "  lag       %s\n", s.ScheduleLag)
	if !s.DryRun {
		fmt.Fprintf(&b, "  status    %s\n", formatCounts(s.Status, []string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}))
		fmt.Fprintf(&b, "  failed    %d of %d requests (%s)", sumCounts(s.RequestErrors), s.Sent, percent(s.ErrorRate))
		if len(s.RequestErrors) > 0 {
			fmt.Fprintf(&b, ": %s", formatCounts(s.RequestErrors, RequestErrorReasons))
		}
		b.WriteString("\n")
	}
	if len(s.Errors) > 0 {
		fmt.Fprintf(&b, "  errors    %s\n", formatCounts(s.Errors, nil))
	}
	if len(s.Skipped) > 0 {
		fmt.Fprintf(&b, "  skipped   %s\n", formatCounts(s.Skipped, nil))
	}
	if s.Failed {
		fmt.Fprintf(&b, "replay failed: %s\n", s.Failure)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// String renders the quantiles in milliseconds.
func (q Quantiles) String() string {
	if q.Count == 0 {
		return "none"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", ms(q.P50), ms(q.P90), ms(q.P99), ms(q.P999), ms(q.Max))
}

func ms(s float64) string { return fmt.Sprintf("%.2fms", s*1000) }

// dur renders seconds as a duration to the millisecond ("10m15s", "12ms").
func dur(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}

// percent renders a rate 0..1 as a percentage to a tenth ("25%", "33.3%").
func percent(r float64) string {
	return strconv.FormatFloat(math.Round(r*1000)/10, 'f', -1, 64) + "%"
}

// leadInWhy says what the lead-in was spent on.
func (s *Summary) leadInWhy() string {
	var why []string
	if s.StartWait >= IdleAfter.Seconds() {
		why = append(why, fmt.Sprintf("%s waiting for the job start", dur(s.StartWait)))
	}
	if s.IdleStart >= IdleAfter.Seconds() {
		why = append(why, fmt.Sprintf("the window starts idle: its first record was due %s after the job start", dur(s.IdleStart)))
	}
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}

// judge sets ErrorRate, MaxErrorRate, Failed and Failure: a job fails when
// it sent requests and every one failed, or more than maxRate of them did,
// or when records were scheduled and none was sent (all dropped or not
// replayable).
func (s *Summary) judge(maxRate float64) {
	s.MaxErrorRate = maxRate
	failed := sumCounts(s.RequestErrors)
	if s.Sent > 0 {
		s.ErrorRate = float64(failed) / float64(s.Sent)
	}
	if !s.DryRun && !s.Interrupted && s.Sent == 0 && s.Scheduled > 0 {
		// Records were due and none went out: nothing was tested.
		s.Failed, s.Failure = true, fmt.Sprintf("none of %d scheduled records was sent (dropped %d; not replayed %d)", s.Scheduled, s.Dropped, sumCounts(s.Errors))
		return
	}
	if s.DryRun || s.Sent == 0 || failed == 0 {
		return
	}
	what := fmt.Sprintf("%d of %d requests errored (%s)", failed, s.Sent, formatCounts(s.RequestErrors, RequestErrorReasons))
	switch {
	case failed >= s.Sent:
		s.Failed, s.Failure = true, what
	case s.ErrorRate > maxRate:
		got, limit := percent(s.ErrorRate), percent(maxRate)
		if got == limit { // just above: say by how much
			got, limit = strconv.FormatFloat(s.ErrorRate*100, 'g', 6, 64)+"%", strconv.FormatFloat(maxRate*100, 'g', 6, 64)+"%"
		}
		s.Failed, s.Failure = true, fmt.Sprintf("%s: error rate %s is above --max-error-rate %s", what, got, limit)
	}
}

func secs(s float64) string { return fmt.Sprintf("%.3fs", s) }

func sumCounts(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

func formatCounts(m map[string]int64, order []string) string {
	keys := order
	if keys == nil {
		keys = slices.Sorted(maps.Keys(m))
	}
	var parts []string
	for _, k := range keys {
		if v, ok := m[k]; ok && (v > 0 || order == nil) {
			parts = append(parts, fmt.Sprintf("%s %d", k, v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "  ")
}

// stats accumulates a replay's outcome; safe for concurrent use.
type stats struct {
	mu                                         sync.Mutex
	latency, lag                               *hdrhistogram.Histogram // µs
	status, errors, reqErrors, skipped         map[string]int64
	scheduled, dispatched, sent, dropped, late int64

	firstPlanned, lastPlanned time.Time
	firstSend, lastSend       time.Time
	// anchor is the job start the schedule counts from, once known.
	anchor time.Time
}

// newStats returns the stats of a replay whose job start is anchor, if known.
func newStats(anchor time.Time) *stats {
	return &stats{
		anchor:    anchor,
		latency:   hdrhistogram.New(1, 3_600_000_000, 3),
		lag:       hdrhistogram.New(1, 3_600_000_000, 3),
		status:    map[string]int64{},
		errors:    map[string]int64{},
		reqErrors: map[string]int64{},
		skipped:   map[string]int64{},
	}
}

// skip counts a record not sent by choice (see Summary.Skipped).
func (s *stats) skip(reason string) {
	s.mu.Lock()
	s.skipped[reason]++
	s.mu.Unlock()
}

func (s *stats) error(reason string) {
	s.mu.Lock()
	s.errors[reason]++
	s.mu.Unlock()
}

// planned counts a record due at t.
func (s *stats) planned(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scheduled++
	if s.firstPlanned.IsZero() || t.Before(s.firstPlanned) {
		s.firstPlanned = t
	}
	if t.After(s.lastPlanned) {
		s.lastPlanned = t
	}
}

// start records the job start the schedule counts from.
func (s *stats) start(anchor time.Time) {
	s.mu.Lock()
	s.anchor = anchor
	s.mu.Unlock()
}

func (s *stats) drop() {
	s.mu.Lock()
	s.dropped++
	s.mu.Unlock()
}

// dispatch counts a send at sent, lag after its planned time.
func (s *stats) dispatch(sent time.Time, lag time.Duration, late bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dispatched++
	if late {
		s.late++
	}
	_ = s.lag.RecordValue(max(lag.Microseconds(), 0))
	if s.firstSend.IsZero() {
		s.firstSend = sent
	}
	s.lastSend = sent
}

// response counts a request that reached the target or failed there
// (reason not "", see ErrorReason).
func (s *stats) response(class, reason string, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	s.status[class]++
	if reason != "" {
		s.reqErrors[reason]++
	}
	if class != "error" {
		_ = s.latency.RecordValue(max(latency.Microseconds(), 0))
	}
}

func quantiles(h *hdrhistogram.Histogram) Quantiles {
	if h.TotalCount() == 0 {
		return Quantiles{}
	}
	us := func(v int64) float64 { return float64(v) / 1e6 }
	return Quantiles{
		Count: h.TotalCount(),
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
	}
}

// summary fills the counters and distributions of sum.
func (s *stats) summary(sum *Summary) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum.Scheduled = s.scheduled
	sum.Sent, sum.Dropped, sum.Late = s.sent, s.dropped, s.late
	if sum.DryRun {
		sum.Sent = s.dispatched
	}
	sum.Errors, sum.Status, sum.RequestErrors = maps.Clone(s.errors), maps.Clone(s.status), maps.Clone(s.reqErrors)
	if len(s.skipped) > 0 {
		sum.Skipped = maps.Clone(s.skipped)
	}
	sum.FirstSend, sum.LastSend = s.firstSend, s.lastSend
	if !s.firstSend.IsZero() {
		sum.LeadIn = s.firstSend.Sub(sum.Started).Seconds()
	}
	if !s.anchor.IsZero() {
		sum.StartWait = max(s.anchor.Sub(sum.Started).Seconds(), 0)
		if s.scheduled > 0 {
			sum.IdleStart = max(s.firstPlanned.Sub(s.anchor).Seconds(), 0)
		}
	}
	if s.scheduled > 1 {
		sum.PlannedSpan = s.lastPlanned.Sub(s.firstPlanned).Seconds()
		if sum.PlannedSpan > 0 {
			sum.AskedRate = float64(s.scheduled-1) / sum.PlannedSpan
		}
	}
	if s.dispatched > 1 {
		sum.SendSpan = s.lastSend.Sub(s.firstSend).Seconds()
		if sum.SendSpan > 0 {
			sum.AchievedRate = float64(s.dispatched-1) / sum.SendSpan
		}
	}
	sum.Latency = quantiles(s.latency)
	sum.ScheduleLag = quantiles(s.lag)
}
