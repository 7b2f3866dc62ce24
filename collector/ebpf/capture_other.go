//go:build !linux || !(386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"context"
	"errors"
	"runtime"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// Supported reports whether this build can capture with eBPF.
const Supported = false

var errUnsupported = errors.New("ebpf: capture needs Linux on a little-endian CPU (this is " + runtime.GOOS + "/" + runtime.GOARCH + ")")

// Capture is not available on this platform.
type Capture struct{}

// Open fails: eBPF capture needs Linux.
func Open(pub tcpstream.Publisher, cfg Config) (*Capture, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return nil, errUnsupported
}

// Run fails.
func (c *Capture) Run(context.Context) error { return errUnsupported }

// Close does nothing.
func (c *Capture) Close() error { return nil }

// Attached returns nothing.
func (c *Capture) Attached() []Attachment { return nil }

// Stats returns empty counters.
func (c *Capture) Stats() *tcpstream.Stats { return &tcpstream.Stats{} }

// Packets returns zeros.
func (c *Capture) Packets() (ingress, egress uint64) { return 0, 0 }

// PendingBytes returns 0.
func (c *Capture) PendingBytes() int { return 0 }

// KernelStats returns zeros.
func (c *Capture) KernelStats() KernelStats { return KernelStats{} }
