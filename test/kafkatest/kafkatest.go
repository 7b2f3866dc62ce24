// Package kafkatest gives integration tests a real Apache Kafka broker: the one
// named by KAFKA_BROKERS, or else the project's own KRaft broker on loopback:
// a container of the local Kafka image started with testcontainers-go when a
// Docker engine answers (container.go), otherwise the broker test/kafka/start
// runs (both fetch the jars from Maven Central once and cache them). It also
// creates fresh, uniquely named services per test.
package kafkatest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

var (
	once    sync.Once
	brokers []string
	initErr string
	// choice is how the harness got its broker (KAFKA_BROKERS unset).
	choice Choice
	// choiceLogged is set once a test logged the choice.
	choiceLogged atomic.Bool
	// logFile is the server.log of the broker this package's harness
	// started or found running (empty when KAFKA_BROKERS names one).
	logFile string
)

// DefaultPort is the port of the project's broker when KAFKATEST_PORT is not
// set.
const DefaultPort = 19092

// Brokers returns the bootstrap brokers of a real Kafka, starting the project's
// broker if KAFKA_BROKERS is not set (as a container when a Docker engine
// answers: see Choose). It fails the test if none can be had. A
// broker it starts is stopped once no test process uses it any more (see
// useOwnBroker). When the test fails, it logs the last lines of the broker's
// log and the path of the whole file.
func Brokers(t testing.TB) []string {
	t.Helper()
	once.Do(func() {
		if v := os.Getenv("KAFKA_BROKERS"); v != "" {
			for _, b := range strings.Split(v, ",") {
				if b = strings.TrimSpace(b); b != "" {
					brokers = append(brokers, b)
				}
			}
			logFile = os.Getenv("KAFKA_BROKER_LOG")
			return
		}
		choice = Choose(context.Background())
		useBroker := useOwnBroker
		if choice.Container {
			useBroker = useContainerBroker
		}
		addr, err := useBroker()
		if err != nil {
			initErr = err.Error()
			return
		}
		brokers = []string{addr}
	})
	if initErr != "" {
		t.Fatal(initErr)
	}
	if choice.Reason != "" && !choiceLogged.Swap(true) {
		t.Logf("kafkatest: %s at %s", choice, strings.Join(brokers, ","))
	}
	if logFile != "" {
		tailOnFailure(t)
	}
	return brokers
}

var (
	tailMu   sync.Mutex
	tailting = map[testing.TB]bool{}
)

// tailOnFailure makes t log the broker log's tail if it fails, once however
// often t asks for the broker.
func tailOnFailure(t testing.TB) {
	tailMu.Lock()
	defer tailMu.Unlock()
	if tailting[t] {
		return
	}
	tailting[t] = true
	t.Cleanup(func() {
		tailMu.Lock()
		delete(tailting, t)
		tailMu.Unlock()
		if t.Failed() {
			t.Log(LogTail(logFile, 30))
		}
	})
}

// port returns the project broker's port: KAFKATEST_PORT or DefaultPort.
func port() (int, error) {
	v := os.Getenv("KAFKATEST_PORT")
	if v == "" {
		return DefaultPort, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65534 {
		return 0, fmt.Errorf("KAFKATEST_PORT must be a port number, got %q", v)
	}
	return p, nil
}

// script returns the path of test/kafka/name.
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "kafka", name)
}

// useOwnBroker starts the project's broker (test/kafka/start), or finds it
// running, and returns its address. Several test processes (go test runs
// packages in parallel) share that broker, so none can stop it when its own
// tests end. Each holds a shared lock on a lease file beside the broker's
// data dir for as long as it lives; the process whose start launched the
// broker also starts a detached watcher, `flock -x LEASE test/kafka/stop`,
// which gets the lock, and stops the broker, once the last of them has exited
// (the kernel drops a process's locks when it exits, however it ends: a
// failed test, a -timeout panic, a kill). A broker that was already running
// when no test process used it (make kafka-start) is left alone.
func useOwnBroker() (string, error) {
	p, err := port()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("mirrorline-kafka-%d", p))
	leasePath := dir + ".lease"
	if err := holdLease(leasePath, "the broker lease"); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := script("start")
	cmd := exec.CommandContext(ctx, start, "--port", strconv.Itoa(p))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("start Kafka with %s: %w: %s", start, err, stderr.String())
	}
	logFile = filepath.Join(dir, "server.log")
	if strings.Contains(stderr.String(), ": starting Kafka ") {
		if err := stopWhenUnused(leasePath, script("stop"), "--port", strconv.Itoa(p)); err != nil {
			return "", err
		}
	}
	return strings.TrimSpace(string(out)), nil
}

