package comparator

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// HTMLOptions tune WriteHTML as TextOptions tune WriteText.
type HTMLOptions = TextOptions

// WriteHTML writes the report as one self-contained HTML page: inline CSS
// and SVG, no scripts, no external assets (its Content-Security-Policy
// forbids loading any). Captured strings are HTML-escaped and, as in the
// text report, TerminalSafe (no control or bidirectional override
// characters reach the page).
func WriteHTML(w io.Writer, rep *Report, opt HTMLOptions) error {
	if opt.Top <= 0 {
		opt.Top = 10
	}
	rep = rep.safeCopy()
	var sig, other []EndpointReport
	for _, e := range rep.Endpoints {
		if e.Significant && len(sig) < opt.Top {
			sig = append(sig, e)
		} else {
			other = append(other, e)
		}
	}
	data := map[string]any{
		"R": rep, "Sig": sig, "Other": other, "ByName": byName(rep.Endpoints), "ShowNoise": opt.ShowNoise,
		"Span": span(rep, " – "), "VerdictOrder": verdictOrder(),
	}
	return htmlTmpl.Execute(w, data)
}

func verdictOrder() []string {
	out := make([]string, 0, len(Verdicts))
	for _, v := range Verdicts {
		out = append(out, VerdictLabel(v))
	}
	return out
}

// span is the capture span of rep, its times joined by sep.
func span(rep *Report, sep string) string {
	if rep.From.IsZero() {
		return "no exchanges"
	}
	return rep.From.Format(time.RFC3339) + sep + rep.To.Format(time.RFC3339)
}

