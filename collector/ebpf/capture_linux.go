//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// Supported reports whether this build can capture with eBPF.
const Supported = true

// eventSize is sizeof(struct event) in capture.bpf.c.
const eventSize = int(unsafe.Sizeof(captureEvent{}))

// Must match enum stat in capture.bpf.c.
const (
	statPackets = iota
	statBytes
	statCaptured
	statTruncated
	statRingbufFull
	statErrors
	numStats
)

const (
	dirIngress = 0
	dirEgress  = 1
)

// Capture is a loaded and attached TC capture program and the userspace path
// behind it. Open it, then Run it until the context ends.
type Capture struct {
	cfg      Config
	log      hclog.Logger
	objs     captureObjects
	attached []Attachment
	rd       *ringReader
	tracker  *tcpstream.Tracker
	stats    *tcpstream.Stats
	dec      *tcpstream.Decoder
	first    gopacket.LayerType
	seg      tcpstream.Segment
	now      func() time.Time

	packets [2]atomic.Uint64 // packets read from the ring buffer, by direction
	monoOff atomic.Int64     // wall clock minus CLOCK_MONOTONIC, in ns

	lifecycle             // its lock guards the fields below too
	kstats    KernelStats // last values read (final after close)
	pending   int
}

// Open loads the capture program, configures it for cfg and attaches it to the
// interfaces. Exchanges are published to pub. The errors name what is missing:
// privileges (CAP_BPF, CAP_NET_ADMIN), kernel features (tcx, ring buffers),
// interfaces.
func Open(pub tcpstream.Publisher, cfg Config) (_ *Capture, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	type iface struct {
		name  string
		index int
		l2    uint32
		loop  bool
	}
	var ifs []iface
	seen := map[int]bool{}
	for _, name := range cfg.Interfaces {
		ni, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("ebpf: interface %q: no such network interface", name)
		}
		if seen[ni.Index] {
			continue
		}
		seen[ni.Index] = true
		l2, err := linkHeaderLen(ni)
		if err != nil {
			return nil, err
		}
		ifs = append(ifs, iface{name: ni.Name, index: ni.Index, l2: l2, loop: ni.Flags&net.FlagLoopback != 0})
	}
	if len(ifs) > 64 {
		return nil, fmt.Errorf("ebpf: at most 64 interfaces can be watched, not %d", len(ifs))
	}
	if missing := missingCaps(); missing != "" {
		return nil, fmt.Errorf("ebpf: attaching the TC capture program needs CAP_BPF and CAP_NET_ADMIN (run as root); this process lacks %s: %w", missing, os.ErrPermission)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		cfg.Logger.Debug("raise RLIMIT_MEMLOCK", "error", err)
	}
	spec, err := loadCapture()
	if err != nil {
		return nil, fmt.Errorf("ebpf: %w", err)
	}
	if err := spec.Variables[captureVarSnaplen].Set(uint32(cfg.SnapLen)); err != nil {
		return nil, fmt.Errorf("ebpf: set snap length: %w", err)
	}
	if err := spec.Variables[captureVarWakeupBytes].Set(uint64(min(cfg.RingSize/8, 256<<10))); err != nil {
		return nil, fmt.Errorf("ebpf: set wakeup threshold: %w", err)
	}
	spec.Maps[captureMapEvents].MaxEntries = uint32(cfg.RingSize)

	c := &Capture{cfg: cfg, log: cfg.Logger, now: time.Now, dec: tcpstream.NewDecoder()}
	c.first, _ = tcpstream.FirstLayer(layers.LinkTypeRaw)
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		return nil, explainLoad(err)
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	for _, p := range cfg.Ports {
		if err := c.objs.Ports.Put(uint32(p), uint8(1)); err != nil {
			return nil, fmt.Errorf("ebpf: watch port %d: %w", p, err)
		}
	}
	for _, f := range ifs {
		if err := c.objs.Ifaces.Put(uint32(f.index), f.l2); err != nil {
			return nil, fmt.Errorf("ebpf: configure interface %s: %w", f.name, err)
		}
	}
	if c.rd, err = newRingReader(c.objs.Events, cfg.PollInterval); err != nil {
		return nil, fmt.Errorf("ebpf: open ring buffer: %w", err)
	}
	for _, f := range ifs {
		hooks := []string{"ingress", "egress"}
		switch {
		case cfg.Hooks == HooksIngress:
			hooks = hooks[:1]
		case cfg.Hooks == HooksEgress, cfg.Hooks == HooksAuto && f.loop:
			hooks = hooks[1:]
		}
		for _, h := range hooks {
			prog, at := c.objs.CaptureIngress, ebpf.AttachTCXIngress
			if h == "egress" {
				prog, at = c.objs.CaptureEgress, ebpf.AttachTCXEgress
			}
			l, err := link.AttachTCX(link.TCXOptions{Interface: f.index, Program: prog, Attach: at})
			if err != nil {
				return nil, explainAttach(err, f.name, h)
			}
			c.links = append(c.links, l)
			c.attached = append(c.attached, Attachment{Interface: f.name, Index: f.index, Hook: h})
		}
	}
	topts := append([]tcpstream.TrackerOption{
		tcpstream.WithSource(mlv1.Source_SOURCE_EBPF),
		tcpstream.WithConnPrefix("ebpf-"),
		tcpstream.WithLogger(cfg.Logger),
	}, cfg.TrackerOptions...)
	c.tracker = tcpstream.NewTracker(pub, append(topts, tcpstream.WithPorts(cfg.Ports...))...)
	c.stats = c.tracker.Stats()
	c.syncClock()
	c.log.Info("eBPF capture attached", "attached", c.describe(), "ports", cfg.Ports, "snaplen", cfg.SnapLen, "ring_bytes", cfg.RingSize)
	return c, nil
}