// StopAfterExit makes sure stop (with args) runs once this process has
// exited, however it ends (a -timeout panic skips every t.Cleanup): it holds
// a shared lock on leasePath for the rest of the process's life and starts a
// detached `flock -x leasePath stop args...`. Fault tests use it for the
// brokers they start, besides stopping them in t.Cleanup. Call it before
// starting what stop stops.
func StopAfterExit(leasePath, stop string, args ...string) error {
	if err := holdLease(leasePath, "lease"); err != nil {
		return err
	}
	return stopWhenUnused(leasePath, stop, args...)
}

var (
	leaseMu sync.Mutex
	// held are the lease files locked (shared) for the life of the process.
	// Only written: the references keep the files, and so their locks, from
	// being closed by a finalizer.
	held []*os.File
)

// holdLease locks leasePath shared until the process exits, waiting while a
// watcher holds it exclusively to stop what it guards. what names the lease
// in errors.
func holdLease(leasePath, what string) error {
	f, err := os.OpenFile(leasePath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open %s %s: %w", what, leasePath, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return fmt.Errorf("lock %s %s: %w", what, leasePath, err)
	}
	leaseMu.Lock()
	held = append(held, f)
	leaseMu.Unlock()
	return nil
}

// stopWhenUnused starts a detached process that runs stop (with args) once it
// can lock leasePath exclusively, that is once no process holds the lease.
func stopWhenUnused(leasePath, stop string, args ...string) error {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	cmd := exec.Command("flock", append([]string{"--exclusive", "--close", leasePath, stop}, args...)...)
	// Its own session, no stdio of ours: go test does not wait for it, and
	// a terminal's signals do not reach it.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the broker's stop watcher (flock): %w", err)
	}
	return cmd.Process.Release()
}

// LogTail returns at most n last lines of the log file at path (each cut to
// 300 bytes), headed by the path of the whole file, for a failed test's
// output: never the whole log.
func LogTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("broker log %s: %v", path, err)
	}
	defer f.Close()
	const window = 64 << 10
	var off int64
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		off = fi.Size() - window
	}
	b := make([]byte, window)
	k, _ := f.ReadAt(b, off)
	lines := strings.Split(strings.TrimRight(string(b[:k]), "\n"), "\n")
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // cut mid-line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for i, l := range lines {
		if len(l) > 300 {
			lines[i] = l[:300] + " [...]"
		}
	}
	return fmt.Sprintf("last %d lines of the broker log (the whole file: %s):\n%s", len(lines), path, strings.Join(lines, "\n"))
}

