package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// renice sets the nice value of every thread of each process in pids (on
// Linux a nice value belongs to a thread, and a Go process's threads are
// made by threads already running, which pass theirs on). Raising it back
// towards 0 needs CAP_SYS_NICE.
func renice(pids []int, nice int) error {
	var errs []error
	for _, pid := range pids {
		tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
		if err != nil {
			errs = append(errs, fmt.Errorf("renice %d: %w", pid, err))
			continue
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil {
				errs = append(errs, fmt.Errorf("renice %d (thread %d) to %d: %w", pid, tid, nice, err))
				break
			}
		}
	}
	return errors.Join(errs...)
}
