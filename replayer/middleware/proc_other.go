//go:build !unix

package middleware

import (
	"os"
	"os/exec"
	"syscall"
)

func setGroup(*exec.Cmd) {}

// signalGroup signals the program alone: no process groups here; anything
// but SIGTERM kills it.
func signalGroup(pid int, sig syscall.Signal) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if sig == syscall.SIGTERM {
		return p.Signal(os.Interrupt)
	}
	return p.Kill()
}
