//go:build unix

package collector

import "syscall"

// openFileLimit returns the soft RLIMIT_NOFILE, or 0 when unknown.
func openFileLimit() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int64(rl.Cur)
}
