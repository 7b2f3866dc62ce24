package middleware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// generous: CI runs on a loaded 2-core machine.
const generous = 20 * time.Second

func intp(n int) *int { return &n }

func testRequest(url string) *mlv1.Request {
	return &mlv1.Request{
		Method: "POST", Url: url, Host: "shop.example", Proto: "HTTP/1.1", Scheme: "http",
		Headers: []*mlv1.Header{
			{Name: "Content-Type", Value: "application/octet-stream"},
			{Name: "X-Latin1", Value: "caf\xe9"}, // not UTF-8: must survive an echo
		},
		Body: []byte{0, 1, 2, 0xff, '\n', '"'}, BodySize: 6,
	}
}

func header(r *mlv1.Request, name string) []string {
	var vs []string
	for _, h := range r.GetHeaders() {
		if h.GetName() == name {
			vs = append(vs, h.GetValue())
		}
	}
	return vs
}

func count(m *Metrics, outcome string) float64 {
	return testutil.ToFloat64(m.Requests.WithLabelValues(outcome))
}

func TestRequestAnswers(t *testing.T) {
	for _, tc := range []struct {
		mode, outcome string
		drop          bool
		check         func(t *testing.T, in, out *mlv1.Request)
	}{
		{mode: "echo", outcome: OutcomeSent, check: func(t *testing.T, in, out *mlv1.Request) {
			if !proto.Equal(in, out) {
				t.Errorf("echo changed the request:\n in  %v\n out %v", in, out)
			}
		}},
		{mode: "ack", outcome: OutcomeSent, check: func(t *testing.T, in, out *mlv1.Request) {
			if !proto.Equal(in, out) {
				t.Errorf("ack changed the request:\n in  %v\n out %v", in, out)
			}
		}},
		{mode: "drop", outcome: OutcomeDropped, drop: true},
		{mode: "modify", outcome: OutcomeModified, check: func(t *testing.T, in, out *mlv1.Request) {
			if got := header(out, "X-Helper"); len(got) != 1 || got[0] != "go" {
				t.Errorf("X-Helper = %q, want [go]", got)
			}
			if got := header(out, "X-Latin1"); len(got) != 1 || got[0] != "caf\xe9" {
				t.Errorf("X-Latin1 = %q, want the captured bytes", got)
			}
			if !bytes.Equal(out.Body, in.Body) || out.Method != in.Method || out.Url != in.Url || out.Proto != in.Proto {
				t.Errorf("modify changed more than headers: %v", out)
			}
		}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			mw, m := startHelper(t, tc.mode, Config{Timeout: generous}, 0)
			in := testRequest("/a?q=1")
			orig := proto.Clone(in)
			out, drop, err := mw.Request(context.Background(), Meta{ID: "ex-1", Service: "shop", Route: "r", Target: "http://shadow"}, in)
			if err != nil {
				t.Fatalf("Request: %v", err)
			}
			if drop != tc.drop || (drop && out != nil) {
				t.Fatalf("drop = %v (out %v), want %v", drop, out, tc.drop)
			}
			if !proto.Equal(in, orig) {
				t.Errorf("Request changed its argument")
			}
			if tc.check != nil {
				tc.check(t, in, out)
			}
			if got := count(m, tc.outcome); got != 1 {
				t.Errorf("requests_total{outcome=%q} = %v, want 1", tc.outcome, got)
			}
			if n := testutil.CollectAndCount(m.Latency); n != 1 {
				t.Errorf("latency series = %d", n)
			}
			if err := mw.Close(); err != nil {
				t.Errorf("Close of a program that exits when stdin closes: %v", err)
			}
			if _, _, err := mw.Request(context.Background(), Meta{ID: "ex-2"}, in); !errors.Is(err, ErrClosed) {
				t.Errorf("Request after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestRequestTimeout(t *testing.T) {
	mw, m := startHelper(t, "never", Config{Timeout: 200 * time.Millisecond}, 0)
	_, _, err := mw.Request(context.Background(), Meta{ID: "ex-1"}, testRequest("/a"))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Request: %v, want ErrTimeout", err)
	}
	if got := count(m, OutcomeTimeout); got != 1 {
		t.Errorf("timeout count = %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := mw.Request(ctx, Meta{ID: "ex-2"}, testRequest("/a")); !errors.Is(err, context.Canceled) {
		t.Errorf("Request with a canceled context: %v", err)
	}
}

func TestLateAnswerDiscarded(t *testing.T) {
	mw, m := startHelper(t, "holdfirst", Config{Timeout: 300 * time.Millisecond}, 0)
	if _, _, err := mw.Request(context.Background(), Meta{ID: "first"}, testRequest("/1")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("first: %v, want ErrTimeout", err)
	}
	mw.timeout = generous // the second must not time out (no request is in flight)
	out, _, err := mw.Request(context.Background(), Meta{ID: "second"}, testRequest("/2"))
	if err != nil || out.GetUrl() != "/2" {
		t.Fatalf("second: %v %v", out, err)
	}
	// The late answer to "first" was written before the answer to "second".
	if got := testutil.ToFloat64(m.Discarded.WithLabelValues(DiscardLate)); got != 1 {
		t.Errorf("late answers = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.Discarded.WithLabelValues(DiscardUnknownID)); got != 0 {
		t.Errorf("unknown ids = %v, want 0", got)
	}
}

func TestBadAnswers(t *testing.T) {
	mw, m := startHelper(t, "bad", Config{Timeout: generous}, 0)
	for i, tc := range []struct {
		url, secret string // secret: answer bytes the error must not quote
	}{
		{"/bad-method", "GE T"},
		{"/empty-method", ""},
		{"/crlf", "Injected"},
		{"/nul", ""},
		{"/header-name", "Bad Name"},
		{"/header-shape", "X-Only-Name"},
		{"/header-type", "X-A"},
		{"/base64", "not base64%"},
		{"/url-space", "/a b"},
		{"/url-empty", ""},
		{"/host-crlf", "X: y"},
		{"/type", ""},
		{"/drop-type", "yes"},
		{"/request-type", "GET /"},
	} {
		out, drop, err := mw.Request(context.Background(), Meta{ID: "ex-" + strconv.Itoa(i)}, testRequest(tc.url))
		if !errors.Is(err, ErrBadAnswer) || out != nil || drop {
			t.Errorf("%s: %v %v %v, want ErrBadAnswer", tc.url, out, drop, err)
			continue
		}
		if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%s: error quotes the answer: %v", tc.url, err)
		}
	}
	if got := count(m, OutcomeBadAnswer); got != 14 {
		t.Errorf("bad_answer = %v, want 14", got)
	}
	// Lines that answer nothing are counted; the request still gets its answer.
	out, _, err := mw.Request(context.Background(), Meta{ID: "noise"}, testRequest("/noise"))
	if err != nil || out.GetUrl() != "/noise" {
		t.Fatalf("/noise: %v %v", out, err)
	}
	if got := testutil.ToFloat64(m.Discarded.WithLabelValues(DiscardInvalid)); got != 2 {
		t.Errorf("invalid lines = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.Discarded.WithLabelValues(DiscardUnknownID)); got != 1 {
		t.Errorf("unknown ids = %v, want 1", got)
	}
}

func TestConcurrentOutOfOrder(t *testing.T) {
	const n = 16
	mw, m := startHelper(t, "reverse", Config{Timeout: generous}, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("ex-%d", i)
			url := fmt.Sprintf("/item/%d", i)
			out, drop, err := mw.Request(context.Background(), Meta{ID: id}, testRequest(url))
			switch {
			case err != nil || drop:
				errs <- fmt.Errorf("%s: %v %v", id, drop, err)
			case out.GetUrl() != url || len(header(out, "X-Seen-Id")) != 1 || header(out, "X-Seen-Id")[0] != id:
				errs <- fmt.Errorf("%s: got the answer of another request: %s %q", id, out.GetUrl(), header(out, "X-Seen-Id"))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := count(m, OutcomeModified); got != n {
		t.Errorf("modified = %v, want %d", got, n)
	}
}

func TestDuplicateIDsInFlight(t *testing.T) {
	mw, _ := startHelper(t, "reverse", Config{Timeout: generous}, 2)
	var wg sync.WaitGroup
	urls := []string{"/one", "/two"}
	for _, url := range urls {
		wg.Go(func() {
			out, _, err := mw.Request(context.Background(), Meta{ID: "same"}, testRequest(url))
			if err != nil || out.GetUrl() != url {
				t.Errorf("%s: %v %v", url, out.GetUrl(), err)
			}
		})
	}
	wg.Wait()
}

func TestCrashRestart(t *testing.T) {
	mw, m := startHelper(t, "exit", Config{Timeout: generous, Restarts: intp(1)}, 2)
	if _, _, err := mw.Request(context.Background(), Meta{ID: "ex-1"}, testRequest("/1")); err != nil {
		t.Fatalf("first request: %v", err)
	}
	_, _, err := mw.Request(context.Background(), Meta{ID: "ex-2"}, testRequest("/2"))
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "middleware exited: exit status 3") {
		t.Fatalf("request in flight when the program exits: %v", err)
	}
	// Restarted: the next request waits for the new program.
	out, _, err := mw.Request(context.Background(), Meta{ID: "ex-3"}, testRequest("/3"))
	if err != nil || out.GetUrl() != "/3" {
		t.Fatalf("request after the restart: %v %v", out, err)
	}
	if got := testutil.ToFloat64(m.Restarts); got != 1 {
		t.Errorf("restarts = %v, want 1", got)
	}
	if got := count(m, OutcomeFailed); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
	select {
	case err := <-mw.Err():
		t.Errorf("Err after one restart of one allowed: %v", err)
	default:
	}
}

func TestProgramClosesStdin(t *testing.T) {
	mw, _ := startHelper(t, "closestdin", Config{Timeout: generous, Restarts: intp(0)}, 0)
	if _, _, err := mw.Request(context.Background(), Meta{ID: "ex-1"}, testRequest("/1")); err != nil {
		t.Fatalf("first request: %v", err)
	}
	_, _, err := mw.Request(context.Background(), Meta{ID: "ex-2"}, testRequest("/2"))
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "it closed its stdin") {
		t.Fatalf("request to a program that closed its stdin: %v", err)
	}
}

func TestLineTooLong(t *testing.T) {
	defer func(old int) { maxLine = old }(maxLine)
	maxLine = 4096
	mw, _ := startHelper(t, "longline", Config{Timeout: generous, Restarts: intp(0)}, 8192)
	_, _, err := mw.Request(context.Background(), Meta{ID: "ex-1"}, testRequest("/1"))
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "line longer than 4096 bytes") {
		t.Fatalf("Request answered by a line too long: %v", err)
	}
	select {
	case err = <-mw.Err():
	case <-time.After(generous):
		t.Fatal("Err delivered nothing")
	}
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "signal: killed") {
		t.Errorf("Err: %v", err)
	}
}

func TestRestartBudgetSpent(t *testing.T) {
	for _, restarts := range []int{0, 2} {
		t.Run(strconv.Itoa(restarts), func(t *testing.T) {
			mw, m := startHelper(t, "crashloop", Config{Timeout: generous, Restarts: intp(restarts)}, 0)
			var err error
			select {
			case err = <-mw.Err():
			case <-time.After(generous):
				t.Fatal("Err delivered nothing")
			}
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "exit status 3") {
				t.Fatalf("Err: %v, want ErrFailed naming exit status 3", err)
			}
			if got := testutil.ToFloat64(m.Restarts); got != float64(restarts) {
				t.Errorf("restarts = %v, want %d", got, restarts)
			}
			start := time.Now()
			_, _, err = mw.Request(context.Background(), Meta{ID: "ex-1"}, testRequest("/1"))
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "exit status 3") {
				t.Fatalf("Request after the failure: %v", err)
			}
			if d := time.Since(start); d > generous/2 {
				t.Errorf("Request after the failure took %s, want at once", d)
			}
			if _, ok := <-mw.Err(); ok {
				t.Error("Err is not closed after its error")
			}
			if err := mw.Close(); err != nil {
				t.Errorf("Close after failure: %v", err)
			}
		})
	}
}

// alive reports whether pid is a process that is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestCloseKillsStubbornProgram(t *testing.T) {
	mw, _ := startHelper(t, "stubborn", Config{Timeout: generous, grace: 300 * time.Millisecond}, 0)
	out, _, err := mw.Request(context.Background(), Meta{ID: "ex-1"}, testRequest("/1"))
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	child, err := strconv.Atoi(strings.Join(header(out, "X-Child-Pid"), ""))
	if err != nil {
		t.Fatalf("X-Child-Pid: %v", err)
	}
	mw.mu.Lock()
	pid := mw.proc.pid
	mw.mu.Unlock()
	err = mw.Close()
	if err == nil || !strings.Contains(err.Error(), "signal: killed") || !strings.Contains(err.Error(), "SIGKILL") {
		t.Errorf("Close: %v, want the program killed", err)
	}
	deadline := time.Now().Add(generous)
	for _, p := range []int{pid, child} {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d still runs after Close", p)
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, bounded
		}
	}
}

