//go:build linux && amd64

package ebpf

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// TLSSupported reports whether this build can capture TLS plaintext.
const TLSSupported = true

// The event layout of tls.bpf.c is parsed by parseTLSEvent.
var _ [tlsEventSize - int(unsafe.Sizeof(tlsTlsEvent{}))]struct{}
var _ [int(unsafe.Sizeof(tlsTlsEvent{})) - tlsEventSize]struct{}

// closeGrace is how long a connection is kept after its close event for
// data of calls that returned before it but were reported after it.
const closeGrace = 500 * time.Millisecond

// cgroupRoot is where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup,
// or /sys/fs/cgroup/unified on hosts with both versions.
var cgroupRoot = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[2] == "cgroup2" {
				return f[1]
			}
		}
	}
	return "/sys/fs/cgroup"
})

// uprobePMU exists when the kernel has uprobes (CONFIG_UPROBE_EVENTS); a
// variable for tests.
var uprobePMU = "/sys/bus/event_source/devices/uprobe/type"

// kernelBTF exists when the kernel describes its types (CONFIG_DEBUG_INFO_BTF),
// which the programs need to read socket addresses; a variable for tests.
var kernelBTF = "/sys/kernel/btf/vmlinux"

// ErrNoBTF: the kernel lacks BTF.
var ErrNoBTF = errors.New("this kernel lacks BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux), needed to read socket addresses")

// ErrNoUprobes: the kernel lacks uprobes.
var ErrNoUprobes = errors.New("this kernel lacks uprobes (CONFIG_UPROBE_EVENTS, the uprobe PMU in /sys/bus/event_source/devices)")

// Must match enum stat in tls.bpf.c.
const (
	tlsStatCalls = iota
	tlsStatBytes
	tlsStatCaptured
	tlsStatTruncated
	tlsStatRingbufFull
	tlsStatErrors
	tlsNumStats
)

// TLSCapture captures the TLS plaintext of selected processes with uprobes on
// OpenSSL's libssl and Go's crypto/tls. Open it with OpenTLS, then Run it
// until the context ends.
type TLSCapture struct {
	cfg     TLSConfig
	log     hclog.Logger
	objs    tlsObjects
	rd      *ringReader
	tracker *tcpstream.Tracker
	stats   *tcpstream.Stats
	asm     *tlsAssembler
	now     func() time.Time

	binIDs  map[fileID]bool
	pidSel  map[int]bool
	cgroups []string

	lifecycle                      // its lock guards the fields below too
	files         map[fileID]error // executables and libraries probed (nil) or refused
	procs         map[int]bool     // selected processes in the pids map
	refused       map[int]bool     // selected processes without a probe-able TLS library
	attached      []string
	kstats        TLSKernelStats
	monoOff       int64
	lastHousekeep time.Time
}

// Check reports, without loading or attaching anything, why cfg's capture
// could not start: the kernel lacks uprobes, privileges are missing, a
// process named by PIDs is gone, or a process or binary named by PIDs or
// Binaries has no probe-able TLS library (a stripped Go binary, static
// OpenSSL, a library without SSL_write). OpenTLS checks the same.
func (cfg TLSConfig) Check() error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	if _, err := os.Stat(uprobePMU); err != nil {
		return fmt.Errorf("ebpf: %w", ErrNoUprobes)
	}
	if _, err := os.Stat(kernelBTF); err != nil {
		return fmt.Errorf("ebpf: %w", ErrNoBTF)
	}
	if missing := missingTLSCaps(); missing != "" {
		return fmt.Errorf("ebpf: TLS capture needs CAP_BPF and CAP_PERFMON (run as root); this process lacks %s: %w", missing, os.ErrPermission)
	}
	for _, p := range cfg.PIDs {
		if _, err := os.Stat(filepath.Join(procRoot, strconv.Itoa(p))); err != nil {
			return fmt.Errorf("ebpf: pid %d: no such process", p)
		}
		if _, err := findTarget(filepath.Join(procRoot, strconv.Itoa(p), "exe"), p, cfg.LibSSL); err != nil {
			return fmt.Errorf("ebpf: pid %d: %w", p, err)
		}
	}
	for _, b := range cfg.Binaries {
		if _, err := findTarget(b, 0, cfg.LibSSL); err != nil {
			return fmt.Errorf("ebpf: binary %s: %w", b, err)
		}
	}
	for _, cg := range cfg.Cgroups {
		if _, err := cgroupPath(cg); err != nil {
			return err
		}
	}
	return nil
}

