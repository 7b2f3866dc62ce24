//go:build !linux || !amd64

package ebpf

import (
	"context"
	"errors"
	"runtime"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// TLSSupported reports whether this build can capture TLS plaintext.
const TLSSupported = false

var errTLSUnsupported = errors.New("ebpf: TLS capture needs Linux on amd64 (this is " + runtime.GOOS + "/" + runtime.GOARCH + ")")

// TLSCapture is not available on this platform.
type TLSCapture struct{}

// OpenTLS fails: TLS capture needs Linux on amd64.
func OpenTLS(pub tcpstream.Publisher, cfg TLSConfig) (*TLSCapture, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return nil, errTLSUnsupported
}

// Run fails.
func (c *TLSCapture) Run(context.Context) error { return errTLSUnsupported }

// Close does nothing.
func (c *TLSCapture) Close() error { return nil }

// Attached returns nothing.
func (c *TLSCapture) Attached() []string { return nil }

// Processes returns 0.
func (c *TLSCapture) Processes() int { return 0 }

// Stats returns empty counters.
func (c *TLSCapture) Stats() *tcpstream.Stats { return &tcpstream.Stats{} }

// PendingBytes returns 0.
func (c *TLSCapture) PendingBytes() int { return 0 }

// KernelStats returns zeros.
func (c *TLSCapture) KernelStats() TLSKernelStats { return TLSKernelStats{} }

// Check fails: TLS capture needs Linux on amd64.
func (cfg TLSConfig) Check() error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	return errTLSUnsupported
}