// Config returns a broker.Config for the test broker.
func Config(t testing.TB) broker.Config {
	return broker.Config{Brokers: Brokers(t), ClientID: "mirrorline-test"}
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9_-]+`)

// Service returns a fresh service name for t and creates its topics with
// partitions partitions on the test broker.
func Service(t testing.TB, partitions int32) string {
	t.Helper()
	name := unsafeChars.ReplaceAllString(t.Name(), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	svc := strings.Trim(name, "-_") + "-" + strings.ToLower(rand.Text()[:8])
	createTopics(t, kadm.NewClient(Client(t)), svc, partitions)
	return svc
}

// createTopics creates svc's topics with partitions partitions through adm.
func createTopics(t testing.TB, adm *kadm.Client, svc string, partitions int32) {
	t.Helper()
	// A transient refusal is asked again for up to two minutes: a single
	// broker that a loaded machine kept from heartbeating is fenced for a
	// moment and then has no available broker for the replicas
	// (INVALID_REPLICATION_FACTOR). CreateTopics takes topics that exist.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := broker.CreateTopics(ctx, adm, svc, broker.TopicSpec{Partitions: partitions, Replication: 1})
		cancel()
		if err == nil {
			return
		}
		if !(errors.Is(err, kerr.InvalidReplicationFactor) || kerr.IsRetriable(err)) || time.Now().After(deadline) {
			t.Fatalf("create topics for %s: %v", svc, err)
		}
		t.Logf("create topics for %s: %v; asking again", svc, err)
		time.Sleep(500 * time.Millisecond) // backoff between attempts
	}
}

// Client returns a plain client of the test broker, closed when t ends.
func Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := broker.NewClient(Config(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// ReadExchanges reads n exchanges from topic (from its start) within timeout and
// fails the test if fewer arrive or one does not decode. opts are added to the
// consumer's options (e.g. kgo.FetchIsolationLevel(kgo.ReadCommitted())).
func ReadExchanges(t testing.TB, brokers []string, topic string, n int, timeout time.Duration, opts ...kgo.Opt) []*mlv1.Exchange {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*mlv1.Exchange
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: got %d of %d exchanges within %s", topic, len(out), n, timeout)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Logf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			ex := &mlv1.Exchange{}
			if err := proto.Unmarshal(r.Value, ex); err != nil {
				t.Errorf("record %s/%d@%d does not decode: %v", r.Topic, r.Partition, r.Offset, err)
				return
			}
			out = append(out, ex)
		})
	}
	return out
}

// ReadCommittedAll reads the committed records of a transactional topic that
// nobody will write to any more: it appends a sentinel record to every
// partition, then reads (read_committed) until it has seen them all, so
// nothing committed before is missed. It returns how often each exchange id
// is on the topic, sentinels excluded.
func ReadCommittedAll(t testing.TB, brokers []string, topic string, partitions int32) map[string]int {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sentinel := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	var recs []*kgo.Record
	for p := range partitions {
		v, _ := proto.Marshal(&mlv1.Exchange{Id: sentinel})
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: v})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("write sentinels to %s: %v", topic, err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ids := map[string]int{}
	seen := map[int32]bool{}
	for len(seen) < int(partitions) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: saw the sentinels of %d of %d partitions within a minute", topic, len(seen), partitions)
		}
		fs.EachRecord(func(r *kgo.Record) {
			ex := &mlv1.Exchange{}
			if err := proto.Unmarshal(r.Value, ex); err != nil {
				t.Errorf("%s/%d@%d does not decode: %v", topic, r.Partition, r.Offset, err)
				return
			}
			if ex.Id == sentinel {
				seen[r.Partition] = true
				return
			}
			ids[ex.Id]++
		})
	}
	return ids
}

// Embedded starts an in-process Kafka-protocol broker (kfake) for a unit test,
// creates service's topics with partitions partitions on it, and returns its
// addresses. The broker stops when t ends.
func Embedded(t testing.TB, service string, partitions int32) []string {
	t.Helper()
	e, err := broker.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := broker.CreateTopics(context.Background(), kadm.NewClient(cl), service, broker.TopicSpec{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	return e.Addrs()
}

// WriteTxn writes exchanges with the given ids to partition 0 of topic in one
// transaction, committed or aborted, as a redactor killed mid-transaction
// leaves them (aborted) or as it publishes (committed).
func WriteTxn(t testing.TB, brokers []string, topic string, commit bool, ids ...string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("kafkatest-"+strings.ToLower(rand.Text()[:8])),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		v, _ := proto.Marshal(&mlv1.Exchange{Id: id, ConnectionId: "c", CaptureTimeNs: time.Now().UnixNano(),
			Request: &mlv1.Request{Method: "POST", Url: "/" + id}, Response: &mlv1.Response{Status: 200}})
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("c"), Value: v}).FirstErr(); err != nil {
			t.Fatalf("produce in transaction: %v", err)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}