// cgroupPath returns the cgroup v2 path of cg, as /proc/PID/cgroup shows it.
func cgroupPath(cg string) (string, error) {
	root := cgroupRoot()
	rel := "/" + strings.Trim(strings.TrimPrefix(filepath.Clean(cg), root), "/")
	if st, err := os.Stat(filepath.Join(root, rel)); err != nil || !st.IsDir() {
		return "", fmt.Errorf("ebpf: cgroup %s: no such cgroup v2 group under %s", cg, root)
	}
	return strings.TrimSuffix(rel, "/"), nil
}

// target is what is probed for a process or an executable: a Go binary's
// crypto/tls (Go set) or an OpenSSL libssl (Lib set).
type target struct {
	Exe string
	Go  *goBinary
	Lib string
}

// findTarget finds the TLS library of executable exe (of process pid when
// not 0): exe itself if it is a Go binary with crypto/tls, else libssl (if
// set), the libssl the process maps, or the one exe is linked with. A
// library must export SSL_write and SSL_read.
func findTarget(exe string, pid int, libssl string) (target, error) {
	g, err := inspectGo(exe)
	if err == nil {
		return target{Exe: exe, Go: g}, nil
	}
	if !errors.Is(err, ErrNotGo) && !errors.Is(err, ErrNoGoTLS) {
		return target{}, err
	}
	lib := libssl
	if lib == "" && pid != 0 {
		if lib, err = libsslOf(pid); err != nil {
			return target{}, err
		}
	}
	if lib == "" {
		if lib, err = linkedLibSSL(exe); err != nil {
			return target{}, err
		}
	}
	if err := checkLibSSL(lib); err != nil {
		return target{}, err
	}
	return target{Exe: exe, Lib: lib}, nil
}

// checkLibSSL checks that the library at path exports SSL_write and SSL_read.
func checkLibSSL(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("libssl %s: %w: %w", path, ErrNoLibSSL, err)
	}
	defer f.Close()
	syms, _ := f.DynamicSymbols()
	more, _ := f.Symbols()
	found := map[string]bool{}
	for _, s := range append(syms, more...) {
		if s.Value != 0 && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			found[s.Name] = true
		}
	}
	for _, sym := range []string{"SSL_write", "SSL_read"} {
		if !found[sym] {
			return fmt.Errorf("%s has no symbol %s (stripped, or not OpenSSL's libssl): %w", path, sym, ErrNoLibSSL)
		}
	}
	return nil
}

