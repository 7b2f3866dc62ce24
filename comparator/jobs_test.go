package comparator

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/testproc"
)

func verdictDiff(job, id string, v mlv1.Verdict, note string) *mlv1.Diff {
	return &mlv1.Diff{Id: id, ShadowJob: job, Verdict: v, Note: note}
}

// Dedupe keeps one verdict per job and exchange: a judged verdict is never
// replaced (a second comparator of the group re-reading a record alone
// publishes "missing" for an exchange already judged), a missing one gives
// way to a judged one, and jobs never replace each other's verdicts.
func TestDedupe(t *testing.T) {
	const (
		same    = mlv1.Verdict_VERDICT_SAME
		diff    = mlv1.Verdict_VERDICT_DIFFERENT
		missing = mlv1.Verdict_VERDICT_MISSING
	)
	tests := []struct {
		name string
		in   []*mlv1.Diff
		want []string // job/id/note of what is kept, in order
	}{
		{"judged then missing from a second instance", []*mlv1.Diff{
			verdictDiff("live", "a", same, "1"), verdictDiff("live", "b", diff, "1"), verdictDiff("live", "a", missing, "2")},
			[]string{"live/a/1", "live/b/1"}},
		{"missing then judged", []*mlv1.Diff{
			verdictDiff("live", "a", missing, "1"), verdictDiff("live", "a", diff, "2")},
			[]string{"live/a/2"}},
		{"first judged verdict stays", []*mlv1.Diff{
			verdictDiff("live", "a", same, "1"), verdictDiff("live", "a", diff, "2")},
			[]string{"live/a/1"}},
		{"jobs keep their own verdicts", []*mlv1.Diff{
			verdictDiff("live", "a", same, "1"), verdictDiff("w1", "a", missing, "1"), verdictDiff("w1", "a", diff, "2")},
			[]string{"live/a/1", "w1/a/2"}},
		{"a record without a job is live's", []*mlv1.Diff{
			verdictDiff("", "a", same, "1"), verdictDiff("live", "a", missing, "2")},
			[]string{"live/a/1"}},
		{"records without id are all kept", []*mlv1.Diff{
			verdictDiff("live", "", same, "1"), verdictDiff("live", "", same, "2")},
			[]string{"live//1", "live//2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range Dedupe(tc.in) {
				got = append(got, JobOf(d)+"/"+d.GetId()+"/"+d.GetNote())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("kept %v, want %v", got, tc.want)
			}
		})
	}
}

// compare report --jobs lists each job once, live first, with its span of
// decisions and its counts per verdict (duplicates counted once).
func TestSummarizeJobs(t *testing.T) {
	at := func(d *mlv1.Diff, decided, captured time.Time) *mlv1.Diff {
		d.DecidedTimeNs, d.CaptureTimeNs = decided.UnixNano(), captured.UnixNano()
		return d
	}
	w := t0.Add(time.Hour)
	diffs := []*mlv1.Diff{
		at(verdictDiff("w2", "a", mlv1.Verdict_VERDICT_SAME, ""), w.Add(2*time.Minute), t0),
		at(verdictDiff("w1", "a", mlv1.Verdict_VERDICT_DIFFERENT, ""), w, t0),
		at(verdictDiff("w1", "b", mlv1.Verdict_VERDICT_SAME, ""), w.Add(time.Minute), t0.Add(time.Second)),
		at(verdictDiff("", "a", mlv1.Verdict_VERDICT_SAME, ""), t0, t0),
		at(verdictDiff("live", "b", mlv1.Verdict_VERDICT_SAME, ""), t0.Add(time.Second), t0.Add(time.Second)),
		at(verdictDiff("live", "b", mlv1.Verdict_VERDICT_MISSING, ""), w, t0.Add(time.Second)),
	}
	jobs := SummarizeJobs(diffs)
	var names []string
	for _, j := range jobs {
		names = append(names, j.Job)
	}
	if strings.Join(names, ",") != "live,w1,w2" {
		t.Fatalf("jobs %v, want live, w1, w2", names)
	}
	live, w1 := jobs[0], jobs[1]
	if live.Exchanges != 2 || live.Verdicts["same"] != 2 || live.Verdicts["missing"] != 0 {
		t.Errorf("live: %d exchanges, %v; want 2 same", live.Exchanges, live.Verdicts)
	}
	if w1.Exchanges != 2 || w1.Verdicts["same"] != 1 || w1.Verdicts["different"] != 1 ||
		!w1.FirstDecided.Equal(w) || !w1.LastDecided.Equal(w.Add(time.Minute)) || !w1.From.Equal(t0) || !w1.To.Equal(t0.Add(time.Second)) {
		t.Errorf("w1: %+v", w1)
	}
	var b bytes.Buffer
	if err := WriteJobs(&b, "payments", jobs); err != nil {
		t.Fatal(err)
	}
	// go test ./comparator -run TestSummarizeJobs -update rewrites it.
	testproc.Golden(t, filepath.Join("testdata", "jobs.txt.golden"), b.Bytes(), *update)
	b.Reset()
	hostile := SummarizeJobs([]*mlv1.Diff{verdictDiff("evil\x1b]0;x\x07", "a", mlv1.Verdict_VERDICT_SAME, "")})
	if err := WriteJobs(&b, "payments", hostile); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\x1b\x07") {
		t.Errorf("job name written raw: %q", b.String())
	}
}

