package kafkatest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Without a Docker engine the harness chooses test/kafka/start and says why;
// KAFKATEST_DOCKER=0 chooses it too. testcontainers-go caches the Docker host
// it found per process, so the no-engine case runs in a child process.
func TestChooseWithoutEngine(t *testing.T) {
	t.Setenv("KAFKATEST_DOCKER", "0")
	if c := Choose(context.Background()); c.Container || c.Reason != "KAFKATEST_DOCKER=0" {
		t.Fatalf("KAFKATEST_DOCKER=0: %+v", c)
	}
	out := child(t, "TestHelperChoose", map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock", "TMPDIR": t.TempDir()})
	if !strings.Contains(out, "CHOICE Kafka from test/kafka/start (no Docker engine: ") {
		t.Fatalf("without an engine the child chose:\n%s", out)
	}
}

// TestHelperChoose prints the harness's choice, for TestChooseWithoutEngine.
func TestHelperChoose(t *testing.T) {
	if os.Getenv("KAFKATEST_CHILD") != "1" {
		t.Skip("helper process of TestChooseWithoutEngine")
	}
	os.Stdout.WriteString("CHOICE " + Choose(context.Background()).String() + "\n")
}

// With KAFKA_BROKERS unset, the harness starts its broker as a container of
// the local Kafka image when a Docker engine answers (a child process asks
// for it on a port of its own and uses it), and the container is removed
// once that process has exited.
func TestBrokersContainerPath(t *testing.T) {
	requireDocker(t)
	p := freePortPair(t)
	name := ContainerName(p)
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", "-v", name).Run() })
	out := child(t, "TestHelperUseBroker", map[string]string{"KAFKATEST_PORT": strconv.Itoa(p), "TMPDIR": t.TempDir()})
	want := "CHOICE Kafka in a container of " + KafkaImage() + " (testcontainers-go; Docker engine "
	if !strings.Contains(out, want) || !strings.Contains(out, "BROKERS 127.0.0.1:"+strconv.Itoa(p)) {
		t.Fatalf("the child did not use the container broker on port %d:\n%s", p, out)
	}
	waitFor(t, 2*time.Minute, "the broker container "+name+" to be removed after the last test process exited", func() bool {
		return exec.Command("docker", "inspect", name).Run() != nil
	})
}

// Without a Docker engine the harness falls back to test/kafka/start: the
// child gets that broker on its port, and the broker is stopped once the
// child has exited.
func TestBrokersScriptFallback(t *testing.T) {
	if _, err := exec.LookPath("java"); err != nil {
		t.Skip("no java: test/kafka/start needs Java 17+")
	}
	p := freePortPair(t)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "mirrorline-kafka-"+strconv.Itoa(p))
	// Whatever happens, the broker does not outlive the test.
	t.Cleanup(func() { exec.Command(script("stop"), "--port", strconv.Itoa(p), "--dir", dir, "--kill").Run() })
	out := child(t, "TestHelperUseBroker", map[string]string{
		"KAFKATEST_PORT":  strconv.Itoa(p),
		"DOCKER_HOST":     "unix:///nonexistent/docker.sock",
		"TMPDIR":          tmp,
		"KAFKA_HEAP_OPTS": "-Xms64m -Xmx256m",
	})
	if !strings.Contains(out, "CHOICE Kafka from test/kafka/start (no Docker engine: ") || !strings.Contains(out, "BROKERS 127.0.0.1:"+strconv.Itoa(p)) {
		t.Fatalf("the child did not use test/kafka/start's broker on port %d:\n%s", p, out)
	}
	waitFor(t, 2*time.Minute, "test/kafka/start's broker on port "+strconv.Itoa(p)+" to stop after the last test process exited", func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

// TestHelperUseBroker gets the harness's broker, creates a service's topics
// on it and reads back a committed transaction, for TestBrokers*.
func TestHelperUseBroker(t *testing.T) {
	if os.Getenv("KAFKATEST_CHILD") != "1" {
		t.Skip("helper process of TestBrokersContainerPath and TestBrokersScriptFallback")
	}
	brs := Brokers(t)
	os.Stdout.WriteString("CHOICE " + choice.String() + "\nBROKERS " + strings.Join(brs, ",") + "\n")
	svc := Service(t, 1)
	topic := "mirror.raw." + svc
	WriteTxn(t, brs, topic, true, "a", "b")
	if ids := ReadCommittedAll(t, brs, topic, 1); ids["a"] != 1 || ids["b"] != 1 || len(ids) != 2 {
		t.Fatalf("read back %v", ids)
	}
}

// child runs the test helper name in a child process of this test binary,
// with KAFKA_BROKERS unset and env added, and returns its output; it fails
// t if the child fails.
func child(t *testing.T, name string, env map[string]string) string {
	t.Helper()
	if env["TMPDIR"] == "" {
		t.Fatal("child needs its own TMPDIR")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); k != "KAFKA_BROKERS" && k != "KAFKA_BROKER_LOG" && k != "KAFKATEST_DOCKER" && env[k] == "" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "KAFKATEST_CHILD=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a child process: %v\n%s", name, err, out)
	}
	return string(out)
}

// requireDocker skips t, with a one-line reason, unless a Docker engine
// answers.
func requireDocker(t *testing.T) {
	t.Helper()
	if _, err := DockerEngine(context.Background()); err != nil {
		t.Skip("no Docker engine: " + oneLine(err.Error()))
	}
}

// waitFor polls cond until it holds or timeout passes, then fails t naming
// what.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition, not a synchronisation
	}
}