// OpenTLS loads the uprobe programs, selects the processes of cfg and attaches
// to their OpenSSL library or Go binary. Exchanges are published to pub. The
// errors name what is missing: privileges, uprobes, the library or symbols,
// symbols of a stripped binary.
func OpenTLS(pub tcpstream.Publisher, cfg TLSConfig) (_ *TLSCapture, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	c := &TLSCapture{cfg: cfg, log: cfg.Logger, now: time.Now, binIDs: map[fileID]bool{}, pidSel: map[int]bool{},
		files: map[fileID]error{}, procs: map[int]bool{}, refused: map[int]bool{}}
	for _, p := range cfg.PIDs {
		c.pidSel[p] = true
	}
	for _, cg := range cfg.Cgroups {
		rel, err := cgroupPath(cg)
		if err != nil {
			return nil, err
		}
		c.cgroups = append(c.cgroups, rel)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		c.log.Debug("raise RLIMIT_MEMLOCK", "error", err)
	}
	spec, err := loadTls()
	if err != nil {
		return nil, fmt.Errorf("ebpf: %w", err)
	}
	if err := spec.Variables[tlsVarWakeupBytes].Set(uint64(min(cfg.RingSize/8, 256<<10))); err != nil {
		return nil, fmt.Errorf("ebpf: set wakeup threshold: %w", err)
	}
	for name, v := range map[string]uint64{tlsVarGoConnOff: goConnOff, tlsVarGoNetfdOff: goNetFDOff, tlsVarGoSysfdOff: goSysfdOff} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("ebpf: set %s: %w", name, err)
		}
	}
	spec.Maps[tlsMapTlsEvents].MaxEntries = uint32(cfg.RingSize)
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		return nil, explainTLSLoad(err)
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.rd, err = newRingReader(c.objs.TlsEvents, cfg.PollInterval); err != nil {
		return nil, fmt.Errorf("ebpf: open ring buffer: %w", err)
	}
	// Executables named by --binary are probed now, before they run.
	for _, b := range cfg.Binaries {
		id, err := statID(b)
		if err != nil {
			return nil, fmt.Errorf("ebpf: binary %s: %w", b, err)
		}
		c.binIDs[id] = true
		if err := c.attachBinary(b); err != nil {
			return nil, fmt.Errorf("ebpf: binary %s: %w", b, err)
		}
	}
	// The socket of an OpenSSL connection comes from the system calls inside
	// SSL_read/SSL_write; without it connections get stand-in addresses.
	if l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: c.objs.SslSysEnter}); err != nil {
		c.log.Warn("no raw tracepoint sys_enter: OpenSSL connections get stand-in addresses", "error", err)
	} else {
		c.links = append(c.links, l)
	}
	if err := c.scan(true); err != nil {
		return nil, err
	}
	topts := append([]tcpstream.TrackerOption{
		tcpstream.WithSource(mlv1.Source_SOURCE_EBPF_TLS),
		tcpstream.WithConnPrefix("ebpf-tls-"),
		tcpstream.WithLogger(cfg.Logger),
	}, cfg.TrackerOptions...)
	c.tracker = tcpstream.NewTracker(httpsPublisher{pub}, topts...)
	c.stats = c.tracker.Stats()
	c.asm = newTLSAssembler(c.tracker, socketAddrs)
	c.syncClock()
	c.log.Info("eBPF TLS capture attached", "probed", strings.Join(c.attached, ","), "processes", len(c.procs))
	return c, nil
}

// Attached returns the libraries and executables probed.
func (c *TLSCapture) Attached() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.attached...)
}

// Processes returns the number of selected processes being captured.
func (c *TLSCapture) Processes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.procs)
}

// Stats returns the tracker's counters (streams, HTTP).
func (c *TLSCapture) Stats() *tcpstream.Stats { return c.stats }

// PendingBytes returns the bytes waiting in the ring buffer.
func (c *TLSCapture) PendingBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.rd == nil {
		return 0
	}
	return c.rd.AvailableBytes()
}

// KernelStats returns the BPF programs' counters (the final ones once closed).
func (c *TLSCapture) KernelStats() TLSKernelStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.readKernelStats()
	}
	return c.kstats
}

func (c *TLSCapture) readKernelStats() {
	if c.objs.TlsStats == nil {
		return
	}
	var ks TLSKernelStats
	sums := [tlsNumStats]*uint64{tlsStatCalls: &ks.Calls, tlsStatBytes: &ks.Bytes, tlsStatCaptured: &ks.CapturedBytes,
		tlsStatTruncated: &ks.Truncated, tlsStatRingbufFull: &ks.RingbufDrops, tlsStatErrors: &ks.Errors}
	var per []uint64
	for i, sum := range sums {
		if err := c.objs.TlsStats.Lookup(uint32(i), &per); err != nil {
			return
		}
		for _, x := range per {
			*sum += x
		}
	}
	c.kstats = ks
}

