package replayer

import (
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// fineSleep: a timerfd is there.
const fineSleep = true

// fineTimer is a timerfd in Go's poller. Waiting on it parks the goroutine
// like a network read; the kernel marks it readable at its time (an
// hrtimer, about 0.05 ms late), which wakes an idle runtime at once, where a
// Go timer waits for the poller's next whole millisecond.
type fineTimer struct {
	f  *os.File
	fd int
}

// fineTimers keeps timers between waits; one dropped by the pool is closed
// by its os.File's cleanup.
var fineTimers = sync.Pool{New: func() any {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return (*fineTimer)(nil)
	}
	return &fineTimer{f: os.NewFile(uintptr(fd), "timerfd"), fd: fd}
}}

// sleepFine waits until t (at most FineWait from now): on a timerfd, and on
// a read deadline at t as well, a Go timer, which a busy runtime checks at
// every scheduling (the poller then looks at the timerfd less often).
func sleepFine(t time.Time) {
	ft, _ := fineTimers.Get().(*fineTimer)
	if ft == nil {
		<-time.After(time.Until(t))
		return
	}
	ft.sleep(t)
	fineTimers.Put(ft)
}

// sleep waits on ft until t (at most FineWait from now).
func (ft *fineTimer) sleep(t time.Time) {
	var b [8]byte
	for {
		d := time.Until(t)
		if d <= 0 {
			return
		}
		// An expiry left over from an earlier wait (it fired after its
		// deadline) ends this read at once: the loop then waits again.
		its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(min(d, FineWait)))}
		if err := unix.TimerfdSettime(ft.fd, 0, &its, nil); err != nil {
			<-time.After(d)
			return
		}
		if err := ft.f.SetReadDeadline(t); err != nil {
			<-time.After(d)
			return
		}
		_, _ = ft.f.Read(b[:])
	}
}
