//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ringReader reads a BPF ring buffer for the TC and the TLS capture. It waits
// for records in Go's network poller, never in a blocking epoll_wait:
// ringbuf.Reader's own wait holds a thread in a system call for up to
// its poll interval, and while the process is busy the runtime's monitor thread
// takes the processor back from every such call and then wakes every 20 µs.
// In `mirrorline ebpf` at 1000 exchanges/s those wake-ups were a third of the
// process's CPU.
type ringReader struct {
	rd *ringbuf.Reader
	// f is a duplicate of the ring's fd in Go's poller (readable when the
	// program woke userspace); nil when the poller refused it, and then the
	// reader waits on a timer.
	f       *os.File
	rc      syscall.RawConn
	stopped chan struct{} // closed by stop
	// interval is the longest wait between two reads: the program wakes
	// userspace only when wakeup_bytes are waiting.
	interval time.Duration
}

// newRingReader opens a reader of the ring buffer map m, read at least every
// interval.
func newRingReader(m *ebpf.Map, interval time.Duration) (*ringReader, error) {
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		return nil, err
	}
	r := &ringReader{rd: rd, stopped: make(chan struct{}), interval: interval}
	if f, rc, err := pollable(m.FD()); err == nil {
		r.f, r.rc = f, rc
	}
	return r, nil
}

// pollable returns a duplicate of fd registered with Go's poller.
func pollable(fd int) (*os.File, syscall.RawConn, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("dup ring buffer fd: %w", err)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		_ = unix.Close(nfd)
		return nil, nil, fmt.Errorf("ring buffer fd non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(nfd), "bpf-ringbuf")
	// Deadlines work only for files in the poller.
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("ring buffer fd not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, rc, nil
}

// run calls handle with each record, and idle after each drain (at least
// every interval), until stop was called and what the ring held then is
// read. The slice handle gets is valid until it returns.
func (r *ringReader) run(handle func([]byte), idle func()) error {
	var rec ringbuf.Record
	for {
		stopping := r.stopping()
		// Everything in the ring now, without waiting.
		r.rd.SetDeadline(time.Now())
		for {
			err := r.rd.ReadInto(&rec)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, os.ErrClosed) {
					return nil
				}
				return fmt.Errorf("ebpf: read ring buffer: %w", err)
			}
			handle(rec.RawSample)
		}
		if stopping {
			return nil
		}
		if idle != nil {
			idle()
		}
		r.wait()
	}
}

// wait returns when the program woke userspace, after the interval, or on
// stop.
func (r *ringReader) wait() {
	if r.f == nil {
		t := time.NewTimer(r.interval)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.stopped:
		}
		return
	}
	_ = r.f.SetReadDeadline(time.Now().Add(r.interval))
	// An error is the deadline or stop: either way the ring is read next.
	_ = r.rc.Read(func(uintptr) bool { return r.stopping() || r.rd.AvailableBytes() > 0 })
}

// stopping reports whether stop was called.
func (r *ringReader) stopping() bool {
	select {
	case <-r.stopped:
		return true
	default:
		return false
	}
}

// stop makes run read what the ring holds and return. Call it once, after the
// program is detached.
func (r *ringReader) stop() {
	close(r.stopped)
	if r.f != nil {
		_ = r.f.SetReadDeadline(time.Now())
	}
}

// AvailableBytes is how much the ring holds unread.
func (r *ringReader) AvailableBytes() int { return r.rd.AvailableBytes() }

// Close frees the reader; run returns.
func (r *ringReader) Close() error {
	err := r.rd.Close()
	if r.f != nil {
		_ = r.f.Close()
	}
	return err
}
