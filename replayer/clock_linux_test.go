package replayer

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A timer whose expiry was left unread by an earlier wait (it fired after
// that wait's deadline) does not end the next wait early.
func TestSleepFineStaleExpiry(t *testing.T) {
	ft, _ := fineTimers.Get().(*fineTimer)
	if ft == nil {
		t.Skip("no timerfd here")
	}
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(1)}
	if err := unix.TimerfdSettime(ft.fd, 0, &its, nil); err != nil {
		t.Fatal(err)
	}
	// Until the expiry is there to read (a blocking poll, bounded).
	fds := []unix.PollFd{{Fd: int32(ft.fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 10_000); n != 1 || err != nil {
		t.Fatalf("poll: %d, %v", n, err)
	}
	for range 5 {
		at := time.Now().Add(FineWait / 2)
		ft.sleep(at)
		if now := time.Now(); now.Before(at) {
			t.Fatalf("ended %s early", at.Sub(now))
		}
	}
}
