package comparator

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
)

// Report is the human report of a service's comparison (`mirrorline compare
// report`), built from its diff records.
type Report struct {
	// Service is the service name (topics mirror.*.Service).
	Service string `json:"service"`
	// Job is the replay job whose verdicts the report covers ("live", or a
	// window replay's job).
	Job string `json:"job,omitempty"`
	// GeneratedAt is when the report was built.
	GeneratedAt time.Time `json:"generated_at"`
	// From and To span the capture times of the exchanges.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Exchanges counts the exchanges; Verdicts counts them by verdict label.
	Exchanges int            `json:"exchanges"`
	Verdicts  map[string]int `json:"verdicts"`
	// Thresholds are the settings the report was judged with.
	Thresholds Thresholds `json:"thresholds"`
	// Endpoints, the significantly differing ones first (most differing
	// exchanges first), then the others by name.
	Endpoints []EndpointReport `json:"endpoints"`
	// NoiseFields counts the fields judged noise over all endpoints.
	NoiseFields int `json:"noise_fields"`
}

// Thresholds are the settings the report was judged with.
type Thresholds struct {
	// AlertRate and AlertMinSamples make an endpoint significant (alert.*).
	AlertRate       float64 `json:"alert_rate"`
	AlertMinSamples int     `json:"alert_min_samples"`
	// Noise* are the noise.* settings.
	NoiseMinSamples int     `json:"noise_min_samples"`
	VolatileRatio   float64 `json:"volatile_ratio"`
	NoiseRelative   float64 `json:"noise_relative"`
	NoiseAbsolute   float64 `json:"noise_absolute"`
	// LatencyRelative and LatencyAbsMS are latency.relative and latency.absolute (ms).
	LatencyRelative float64 `json:"latency_relative"`
	LatencyAbsMS    float64 `json:"latency_absolute_ms"`
}

// EndpointReport is one endpoint of a Report.
type EndpointReport struct {
	// Endpoint is the method and path template ("POST /payments").
	Endpoint string `json:"endpoint"`
	// Exchanges counts its exchanges; Verdicts counts them by verdict label.
	Exchanges int            `json:"exchanges"`
	Verdicts  map[string]int `json:"verdicts"`
	// Differing (different + shadow-error) of Comparable (same + different + shadow-error).
	Differing      int     `json:"differing"`
	Comparable     int     `json:"comparable"`
	DifferenceRate float64 `json:"difference_rate"`
	// Significant: DifferenceRate >= alert.rate with at least alert.min_samples comparable exchanges.
	Significant bool `json:"significant"`
	// Fields are the differences that are not noise, most frequent first.
	Fields []FieldReport `json:"fields"`
	// Downstream are the differences of the calls to dependencies that are
	// not noise ("downstream[POST gateway:8080/charge]" for a call made or
	// missing, "downstream[...].body.amount" for a request body field), most
	// frequent first; left out of Fields.
	Downstream []FieldReport `json:"downstream,omitempty"`
	// Noise are the differences judged noise, most frequent first.
	Noise []FieldReport `json:"noise"`
	// StatusTransitions counts status changes ("201 → 422", for gRPC
	// "OK → INVALID_ARGUMENT").
	StatusTransitions map[string]int `json:"status_transitions,omitempty"`
	// GRPCStatuses counts a gRPC method's compared exchanges by their gRPC
	// status on each side ("OK → OK"; "none" without a grpc-status).
	GRPCStatuses map[string]int `json:"grpc_statuses,omitempty"`
	// Reasons counts why exchanges were errors or missing.
	Reasons map[string]int `json:"reasons,omitempty"`
	// Example is one differing exchange, for the top difference.
	Example *Example `json:"example,omitempty"`
	// Latency compares the shadow's latency with the primary's.
	Latency LatencyReport `json:"latency"`
}

