package replayer

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
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
	// Dropped records were not sent because they were more than --max-lag late
	// (all --concurrency requests in flight, the --max-rate cap, or Kafka
	// reads falling behind).
	Dropped int64 `json:"dropped"`
	// Late sends went out more than LateAfter after their planned time.
	Late int64 `json:"late"`
	// Errors counts records not replayed or responses not recorded, by reason
	// (decode, truncated, build, publish).
	Errors map[string]int64 `json:"errors"`
	// Status counts sent requests by response status class (2xx..5xx, error).
	Status map[string]int64 `json:"status"`

	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	FirstSend time.Time `json:"first_send"`
	LastSend  time.Time `json:"last_send"`
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
	fmt.Fprintf(&b, " (%s): %s [%s, %s) -> %s, %s", s.Instance, s.Topic, s.From.Format(time.RFC3339Nano), s.To.Format(time.RFC3339Nano), orNone(s.Target), s.Timing)
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
	if !s.DryRun {
		fmt.Fprintf(&b, "  latency   %s\n", s.Latency)
	}
	fmt.Fprintf(&b, "  lag       %s\n", s.ScheduleLag)
	if !s.DryRun {
		fmt.Fprintf(&b, "  status    %s\n", formatCounts(s.Status, []string{"1xx", "2xx", "3xx", "4xx", "5xx", "error"}))
	}
	if len(s.Errors) > 0 {
		fmt.Fprintf(&b, "  errors    %s\n", formatCounts(s.Errors, nil))
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

func secs(s float64) string { return fmt.Sprintf("%.3fs", s) }

func orNone(s string) string {
	if s == "" {
		return "(no target)"
	}
	return s
}

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
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
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
	mu         sync.Mutex
	latency    *hdrhistogram.Histogram // µs
	lag        *hdrhistogram.Histogram // µs
	status     map[string]int64
	errors     map[string]int64
	scheduled  int64
	dispatched int64
	sent       int64
	dropped    int64
	late       int64

	firstPlanned, lastPlanned time.Time
	firstSend, lastSend       time.Time
}

func newStats() *stats {
	return &stats{
		latency: hdrhistogram.New(1, 3_600_000_000, 3),
		lag:     hdrhistogram.New(1, 3_600_000_000, 3),
		status:  map[string]int64{},
		errors:  map[string]int64{},
	}
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

func (s *stats) response(class string, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent++
	s.status[class]++
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
	sum.Errors = map[string]int64{}
	for k, v := range s.errors {
		sum.Errors[k] = v
	}
	sum.Status = map[string]int64{}
	for k, v := range s.status {
		sum.Status[k] = v
	}
	sum.FirstSend, sum.LastSend = s.firstSend, s.lastSend
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
