package comparator

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// LiveJob is the replay job of the live replayer: the job a comparator
// judges, and a report shows, unless told otherwise.
const LiveJob = "live"

// ShadowJobOf is the replay job of a shadow record; a record without one
// counts as LiveJob.
func ShadowJobOf(ex *mlv1.Exchange) string {
	return cmp.Or(ex.GetReplay().GetJob(), LiveJob)
}

// JobOf is the replay job a verdict belongs to; a diff record without one
// (written before verdicts carried their job) counts as LiveJob.
func JobOf(d *mlv1.Diff) string {
	return cmp.Or(d.GetShadowJob(), LiveJob)
}

// OfJob returns the diffs of job, in order.
func OfJob(diffs []*mlv1.Diff, job string) []*mlv1.Diff {
	var out []*mlv1.Diff
	for _, d := range diffs {
		if JobOf(d) == job {
			out = append(out, d)
		}
	}
	return out
}

// judged reports whether a verdict compared (or tried to compare) both
// responses, as opposed to "missing" one side.
func judged(d *mlv1.Diff) bool {
	return d.GetVerdict() != mlv1.Verdict_VERDICT_MISSING && d.GetVerdict() != mlv1.Verdict_VERDICT_UNSPECIFIED
}

// Dedupe keeps one verdict per (job, exchange id), in first-seen order.
// Diff records are published at least once: after a rebalance or a restart,
// a comparator may decide an exchange again, and a record it reads a second
// time may miss its other side, already read by the previous owner of the
// partition. So the first judged verdict (same, different, errors) is kept
// and never replaced; a "missing" verdict only stands when the exchange has
// no judged one.
func Dedupe(diffs []*mlv1.Diff) []*mlv1.Diff {
	type key struct{ job, id string }
	idx := make(map[key]int, len(diffs))
	out := diffs[:0:0]
	for _, d := range diffs {
		k := key{JobOf(d), d.GetId()}
		if i, ok := idx[k]; ok && d.GetId() != "" {
			if !judged(out[i]) && judged(d) {
				out[i] = d
			}
			continue
		}
		idx[k] = len(out)
		out = append(out, d)
	}
	return out
}

// JobSummary is one replay job's verdicts on mirror.diff.S (`mirrorline
// compare report --jobs`).
type JobSummary struct {
	// Job is the replay job ("live", or a window replay's --job).
	Job string `json:"job"`
	// Exchanges counts its verdicts (one per exchange); Verdicts by label.
	Exchanges int            `json:"exchanges"`
	Verdicts  map[string]int `json:"verdicts"`
	// FirstDecided and LastDecided span when its verdicts were decided.
	FirstDecided time.Time `json:"first_decided"`
	LastDecided  time.Time `json:"last_decided"`
	// From and To span the capture times of its exchanges.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// SummarizeJobs counts the verdicts of each job in diffs (deduplicated),
// live first, then the others by first decision.
func SummarizeJobs(diffs []*mlv1.Diff) []JobSummary {
	by := map[string]*JobSummary{}
	var order []string
	span := func(lo, hi *time.Time, ns int64) {
		if ns <= 0 {
			return
		}
		t := time.Unix(0, ns).UTC()
		if lo.IsZero() || t.Before(*lo) {
			*lo = t
		}
		if t.After(*hi) {
			*hi = t
		}
	}
	for _, d := range Dedupe(diffs) {
		j := JobOf(d)
		s := by[j]
		if s == nil {
			s = &JobSummary{Job: j, Verdicts: map[string]int{}}
			for _, v := range Verdicts {
				s.Verdicts[VerdictLabel(v)] = 0
			}
			by[j] = s
			order = append(order, j)
		}
		s.Exchanges++
		s.Verdicts[VerdictLabel(d.GetVerdict())]++
		span(&s.FirstDecided, &s.LastDecided, d.GetDecidedTimeNs())
		span(&s.From, &s.To, d.GetCaptureTimeNs())
	}
	out := make([]JobSummary, 0, len(order))
	for _, j := range order {
		out = append(out, *by[j])
	}
	slices.SortStableFunc(out, func(a, b JobSummary) int {
		return cmp.Or(trueFirst(a.Job == LiveJob, b.Job == LiveJob), a.FirstDecided.Compare(b.FirstDecided), strings.Compare(a.Job, b.Job))
	})
	return out
}

// WriteJobs writes the job list: one line per job with when its verdicts
// were decided, the capture span and the counts per verdict. Job names are
// written TerminalSafe.
func WriteJobs(w io.Writer, service string, jobs []JobSummary) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mirrorline compare jobs: service %s\n", service)
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	if len(jobs) == 0 {
		b.WriteString("  no verdicts\n")
	} else {
		fmt.Fprintf(tw, "  job\tdecided\tcaptured\texchanges\tverdicts\n")
	}
	fmtSpan := func(a, b time.Time) string {
		if a.IsZero() {
			return "-"
		}
		return a.Format(time.RFC3339) + " to " + b.Format(time.RFC3339)
	}
	for _, j := range jobs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", TerminalSafe(j.Job), fmtSpan(j.FirstDecided, j.LastDecided),
			fmtSpan(j.From, j.To), j.Exchanges, verdictLine(j.Verdicts))
	}
	_ = tw.Flush()
	_, err := io.WriteString(w, TerminalSafeLines(b.String()))
	return err
}