// FieldReport is one kind of difference at an endpoint.
type FieldReport struct {
	// Field is the key ("status", "header.content-type", "body.items.*.id");
	// "body" with UnderStatus and kind "removed" collects the fields a status
	// change removed (listed in Fields).
	Field string `json:"field"`
	// Kind is changed, added, removed or type_changed.
	Kind string `json:"kind"`
	// Count of exchanges with this difference, and its share of the compared
	// ones (same + different).
	Count int     `json:"count"`
	Rate  float64 `json:"rate"`
	// UnderStatus: every occurrence came with a status difference.
	UnderStatus bool `json:"under_status,omitempty"`
	// Fields lists the fields of a "body removed" row under a status change.
	Fields []string `json:"fields,omitempty"`
	// An example (redacted values) and the exchange it is from.
	Primary   string `json:"primary,omitempty"`
	Shadow    string `json:"shadow,omitempty"`
	Detail    string `json:"detail,omitempty"`
	ExampleID string `json:"example_id,omitempty"`
	// For noise: why ("secondary", "volatile", "secondary+volatile", "status")
	// and the learned rates.
	Reason        string  `json:"reason,omitempty"`
	SecondaryRate float64 `json:"secondary_rate,omitempty"`
	VolatileRate  float64 `json:"volatile_rate,omitempty"`
}

// Example is one differing exchange of an endpoint, its noise left out.
type Example struct {
	// ID is the exchange id; CaptureTime its capture time.
	ID          string    `json:"id"`
	CaptureTime time.Time `json:"capture_time"`
	// PrimaryStatus and ShadowStatus are the two status codes.
	PrimaryStatus int32 `json:"primary_status"`
	ShadowStatus  int32 `json:"shadow_status"`
	// PrimaryGRPCStatus and ShadowGRPCStatus are the gRPC status codes by
	// name, for a gRPC exchange.
	PrimaryGRPCStatus string `json:"primary_grpc_status,omitempty"`
	ShadowGRPCStatus  string `json:"shadow_grpc_status,omitempty"`
	// Differences are the exchange's differences that are not noise (the
	// fields a status change removed as one "body" entry).
	Differences []FieldReport `json:"differences"`
}

// KindLabel names a DiffKind: changed, added, removed, type_changed.
func KindLabel(k mlv1.DiffKind) string {
	return labelOf(kindLabels, k)
}

var kindLabels = map[mlv1.DiffKind]string{
	mlv1.DiffKind_DIFF_KIND_CHANGED: "changed", mlv1.DiffKind_DIFF_KIND_ADDED: "added",
	mlv1.DiffKind_DIFF_KIND_REMOVED: "removed", mlv1.DiffKind_DIFF_KIND_TYPE_CHANGED: "type_changed",
}

// BuildReport judges diffs with hindsight and summarizes them: it first
// learns noise from all of them, then re-judges each compared exchange with
// what was learned (early exchanges were decided live with less knowledge)
// and counts them. diffs must hold one record per exchange.
func BuildReport(service string, cfg Config, diffs []*mlv1.Diff, now time.Time) *Report {
	cfg = cfg.WithDefaults()
	// In capture order (then by id): diffs read from several partitions
	// arrive in any interleaving, and the examples and noise learned must
	// not depend on it, so one set of verdicts always gives one report.
	diffs = slices.Clone(diffs)
	slices.SortStableFunc(diffs, func(a, b *mlv1.Diff) int {
		return cmp.Or(cmp.Compare(a.GetCaptureTimeNs(), b.GetCaptureTimeNs()), cmp.Compare(a.GetId(), b.GetId()))
	})
	st := NewStats(cfg)
	for _, d := range diffs {
		st.Learn(d)
	}
	for _, d := range diffs {
		st.Judge(d)
		st.Record(d)
	}
	return st.Report(service, now)
}

