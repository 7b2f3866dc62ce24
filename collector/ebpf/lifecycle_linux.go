//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// lifecycle is what the TC and TLS captures share from attaching to freeing:
// their links, the run-once and closed flags, and the lock that guards them,
// which each capture also takes for its own fields (so it is embedded).
type lifecycle struct {
	mu     sync.Mutex // guards the fields below, the capture's own and the BPF maps' lifetime
	links  []link.Link
	closed bool
	ran    bool
}

// begin marks the capture run: Run may be called once, and not after Close.
func (l *lifecycle) begin(what string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ran || l.closed {
		return fmt.Errorf("ebpf: %s already run or closed", what)
	}
	l.ran = true
	return nil
}

// detach closes the links: the programs stop running. what names a link in
// the warning when one does not close.
func (l *lifecycle) detach(log hclog.Logger, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, lk := range l.links {
		if err := lk.Close(); err != nil {
			log.Warn("detach "+what, "error", err)
		}
	}
	l.links = nil
}

// flushUnrun is Close's first step: the streams of a capture whose Run never
// ran are flushed (Run flushes its own).
func (l *lifecycle) flushUnrun(t *tcpstream.Tracker, now func() time.Time) {
	l.mu.Lock()
	ran := l.ran
	l.mu.Unlock()
	if !ran && t != nil {
		t.Close(now())
	}
}

// closeOnce detaches, then frees once: free runs with the lock held (it reads
// the kernel's last counters and closes the ring reader and the objects).
func (l *lifecycle) closeOnce(log hclog.Logger, what string, free func()) {
	l.detach(log, what)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	free()
	l.closed = true
}
