package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// clkTck is the unit of utime and stime in /proc/PID/stat (USER_HZ).
var clkTck = func() float64 {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
}()

// usage is what a process group has used: CPU time (user + system, of every
// live process of the group: nginx's master and workers) and the sum of the
// peak resident set sizes.
type usage struct {
	cpu   time.Duration
	hwmKB int64
	procs int
}

// groupUsage reads /proc/PID/stat (utime, stime) and /proc/PID/status
// (VmHWM) of every process in process group pgid.
func groupUsage(pgid int) (usage, error) {
	var u usage
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return u, fmt.Errorf("read /proc: %w", err)
	}
	var ticks float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		// The fields after the command name (which may hold spaces) in
		// parentheses: state ppid pgrp session tty tpgid flags minflt
		// cminflt majflt cmajflt utime stime ...
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) < 13 {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg != pgid {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		stt, _ := strconv.ParseFloat(f[12], 64)
		ticks += ut + stt
		u.hwmKB += vmHWM(pid)
		u.procs++
	}
	if u.procs == 0 {
		return u, fmt.Errorf("process group %d: no process", pgid)
	}
	u.cpu = time.Duration(ticks / clkTck * float64(time.Second))
	return u, nil
}

// vmHWM returns the peak resident set size of pid in KiB (0 if unknown).
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// bpfRun is the kernel-side cost of BPF programs: their accumulated run time
// and run count (kernel.bpf_stats_enabled, switched on by enableBPFStats).
type bpfRun struct {
	runtime time.Duration
	count   uint64
	progs   int
}

// enableBPFStats switches run-time statistics of BPF programs on until the
// returned closer is closed (root, Linux 5.8+).
func enableBPFStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	return c, nil
}

// bpfPrograms sums the statistics of the loaded BPF programs named one of
// names (the kernel keeps the first 15 bytes of a name).
func bpfPrograms(names ...string) (bpfRun, error) {
	var r bpfRun
	want := map[string]bool{}
	for _, n := range names {
		want[n[:min(len(n), unix.BPF_OBJ_NAME_LEN-1)]] = true
	}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return r, fmt.Errorf("list BPF programs: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, err := p.Info()
		if err == nil && want[info.Name] {
			if st, err := p.Stats(); err == nil {
				r.runtime += st.Runtime
				r.count += st.RunCount
				r.progs++
			}
		}
		p.Close()
	}
	return r, nil
}