func (c *TLSCapture) syncClock() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return
	}
	c.monoOff = c.now().UnixNano() - ts.Nano()
}

// selected reports whether process pid matches the selection.
func (c *TLSCapture) selected(pid int) bool {
	if len(c.pidSel) > 0 {
		for p, i := pid, 0; p > 1 && i < 64; p, i = parentPID(p), i+1 {
			if c.pidSel[p] {
				return true
			}
		}
	}
	if len(c.binIDs) > 0 {
		if id, err := statID(filepath.Join(procRoot, strconv.Itoa(pid), "exe")); err == nil && c.binIDs[id] {
			return true
		}
	}
	if len(c.cgroups) > 0 {
		cg := procCgroup(pid)
		for _, want := range c.cgroups {
			if cg != "" && inCgroup(cg, want) {
				return true
			}
		}
	}
	return false
}

// scan selects new matching processes, probes their TLS library and adds
// them to the pids map, and removes processes that are gone. At the first
// scan, a process named by --pid that cannot be probed is an error.
func (c *TLSCapture) scan(first bool) error {
	pids, err := listPIDs()
	if err != nil {
		return fmt.Errorf("ebpf: %w", err)
	}
	self := os.Getpid()
	live := make(map[int]bool, len(pids))
	for _, pid := range pids {
		live[pid] = true
		c.mu.Lock()
		known := c.procs[pid] || c.refused[pid]
		c.mu.Unlock()
		if known || pid == self || !c.selected(pid) {
			continue
		}
		if err := c.attachProcess(pid); err != nil {
			if first && c.pidSel[pid] {
				return fmt.Errorf("ebpf: pid %d: %w", pid, err)
			}
			c.log.Warn("selected process not captured", "pid", pid, "error", err)
			c.mu.Lock()
			c.refused[pid] = true
			c.mu.Unlock()
			continue
		}
		if err := c.objs.Pids.Put(uint32(pid), uint8(1)); err != nil {
			return fmt.Errorf("ebpf: select pid %d: %w", pid, err)
		}
		c.mu.Lock()
		c.procs[pid] = true
		c.mu.Unlock()
		c.log.Debug("process selected", "pid", pid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for pid := range c.procs {
		if !live[pid] {
			delete(c.procs, pid)
			_ = c.objs.Pids.Delete(uint32(pid))
		}
	}
	for pid := range c.refused {
		if !live[pid] {
			delete(c.refused, pid)
		}
	}
	return nil
}

// attachProcess probes the TLS library of process pid: its executable if it
// is a Go binary with crypto/tls, else the libssl it maps (or --libssl).
func (c *TLSCapture) attachProcess(pid int) error {
	return c.attachTarget(filepath.Join(procRoot, strconv.Itoa(pid), "exe"), pid)
}

// attachBinary probes an executable named by --binary: a Go binary's
// crypto/tls, or the libssl it is linked with (or --libssl).
func (c *TLSCapture) attachBinary(path string) error { return c.attachTarget(path, 0) }

// attachTarget probes the TLS library of executable exe (of process pid when
// not 0), once per file.
func (c *TLSCapture) attachTarget(exe string, pid int) error {
	id, err := statID(exe)
	if err != nil {
		return fmt.Errorf("executable: %w", err)
	}
	c.mu.Lock()
	err, done := c.files[id]
	c.mu.Unlock()
	if done && err == nil {
		return nil // a Go binary probed already
	}
	t, err := findTarget(exe, pid, c.cfg.LibSSL)
	if err == nil {
		if t.Go != nil {
			err = c.attachGo(exe, t.Go)
			c.mu.Lock()
			c.files[id] = err
			c.mu.Unlock()
		} else {
			err = c.attachLib(t.Lib)
		}
	}
	return err
}

// attachGo attaches to a Go binary's crypto/tls: uprobes at the entry of
// (*Conn).Write, Read and Close and at every RET of Write and Read.
func (c *TLSCapture) attachGo(path string, g *goBinary) error {
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return fmt.Errorf("open executable: %w", err)
	}
	var links []link.Link
	up := func(sym string, prog *ebpf.Program, off uint64) error {
		l, err := ex.Uprobe(sym, prog, &link.UprobeOptions{Offset: off})
		if err != nil {
			return explainUprobe(err, path, sym)
		}
		links = append(links, l)
		return nil
	}
	err = func() error {
		for _, fn := range []struct {
			f     goFunc
			entry *ebpf.Program
		}{{g.Write, c.objs.GoTlsWrite}, {g.Read, c.objs.GoTlsRead}} {
			if err := up(fn.f.Symbol, fn.entry, 0); err != nil {
				return err
			}
			for _, r := range fn.f.Rets {
				if err := up(fn.f.Symbol, c.objs.GoTlsRet, r); err != nil {
					return err
				}
			}
		}
		if g.Close.Symbol != "" {
			return up(g.Close.Symbol, c.objs.GoTlsClose, 0)
		}
		return nil
	}()
	if err != nil {
		for _, l := range links {
			_ = l.Close()
		}
		return err
	}
	c.mu.Lock()
	c.links = append(c.links, links...)
	c.attached = append(c.attached, "go:"+filepath.Base(path))
	c.mu.Unlock()
	c.log.Info("probing Go crypto/tls", "binary", path, "go", g.GoVersion, "write_rets", len(g.Write.Rets), "read_rets", len(g.Read.Rets))
	return nil
}

// attachLib attaches to OpenSSL's libssl at path (once per file).
func (c *TLSCapture) attachLib(path string) error {
	id, err := statID(path)
	if err != nil {
		return fmt.Errorf("libssl %s: %w: %w", path, ErrNoLibSSL, err)
	}
	c.mu.Lock()
	err, done := c.files[id]
	c.mu.Unlock()
	if done {
		return err
	}
	err = c.attachSSL(path)
	c.mu.Lock()
	c.files[id] = err
	c.mu.Unlock()
	return err
}

func (c *TLSCapture) attachSSL(path string) error {
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return fmt.Errorf("libssl %s: %w: %w", path, ErrNoLibSSL, err)
	}
	var links []link.Link
	fail := func(err error) error {
		for _, l := range links {
			_ = l.Close()
		}
		return err
	}
	for _, p := range []struct {
		sym      string
		entry    *ebpf.Program
		optional bool
	}{
		{"SSL_write", c.objs.SslWrite, false},
		{"SSL_read", c.objs.SslRead, false},
		{"SSL_write_ex", c.objs.SslWriteEx, true}, // OpenSSL 1.1.1+
		{"SSL_read_ex", c.objs.SslReadEx, true},
		{"SSL_do_handshake", c.objs.SslDoHandshake, true},
	} {
		l, err := ex.Uprobe(p.sym, p.entry, nil)
		if err != nil {
			if p.optional && errors.Is(err, link.ErrNoSymbol) {
				continue
			}
			return fail(explainUprobe(err, path, p.sym))
		}
		links = append(links, l)
		r, err := ex.Uretprobe(p.sym, c.objs.SslRet, nil)
		if err != nil {
			return fail(explainUprobe(err, path, p.sym))
		}
		links = append(links, r)
	}
	if l, err := ex.Uprobe("SSL_free", c.objs.SslFree, nil); err == nil {
		links = append(links, l)
	}
	c.mu.Lock()
	c.links = append(c.links, links...)
	c.attached = append(c.attached, "openssl:"+filepath.Base(path))
	c.mu.Unlock()
	c.log.Info("probing OpenSSL", "library", path)
	return nil
}