func decided(ds []Decision) map[string]*mlv1.Diff {
	out := map[string]*mlv1.Diff{}
	for _, d := range ds {
		out[d.Diff.GetId()] = d.Diff
	}
	return out
}

// The live comparator judges only live shadow records: a window replay of
// exchanges it judged long ago (their ids forgotten) is ignored, not joined
// into "missing" verdicts; every verdict carries its job.
func TestLiveRunnerIgnoresWindowJobs(t *testing.T) {
	cfg := noWarmup()
	cfg.JoinWindow = time.Second
	r := NewRunner(mustNew(t, cfg))
	if got := strings.Join(r.Topics(), ","); got != r.clean+","+r.shadow {
		t.Fatalf("live runner consumes %s", got)
	}
	f := newFeeder(r)
	body := resp(200, "application/json", `{"a":1}`)
	var out []Decision
	out = append(out, f.feed(r.clean, 0, 0, primaryEx("x", "GET", "/a", body), t0)...)
	out = append(out, f.feed(r.shadow, 0, 0, shadowEx("x", "GET", "/a", "live", body), t0)...)
	out = append(out, f.feed(r.clean, 0, 1, primaryEx("y", "GET", "/a", body), t0)...)
	out = append(out, f.feed(r.shadow, 0, 1, shadowEx("y", "GET", "/a", "", body), t0)...)
	r.release(out) // as publishing does
	got := decided(out)
	if len(got) != 2 || got["x"].GetVerdict() != mlv1.Verdict_VERDICT_SAME || got["x"].GetShadowJob() != LiveJob || got["y"].GetShadowJob() != LiveJob {
		t.Fatalf("live verdicts %v", got)
	}
	later := t0.Add(time.Hour) // the decided ids are long forgotten
	r.cmp.Tick(later)
	out = f.feed(r.shadow, 0, 2, shadowEx("x", "GET", "/a", "window-1", body), later)
	out = append(out, r.cmp.Tick(later.Add(time.Hour))...)
	if len(out) != 0 || r.cmp.Pending() != 0 {
		t.Fatalf("window job record judged by the live comparator: %d decisions, %d pending", len(out), r.cmp.Pending())
	}
	if off := f.committed(r.shadow, 0); off != 3 {
		t.Errorf("safe shadow offset %d, want 3 (ignored record not held)", off)
	}
}

