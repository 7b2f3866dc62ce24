package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/wait"
)

// Choice is how the harness gets a broker when KAFKA_BROKERS is unset: a
// container of the local Kafka image (testcontainers-go) when a Docker engine
// answers, else the project's broker from test/kafka/start.
type Choice struct {
	// Container is true for the container path.
	Container bool
	// Reason says why, in one line: the engine's version, or why there is
	// none.
	Reason string
}

func (c Choice) String() string {
	if c.Container {
		return "Kafka in a container of " + KafkaImage() + " (testcontainers-go; " + c.Reason + ")"
	}
	return "Kafka from test/kafka/start (" + c.Reason + ")"
}

// KafkaImage is the local Kafka image the container path runs
// (deploy/local/images kafka builds it; KAFKA_VERSION as test/kafka/start).
func KafkaImage() string {
	v := os.Getenv("KAFKA_VERSION")
	if v == "" {
		v = "4.1.1"
	}
	return "mirrorline-local/kafka:" + v
}

// Choose decides between the container and the test/kafka/start paths:
// the container when a Docker engine answers within ten seconds, unless
// KAFKATEST_DOCKER=0.
func Choose(ctx context.Context) Choice {
	if os.Getenv("KAFKATEST_DOCKER") == "0" {
		return Choice{Reason: "KAFKATEST_DOCKER=0"}
	}
	v, err := DockerEngine(ctx)
	if err != nil {
		return Choice{Reason: "no Docker engine: " + oneLine(err.Error())}
	}
	return Choice{Container: true, Reason: "Docker engine " + v}
}

// DockerEngine returns the version of the Docker engine that testcontainers-go
// finds (the one DOCKER_HOST names when it is set; else the Docker context or
// the default socket), or why none answers within ten seconds.
func DockerEngine(ctx context.Context) (string, error) {
	quiet()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var opts []client.Opt
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		// The engine DOCKER_HOST names or none: testcontainers-go would
		// try the default socket after it.
		opts = append(opts, client.WithHost(h))
	}
	cli, err := testcontainers.NewDockerClientWithOpts(ctx, opts...)
	if err != nil {
		return "", fmt.Errorf("connect to Docker: %w", err)
	}
	defer cli.Close()
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", fmt.Errorf("docker info: %w", err)
	}
	return info.Info.ServerVersion, nil
}

// quiet silences testcontainers-go's own logging (a banner and a line per
// step) and turns off its reaper (Ryuk): the broker container outlives the
// test process that started it, and is removed by the harness instead. Ryuk's
// image would need a registry besides.
func quiet() {
	tclog.SetDefault(tclog.NewNoopLogger())
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	}
}

// ContainerName is the name of the harness's broker container on port.
func ContainerName(port int) string { return fmt.Sprintf("mirrorline-kafkatest-%d", port) }