// linkedLibSSL finds the libssl a dynamically linked executable needs, in
// the usual library directories.
func linkedLibSSL(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	libs, _ := f.ImportedLibraries()
	for _, l := range libs {
		if !strings.HasPrefix(l, "libssl.so") {
			continue
		}
		for _, dir := range []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib", "/usr/local/lib64"} {
			p := filepath.Join(dir, l)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		return "", fmt.Errorf("needs %s but it is not in the usual library directories: give its path with --libssl: %w", l, ErrNoLibSSL)
	}
	return "", errors.New("uses neither a dynamically linked OpenSSL (libssl.so) nor Go's crypto/tls (static OpenSSL, BoringSSL and other TLS libraries are not supported)")
}

// Run reads the ring buffer and publishes exchanges until ctx ends, rescanning
// processes meanwhile. Then it detaches the probes, drains the ring buffer,
// flushes every stream and frees the BPF objects. Run may be called once.
func (c *TLSCapture) Run(ctx context.Context) error {
	if err := c.begin("TLS capture"); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.tracker.FlushEvery(ctx, c.cfg.FlushInterval, c.now)
		c.detach()
		c.rd.stop()
	}()
	go func() {
		defer wg.Done()
		t := time.NewTicker(c.cfg.RescanInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := c.scan(false); err != nil {
					c.log.Warn("rescan processes", "error", err)
				}
			}
		}
	}()
	err := c.rd.run(func(raw []byte) {
		e, perr := parseTLSEvent(raw)
		if perr != nil {
			c.stats.Count(tcpstream.ResultMalformed)
			return
		}
		c.asm.handle(e, time.Unix(0, int64(e.TS)+c.monoOff))
	}, c.housekeep)
	cancel()
	wg.Wait()
	c.tracker.Close(c.now())
	c.close()
	ks := c.KernelStats()
	c.log.Info("eBPF TLS capture stopped", "calls", ks.Calls, "ringbuf_drops", ks.RingbufDrops, "exchanges", c.stats.Exchanges.Load())
	return err
}

