package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// jobsShadow answers GET /items/N with {"n":N}, except every differEvery-th
// item, answered {"n":-1}: the shadow version's bug.
func jobsShadow(t *testing.T, differEvery int) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/items/%d", &n); err != nil {
			http.Error(w, "unknown", http.StatusNotFound)
			return
		}
		if n%differEvery == 0 {
			n = -1
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"n":%d}`, n)
	}))
	t.Cleanup(s.Close)
	return s
}

// jobsCapture is a clean-topic record of GET /items/i captured at at, the
// primary having answered {"n":i}.
func jobsCapture(t *testing.T, topic string, i int, at time.Time) *kgo.Record {
	t.Helper()
	ex := &mlv1.Exchange{
		Id: fmt.Sprintf("ex-%03d", i), ConnectionId: fmt.Sprintf("conn-%d", i%6), Sequence: uint64(i/6 + 1),
		CaptureTimeNs: at.UnixNano(), Source: mlv1.Source_SOURCE_PROXY,
		Request: &mlv1.Request{Method: "GET", Url: fmt.Sprintf("/items/%d", i), Host: "primary.example"},
		Response: &mlv1.Response{Status: 200, Headers: []*mlv1.Header{{Name: "Content-Type", Value: "application/json"}},
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i)), LatencyNs: int64(time.Millisecond)},
	}
	b, err := proto.Marshal(ex)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(ex.ConnectionId), Value: b, Timestamp: at}
}

// jobVerdicts reads mirror.diff.S and counts the verdicts (deduplicated) of
// each job; nil while the topic cannot be read (not created yet).
func jobVerdicts(t *testing.T, kcfg broker.Config, svc string) map[string]map[string]int {
	t.Helper()
	var diffs []*mlv1.Diff
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := comparator.ReadDiffs(ctx, kcfg, broker.Topic(broker.Diff, svc), time.Time{}, 0, func(d *mlv1.Diff) { diffs = append(diffs, d) }); err != nil {
		t.Logf("read diffs: %v", err)
		return nil
	}
	out := map[string]map[string]int{}
	for _, j := range comparator.SummarizeJobs(diffs) {
		out[j.Job] = j.Verdicts
		out[j.Job]["total"] = j.Exchanges
	}
	return out
}

// shadowEnds returns, per partition of topic, the offset after its last
// record, once want records (read committed) are there.
func shadowEnds(t *testing.T, topic string, want int) map[int32]int64 {
	t.Helper()
	cl := kafkatest.Client(t, append(stage.ConsumeOpts(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	ends := map[int32]int64{}
	n := 0
	if !testproc.Wait(60*time.Second, func() bool {
		// Each check waits up to a second for fetches: it paces itself.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			n++
			ends[r.Partition] = max(ends[r.Partition], r.Offset+1)
		})
		return n >= want
	}) {
		t.Fatalf("%d of %d records on %s", n, want, topic)
	}
	if n != want {
		t.Fatalf("%d records on %s, want %d", n, topic, want)
	}
	return ends
}

// committedPast reports whether group has committed at least ends on topic.
func committedPast(t *testing.T, adm *kadm.Client, group, topic string, ends map[int32]int64) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	for p, end := range ends {
		o, ok := offs.Lookup(topic, p)
		if !ok || o.Err != nil || o.At < end {
			return false
		}
	}
	return true
}

// The newcomer scenario: while the live pipeline runs, a window replay of
// the last minutes at 5x (its own job), a dry-run ramp replay and a second,
// short comparator instance of the live group leave the live report byte for
// byte as it was; the window job gets its own verdicts (compare --job),
// reported by compare report --job and listed by --jobs.
func TestCompareJobsKeepLiveVerdicts(t *testing.T) {
	const (
		n           = 60
		differEvery = 4 // 15 different, 45 same
		window      = 2 * time.Second
	)
	kcfg := kafkatest.Config(t)
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	clean, shadowTopic := broker.Topic(broker.Clean, svc), broker.Topic(broker.Shadow, svc)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	shadow := jobsShadow(t, differEvery)
	adm := kadm.NewClient(kafkatest.Client(t))

	// Live: captured traffic, the live replayer and the live comparator.
	t0 := time.Now().Add(-10 * time.Second).Truncate(time.Millisecond)
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, jobsCapture(t, clean, i, t0.Add(time.Duration(i)*50*time.Millisecond)))
	}
	pcl := kafkatest.Client(t)
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := pcl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pcancel()
	runJobReplayer(t, kcfg, svc, "replay-"+svc, shadow.URL, comparator.LiveJob)
	compareArgs := []string{"compare", "--service", svc, "--start", "earliest", "--join-window", window.String(), "--prime", "off", "--metrics-addr", ""}
	startML(t, env, compareArgs...)
	liveWant := map[string]int{"total": n, "same": n - n/differEvery, "different": n / differEvery}
	testproc.EventuallyEvery(t, 90*time.Second, 200*time.Millisecond, "the live verdicts", func() bool {
		v := jobVerdicts(t, kcfg, svc)[comparator.LiveJob]
		return v["total"] == n
	})
	if v := jobVerdicts(t, kcfg, svc)[comparator.LiveJob]; v["same"] != liveWant["same"] || v["different"] != liveWant["different"] {
		t.Fatalf("live verdicts %v, want %v", v, liveWant)
	}
	report := func(args ...string) string {
		t.Helper()
		out, code := runML(t, env, append([]string{"compare", "report", "--service", svc}, args...)...)
		if code != 0 {
			t.Fatalf("compare report %v: exit %d\n%s", args, code, out)
		}
		return out
	}
	before := report()
	if !strings.Contains(before, fmt.Sprintf("exchanges: %d (", n)) {
		t.Fatalf("live report:\n%s", before)
	}

	// The newcomer comes later than the comparator remembers decided
	// exchanges (two join windows), as a window of the last minutes does.
	time.Sleep(2*window + time.Second) // scenario timing, not synchronisation

	// A window replay of the captured window at 5x, as job wjob.
	wjob := "window-" + svc
	from, to := t0.Add(-time.Second).UTC().Format(time.RFC3339Nano), time.Now().UTC().Format(time.RFC3339Nano)
	out, code := runML(t, env, "replay", "--service", svc, "--from", from, "--to", to, "--speed", "5x", "--job", wjob,
		"--target", shadow.URL, "--metrics-addr", "", "--no-progress")
	if code != 0 {
		t.Fatalf("window replay: exit %d\n%s", code, out)
	}
	// A dry-run ramp replay of the same window: nothing sent, nothing judged.
	out, code = runML(t, env, "replay", "--service", svc, "--from", from, "--to", to, "--ramp", "1x..10x/2s", "--dry-run",
		"--metrics-addr", "", "--no-progress")
	if code != 0 {
		t.Fatalf("dry-run ramp replay: exit %d\n%s", code, out)
	}
	// The shadow topic: the live replayer's n records and the window job's n.
	ends := shadowEnds(t, shadowTopic, 2*n)

	// A second comparator instance of the live group joins, then stops.
	group := comparator.DefaultGroup(svc)
	second := exec.Command(mlBin, compareArgs...)
	second.Env = append(os.Environ(), env...)
	secondOut := &testproc.Output{}
	second.Stdout, second.Stderr = secondOut, secondOut
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	testproc.EventuallyEvery(t, 60*time.Second, 200*time.Millisecond, "the second comparator to join the group", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			return false
		}
		g, ok := gs[group]
		return ok && len(g.Members) == 2 && g.State == "Stable"
	})
	_ = second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Fatalf("second comparator: %v\n%s", err, secondOut)
	}

	// The live group has read (and decided or ignored) every shadow record.
	testproc.EventuallyEvery(t, 90*time.Second, 200*time.Millisecond, "the live group to commit past the window job's records", func() bool {
		return committedPast(t, adm, group, shadowTopic, ends)
	})
	// The window job's comparator judges it, and exits once it has judged
	// every record of the job (--until-done).
	out, code = runML(t, env, "compare", "--service", svc, "--job", wjob, "--until-done", "--join-window", window.String(), "--prime", "off", "--metrics-addr", "")
	if code != 0 || !strings.Contains(out, "done") {
		t.Fatalf("compare --job %s --until-done: exit %d\n%s", wjob, code, out)
	}
	if !committedPast(t, adm, group, shadowTopic, ends) {
		t.Fatal("live group committed offsets went back")
	}

	after := report()
	if after != before {
		t.Errorf("the live report changed.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	verdicts := jobVerdicts(t, kcfg, svc)
	if v := verdicts[comparator.LiveJob]; v["total"] != n || v["same"] != liveWant["same"] || v["different"] != liveWant["different"] {
		t.Errorf("live verdicts %v, want %v", v, liveWant)
	}
	if v := verdicts[wjob]; v["total"] != n || v["same"] != liveWant["same"] || v["different"] != liveWant["different"] || v["missing"] != 0 {
		t.Errorf("window job verdicts %v, want %v", v, liveWant)
	}
	if len(verdicts) != 2 {
		t.Errorf("verdicts of jobs %v, want live and %s only (a dry run is not judged)", verdicts, wjob)
	}

	var rep comparator.Report
	if err := json.Unmarshal([]byte(report("--job", wjob, "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Job != wjob || rep.Exchanges != n || rep.Verdicts["same"] != liveWant["same"] || rep.Verdicts["different"] != liveWant["different"] {
		t.Errorf("window job report: job %q, %d exchanges, %v; want %s, %d, %v", rep.Job, rep.Exchanges, rep.Verdicts, wjob, n, liveWant)
	}
	if text := report("--job", wjob); !strings.Contains(text, "replay job: "+wjob) || !strings.Contains(text, fmt.Sprintf("exchanges: %d (", n)) {
		t.Errorf("window job report:\n%s", text)
	}
	var jobs []comparator.JobSummary
	if err := json.Unmarshal([]byte(report("--jobs", "--json")), &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].Job != comparator.LiveJob || jobs[1].Job != wjob || jobs[0].Exchanges != n || jobs[1].Exchanges != n ||
		jobs[1].FirstDecided.IsZero() || jobs[1].FirstDecided.Before(jobs[0].LastDecided) {
		t.Errorf("jobs %+v", jobs)
	}
	if text := report("--jobs"); !strings.Contains(text, wjob) || !strings.Contains(text, "live") {
		t.Errorf("job list:\n%s", text)
	}
}
