// Package testproc holds what tests that run real processes and servers on
// loopback share: a process output buffer safe to read while the process
// writes, free loopback addresses, the mirrorline binary they run, and the
// CPU time a benchmark reports per operation.
package testproc

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Output collects a process's output; it is safe for the process to write
// while the test reads.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// FreeAddr returns a loopback TCP address that was free a moment ago and
// was not handed out before in this process (see LoopbackAddr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return mustLoopbackAddr(t, "tcp")
}

// FreeUDPAddr is FreeAddr for a loopback UDP address.
func FreeUDPAddr(t testing.TB) string {
	t.Helper()
	return mustLoopbackAddr(t, "udp")
}

// mustLoopbackAddr is LoopbackAddr, failing t when there is none.
func mustLoopbackAddr(t testing.TB, network string) string {
	t.Helper()
	addr, err := LoopbackAddr(network)
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// LoopbackAddr returns a loopback address ("tcp" or "udp") with a port free
// right now, and one it has not returned before in this process: the kernel
// often hands a port just released out again, and two listeners given the
// same address (a proxy and a sink of `mirrorline up`, a proxy and its
// metrics endpoint) fail to start. The benchmarks' harnesses use it too.
func LoopbackAddr(network string) (string, error) {
	for range 100 {
		addr, err := freeAddr(network)
		if err != nil {
			return "", err
		}
		handedMu.Lock()
		fresh := !handed[network+" "+addr]
		handed[network+" "+addr] = true
		handedMu.Unlock()
		if fresh {
			return addr, nil
		}
	}
	return "", fmt.Errorf("no free loopback %s port that was not handed out before", network)
}

// handed are the addresses LoopbackAddr returned, by network.
var (
	handedMu sync.Mutex
	handed   = map[string]bool{}
)

func freeAddr(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// BuildMirrorline builds the mirrorline binary into a new temporary
// directory and returns the binary's path and the directory, which the
// caller removes when done.
func BuildMirrorline(prefix string) (bin, dir string, err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", "", err
	}
	bin = filepath.Join(dir, "mirrorline")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/mirrorline/mirrorline/cmd/mirrorline").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("build mirrorline: %w\n%s", err, out)
	}
	return bin, dir, nil
}