// Report summarizes the recorded exchanges.
func (s *Stats) Report(service string, now time.Time) *Report {
	cfg := s.cfg
	rep := &Report{
		Service: service, GeneratedAt: now.UTC(), Verdicts: map[string]int{},
		Thresholds: Thresholds{
			AlertRate: cfg.Alert.Rate, AlertMinSamples: cfg.Alert.MinSamples,
			NoiseMinSamples: cfg.Noise.MinSamples, VolatileRatio: cfg.Noise.VolatileRatio,
			NoiseRelative: cfg.Noise.Relative, NoiseAbsolute: cfg.Noise.Absolute,
			LatencyRelative: cfg.Latency.Relative, LatencyAbsMS: float64(cfg.Latency.Absolute) / float64(time.Millisecond),
		},
	}
	for _, v := range Verdicts {
		rep.Verdicts[VerdictLabel(v)] = 0
	}
	var first, last int64
	for _, name := range s.Endpoints() {
		es := s.eps[name]
		er := EndpointReport{Endpoint: name, Verdicts: map[string]int{}, Latency: s.Latency(name)}
		for _, v := range Verdicts {
			n := es.verdicts[v]
			er.Verdicts[VerdictLabel(v)] = n
			rep.Verdicts[VerdictLabel(v)] += n
			er.Exchanges += n
		}
		if er.Exchanges == 0 {
			continue
		}
		rep.Exchanges += er.Exchanges
		er.Differing, er.Comparable = s.Differing(name)
		if er.Comparable > 0 {
			er.DifferenceRate = float64(er.Differing) / float64(er.Comparable)
		}
		er.Significant = er.Differing > 0 && er.Comparable >= cfg.Alert.MinSamples && er.DifferenceRate >= cfg.Alert.Rate
		judged := max(es.verdicts[mlv1.Verdict_VERDICT_SAME]+es.verdicts[mlv1.Verdict_VERDICT_DIFFERENT], 1)
		for _, r := range es.rows {
			er.Fields = append(er.Fields, fieldReport(r, judged))
		}
		sortFields(er.Fields)
		for k, r := range es.noise {
			fr := fieldReport(r, judged)
			ni := s.classify(es, k)
			fr.SecondaryRate, fr.VolatileRate = ni.secondary, ni.volatile
			fr.Reason = cmp.Or(ni.reason(true), "status")
			er.Noise = append(er.Noise, fr)
		}
		sortFields(er.Noise)
		rep.NoiseFields += len(er.Noise)
		if len(es.transitions) > 0 {
			er.StatusTransitions = maps.Clone(es.transitions)
		}
		if len(es.reasons) > 0 {
			er.Reasons = maps.Clone(es.reasons)
		}
		if len(es.grpcStatuses) > 0 {
			er.GRPCStatuses = maps.Clone(es.grpcStatuses)
		}
		er.Example = s.example(es, er.Fields)
		er.Fields, er.Downstream = splitDownstream(er.Fields)
		if es.firstNs > 0 && (first == 0 || es.firstNs < first) {
			first = es.firstNs
		}
		last = max(last, es.lastNs)
		rep.Endpoints = append(rep.Endpoints, er)
	}
	rep.From, rep.To = nsTime(first), nsTime(last)
	slices.SortStableFunc(rep.Endpoints, func(a, b EndpointReport) int {
		byDiffering := 0 // the significant ones, most differing first
		if a.Significant && b.Significant {
			byDiffering = cmp.Compare(b.Differing, a.Differing)
		}
		return cmp.Or(trueFirst(a.Significant, b.Significant), byDiffering, strings.Compare(a.Endpoint, b.Endpoint))
	})
	return rep
}

// splitDownstream separates the downstream differences from the others.
func splitDownstream(fs []FieldReport) (own, down []FieldReport) {
	for _, f := range fs {
		if strings.HasPrefix(f.Field, DownstreamPrefix) {
			down = append(down, f)
		} else {
			own = append(own, f)
		}
	}
	return own, down
}

func fieldReport(r *row, judged int) FieldReport {
	fr := FieldReport{
		Field: r.key.key, Kind: KindLabel(r.key.kind), Count: r.count, Rate: float64(r.count) / float64(judged),
		UnderStatus: r.count > 0 && r.underStatus == r.count, ExampleID: r.exampleID,
	}
	if r.example != nil {
		fr.Primary, fr.Shadow, fr.Detail = r.example.GetPrimary(), r.example.GetShadow(), r.example.GetDetail()
	}
	if r.key.removedUnderStatus {
		fr.Primary, fr.Shadow = "", ""
		for p := range r.paths {
			fr.Fields = append(fr.Fields, p)
		}
		slices.Sort(fr.Fields)
	}
	return fr
}

