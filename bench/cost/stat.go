package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

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
