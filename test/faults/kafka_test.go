package faults

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// scriptEnv is added to the environment of the test/kafka scripts: small JVMs
// (the test machine is shared) and bounded stops.
var scriptEnv = []string{
	"KAFKA_HEAP_OPTS=-Xms64m -Xmx256m",
	"KAFKA_STOP_TIMEOUT=20",
	"KAFKA_START_TIMEOUT=120",
}

// script returns the path of test/kafka/NAME.
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "kafka", name)
}

// needPrivateKafka skips fault tests in -short mode, and when there is no Java
// to run private brokers but KAFKA_BROKERS names a cluster (which these tests
// must not stop).
func needPrivateKafka(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("fault test: starts and stops its own Kafka brokers; skipped with -short")
	}
	if _, err := exec.LookPath("java"); err != nil && os.Getenv("KAFKA_BROKERS") != "" {
		t.Skip("needs java to run private brokers; KAFKA_BROKERS points at a shared cluster that must not be stopped")
	}
}

// runScript runs test/kafka/NAME with args within timeout and returns its
// stdout; it fails the test with the script's stderr if the script fails.
func runScript(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := tryScript(timeout, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tryScript(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script(name), args...)
	cmd.Env = append(os.Environ(), scriptEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("test/kafka/%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// freeBase returns a base port from which span ports are free on 127.0.0.1:
// preferred, or preferred+100, +200, ... when taken (another run on the
// machine).
func freeBase(t *testing.T, preferred, span int) int {
	t.Helper()
	for base := preferred; base < preferred+1000; base += 100 {
		free := true
		for p := base; p < base+span && free; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				free = false
				continue
			}
			ln.Close()
		}
		if free {
			return base
		}
	}
	t.Fatalf("no %d free ports from %d on", span, preferred)
	return 0
}

// logTail logs, when the test failed, the last n lines of a broker log and
// the path of the whole file (never the whole log).
func logTail(t *testing.T, path string, n int) {
	t.Helper()
	if t.Failed() {
		t.Log(kafkatest.LogTail(path, n))
	}
}

// stopAfterExit runs test/kafka/NAME with args once the test process has
// exited, should it end without running the test's cleanups (a -timeout
// panic): no broker a fault test started outlives the test binary.
func stopAfterExit(t *testing.T, name string, args ...string) {
	t.Helper()
	if err := kafkatest.StopAfterExit(filepath.Join(t.TempDir(), "kafka.lease"), script(name), args...); err != nil {
		t.Fatal(err)
	}
}

// singleBroker is a one-node KRaft broker of one test (test/kafka/start).
type singleBroker struct {
	port int
	dir  string
	// Addr is the bootstrap address.
	Addr string
}

// startBroker starts a private broker on a free port near preferred; it is
// killed when the test ends.
func startBroker(t *testing.T, preferred int) *singleBroker {
	t.Helper()
	needPrivateKafka(t)
	b := &singleBroker{port: freeBase(t, preferred, 2), dir: filepath.Join(t.TempDir(), "kafka")}
	stopAfterExit(t, "stop", append(b.args(), "--kill")...)
	b.Addr = runScript(t, 3*time.Minute, "start", b.args()...)
	t.Cleanup(func() {
		logTail(t, filepath.Join(b.dir, "server.log"), 30)
		if _, err := tryScript(time.Minute, "stop", append(b.args(), "--kill")...); err != nil {
			t.Error(err)
		}
	})
	return b
}

func (b *singleBroker) args() []string {
	return []string{"--port", strconv.Itoa(b.port), "--dir", b.dir}
}

// Stop stops the broker with SIGTERM (a clean shutdown) and waits for it.
func (b *singleBroker) Stop(t *testing.T) {
	t.Helper()
	runScript(t, time.Minute, "stop", b.args()...)
}

// Kill ends the broker with SIGKILL, as a crash.
func (b *singleBroker) Kill(t *testing.T) {
	t.Helper()
	runScript(t, time.Minute, "stop", append(b.args(), "--kill")...)
}

// Up starts the broker again on its data (start --keep) unless it is
// running, and returns once it serves.
func (b *singleBroker) Up(t *testing.T) {
	t.Helper()
	if addr := runScript(t, 3*time.Minute, "start", append(b.args(), "--keep")...); addr != b.Addr {
		t.Fatalf("restarted broker at %s, want %s", addr, b.Addr)
	}
}

// cluster is a multi-node KRaft cluster of one test (test/kafka/cluster).
type cluster struct {
	dir  string
	base int
	// Brokers are the bootstrap addresses.
	Brokers []string
}

// startCluster starts brokers combined broker+controller nodes (controllers
// 0) or brokers brokers and controllers controller-only nodes, on free ports
// near preferred; the cluster is killed when the test ends.
func startCluster(t *testing.T, preferred, brokers, controllers int) *cluster {
	t.Helper()
	needPrivateKafka(t)
	c := &cluster{base: freeBase(t, preferred, 2*(brokers+controllers)), dir: filepath.Join(t.TempDir(), "cluster")}
	stopAfterExit(t, "cluster", "stop", "--dir", c.dir)
	out := runScript(t, 4*time.Minute, "cluster", "start", "--dir", c.dir, "--base-port", strconv.Itoa(c.base),
		"--brokers", strconv.Itoa(brokers), "--controllers", strconv.Itoa(controllers))
	c.Brokers = strings.Split(out, ",")
	t.Cleanup(func() {
		for n := 1; n <= brokers+controllers; n++ {
			logTail(t, filepath.Join(c.dir, fmt.Sprintf("node-%d", n), "server.log"), 30/(brokers+controllers))
		}
		if _, err := tryScript(time.Minute, "cluster", "stop", "--dir", c.dir); err != nil {
			t.Error(err)
		}
	})
	return c
}

// Kill ends node with SIGKILL, as a crash.
func (c *cluster) Kill(t *testing.T, node int32) {
	t.Helper()
	runScript(t, time.Minute, "cluster", "kill", strconv.Itoa(int(node)), "--dir", c.dir)
}

// Restart starts node again on its data and returns once it serves.
func (c *cluster) Restart(t *testing.T, node int32) {
	t.Helper()
	runScript(t, 3*time.Minute, "cluster", "restart", strconv.Itoa(int(node)), "--dir", c.dir)
}
