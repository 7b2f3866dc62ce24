// Command harness starts and stops the broker `make test` runs its tests
// against when KAFKA_BROKERS is unset, choosing as test/kafkatest does: a
// container of the local Kafka image (testcontainers-go) when a Docker engine
// answers, otherwise test/kafka/start.
//
//	go run ./test/kafka/harness start [--port 19092]   # stdout: the address; stderr: the choice
//	go run ./test/kafka/harness stop  [--port 19092]   # the container, if any, and test/kafka/start's broker, if any
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/mirrorline/mirrorline/test/kafkatest"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "test/kafka/harness:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: harness start|stop [--port PORT]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	port := fs.Int("port", kafkatest.DefaultPort, "the broker's port on 127.0.0.1 (its controller: port+1)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	switch args[0] {
	case "start":
		c := kafkatest.Choose(ctx)
		if c.Container {
			addr, _, err := kafkatest.StartContainer(ctx, *port)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "make test: %s at %s\n", c, addr)
			fmt.Println(addr)
			return nil
		}
		fmt.Fprintf(os.Stderr, "make test: %s\n", c)
		cmd := exec.CommandContext(ctx, script("start"), "--port", strconv.Itoa(*port))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	case "stop":
		if kafkatest.Choose(ctx).Container {
			if err := kafkatest.StopContainer(ctx, *port); err != nil {
				return err
			}
		}
		cmd := exec.CommandContext(ctx, script("stop"), "--port", strconv.Itoa(*port))
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		return cmd.Run()
	}
	return fmt.Errorf("unknown command %q (start or stop)", args[0])
}

// script returns the path of test/kafka/name.
func script(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", name)
}