func (c *Capture) describe() string {
	parts := make([]string, len(c.attached))
	for i, a := range c.attached {
		parts[i] = a.Interface + "/" + a.Hook
	}
	return strings.Join(parts, ",")
}

// Attached returns the hooks the program is attached to.
func (c *Capture) Attached() []Attachment { return append([]Attachment(nil), c.attached...) }

// Stats returns the tracker's counters (packets by result, streams, gaps, HTTP).
func (c *Capture) Stats() *tcpstream.Stats { return c.stats }

// Packets returns the packets read from the ring buffer, by hook.
func (c *Capture) Packets() (ingress, egress uint64) {
	return c.packets[dirIngress].Load(), c.packets[dirEgress].Load()
}

// PendingBytes returns the bytes waiting in the ring buffer.
func (c *Capture) PendingBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.rd != nil {
		c.pending = c.rd.AvailableBytes()
	}
	return c.pending
}

// KernelStats returns the BPF program's counters (the final ones once closed).
func (c *Capture) KernelStats() KernelStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.readKernelStats()
	}
	return c.kstats
}

// readKernelStats sums the per-CPU counters; c.mu is held.
func (c *Capture) readKernelStats() {
	if c.objs.Stats == nil {
		return
	}
	var ks KernelStats
	sums := [numStats]*uint64{statPackets: &ks.Packets, statBytes: &ks.Bytes, statCaptured: &ks.CapturedBytes,
		statTruncated: &ks.Truncated, statRingbufFull: &ks.RingbufDrops, statErrors: &ks.Errors}
	var per []uint64
	for i, sum := range sums {
		if err := c.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return
		}
		for _, x := range per {
			*sum += x
		}
	}
	c.kstats = ks
}

// syncClock measures the offset of the wall clock to CLOCK_MONOTONIC, the
// clock of bpf_ktime_get_ns.
func (c *Capture) syncClock() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return
	}
	c.monoOff.Store(c.now().UnixNano() - ts.Nano())
}

// Run reads the ring buffer and publishes exchanges until ctx ends. Then it
// detaches the program, drains what is left in the ring buffer, flushes every
// stream (pending requests are published without response) and frees the BPF
// objects. Run may be called once.
func (c *Capture) Run(ctx context.Context) error {
	if err := c.begin("capture"); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.tracker.FlushEvery(ctx, c.cfg.FlushInterval, func() time.Time {
			c.syncClock()
			return c.now()
		})
		// Stop capturing, then let the reader drain the ring.
		c.detach()
		c.rd.stop()
	}()
	err := c.rd.run(c.handle, nil)
	cancel()
	wg.Wait()
	c.tracker.Close(c.now())
	c.close()
	ks := c.KernelStats()
	c.log.Info("eBPF capture stopped", "kernel_packets", ks.Packets, "ringbuf_drops", ks.RingbufDrops, "exchanges", c.stats.Exchanges.Load())
	return err
}

