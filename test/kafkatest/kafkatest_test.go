package kafkatest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// helperEnv makes TestHelperBrokerUser act as a test process of its own.
const helperEnv = "KAFKATEST_HELPER"

// TestHelperBrokerUser is not a test: run by TestOwnBrokerStoppedAfterLastUser
// as a separate test process (KAFKATEST_HELPER=1), it gets the project's
// broker from Brokers, says "ready", answers each "ping" line on stdin with a
// metadata request, and returns (ending the process) when stdin closes.
func TestHelperBrokerUser(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("helper process of TestOwnBrokerStoppedAfterLastUser")
	}
	if dir := os.Getenv("KAFKATEST_STOP_DIR"); dir != "" {
		// Arms a stop command, then dies as a -timeout panic would: without
		// running a cleanup.
		if err := StopAfterExit(filepath.Join(dir, "lease"), "/bin/sh", "-c", "echo stopped >"+filepath.Join(dir, "stopped")); err != nil {
			t.Fatal(err)
		}
		fmt.Println("kafkatest-helper: armed")
		bufio.NewScanner(os.Stdin).Scan()
		panic("test timed out (simulated)")
	}
	bs := Brokers(t)
	fmt.Println("kafkatest-helper: ready", strings.Join(bs, ","))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(bs...))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err = kadm.NewClient(cl).ListBrokers(ctx)
		cancel()
		cl.Close()
		if err != nil {
			fmt.Println("kafkatest-helper: error", err)
		} else {
			fmt.Println("kafkatest-helper: pong")
		}
	}
}

// helper is one running TestHelperBrokerUser process.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startHelper(t *testing.T, env []string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBrokerUser$", "-test.count=1")
	cmd.Env = env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("helper's stderr:\n%s", stderr.String())
		}
	})
	h := &helper{cmd: cmd, stdin: stdin, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			_ = h.cmd.Process.Kill()
			_ = h.cmd.Wait()
		}
	})
	return h
}

// syncBuffer is a bytes.Buffer safe for a process's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// expect waits up to timeout for a line with prefix and returns it.
func (h *helper) expect(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper ended before printing %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
			if strings.HasPrefix(l, "kafkatest-helper:") || strings.HasPrefix(l, "---") || strings.HasPrefix(l, "FAIL") {
				t.Fatalf("helper: %s (want %q)", l, prefix)
			}
		case <-deadline:
			t.Fatalf("helper printed no %q within %s", prefix, timeout)
		}
	}
}

// exit closes the helper's stdin and waits for the process to end.
func (h *helper) exit(t *testing.T) {
	t.Helper()
	h.stdin.Close()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("helper process: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("helper process did not end within a minute of its stdin closing")
	}
}

// freePortPair returns a port p on 127.0.0.1 with p and p+1 free.
func freePortPair(t *testing.T) int {
	t.Helper()
	for p := 21092; p < 29000; p += 10 {
		free := true
		for _, q := range []int{p, p + 1} {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(q))
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return p
		}
	}
	t.Fatal("no two free ports")
	return 0
}

// Two test processes without KAFKA_BROKERS share the broker the first one
// starts (as go test runs packages in parallel): it keeps serving the second
// after the first has exited, and once the second has exited too no JVM
// started for them is left running, nor is its port open.
func TestOwnBrokerStoppedAfterLastUser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Kafka JVM; skipped with -short")
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("needs java to start the project's broker")
	}
	port := freePortPair(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, fmt.Sprintf("mirrorline-kafka-%d", port))
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAFKA_BROKERS=") && !strings.HasPrefix(kv, "TMPDIR=") && !strings.HasPrefix(kv, "KAFKATEST_DOCKER=") {
			env = append(env, kv)
		}
	}
	// KAFKATEST_DOCKER=0: this test is about test/kafka/start's broker
	// (TestBrokersContainerPath covers the container).
	env = append(env, helperEnv+"=1", "KAFKATEST_DOCKER=0", "KAFKATEST_PORT="+strconv.Itoa(port), "TMPDIR="+tmp,
		"KAFKA_HEAP_OPTS=-Xms64m -Xmx256m", "KAFKA_START_TIMEOUT=180")
	// Whatever happens, the broker does not outlive the test.
	t.Cleanup(func() {
		cmd := exec.Command(script("stop"), "--port", strconv.Itoa(port), "--dir", dir, "--kill")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("test/kafka/stop: %v\n%s", err, out)
		}
	})

	first := startHelper(t, env)
	first.expect(t, "kafkatest-helper: ready", 5*time.Minute)
	b, err := os.ReadFile(filepath.Join(dir, "kafka.pid"))
	if err != nil {
		t.Fatalf("no pid file of the broker the first process started: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file: %q", b)
	}
	second := startHelper(t, env)
	second.expect(t, "kafkatest-helper: ready", 2*time.Minute)

	first.exit(t)
	fmt.Fprintln(second.stdin, "ping")
	second.expect(t, "kafkatest-helper: pong", time.Minute)

	second.exit(t)
	var jvm, open bool
	if !testproc.WaitEvery(2*time.Minute, 200*time.Millisecond, func() bool {
		jvm = syscall.Kill(pid, 0) == nil
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if open = err == nil; open {
			conn.Close()
		}
		return !jvm && !open
	}) {
		t.Fatalf("2 minutes after the last test process ended, the broker it started still runs (JVM pid %d alive: %v, port %d open: %v)", pid, jvm, port, open)
	}
	if _, err := os.Stat(filepath.Join(dir, "kafka.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file left behind: %v", err)
	}
}

