package comparator

import (
	"cmp"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// TextOptions tune WriteText (and WriteHTML).
type TextOptions struct {
	// Top is how many differing endpoints are detailed (0: 10).
	Top int
	// ShowNoise lists the fields judged noise and the fields a status change removed.
	ShowNoise bool
}

func pct(r float64) string { return fmt.Sprintf("%.1f%%", r*100) }

// WriteText writes the human report: the top differing endpoints with their
// differing fields and an example diff, latency per endpoint, the endpoints
// without significant differences and a noise summary. Captured strings
// are written TerminalSafe: the report holds no control characters but its
// line breaks.
func WriteText(w io.Writer, rep *Report, opt TextOptions) error {
	if opt.Top <= 0 {
		opt.Top = 10
	}
	rep = rep.safeCopy()
	var b strings.Builder
	fmt.Fprintf(&b, "mirrorline compare report: service %s\n", rep.Service)
	if rep.Job != "" {
		fmt.Fprintf(&b, "replay job: %s\n", rep.Job)
	}
	fmt.Fprintf(&b, "exchanges: %d (%s): %s\n", rep.Exchanges, span(rep, " to "), verdictLine(rep.Verdicts))
	t := rep.Thresholds
	fmt.Fprintf(&b, "significant: difference rate >= %s with >= %d exchanges; latency regression: > +%.0f%% and > +%s\n\n",
		pct(t.AlertRate), t.AlertMinSamples, t.LatencyRelative*100, fmtMS(t.LatencyAbsMS))

	var sig, other []EndpointReport
	for _, e := range rep.Endpoints {
		switch {
		case e.Significant:
			sig = append(sig, e)
		case !e.Latency.TailRegression:
			// A tail regression is a significant difference too: it is
			// flagged in the latency table, never listed as without one.
			other = append(other, e)
		}
	}
	b.WriteString("Top differing endpoints\n")
	if len(sig) == 0 {
		b.WriteString("  none\n")
	}
	for i, e := range sig {
		if i >= opt.Top {
			fmt.Fprintf(&b, "  ... and %d more (--top)\n", len(sig)-opt.Top)
			break
		}
		fmt.Fprintf(&b, "%d. %s: %d of %d exchanges differ (%s)\n", i+1, e.Endpoint, e.Differing, e.Comparable, pct(e.DifferenceRate))
		if len(e.GRPCStatuses) > 0 {
			fmt.Fprintf(&b, "   grpc-status (primary → shadow): %s\n", countList(e.GRPCStatuses))
		}
		if n := e.Verdicts["shadow-error"]; n > 0 {
			fmt.Fprintf(&b, "   shadow errors: %d%s\n", n, reasonList(e.Reasons, "shadow:"))
		}
		tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
		for _, f := range e.Fields {
			fmt.Fprintf(tw, "   %s\t%s\t%d\t%s\t%s\n", f.Field, f.Kind, f.Count, pct(f.Rate), fieldSummary(f, e, opt.ShowNoise))
		}
		_ = tw.Flush()
		writeDownstream(&b, e)
		if ex := e.Example; ex != nil {
			if ex.PrimaryGRPCStatus != "" || ex.ShadowGRPCStatus != "" {
				fmt.Fprintf(&b, "   example diff (exchange %s, grpc-status %s → %s):\n", ex.ID, cmp.Or(ex.PrimaryGRPCStatus, "none"), cmp.Or(ex.ShadowGRPCStatus, "none"))
			} else {
				fmt.Fprintf(&b, "   example diff (exchange %s, status %d → %d):\n", ex.ID, ex.PrimaryStatus, ex.ShadowStatus)
			}
			for _, d := range ex.Differences {
				b.WriteString("     " + exampleLine(d, opt.ShowNoise) + "\n")
				if d.Detail != "" {
					for _, l := range strings.Split(strings.TrimRight(d.Detail, "\n"), "\n") {
						b.WriteString("       " + l + "\n")
					}
				}
			}
		}
		fmt.Fprintf(&b, "   latency: %s\n", e.Latency.Summary)
	}

	b.WriteString("\nLatency per endpoint (primary → shadow)\n")
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  endpoint\tsamples\tp50\tp90\tp99\tmax\tmean\tverdict\n")
	for _, e := range byName(rep.Endpoints) {
		l := e.Latency
		verdict := "-"
		switch {
		case !l.Judged:
			verdict = "not judged (too few samples)"
		case l.TailRegression && l.MeanImproved:
			verdict = "TAIL REGRESSION (mean improved)"
		case l.TailRegression:
			verdict = "TAIL REGRESSION"
		case l.MedianRegression:
			verdict = "MEDIAN REGRESSION"
		default:
			verdict = "ok"
		}
		fmt.Fprintf(tw, "  %s\t%d/%d\t%s → %s\t%s → %s\t%s → %s\t%s → %s\t%s → %s\t%s\n", e.Endpoint, l.Primary.Count, l.Shadow.Count,
			fmtMS(l.Primary.P50), fmtMS(l.Shadow.P50), fmtMS(l.Primary.P90), fmtMS(l.Shadow.P90),
			fmtMS(l.Primary.P99), fmtMS(l.Shadow.P99), fmtMS(l.Primary.Max), fmtMS(l.Shadow.Max),
			fmtMS(l.Primary.Mean), fmtMS(l.Shadow.Mean), verdict)
	}
	_ = tw.Flush()

	if len(other) > 0 {
		b.WriteString("\nEndpoints without significant differences\n")
		tw = tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
		for _, e := range other {
			fmt.Fprintf(tw, "  %s\t%d exchanges\t%s\n", e.Endpoint, e.Exchanges, verdictLine(e.Verdicts))
		}
		_ = tw.Flush()
	}
	// The downstream differences of every endpoint not detailed above
	// (not significant, a tail regression only, or beyond --top).
	shown := map[string]bool{}
	for i, e := range sig {
		shown[e.Endpoint] = i < opt.Top
	}
	head := false
	for _, e := range byName(rep.Endpoints) {
		if shown[e.Endpoint] || len(e.Downstream) == 0 {
			continue
		}
		if !head {
			b.WriteString("\nDownstream differences of the other endpoints\n")
			head = true
		}
		fmt.Fprintf(&b, "  %s\n", e.Endpoint)
		writeDownstream(&b, e)
	}
	var reasons []string
	for _, e := range rep.Endpoints {
		for r, n := range e.Reasons {
			reasons = append(reasons, fmt.Sprintf("  %s: %s (%d)", e.Endpoint, r, n))
		}
	}
	if len(reasons) > 0 {
		sort.Strings(reasons)
		b.WriteString("\nErrors and missing exchanges\n" + strings.Join(reasons, "\n") + "\n")
	}
	fmt.Fprintf(&b, "\nNoise: %d fields judged noise (differences a secondary also shows, or volatile values such as timestamps and ids that differ in nearly every exchange)", rep.NoiseFields)
	if !opt.ShowNoise {
		b.WriteString("; --show-noise lists them\n")
	} else {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
		for _, e := range byName(rep.Endpoints) {
			for _, f := range e.Noise {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", e.Endpoint, f.Field, f.Kind, f.Count, pct(f.Rate), noiseWhy(f))
			}
		}
		_ = tw.Flush()
	}
	// Every value is safe already; this also covers any text added later.
	_, err := io.WriteString(w, TerminalSafeLines(b.String()))
	return err
}

func byName(eps []EndpointReport) []EndpointReport {
	out := append([]EndpointReport(nil), eps...)
	sort.Slice(out, func(i, j int) bool { return out[i].Endpoint < out[j].Endpoint })
	return out
}

func verdictLine(v map[string]int) string {
	var parts []string
	for _, l := range verdictOrder() {
		parts = append(parts, fmt.Sprintf("%s %d", l, v[l]))
	}
	return strings.Join(parts, ", ")
}

func reasonList(r map[string]int, prefix string) string {
	var out []string
	for k, n := range r {
		if strings.HasPrefix(k, prefix) {
			out = append(out, fmt.Sprintf("%s (%d)", k, n))
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return ""
	}
	return ": " + strings.Join(out, ", ")
}

// transition returns the most frequent status transition of an endpoint.
func transition(e EndpointReport) string {
	best, n := "", 0
	for k, v := range e.StatusTransitions {
		if v > n || v == n && k < best {
			best, n = k, v
		}
	}
	return best
}

func fieldSummary(f FieldReport, e EndpointReport, showRemoved bool) string {
	var s string
	switch {
	case f.Field == FieldStatus:
		var ts []string
		for k, n := range e.StatusTransitions {
			ts = append(ts, fmt.Sprintf("%s (%d)", k, n))
		}
		sort.Strings(ts)
		s = strings.Join(ts, ", ")
	case f.Fields != nil:
		s = absentFields(f.Fields, showRemoved)
	default:
		s = valuePair(f)
	}
	if f.UnderStatus && f.Field != FieldStatus {
		if t := transition(e); t != "" {
			s += " (with status " + t + ")"
		} else {
			s += " (with the status change)"
		}
	}
	return s
}

// absentFields summarizes the fields a status change removed, listing them
// when showRemoved.
func absentFields(fields []string, showRemoved bool) string {
	s := fmt.Sprintf("%d fields of the primary's body absent", len(fields))
	if showRemoved {
		s += ": " + strings.Join(fields, ", ")
	}
	return s
}

func valuePair(f FieldReport) string {
	switch f.Kind {
	case "added":
		return "shadow " + f.Shadow
	case "removed":
		return "primary " + f.Primary
	}
	return f.Primary + " → " + f.Shadow
}

func exampleLine(d FieldReport, showRemoved bool) string {
	switch {
	case d.Field == FieldStatus:
		return "status: " + d.Primary + " → " + d.Shadow
	case d.Fields != nil:
		return "body: " + absentFields(d.Fields, showRemoved)
	}
	switch d.Kind {
	case "added":
		return d.Field + ": added in the shadow: " + d.Shadow
	case "removed":
		return d.Field + ": missing in the shadow, primary had " + d.Primary
	case "type_changed":
		return d.Field + ": type changed: " + d.Primary + " → " + d.Shadow
	}
	return d.Field + ": " + d.Primary + " → " + d.Shadow
}

func noiseWhy(f FieldReport) string {
	switch f.Reason {
	case "secondary":
		return fmt.Sprintf("secondary differs too (%s)", pct(f.SecondaryRate))
	case "volatile":
		return fmt.Sprintf("volatile values, differ in %s of exchanges with the field", pct(f.VolatileRate))
	case "secondary+volatile":
		return fmt.Sprintf("secondary differs too (%s); volatile (%s)", pct(f.SecondaryRate), pct(f.VolatileRate))
	}
	return "follows a noisy status"
}

// countList renders counts as "key n, key n", the most frequent first.
func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// DownstreamParts splits the field of a downstream difference into the
// dependency endpoint ("POST gateway:8080/charge") and what differs: "calls"
// (the number of calls) or a request body field ("body.amount"). ok is false
// for a field that is not downstream.
func DownstreamParts(field string) (dep, part string, ok bool) {
	rest, ok := strings.CutPrefix(field, DownstreamPrefix)
	if !ok {
		return "", "", false
	}
	if i := strings.Index(rest, "]."); i >= 0 {
		return rest[:i], rest[i+2:], true
	}
	return strings.TrimSuffix(rest, "]"), "calls", true
}

// downstreamSummary describes one downstream difference of endpoint e.
func downstreamSummary(f FieldReport, e EndpointReport) string {
	s := valuePair(f)
	if _, part, _ := DownstreamParts(f.Field); part == "calls" {
		what := "extra calls by the shadow"
		if f.Kind == "removed" {
			what = "calls missing in the shadow"
		}
		s = what + ": " + f.Primary + " → " + f.Shadow
	}
	if f.UnderStatus {
		if t := transition(e); t != "" {
			return s + " (with status " + t + ")"
		}
		return s + " (with the status change)"
	}
	return s
}

// writeDownstream writes an endpoint's downstream differences: the calls to
// dependencies that differ.
func writeDownstream(b *strings.Builder, e EndpointReport) {
	fs := e.Downstream
	if len(fs) == 0 {
		return
	}
	b.WriteString("   downstream (calls to dependencies, primary → shadow):\n")
	tw := tabwriter.NewWriter(b, 2, 4, 2, ' ', 0)
	for _, f := range fs {
		dep, part, _ := DownstreamParts(f.Field)
		fmt.Fprintf(tw, "     %s\t%s\t%s\t%d\t%s\t%s\n", dep, part, f.Kind, f.Count, pct(f.Rate), downstreamSummary(f, e))
	}
	_ = tw.Flush()
}