// housekeep resyncs the clock and forgets idle connections, at most every
// flush interval; it runs on the reading goroutine.
func (c *TLSCapture) housekeep() {
	now := c.now()
	if now.Sub(c.lastHousekeep) < c.cfg.FlushInterval {
		return
	}
	c.lastHousekeep = now
	c.syncClock()
	c.asm.reap(now.Add(-closeGrace), now.Add(-max(tcpstream.DefaultIdleTimeout, 2*c.cfg.FlushInterval)))
}

// detach closes the uprobe links: the probes stop firing.
func (c *TLSCapture) detach() { c.lifecycle.detach(c.log, "uprobe") }

// Close detaches and frees everything without draining; use it when Run is
// not called. It is safe to call more than once.
func (c *TLSCapture) Close() error {
	c.flushUnrun(c.tracker, c.now)
	c.close()
	return nil
}

func (c *TLSCapture) close() {
	c.closeOnce(c.log, "uprobe", func() {
		c.readKernelStats()
		if c.rd != nil {
			_ = c.rd.Close()
		}
		_ = c.objs.Close()
	})
}

// missingTLSCaps names the capabilities this process lacks for loading BPF
// programs and attaching uprobes ("" when it has them).
func missingTLSCaps() string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return ""
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	var missing []string
	if !has(unix.CAP_BPF) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(unix.CAP_PERFMON) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_PERFMON")
	}
	return strings.Join(missing, " and ")
}

func explainTLSLoad(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("ebpf: the kernel's verifier rejected the TLS programs: %w", err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("ebpf: loading the TLS programs needs CAP_BPF and CAP_PERFMON (run as root): %w", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("ebpf: this kernel lacks a BPF feature the TLS programs need (ring buffers: Linux 5.8+): %w", err)
	}
	return fmt.Errorf("ebpf: load TLS programs: %w", err)
}

func explainUprobe(err error, path, sym string) error {
	switch {
	case errors.Is(err, link.ErrNoSymbol):
		return fmt.Errorf("%s has no symbol %s (stripped, or not the expected library): %w", path, sym, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("attach uprobe %s in %s: %w: %w", sym, path, ErrNoUprobes, err)
	case errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("attach uprobe %s in %s needs CAP_PERFMON (run as root): %w", sym, path, err)
	}
	return fmt.Errorf("attach uprobe %s in %s: %w", sym, path, err)
}
