package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

// Where an end-to-end step's time goes: the CPU each process of the pipeline
// used (from /proc/PID/stat, so it holds however loaded the machine is), and
// how the redactor cut the records into transactions (its commit interval
// is the floor of the send-to-shadow delay: read-committed consumers see a
// record only when its transaction commits).

// watched is a process whose CPU an end-to-end step reports.
type watched struct {
	name string
	pid  int
}

// cpuSnap is the CPU time of each watched process at one moment.
type cpuSnap struct {
	at  time.Time
	cpu []time.Duration
}

func snapCPU(ps []watched) cpuSnap {
	s := cpuSnap{at: time.Now(), cpu: make([]time.Duration, len(ps))}
	for i, p := range ps {
		s.cpu[i], _ = benchproc.CPUTime(p.pid)
	}
	return s
}

// procLoad is one process's share of a core over a step, and its CPU per
// request.
type procLoad struct {
	name       string
	core       float64       // fraction of one core
	perRequest time.Duration // CPU per request answered
}

func cpuLoads(ps []watched, a, b cpuSnap, requests int64) []procLoad {
	wall := b.at.Sub(a.at)
	out := make([]procLoad, len(ps))
	for i, p := range ps {
		d := b.cpu[i] - a.cpu[i]
		out[i] = procLoad{name: p.name}
		if wall > 0 {
			out[i].core = d.Seconds() / wall.Seconds()
		}
		if requests > 0 {
			out[i].perRequest = d / time.Duration(requests)
		}
	}
	return out
}

// txCounts are the redactor's counters that say how it cut transactions.
type txCounts struct {
	committed, aborted, polled float64
}

func scrapeTx(addr string) (txCounts, error) {
	page, err := scrape(addr)
	if err != nil {
		return txCounts{}, err
	}
	return txCounts{
		committed: metricLabel(page, "mirrorline_stage_transactions_total", `result="committed"`),
		aborted:   metricLabel(page, "mirrorline_stage_transactions_total", `result="aborted"`),
		polled:    benchproc.Metric(page, "mirrorline_stage_polled_records_total"),
	}, nil
}

// metricLabel sums the samples of name whose labels contain label.
func metricLabel(page, name, label string) float64 {
	var sum float64
	for _, l := range strings.Split(page, "\n") {
		if !strings.HasPrefix(l, name+"{") || !strings.Contains(l, label) {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// listenerPID returns the process listening on the loopback TCP port of
// addr (host:port), found through /proc/net/tcp{,6} and the processes'
// socket descriptors; 0 when it is not found (not ours to read, or remote).
func listenerPID(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	want := fmt.Sprintf(":%04X", p)
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(l)
			// local_address, state 0A (LISTEN), inode.
			if len(fs) > 9 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + d.Name() + "/fd")
		for _, fd := range fds {
			if link, err := os.Readlink("/proc/" + d.Name() + "/fd/" + fd.Name()); err == nil && inodes[link] {
				return pid
			}
		}
	}
	return 0
}