func TestContextEndStops(t *testing.T) {
	checkNoLeak(t)
	t.Setenv(helperEnv, "echo")
	ctx, cancel := context.WithCancel(context.Background())
	mw, err := Start(ctx, Config{Command: []string{os.Args[0]}, Timeout: generous}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := mw.Request(context.Background(), Meta{ID: "ex-1"}, testRequest("/1")); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-mw.done
	if _, _, err := mw.Request(context.Background(), Meta{ID: "ex-2"}, testRequest("/2")); !errors.Is(err, ErrClosed) {
		t.Errorf("Request after ctx ended: %v", err)
	}
	if err := mw.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestResponses(t *testing.T) {
	mw, m := startHelper(t, "modify", Config{Timeout: generous, Responses: true}, 0)
	mw.Response(Meta{ID: "ex-1"}, &mlv1.Response{Status: 201, Body: []byte("x")}, &mlv1.Response{Status: 200})
	out, _, err := mw.Request(context.Background(), Meta{ID: "ex-2"}, testRequest("/2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := header(out, "X-Last-Response"); len(got) != 1 || got[0] != "201/200" {
		t.Errorf("X-Last-Response = %q: the program did not get the response", got)
	}
	mw.Response(Meta{ID: "ex-2"}, &mlv1.Response{Status: 502, Error: "refused"}, nil)
	out, _, err = mw.Request(context.Background(), Meta{ID: "ex-3"}, testRequest("/3"))
	if err != nil {
		t.Fatal(err)
	}
	if got := header(out, "X-Last-Response"); len(got) != 1 || got[0] != "502/" {
		t.Errorf("X-Last-Response = %q, want 502/ (no primary)", got)
	}
	if got := testutil.ToFloat64(m.Responses.WithLabelValues(ResponsePassed)); got != 2 {
		t.Errorf("responses passed = %v", got)
	}
}

func TestStartErrors(t *testing.T) {
	checkNoLeak(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no command", Config{}, "command is empty"},
		{"empty program", Config{Command: []string{""}}, "command is empty"},
		{"negative timeout", Config{Command: []string{"x"}, Timeout: -time.Second}, "negative"},
		{"negative restarts", Config{Command: []string{"x"}, Restarts: intp(-1)}, "negative"},
		{"not found", Config{Command: []string{"/nonexistent/mirrorline-middleware"}}, "start middleware /nonexistent/mirrorline-middleware"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mw, err := Start(context.Background(), tc.cfg, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: %v, want %q", err, tc.want)
			}
			if mw != nil {
				mw.Close()
			}
		})
	}
}

func TestPythonExample(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	script, err := filepath.Abs("../../examples/middleware/rewrite.py")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("REWRITE_DROP_PREFIX", "")
	os.Unsetenv("REWRITE_DROP_PREFIX") // the example's defaults
	mw, m := startHelper(t, "", Config{Command: []string{python, script}, Timeout: generous}, 0)
	in := testRequest("/orders?id=7")
	in.Headers = append(in.Headers, &mlv1.Header{Name: "x-middleware", Value: "captured"})
	out, drop, err := mw.Request(context.Background(), Meta{ID: "ex-1", Service: "shop"}, in)
	if err != nil || drop {
		t.Fatalf("Request: %v %v", drop, err)
	}
	if got := header(out, "X-Middleware"); len(got) != 1 || got[0] != "python" {
		t.Errorf("X-Middleware = %q, want [python]", got)
	}
	if got := header(out, "x-middleware"); len(got) != 0 {
		t.Errorf("captured x-middleware kept: %q", got)
	}
	if !bytes.Equal(out.Body, in.Body) || out.Url != in.Url || out.Method != in.Method {
		t.Errorf("rewrite.py changed more than the header: %v", out)
	}
	if got := header(out, "X-Latin1"); len(got) != 1 || got[0] != "caf\xe9" {
		t.Errorf("X-Latin1 = %q, want the captured bytes", got)
	}
	for _, url := range []string{"/drop", "/drop/me?x=1"} {
		if out, drop, err := mw.Request(context.Background(), Meta{ID: "ex-" + url}, testRequest(url)); err != nil || !drop || out != nil {
			t.Errorf("%s: drop %v %v, want dropped", url, drop, err)
		}
	}
	if got := count(m, OutcomeModified); got != 1 {
		t.Errorf("modified = %v", got)
	}
	if got := count(m, OutcomeDropped); got != 2 {
		t.Errorf("dropped = %v", got)
	}
	if err := mw.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
