//go:build unix

package testproc

import (
	"syscall"
	"time"
)

// CPUTime is the user and system CPU time this process has used so far
// (every goroutine's, the garbage collector's included): benchmarks report
// CPU per operation from two readings.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