// A window job's comparator consumes only the shadow topic and judges each
// record of its job with the primary read at the record's source offset;
// records of other jobs are ignored, a primary that cannot be found is
// missing at once, and a failed lookup is retried without losing a record.
func TestWindowJobRunner(t *testing.T) {
	cfg := noWarmup()
	cfg.ShadowJob = "window-1"
	cmp := mustNew(t, cfg)
	var primaries map[Source]*mlv1.Exchange
	fail := true
	lookups := 0
	lookup := func(_ context.Context, srcs []Source) (map[Source]*mlv1.Exchange, error) {
		lookups++
		if fail {
			return nil, errors.New("broker down")
		}
		out := map[Source]*mlv1.Exchange{}
		for _, s := range srcs {
			if ex, ok := primaries[s]; ok {
				out[s] = ex
			}
		}
		return out, nil
	}
	r := NewRunner(cmp, WithLookup(lookup))
	f := newFeeder(r)
	if got := strings.Join(r.Topics(), ","); got != r.shadow {
		t.Fatalf("window job runner consumes %s, want only %s", got, r.shadow)
	}
	j := "application/json"
	primaries = map[Source]*mlv1.Exchange{
		{r.clean, 0, 10}: primaryEx("a", "GET", "/a", resp(200, j, `{"a":1}`)),
		{r.clean, 0, 11}: primaryEx("b", "GET", "/a", resp(200, j, `{"a":1}`)),
		{r.clean, 0, 12}: primaryEx("other-id", "GET", "/a", resp(200, j, `{"a":1}`)),
	}
	shadow := func(id, job string, src Source, body string) *mlv1.Exchange {
		ex := shadowEx(id, "GET", "/a", job, resp(200, j, body))
		ex.Replay.SourceTopic, ex.Replay.SourcePartition, ex.Replay.SourceOffset = src.Topic, src.Partition, src.Offset
		return ex
	}
	recs := []*mlv1.Exchange{
		shadow("a", "window-1", Source{r.clean, 0, 10}, `{"a":1}`),
		shadow("b", "window-1", Source{r.clean, 0, 11}, `{"a":2}`),
		shadow("c", "window-1", Source{r.clean, 0, 12}, `{"a":1}`),         // the offset holds another exchange
		shadow("d", "window-1", Source{"mirror.raw.payments", 0, 1}, `{}`), // never read from another topic
		shadow("a", "live", Source{r.clean, 0, 10}, `{"a":9}`),             // another job
	}
	var out []Decision
	for i, ex := range recs {
		out = append(out, f.feed(r.shadow, 0, int64(i), ex, t0)...)
	}
	out = append(out, r.resolve(context.Background(), t0)...)
	if off := f.committed(r.shadow, 0); len(out) != 0 || off != 0 {
		t.Fatalf("after a failed lookup: %d decisions, safe offset %d; want none and 0", len(out), off)
	}
	fail = false
	out = r.resolve(context.Background(), t0)
	got := decided(out)
	want := map[string]mlv1.Verdict{"a": mlv1.Verdict_VERDICT_SAME, "b": mlv1.Verdict_VERDICT_DIFFERENT, "c": mlv1.Verdict_VERDICT_MISSING, "d": mlv1.Verdict_VERDICT_MISSING}
	if len(got) != len(want) || lookups != 2 {
		t.Fatalf("decided %v after %d lookups, want %v", got, lookups, want)
	}
	for id, v := range want {
		if got[id].GetVerdict() != v || got[id].GetShadowJob() != "window-1" {
			t.Errorf("%s: %s of job %q, want %s of window-1", id, VerdictLabel(got[id].GetVerdict()), got[id].GetShadowJob(), VerdictLabel(v))
		}
	}
	if got["c"].GetReason() != "primary record not found at its source offset" {
		t.Errorf("c: reason %q", got["c"].GetReason())
	}
	if off := f.committed(r.shadow, 0); off != 0 {
		t.Errorf("safe offset %d before the decisions are published, want 0", off)
	}
	r.release(out) // as publishing does
	if off := f.committed(r.shadow, 0); off != int64(len(recs)) {
		t.Errorf("safe offset %d after publishing, want %d", off, len(recs))
	}
}
