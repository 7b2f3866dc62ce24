package benchproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// StartKafka starts a single local Kafka broker with root's test/kafka/start
// args... (e.g. --port P --dir D; none for its defaults) and returns its
// bootstrap addresses. stop runs test/kafka/stop with the same args; it is
// never nil, also when starting failed part way.
func StartKafka(ctx context.Context, root string, args ...string) (brokers string, stop func(), err error) {
	stop = func() {
		c := exec.Command(filepath.Join(root, "test/kafka/stop"), args...)
		c.Dir = root
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		_ = c.Run()
	}
	sctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(sctx, filepath.Join(root, "test/kafka/start"), args...)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", stop, &KafkaStartError{Err: err, Last: LastLine(stderr.String())}
	}
	return strings.TrimSpace(string(out)), stop, nil
}

// KafkaStartError is StartKafka's error when test/kafka/start failed.
type KafkaStartError struct {
	Err  error  // how test/kafka/start ended
	Last string // the last line it wrote to stderr
}

func (e *KafkaStartError) Error() string {
	return fmt.Sprintf("test/kafka/start: %v: %s", e.Err, e.Last)
}

func (e *KafkaStartError) Unwrap() error { return e.Err }

// KafkaVersion is the Kafka version test/kafka/start runs ($KAFKA_VERSION or
// its default), for reports.
func KafkaVersion() string {
	if v := os.Getenv("KAFKA_VERSION"); v != "" {
		return v
	}
	return "4.1.1"
}

// LastLine returns the last non-empty line of s.
func LastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
