package benchproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ClockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (getconf CLK_TCK; 10 ms when it cannot be asked).
var ClockTick = func() time.Duration {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && v > 0 {
			return time.Second / time.Duration(v)
		}
	}
	return 10 * time.Millisecond
}()

// parseStat reads the process group (field 5) and utime + stime in ticks
// (fields 14 and 15) of a /proc/PID/stat line; the command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
func parseStat(stat string) (pgrp int, ticks int64, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	if pgrp, err = strconv.Atoi(f[2]); err != nil {
		return 0, 0, fmt.Errorf("/proc stat: %w", err)
	}
	for _, s := range f[11:13] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += v
	}
	return pgrp, ticks, nil
}

// ParseStatCPU returns the user+system CPU time in a /proc/PID/stat line.
func ParseStatCPU(stat string) (time.Duration, error) {
	_, ticks, err := parseStat(stat)
	return time.Duration(ticks) * ClockTick, err
}

// CPUTime is the user+system CPU time process pid has used so far.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return ParseStatCPU(string(b))
}

// Usage is what a process group has used: CPU time (user + system, of every
// live process of the group: nginx's master and workers) and the sum of the
// peak resident set sizes.
type Usage struct {
	CPU   time.Duration
	HWMKB int64 // sum of VmHWM, KiB
	Procs int   // live processes in the group
}

// GroupUsage reads /proc/PID/stat (utime, stime) and /proc/PID/status
// (VmHWM) of every process in process group pgid.
func GroupUsage(pgid int) (Usage, error) {
	var u Usage
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return u, fmt.Errorf("read /proc: %w", err)
	}
	var ticks int64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		pg, t, err := parseStat(string(st))
		if err != nil || pg != pgid {
			continue
		}
		ticks += t
		u.HWMKB += vmHWM(pid)
		u.Procs++
	}
	if u.Procs == 0 {
		return u, fmt.Errorf("process group %d: no process", pgid)
	}
	u.CPU = time.Duration(ticks) * ClockTick
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

// MachineCPU is the machine's CPU time since boot by what it went to, from
// the "cpu" line of /proc/stat: Busy (user, nice, system, irq, softirq),
// Idle (idle, iowait) and Steal, the time a virtual machine's CPUs had work
// to run while the hypervisor ran something else (another tenant). A run on
// a machine whose CPUs are stolen is slower and its tail latencies longer
// for reasons outside the processes measured.
type MachineCPU struct {
	Busy, Idle, Steal time.Duration
}

// ReadMachineCPU reads /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, err
	}
	return ParseMachineCPU(string(b))
}

// ParseMachineCPU reads the aggregate "cpu" line of a /proc/stat text.
func ParseMachineCPU(stat string) (MachineCPU, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return MachineCPU{}, fmt.Errorf("/proc/stat: first line is not the cpu line with at least 8 counters")
	}
	var v [8]int64
	for i := range v {
		n, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("/proc/stat: cpu counter %d: %w", i+1, err)
		}
		v[i] = n
	}
	// user nice system idle iowait irq softirq steal
	t := func(n int64) time.Duration { return time.Duration(n) * ClockTick }
	return MachineCPU{
		Busy:  t(v[0] + v[1] + v[2] + v[5] + v[6]),
		Idle:  t(v[3] + v[4]),
		Steal: t(v[7]),
	}, nil
}

// Sub is the CPU time between an earlier reading a and m.
func (m MachineCPU) Sub(a MachineCPU) MachineCPU {
	return MachineCPU{Busy: m.Busy - a.Busy, Idle: m.Idle - a.Idle, Steal: m.Steal - a.Steal}
}

// StealShare is the share of the CPU time the machine had work for (busy or
// stolen) that the hypervisor took, 0 when it had none.
func (m MachineCPU) StealShare() float64 {
	if m.Busy+m.Steal <= 0 {
		return 0
	}
	return float64(m.Steal) / float64(m.Busy+m.Steal)
}

// StealMeter measures the steal share over a stretch of a run.
type StealMeter struct {
	at MachineCPU
	ok bool
}

// StartSteal starts a StealMeter; on a machine without /proc/stat it
// reports nothing.
func StartSteal() StealMeter {
	m, err := ReadMachineCPU()
	return StealMeter{at: m, ok: err == nil}
}

// Share returns the steal share since the meter started, and whether it
// could be read.
func (s StealMeter) Share() (float64, bool) {
	if !s.ok {
		return 0, false
	}
	m, err := ReadMachineCPU()
	if err != nil {
		return 0, false
	}
	return m.Sub(s.at).StealShare(), true
}

// Median is the median of v (the mean of the middle two for an even count; 0
// for none). v is not reordered.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
