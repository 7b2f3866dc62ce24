package ebpf

import (
	"cmp"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// Hooks selects the TC hooks attached on each interface.
type Hooks string

// Hook selections.
const (
	// HooksAuto attaches egress only on loopback interfaces (where every packet
	// passes egress and then ingress) and both hooks elsewhere.
	HooksAuto Hooks = "auto"
	// HooksBoth attaches ingress and egress.
	HooksBoth Hooks = "both"
	// HooksIngress attaches ingress only.
	HooksIngress Hooks = "ingress"
	// HooksEgress attaches egress only.
	HooksEgress Hooks = "egress"
)

// ParseHooks parses a Hooks value.
func ParseHooks(s string) (Hooks, error) {
	switch h := Hooks(strings.ToLower(strings.TrimSpace(s))); h {
	case "":
		return HooksAuto, nil
	case HooksAuto, HooksBoth, HooksIngress, HooksEgress:
		return h, nil
	}
	return "", fmt.Errorf("%q is not one of auto, both, ingress, egress", s)
}

// Defaults and limits of the Config.
const (
	// MaxSnapLen is the most TCP payload bytes copied of one packet (1 MiB:
	// more than a whole GSO/GRO packet, which BIG TCP makes up to 512 KiB).
	MaxSnapLen = 1 << 20
	// DefaultRingSize is the default size of the BPF ring buffer.
	DefaultRingSize = 8 << 20
	// DefaultInterface is the interface watched when none is given.
	DefaultInterface = "lo"
	// DefaultFlushInterval is how often idle streams and stalled gaps are flushed.
	DefaultFlushInterval = time.Second
	// DefaultPollInterval is how long captured data may wait in the ring
	// buffer before userspace reads it, unless enough of it is waiting to
	// wake userspace at once (see Config.PollInterval).
	DefaultPollInterval = 20 * time.Millisecond
	// MaxPollInterval is the longest PollInterval.
	MaxPollInterval = time.Second
	// MinPollInterval is the shortest PollInterval: the ring is read on a
	// timer, and a shorter one would keep a core busy reading nothing.
	MinPollInterval = time.Millisecond
)

// Config configures a Capture.
type Config struct {
	// Interfaces to attach to (default "lo"). Choose interfaces a packet
	// crosses once: a packet seen on two of them is handled as a retransmit.
	Interfaces []string
	// Ports are the watched TCP server ports (required); the side using one is
	// the server.
	Ports []uint16
	// Hooks selects the hooks attached per interface (default HooksAuto).
	Hooks Hooks
	// SnapLen is the most TCP payload bytes copied per packet (default and
	// maximum MaxSnapLen); bytes beyond it become capture gaps.
	SnapLen int
	// RingSize is the BPF ring buffer size in bytes: a power of two, at least
	// the page size (default 8 MiB).
	RingSize int
	// FlushInterval is how often idle streams and stalled gaps are flushed
	// (default 1 s).
	FlushInterval time.Duration
	// PollInterval is the longest captured packets wait in the ring buffer
	// before userspace reads them (default DefaultPollInterval, at most
	// MaxPollInterval, at least MinPollInterval). The program wakes userspace at once only when an
	// eighth of the ring (at most 256 KiB) is waiting, so under light traffic
	// the ring is read once per PollInterval: fewer wake-ups and less CPU for
	// a longer one, at the cost of that much more delay before an exchange
	// reaches Kafka (timestamps are the kernel's, never the read's).
	PollInterval time.Duration
	// TrackerOptions are added to the tcpstream.Tracker's (body limit, timeouts,
	// limits, collector id, stats); Source SOURCE_EBPF, connection prefix
	// "ebpf-" and Ports are set already.
	TrackerOptions []tcpstream.TrackerOption
	// Logger logs attachment and errors, never payloads.
	Logger hclog.Logger
}

// Validate checks c as Open would, without loading anything: the ports, hooks,
// sizes, and that the interfaces exist.
func (c Config) Validate() error {
	if err := c.defaults(); err != nil {
		return err
	}
	for _, name := range c.Interfaces {
		if _, err := net.InterfaceByName(name); err != nil {
			return fmt.Errorf("ebpf: interface %q: no such network interface", name)
		}
	}
	return nil
}

func (c *Config) defaults() error {
	if len(c.Interfaces) == 0 {
		c.Interfaces = []string{DefaultInterface}
	}
	if len(c.Ports) == 0 {
		return fmt.Errorf("ebpf: at least one port is required")
	}
	for _, p := range c.Ports {
		if p == 0 {
			return fmt.Errorf("ebpf: port 0 is not a TCP port")
		}
	}
	h, err := ParseHooks(string(c.Hooks))
	if err != nil {
		return fmt.Errorf("ebpf: hooks: %w", err)
	}
	c.Hooks = h
	switch {
	case c.SnapLen == 0:
		c.SnapLen = MaxSnapLen
	case c.SnapLen < 1 || c.SnapLen > MaxSnapLen:
		return fmt.Errorf("ebpf: snap length %d is not within 1..%d", c.SnapLen, MaxSnapLen)
	}
	c.RingSize = cmp.Or(c.RingSize, DefaultRingSize)
	if c.RingSize < 4096 || c.RingSize&(c.RingSize-1) != 0 {
		return fmt.Errorf("ebpf: ring buffer size %d is not a power of two of at least 4096 bytes", c.RingSize)
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if err := defaultPoll(&c.PollInterval); err != nil {
		return err
	}
	c.Logger = cmp.Or(c.Logger, hclog.NewNullLogger())
	return nil
}

// defaultPoll sets a zero poll interval to DefaultPollInterval and checks
// it is within MinPollInterval..MaxPollInterval.
func defaultPoll(d *time.Duration) error {
	*d = cmp.Or(*d, DefaultPollInterval)
	if *d < MinPollInterval || *d > MaxPollInterval {
		return fmt.Errorf("ebpf: poll interval %v is not within %v..%v", *d, MinPollInterval, MaxPollInterval)
	}
	return nil
}

// KernelStats are the counters of the BPF program, summed over CPUs.
type KernelStats struct {
	// Packets of watched ports seen by the program, and their bytes from the
	// IP header on.
	Packets, Bytes uint64
	// CapturedBytes are the TCP payload bytes copied into the ring buffer.
	CapturedBytes uint64
	// Truncated packets had more payload than the snap length.
	Truncated uint64
	// RingbufDrops are records (a packet's headers and up to 16 KiB of its
	// payload) lost because the ring buffer was full.
	RingbufDrops uint64
	// Errors are copies lost because the packet could not be read.
	Errors uint64
}

// Attachment is one TC hook a Capture is attached to.
type Attachment struct {
	Interface string
	Index     int
	Hook      string // "ingress" or "egress"
}
