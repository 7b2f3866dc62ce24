package benchproc

import (
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "42 (mirrorline) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0", 200 * ClockTick, true},
		{"name with spaces and parens", "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0", 7 * ClockTick, true},
		{"short", "7 (x) R 1 2", 0, false},
		{"no name", "7 x R", 0, false},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 a 4", 0, false},
		{"process group not a number", "7 (x) R 1 g 7 0 -1 0 0 0 0 0 3 4", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatCPU(tc.stat)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseStatCPU = %v, %v; want %v, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

// GroupUsage finds every process of a group (here a shell and its child)
// and reads their peak RSS; a group without processes is an error.
func TestGroupUsage(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	var u Usage
	var err error
	for i := 0; i < 200; i++ { // bounded: until sh has started sleep
		if u, err = GroupUsage(pgid); err == nil && u.Procs == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond) // poll interval of a bounded wait
	}
	if err != nil || u.Procs != 2 || u.HWMKB <= 0 || u.CPU < 0 {
		t.Fatalf("usage %+v, err %v; want 2 processes with a peak RSS", u, err)
	}
	if _, err := GroupUsage(1 << 30); err == nil {
		t.Fatal("no error for a process group without processes")
	}
}

func TestParseMachineCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       MachineCPU
		ok         bool
	}{
		{"with guest counters", "cpu  100 5 20 1000 30 1 4 40 0 0\ncpu0 50 2 10 500 15 0 2 20 0 0\n",
			MachineCPU{Busy: 130 * ClockTick, Idle: 1030 * ClockTick, Steal: 40 * ClockTick}, true},
		{"eight counters", "cpu 1 2 3 4 5 6 7 8", MachineCPU{Busy: 19 * ClockTick, Idle: 9 * ClockTick, Steal: 8 * ClockTick}, true},
		{"too few counters", "cpu 1 2 3 4 5 6 7", MachineCPU{}, false},
		{"per-CPU line first", "cpu0 1 2 3 4 5 6 7 8", MachineCPU{}, false},
		{"not a number", "cpu 1 2 3 x 5 6 7 8", MachineCPU{}, false},
		{"empty", "", MachineCPU{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMachineCPU(tc.stat)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseMachineCPU = %+v, %v; want %+v, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestStealShare(t *testing.T) {
	a := MachineCPU{Busy: 100, Idle: 1000, Steal: 10}
	b := MachineCPU{Busy: 160, Idle: 1500, Steal: 50}
	if got := b.Sub(a).StealShare(); got != 0.4 { // 40 stolen of 60 + 40 asked for
		t.Fatalf("StealShare = %v, want 0.4", got)
	}
	if got := a.Sub(a).StealShare(); got != 0 {
		t.Fatalf("StealShare of nothing = %v, want 0", got)
	}
	if _, err := ReadMachineCPU(); err == nil {
		if share, ok := StartSteal().Share(); !ok || share < 0 || share > 1 {
			t.Fatalf("StartSteal().Share() = %v, %v; want a share in [0, 1]", share, ok)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		v    []float64
		want float64
	}{{nil, 0}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 2, 3}, 2.5}} {
		in := slices.Clone(tc.v)
		if m := Median(tc.v); m != tc.want || !slices.Equal(in, tc.v) {
			t.Errorf("Median(%v) = %v, want %v (and v as it was)", in, m, tc.want)
		}
	}
}
