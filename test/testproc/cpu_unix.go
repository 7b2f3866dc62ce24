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
	return ReadUsage().CPU()
}

// Usage is what this process has used so far, from getrusage.
type Usage struct {
	// User and System are its CPU time in user space and in the kernel.
	User, System time.Duration
	// MinorFaults counts page faults served without I/O: mostly memory
	// touched for the first time since the kernel took it back.
	MinorFaults int64
}

// CPU is the user and system CPU time of u.
func (u Usage) CPU() time.Duration { return u.User + u.System }

// ReadUsage reads this process's usage so far (zero when getrusage fails).
func ReadUsage() Usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return Usage{}
	}
	return Usage{
		User:        time.Duration(ru.Utime.Nano()),
		System:      time.Duration(ru.Stime.Nano()),
		MinorFaults: int64(ru.Minflt),
	}
}
