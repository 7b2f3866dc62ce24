package ebpf

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// DefaultRescanInterval is how often processes are rescanned for new ones
// matching a TLS capture's selection.
const DefaultRescanInterval = time.Second

// TLSConfig configures a TLSCapture: which processes' TLS plaintext is
// captured. At least one of PIDs, Binaries and Cgroups is required; a process
// matching any of them is selected.
type TLSConfig struct {
	// PIDs selects these processes and their descendants (forked workers).
	PIDs []int
	// Binaries selects the processes running these executables.
	Binaries []string
	// Cgroups selects the processes in these cgroup v2 groups or below, by
	// path under /sys/fs/cgroup (as "/system.slice/nginx.service") or
	// absolute.
	Cgroups []string
	// LibSSL is the OpenSSL libssl to probe instead of the one each process
	// has mapped (for processes that load it from an unusual place).
	LibSSL string
	// RingSize is the BPF ring buffer size in bytes: a power of two, at least
	// the page size (default 8 MiB).
	RingSize int
	// FlushInterval is how often idle streams are flushed (default 1 s).
	FlushInterval time.Duration
	// PollInterval is the longest captured calls wait in the ring buffer
	// before userspace reads them (as Config.PollInterval).
	PollInterval time.Duration
	// RescanInterval is how often processes are rescanned for new matches
	// (default 1 s).
	RescanInterval time.Duration
	// TrackerOptions are added to the tcpstream.Tracker's (body limit,
	// timeouts, collector id, stats); Source SOURCE_EBPF_TLS and connection
	// prefix "ebpf-tls-" are set already.
	TrackerOptions []tcpstream.TrackerOption
	// Logger logs attachment and errors, never payloads.
	Logger hclog.Logger
}

// ErrNoLibSSL: the OpenSSL library given or found does not exist or is not
// OpenSSL's libssl.
var ErrNoLibSSL = errors.New("no OpenSSL libssl")

// Validate checks c as OpenTLS would, without loading anything.
func (c TLSConfig) Validate() error { return c.defaults() }

func (c *TLSConfig) defaults() error {
	if len(c.PIDs)+len(c.Binaries)+len(c.Cgroups) == 0 {
		return errors.New("ebpf: TLS capture needs processes: --pid, --binary or --cgroup")
	}
	for _, p := range c.PIDs {
		if p <= 0 {
			return fmt.Errorf("ebpf: pid %d is not a process id", p)
		}
	}
	for _, b := range c.Binaries {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("ebpf: binary %s: %w", b, errors.Unwrap(err))
		}
	}
	if c.LibSSL != "" {
		if _, err := os.Stat(c.LibSSL); err != nil {
			return fmt.Errorf("ebpf: libssl %s: %w: %w", c.LibSSL, ErrNoLibSSL, errors.Unwrap(err))
		}
	}
	c.RingSize = cmp.Or(c.RingSize, DefaultRingSize)
	if c.RingSize < 4096 || c.RingSize&(c.RingSize-1) != 0 {
		return fmt.Errorf("ebpf: ring buffer size %d is not a power of two of at least 4096 bytes", c.RingSize)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.RescanInterval <= 0 {
		c.RescanInterval = DefaultRescanInterval
	}
	if err := defaultPoll(&c.PollInterval); err != nil {
		return err
	}
	c.Logger = cmp.Or(c.Logger, hclog.NewNullLogger())
	return nil
}

// TLSKernelStats are the counters of the TLS uprobe programs, summed over
// CPUs.
type TLSKernelStats struct {
	// Calls are SSL/TLS reads and writes of selected processes that moved
	// data, and Bytes their plaintext bytes.
	Calls, Bytes uint64
	// CapturedBytes are the plaintext bytes copied into the ring buffer.
	CapturedBytes uint64
	// Truncated calls moved more than 1 MiB; the rest is a capture gap.
	Truncated uint64
	// RingbufDrops are records (up to 16 KiB of one call's plaintext) lost
	// because the ring buffer was full.
	RingbufDrops uint64
	// Errors are records lost because the process memory could not be read.
	Errors uint64
}