func TestLogTail(t *testing.T) {
	dir := t.TempDir()
	lines := func(n, width int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("x", width))
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, content string
		n             int
		want          []string // lines of the tail, in order
		notWant       []string
	}{
		{"short log whole", lines(3, 0), 30, []string{"line 0 ", "line 1 ", "line 2 "}, nil},
		{"long log last n", lines(100, 10), 30, []string{"line 70 ", "line 99 "}, []string{"line 69 "}},
		{"huge log read from its end", lines(20000, 100), 5, []string{"line 19995 ", "line 19999 "}, []string{"line 19994 "}},
		{"long lines cut", lines(2, 1000), 30, []string{"line 1 " + strings.Repeat("x", 293) + " [...]"}, []string{strings.Repeat("x", 294)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".log")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got := LogTail(path, tc.n)
			head, body, _ := strings.Cut(got, "\n")
			if !strings.Contains(head, path) {
				t.Errorf("heading %q does not name the file %s", head, path)
			}
			if k := strings.Count(body, "\n") + 1; k > tc.n {
				t.Errorf("%d lines, want at most %d", k, tc.n)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("tail lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(body, w) {
					t.Errorf("tail has %q", w)
				}
			}
		})
	}
	if got := LogTail(filepath.Join(dir, "missing.log"), 30); !strings.Contains(got, "missing.log") {
		t.Errorf("missing log: %q", got)
	}
}

// A fault test's broker is stopped after the test process ends even when it
// dies without running its cleanups (a -timeout panic), and not before.
func TestStopAfterExitRunsWhenTheProcessDies(t *testing.T) {
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KAFKA_BROKERS=") {
			env = append(env, kv)
		}
	}
	h := startHelper(t, append(env, helperEnv+"=1", "KAFKATEST_STOP_DIR="+dir))
	h.expect(t, "kafkatest-helper: armed", time.Minute)
	stopped := filepath.Join(dir, "stopped")
	if _, err := os.Stat(stopped); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stop command ran while the process lived (%v)", err)
	}
	h.stdin.Close()
	if err := h.cmd.Wait(); err == nil {
		t.Fatal("the helper exited cleanly; want it to die of a panic")
	}
	testproc.Eventually(t, time.Minute, "the stop command to run after the process died", func() bool {
		b, err := os.ReadFile(stopped)
		return err == nil && strings.TrimSpace(string(b)) == "stopped"
	})
}

// A broker that refuses topic creation for a moment (fenced under load: no
// available broker, INVALID_REPLICATION_FACTOR) is asked again; the topics
// are created once it accepts.
func TestCreateTopicsThroughAFence(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var refused atomic.Int32
	c.ControlKey(kmsg.CreateTopics.Int16(), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if refused.Load() >= 3 {
			return nil, nil, false
		}
		refused.Add(1)
		req := r.(*kmsg.CreateTopicsRequest)
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.ErrorCode = kerr.InvalidReplicationFactor.Code
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	createTopics(t, adm, "fenced", 2)
	if n := refused.Load(); n != 3 {
		t.Fatalf("the broker refused %d times, want 3", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx, broker.Topic(broker.Raw, "fenced"), broker.Topic(broker.Clean, "fenced"))
	if err != nil || td.Error() != nil || len(td) != 2 {
		t.Fatalf("topics after the fence: %v, %v", td, err)
	}
}