// StartContainer starts a single-node KRaft broker as a container of
// KafkaImage (building the image with deploy/local/images when it is
// missing), or finds the one named ContainerName(port) running, and returns
// its address. The container uses the host's network: the broker listens on
// 127.0.0.1:port, its controller on port+1, as test/kafka/start's.
// started reports whether this call started it.
func StartContainer(ctx context.Context, port int) (addr string, started bool, err error) {
	quiet()
	name := ContainerName(port)
	addr = "127.0.0.1:" + strconv.Itoa(port)
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return "", false, fmt.Errorf("connect to Docker: %w", err)
	}
	defer cli.Close()
	// Starts of the same broker from several processes take turns.
	unlock, err := lockFile(filepath.Join(os.TempDir(), name+".start.lock"))
	if err != nil {
		return "", false, err
	}
	defer unlock()
	if res, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{}); err == nil {
		if res.Container.State != nil && res.Container.State.Running {
			return addr, false, waitReady(ctx, cli, name)
		}
		// A stopped one from an earlier run: start afresh.
		if _, err := cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			return "", false, fmt.Errorf("remove the stopped broker container %s: %w", name, err)
		}
	}
	img := KafkaImage()
	if _, err := cli.ImageInspect(ctx, img); err != nil {
		if err := buildKafkaImage(ctx); err != nil {
			return "", false, err
		}
	}
	ctl := strconv.Itoa(port + 1)
	listeners := "PLAINTEXT://" + addr + ",CONTROLLER://127.0.0.1:" + ctl
	env := map[string]string{
		// The same broker as test/kafka/start's server.properties.
		"KAFKA_NODE_ID":                                          "1",
		"KAFKA_PROCESS_ROLES":                                    "broker,controller",
		"KAFKA_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS":              "127.0.0.1:" + ctl,
		"KAFKA_LISTENERS":                                        listeners,
		"KAFKA_ADVERTISED_LISTENERS":                             listeners,
		"KAFKA_INTER_BROKER_LISTENER_NAME":                       "PLAINTEXT",
		"KAFKA_CONTROLLER_LISTENER_NAMES":                        "CONTROLLER",
		"KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":                   "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
		"KAFKA_NUM_PARTITIONS":                                   "1",
		"KAFKA_DEFAULT_REPLICATION_FACTOR":                       "1",
		"KAFKA_MIN_INSYNC_REPLICAS":                              "1",
		"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                        "false",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":                 "1",
		"KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS":                     "3",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR":         "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":                    "1",
		"KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS":             "3",
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
		"KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR":            "1",
		"KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS":                 "0",
		"KAFKA_ADD_PARTITIONS_TO_TXN_RETRY_BACKOFF_MS":           "1",
		"KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS":                  "86400000",
		"KAFKA_HEAP_OPTS":                                        "-Xms128m -Xmx512m",
	}
	for _, p := range []string{strconv.Itoa(port), ctl} {
		if c, err := dialLoopback(p); err == nil {
			c.Close()
			return "", false, fmt.Errorf("start the broker container: 127.0.0.1:%s is already in use by another process", p)
		}
	}
	_, err = testcontainers.Run(ctx, img,
		testcontainers.WithName(name),
		testcontainers.WithEnv(env),
		testcontainers.WithLabels(map[string]string{"org.mirrorline.kafkatest": strconv.Itoa(port)}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.NetworkMode = "host"
			hc.AutoRemove = false
		}),
		testcontainers.WithWaitStrategy(wait.ForLog("Kafka Server started").WithStartupTimeout(3*time.Minute)),
	)
	if err != nil {
		_, _ = cli.ContainerRemove(context.Background(), name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		return "", false, fmt.Errorf("start the broker container %s of %s: %w", name, img, err)
	}
	return addr, true, nil
}

// StopContainer removes the broker container on port, if there is one.
func StopContainer(ctx context.Context, port int) error {
	quiet()
	cli, err := testcontainers.NewDockerClientWithOpts(ctx)
	if err != nil {
		return fmt.Errorf("connect to Docker: %w", err)
	}
	defer cli.Close()
	_, err = cli.ContainerRemove(ctx, ContainerName(port), client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !strings.Contains(strings.ToLower(err.Error()), "no such container") {
		return fmt.Errorf("remove the broker container %s: %w", ContainerName(port), err)
	}
	return nil
}

// waitReady waits until the running container name logged that the broker
// started.
func waitReady(ctx context.Context, cli *testcontainers.DockerClient, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, "docker", "exec", name, "/opt/kafka/bin/ready").CombinedOutput()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the broker container %s is running but not ready after 3 minutes: %s", name, oneLine(string(out)))
		}
		time.Sleep(500 * time.Millisecond) // polling readiness, not a synchronisation
	}
}

// buildKafkaImage runs deploy/local/images kafka (the JRE base by debootstrap
// on a first run: a few minutes; then cached by Docker).
func buildKafkaImage(ctx context.Context) error {
	path := filepath.Join(filepath.Dir(script("start")), "..", "..", "deploy", "local", "images")
	cmd := exec.CommandContext(ctx, path, "kafka")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s with deploy/local/images: %w: %s", KafkaImage(), err, stderr.String())
	}
	return nil
}

// lockFile takes an exclusive lock on path and returns its release.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// useContainerBroker is useOwnBroker's container path: it starts the broker
// container (or finds it running) and, when it started it, has it removed
// once no test process uses it any more (the same lease as test/kafka/start's
// broker).
func useContainerBroker() (string, error) {
	p, err := port()
	if err != nil {
		return "", err
	}
	leasePath := filepath.Join(os.TempDir(), ContainerName(p)+".lease")
	if err := holdLease(leasePath, "the broker container lease"); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	addr, started, err := StartContainer(ctx, p)
	if err != nil {
		return "", err
	}
	if started {
		docker, err := exec.LookPath("docker")
		if err != nil {
			return "", errors.Join(StopContainer(ctx, p), fmt.Errorf("the broker container needs the docker client to be removed later: %w", err))
		}
		if err := stopWhenUnused(leasePath, docker, "rm", "-f", "-v", ContainerName(p)); err != nil {
			return "", err
		}
	}
	return addr, nil
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + " [...]"
	}
	return s
}

// dialLoopback connects to 127.0.0.1:port (two seconds at most).
func dialLoopback(port string) (net.Conn, error) {
	return net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 2*time.Second)
}