// latencyBars draws p50/p90/p99 of both sides as horizontal bars, scaled to
// the largest value.
func latencyBars(l LatencyReport) template.HTML {
	vals := []struct {
		label string
		p, s  float64
	}{{"p50", l.Primary.P50, l.Shadow.P50}, {"p90", l.Primary.P90, l.Shadow.P90}, {"p99", l.Primary.P99, l.Shadow.P99}}
	top := 0.001
	for _, v := range vals {
		top = max(top, v.p, v.s)
	}
	const width, barW, rowH = 470.0, 300.0, 16.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="bars" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="latency percentiles">`, width, rowH*6+4, width, rowH*6+4)
	y := 2.0
	for _, v := range vals {
		for i, x := range []float64{v.p, v.s} {
			cls, side := "p", "primary"
			if i == 1 {
				cls, side = "s", "shadow"
			}
			wd := barW * x / top
			fmt.Fprintf(&b, `<text x="0" y="%.0f">%s %s</text><rect class="%s" x="90" y="%.0f" width="%.1f" height="%.0f"/><text x="%.1f" y="%.0f">%s</text>`,
				y+11, v.label, side, cls, y+2, wd, rowH-4, 94+wd, y+11, template.HTMLEscapeString(fmtMS(x)))
			y += rowH
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct":      pct,
	"ms":       fmtMS,
	"bars":     latencyBars,
	"summary":  fieldSummary,
	"example":  exampleLine,
	"counts":   countList,
	"verdicts": verdictLine,
	"why":      noiseWhy,
	"dsummary": downstreamSummary,
	"dep":      func(f string) string { d, _, _ := DownstreamParts(f); return d },
	"dpart":    func(f string) string { _, p, _ := DownstreamParts(f); return p },
	"add":      func(a, b int) int { return a + b },
	"mul100":   func(f float64) float64 { return f * 100 },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mirrorline compare report: {{.R.Service}}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1d2330;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:1px solid #dde}
h3{font-size:1.05rem;margin:1.5rem 0 .4rem}
table{border-collapse:collapse;margin:.4rem 0 1rem}th,td{border:1px solid #dde;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font:12.5px/1.4 ui-monospace,Menlo,Consolas,monospace}pre{background:#f7f7fa;padding:.5rem;margin:.2rem 0;white-space:pre-wrap}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-size:.8rem;font-weight:600}
.sig{background:#fde2e1;color:#9b1c1c}.ok{background:#e3f6e8;color:#1f6f3a}.warn{background:#fff1d6;color:#8a5a00}
.meta{color:#5b6375}.endpoint{border:1px solid #dde;border-radius:.4rem;padding:.2rem 1rem 1rem;margin:1rem 0}
svg.bars text{font:11px ui-monospace,monospace;fill:#1d2330}svg.bars rect.p{fill:#6b8fd6}svg.bars rect.s{fill:#e0795d}
</style>
</head>
<body>
<h1>mirrorline compare report: <span id="service">{{.R.Service}}</span></h1>
{{if .R.Job}}<p class="meta">Replay job <code id="job">{{.R.Job}}</code>.</p>{{end}}
<p class="meta">{{.R.Exchanges}} exchanges, {{.Span}}. Generated {{.R.GeneratedAt.Format "2006-01-02T15:04:05Z07:00"}}.</p>
<table id="verdicts"><tr>{{range .VerdictOrder}}<th>{{.}}</th>{{end}}</tr><tr>{{range .VerdictOrder}}<td class="num">{{index $.R.Verdicts .}}</td>{{end}}</tr></table>
<p class="meta">Significant: difference rate &ge; {{pct .R.Thresholds.AlertRate}} with &ge; {{.R.Thresholds.AlertMinSamples}} exchanges.
Latency regression: shadow percentile &gt; +{{printf "%.0f" (mul100 .R.Thresholds.LatencyRelative)}}% and &gt; +{{ms .R.Thresholds.LatencyAbsMS}} over the primary's.</p>

<h2>Top differing endpoints</h2>
{{if not .Sig}}<p id="no-differences">No endpoint differs significantly.</p>{{end}}
{{range $i, $e := .Sig}}
<section class="endpoint" data-endpoint="{{$e.Endpoint}}">
<h3>{{add $i 1}}. <code class="endpoint-name">{{$e.Endpoint}}</code> <span class="badge sig">{{pct $e.DifferenceRate}} differ</span>
{{if $e.Latency.TailRegression}}<span class="badge warn tail-regression">tail latency regression</span>{{end}}</h3>
<p>{{$e.Differing}} of {{$e.Comparable}} comparable exchanges differ. {{verdicts $e.Verdicts}}.</p>
<table class="fields"><tr><th>field</th><th>difference</th><th>exchanges</th><th>share</th><th>example</th></tr>
{{range $e.Fields}}<tr class="field" data-field="{{.Field}}"><td><code>{{.Field}}</code></td><td>{{.Kind}}</td><td class="num">{{.Count}}</td><td class="num">{{pct .Rate}}</td><td>{{summary . $e $.ShowNoise}}</td></tr>
{{end}}</table>{{if $e.Downstream}}
<h4>Downstream</h4>
{{template "downstream" $e}}{{end}}
{{if $e.GRPCStatuses}}<p class="grpc-statuses">grpc-status (primary → shadow): {{counts $e.GRPCStatuses}}</p>{{end}}
{{with $e.Example}}<p>Example diff, exchange <code>{{.ID}}</code> ({{if or .PrimaryGRPCStatus .ShadowGRPCStatus}}grpc-status {{or .PrimaryGRPCStatus "none"}} → {{or .ShadowGRPCStatus "none"}}{{else}}status {{.PrimaryStatus}} → {{.ShadowStatus}}{{end}}):</p>
<pre class="example">{{range .Differences}}{{example . $.ShowNoise}}
{{if .Detail}}{{.Detail}}{{end}}{{end}}</pre>{{end}}
<p class="latency-summary">Latency: {{$e.Latency.Summary}}</p>
{{bars $e.Latency}}
</section>
{{end}}

<h2>Latency per endpoint</h2>
<table id="latency"><tr><th>endpoint</th><th>samples (primary/shadow)</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>mean</th><th>verdict</th></tr>
{{range .ByName}}{{$l := .Latency}}<tr><td><code>{{.Endpoint}}</code></td><td class="num">{{$l.Primary.Count}}/{{$l.Shadow.Count}}</td>
<td class="num">{{ms $l.Primary.P50}} → {{ms $l.Shadow.P50}}</td><td class="num">{{ms $l.Primary.P90}} → {{ms $l.Shadow.P90}}</td>
<td class="num">{{ms $l.Primary.P99}} → {{ms $l.Shadow.P99}}</td><td class="num">{{ms $l.Primary.Max}} → {{ms $l.Shadow.Max}}</td><td class="num">{{ms $l.Primary.Mean}} → {{ms $l.Shadow.Mean}}</td>
<td>{{if not $l.Judged}}not judged{{else if $l.TailRegression}}<span class="badge warn">tail regression{{if $l.MeanImproved}} (mean improved){{end}}</span>{{else if $l.MedianRegression}}<span class="badge warn">median regression</span>{{else}}<span class="badge ok">ok</span>{{end}}</td></tr>
{{end}}</table>

{{if .Other}}<h2>Other endpoints</h2>
<table id="other"><tr><th>endpoint</th><th>exchanges</th><th>verdicts</th></tr>
{{range .Other}}<tr><td><code>{{.Endpoint}}</code>{{if .Latency.TailRegression}} <span class="badge warn tail-regression">tail latency regression</span>{{end}}</td><td class="num">{{.Exchanges}}</td><td>{{verdicts .Verdicts}}</td></tr>
{{end}}</table>{{end}}{{range .Other}}{{if .Downstream}}
<h3>Downstream of <code class="endpoint-name">{{.Endpoint}}</code></h3>
{{template "downstream" .}}{{end}}{{end}}

<h2>Noise</h2>
<p id="noise-summary">{{.R.NoiseFields}} fields judged noise: differences a secondary (a second instance of the primary version) shows too, or volatile values such as timestamps and ids that differ in nearly every exchange.</p>
{{if .ShowNoise}}<table id="noise"><tr><th>endpoint</th><th>field</th><th>difference</th><th>exchanges</th><th>why</th></tr>
{{range .ByName}}{{$ep := .Endpoint}}{{range .Noise}}<tr><td><code>{{$ep}}</code></td><td><code>{{.Field}}</code></td><td>{{.Kind}}</td><td class="num">{{.Count}}</td><td>{{why .}}</td></tr>
{{end}}{{end}}</table>{{end}}
</body>
</html>
{{define "downstream"}}<table class="downstream"><tr><th>dependency</th><th>what</th><th>difference</th><th>exchanges</th><th>share</th><th>primary → shadow</th></tr>
{{range .Downstream}}<tr class="downstream-field" data-field="{{.Field}}"><td><code>{{dep .Field}}</code></td><td><code>{{dpart .Field}}</code></td><td>{{.Kind}}</td><td class="num">{{.Count}}</td><td class="num">{{pct .Rate}}</td><td>{{dsummary . $}}</td></tr>
{{end}}</table>{{end}}`))