// sortFields orders rows: status first, then by count, then by name; the
// fields removed under a status change last.
func sortFields(fs []FieldReport) {
	slices.SortStableFunc(fs, func(a, b FieldReport) int {
		return cmp.Or(trueFirst(a.Field == FieldStatus, b.Field == FieldStatus),
			trueFirst(a.Fields == nil, b.Fields == nil), // the fields a status change removed come last
			cmp.Compare(b.Count, a.Count), strings.Compare(a.Field, b.Field), strings.Compare(a.Kind, b.Kind))
	})
}

// trueFirst orders true before false (a sort comparison).
func trueFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// example returns the exchange exemplifying the endpoint's top difference.
func (s *Stats) example(es *epStats, fields []FieldReport) *Example {
	var d *mlv1.Diff
	if len(fields) > 0 {
		d = findExample(es, fields[0].ExampleID)
	}
	if d == nil {
		d = es.example
	}
	if d == nil {
		return nil
	}
	ex := &Example{ID: d.GetId(), CaptureTime: nsTime(d.GetCaptureTimeNs()), PrimaryStatus: d.GetPrimaryStatus(), ShadowStatus: d.GetShadowStatus(),
		PrimaryGRPCStatus: d.GetPrimaryGrpcStatus(), ShadowGRPCStatus: d.GetShadowGrpcStatus()}
	removed := -1
	for _, df := range d.GetDifferences() {
		if df.GetNoise() {
			continue
		}
		if df.GetUnderStatus() && df.GetKind() == mlv1.DiffKind_DIFF_KIND_REMOVED {
			if removed < 0 {
				removed = len(ex.Differences)
				ex.Differences = append(ex.Differences, FieldReport{Field: FieldBody, Kind: "removed", UnderStatus: true, Count: 1})
			}
			ex.Differences[removed].Fields = append(ex.Differences[removed].Fields, df.GetField())
			continue
		}
		ex.Differences = append(ex.Differences, FieldReport{
			Field: df.GetField(), Kind: KindLabel(df.GetKind()), Count: 1, UnderStatus: df.GetUnderStatus(),
			Primary: df.GetPrimary(), Shadow: df.GetShadow(), Detail: df.GetDetail(),
		})
	}
	return ex
}

// findExample is the recorded example diff with id, if the endpoint kept it.
func findExample(es *epStats, id string) *mlv1.Diff {
	if es.example != nil && es.example.GetId() == id {
		return es.example
	}
	for _, r := range es.rows {
		if r.exampleID == id && r.exampleDiff != nil {
			return r.exampleDiff
		}
	}
	return nil
}

// ReadDiffs calls fn for each record of topic from since (zero: the start of
// the retained data) up to the end of the topic as it was when called, at
// most limit records (0: no limit). It returns how many it read. The diff
// topic is written in transactions: it is read committed, up to the last
// stable offset (stage.Read).
func ReadDiffs(ctx context.Context, cfg broker.Config, topic string, since time.Time, limit int, fn func(*mlv1.Diff)) (int, error) {
	opts, err := cfg.Opts()
	if err != nil {
		return 0, err
	}
	spans, err := spansSince(ctx, opts, topic, since)
	if err != nil {
		return 0, err
	}
	n := 0
	err = stage.Read(ctx, opts, spans, func(r *kgo.Record) stage.Next {
		d := &mlv1.Diff{}
		if proto.Unmarshal(r.Value, d) != nil {
			return stage.Continue
		}
		n++
		fn(d)
		if limit > 0 && n >= limit {
			return stage.EndAll
		}
		return stage.Continue
	})
	if err != nil {
		return n, fmt.Errorf("read diff records of %s: %w", topic, err)
	}
	return n, nil
}

// spansSince are the partitions of topic from their first record at or
// after since (zero: their start) to their end.
func spansSince(ctx context.Context, opts []kgo.Opt, topic string, since time.Time) ([]stage.Span, error) {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var starts kadm.ListedOffsets
	if since.IsZero() {
		starts, err = adm.ListStartOffsets(ctx, topic)
	} else {
		starts, err = adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), topic)
	}
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	var spans []stage.Span
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset >= 0 {
			spans = append(spans, stage.Span{Topic: topic, Partition: o.Partition, From: o.Offset, To: math.MaxInt64})
		}
	})
	return spans, nil
}
