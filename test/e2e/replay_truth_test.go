package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// seedWindow publishes n records to topic, captured every gap from t0 over
// two partitions, and returns the window [t0, end) that holds them all.
func seedWindow(t *testing.T, topic string, n int, t0 time.Time, gap time.Duration) (from, to time.Time) {
	t.Helper()
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		recs = append(recs, capture(t, topic, fmt.Sprint(i), int32(i%2), t0.Add(time.Duration(i)*gap)))
	}
	produceRecords(t, recs)
	return t0, t0.Add(time.Duration(n) * gap)
}

// truthReplay runs a window replay like runReplay and returns its output,
// exit code and JSON report read as plain JSON (so that the test says what a
// report consumer sees, whatever the Go type).
func truthReplay(t *testing.T, args ...string) (string, int, map[string]any) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "truth.json")
	out, code, _ := runReplay(t, append(args, "--report", path)...)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no report: %v\n%s", err, out)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	return out, code, rep
}

// num is the number at key (keys separated by dots) of a report, or -1.
func num(rep map[string]any, key string) float64 {
	var v any = rep
	for _, k := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return -1
		}
		v = m[k]
	}
	if f, ok := v.(float64); ok {
		return f
	}
	return -1
}

// every4th500 is a shadow answering 500 to every 4th request, 200 to the rest.
func every4th500(t *testing.T) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// A window replay against a dead port used to exit 0 with "status error 300"
// and no reason. It now exits 1, and the summary, its last line and the JSON
// report name the reason with its count.
func TestReplayTruthDeadTarget(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	from, to := seedWindow(t, topic, 20, time.Now().Add(-10*time.Minute).Truncate(time.Millisecond), 10*time.Millisecond)
	dead := "http://" + testproc.FreeAddr(t)

	out, code, rep := truthReplay(t, "--service", svc, "--target", dead, "--from", stamp(from), "--to", stamp(to), "--rate", "500/s", "--max-lag", "1m")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	if num(rep, "sent") != 20 || num(rep, "request_errors.refused") != 20 || rep["failed"] != true || num(rep, "error_rate") != 1 {
		t.Fatalf("report %v\n%s", rep, out)
	}
	for _, want := range []string{
		"  failed    20 of 20 requests (100%): refused 20\n",
		"\nreplay failed: 20 of 20 requests errored (refused 20)\n",
		"failed: 20 of 20 requests errored (refused 20)", // the error line on stderr
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A shadow answering 500 to every 4th request: 25% of the requests failed.
// --max-error-rate 0.5 passes (exit 0), --max-error-rate 10% fails (exit 1,
// saying why); without a terminal, progress lines appear on stderr.
func TestReplayTruthMaxErrorRate(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	from, to := seedWindow(t, topic, 20, time.Now().Add(-10*time.Minute).Truncate(time.Millisecond), 10*time.Millisecond)
	// --max-lag 1m: no record is dropped on a loaded machine, all are sent.
	common := []string{"--service", svc, "--from", stamp(from), "--to", stamp(to), "--max-lag", "1m"}

	// 20 records at 40/s take about half a second: progress every 50ms.
	out, code, rep := truthReplay(t, append(common, "--target", every4th500(t).URL, "--rate", "40/s", "--max-error-rate", "0.5", "--progress-interval", "50ms")...)
	if code != 0 || rep["failed"] != false || num(rep, "request_errors.5xx") != 5 || num(rep, "error_rate") != 0.25 || num(rep, "max_error_rate") != 0.5 {
		t.Fatalf("--max-error-rate 0.5: exit %d, report %v\n%s", code, rep, out)
	}
	if !strings.Contains(out, "  failed    5 of 20 requests (25%): 5xx 5\n") || strings.Contains(out, "replay failed") {
		t.Errorf("--max-error-rate 0.5: summary\n%s", out)
	}
	progress := regexp.MustCompile(`(?m)^replay \S+: sent \d+/\d+ \(\d+%\), [0-9.]+/s, errors \d+( \([^)]*\))?(, dropped \d+)?, ETA \S+$`)
	if !progress.MatchString(out) {
		t.Errorf("no progress line on a stderr that is not a terminal:\n%s", out)
	}

	out, code, rep = truthReplay(t, append(common, "--target", every4th500(t).URL, "--rate", "500/s", "--max-error-rate", "10%")...)
	if code != 1 || rep["failed"] != true {
		t.Fatalf("--max-error-rate 10%%: exit %d, report %v\n%s", code, rep, out)
	}
	if want := "replay failed: 5 of 20 requests errored (5xx 5): error rate 25% is above --max-error-rate 10%\n"; !strings.Contains(out, want) {
		t.Errorf("summary lacks %q:\n%s", want, out)
	}
}

// A window whose first record comes 10m15s after --from: the dry run says so
// when it starts, and its summary states the lead-in apart from the send
// span, in agreement with the report's times.
func TestReplayTruthIdleStart(t *testing.T) {
	svc, topic := replaySetup(t, 2)
	first := time.Now().Add(-5 * time.Minute).Truncate(time.Millisecond)
	_, to := seedWindow(t, topic, 300, first, 2*time.Millisecond)
	from := first.Add(-(10*time.Minute + 15*time.Second))

	out, code, rep := truthReplay(t, "--service", svc, "--from", stamp(from), "--to", stamp(to), "--dry-run")
	if code != 0 || num(rep, "sent") != 300 {
		t.Fatalf("dry run: exit %d, report %v\n%s", code, rep, out)
	}
	if num(rep, "send_span") != 0.598 || num(rep, "idle_start") != 615 {
		t.Errorf("send span %v, idle start %v; want 0.598s and 615s", rep["send_span"], rep["idle_start"])
	}
	started, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(rep["started"]))
	firstSend, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(rep["first_send"]))
	if err1 != nil || err2 != nil {
		t.Fatalf("report times: %v, %v", err1, err2)
	}
	if lead := firstSend.Sub(started).Seconds(); lead != num(rep, "lead_in") || lead < 615 {
		t.Errorf("report: first_send - started = %vs, lead_in %v; want equal, at least 615s", lead, rep["lead_in"])
	}
	for _, want := range []string{"sends over 0.598s", "before the first send (the window starts idle: its first record was due 10m15s after the job start)", "window starts idle", "wait=10m15s"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
