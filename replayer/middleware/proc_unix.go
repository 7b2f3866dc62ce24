//go:build unix

package middleware

import (
	"os/exec"
	"syscall"
)

// setGroup makes the program the leader of its own process group, so that
// signals reach the processes it starts as well.
func setGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the program's process group.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}
