package main

import (
	"strings"
	"testing"
)

// A descriptor set that cannot be read stops `redact` at start with a usage
// error (exit 2) naming the key, before any Kafka session.
func TestRedactDescriptorSetError(t *testing.T) {
	code, stderr := runCLI(t, "redact", "--service", "s", "--brokers", "127.0.0.1:1", "--metrics-addr", "", "--descriptor-set", "testdata/no-such.pb")
	if code != 2 || !strings.HasPrefix(stderr, "mirrorline: grpc.descriptor_sets: read descriptor set:") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
