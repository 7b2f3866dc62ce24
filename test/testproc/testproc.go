// Package testproc holds what tests that run real processes and servers on
// loopback share: a process output buffer safe to read while the process
// writes, free loopback addresses, and the mirrorline binary they run.
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

// FreeAddr returns a loopback TCP address that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