// handle decodes one ring buffer record (a packet's IP and TCP headers and
// one chunk of its payload) and hands it to the tracker as a TCP segment.
func (c *Capture) handle(raw []byte) {
	if len(raw) < eventSize {
		c.stats.Count(tcpstream.ResultMalformed)
		return
	}
	ts := binary.NativeEndian.Uint64(raw[0:8])
	payload := int(binary.NativeEndian.Uint32(raw[8:12]))
	off := binary.NativeEndian.Uint32(raw[16:20])
	hdrLen := int(binary.NativeEndian.Uint16(raw[20:22]))
	chunkLen := int(binary.NativeEndian.Uint16(raw[22:24]))
	dir, last := raw[24], raw[25] != 0
	if off == 0 && dir <= dirEgress {
		c.packets[dir].Add(1)
	}
	data := raw[eventSize:]
	if hdrLen < 40 || hdrLen+chunkLen > len(data) {
		c.stats.Count(tcpstream.ResultMalformed)
		return
	}
	data = data[:hdrLen+chunkLen]
	// The IP length field describes the whole packet (or is 0 for BIG TCP
	// packets over 64 KiB): make it describe this record, so the decoder takes
	// exactly the chunk as payload.
	switch data[0] >> 4 {
	case 4:
		binary.BigEndian.PutUint16(data[2:4], uint16(len(data)))
	case 6:
		if len(data) >= 40 {
			binary.BigEndian.PutUint16(data[4:6], uint16(len(data)-40))
		}
	}
	if err := c.dec.Decode(c.first, data, &c.seg); err != nil {
		c.stats.CountDecodeError(err)
		return
	}
	seg := &c.seg
	if off > 0 {
		seg.Seq += off
		if seg.SYN {
			seg.Seq++ // data on a SYN starts after it
		}
		seg.SYN = false
	}
	if last {
		// Payload the snap length left out is missing from the capture.
		seg.Missing = max(payload-int(off)-chunkLen, 0)
	} else {
		seg.Missing = 0
		seg.FIN, seg.RST = false, false
	}
	c.tracker.Handle(seg, time.Unix(0, int64(ts)+c.monoOff.Load()))
}

// detach closes the tcx links: the program stops seeing packets.
func (c *Capture) detach() { c.lifecycle.detach(c.log, "TC program") }

// Close detaches the program and frees everything without draining; use it
// when Run is not called. It is safe to call more than once.
func (c *Capture) Close() error {
	c.flushUnrun(c.tracker, c.now)
	c.close()
	return nil
}

func (c *Capture) close() {
	c.closeOnce(c.log, "TC program", func() {
		c.readKernelStats()
		if c.rd != nil {
			c.pending = c.rd.AvailableBytes()
			_ = c.rd.Close()
		}
		_ = c.objs.Close()
	})
}

// Linux ARPHRD_* link types (include/uapi/linux/if_arp.h).
const (
	arphrdEther    = 1
	arphrdPPP      = 512
	arphrdRawIP    = 519
	arphrdLoopback = 772
	arphrdNone     = 65534
)

// linkHeaderLen returns how many bytes of link header precede the IP header
// in the packets a TC program sees on ni.
func linkHeaderLen(ni *net.Interface) (uint32, error) {
	b, err := os.ReadFile("/sys/class/net/" + ni.Name + "/type")
	if err != nil {
		// No sysfs: judge from the hardware address.
		if ni.Flags&net.FlagLoopback != 0 || len(ni.HardwareAddr) == 6 {
			return 14, nil
		}
		if len(ni.HardwareAddr) == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("ebpf: interface %s: link type unknown (no /sys/class/net)", ni.Name)
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("ebpf: interface %s: link type %q: %w", ni.Name, b, err)
	}
	switch t {
	case arphrdEther, arphrdLoopback:
		return 14, nil
	case arphrdNone, arphrdRawIP, arphrdPPP:
		return 0, nil
	}
	return 0, fmt.Errorf("ebpf: interface %s: link type %d is not supported (Ethernet, loopback and IP-only devices are)", ni.Name, t)
}

// missingCaps names the capabilities this process lacks for loading and
// attaching TC programs ("" when it has them).
func missingCaps() string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return "" // unknown: let the kernel decide
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var missing []string
	if !has(unix.CAP_BPF) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(unix.CAP_NET_ADMIN) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	return strings.Join(missing, " and ")
}

// explainLoad turns a failure to load the BPF objects into a message naming
// what is missing.
func explainLoad(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("ebpf: the kernel's verifier rejected the capture program: %w", err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("ebpf: loading the capture program needs CAP_BPF and CAP_NET_ADMIN (run as root; in a container also the host's permission to use BPF): %w", err)
	case features.HaveMapType(ebpf.RingBuf) != nil:
		return fmt.Errorf("ebpf: this kernel lacks BPF ring buffers (Linux 5.8+): %w", err)
	case features.HaveProgramType(ebpf.SchedCLS) != nil:
		return fmt.Errorf("ebpf: this kernel lacks TC BPF programs (CONFIG_NET_CLS_BPF): %w", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("ebpf: this kernel lacks a BPF feature the capture program needs: %w", err)
	}
	return fmt.Errorf("ebpf: load capture program: %w", err)
}

// explainAttach turns a failure to attach into a message naming what is
// missing.
func explainAttach(err error, iface, hook string) error {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("ebpf: this kernel lacks tcx (TC BPF links, Linux 6.6+), needed to attach to %s %s: %w", iface, hook, err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("ebpf: attaching the TC program to %s %s needs CAP_BPF and CAP_NET_ADMIN (run as root): %w", iface, hook, err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("ebpf: interface %s is gone: %w", iface, err)
	}
	return fmt.Errorf("ebpf: attach TC program to %s %s: %w", iface, hook, err)
}
