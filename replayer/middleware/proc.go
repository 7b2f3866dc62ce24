package middleware

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of the runtime.
const (
	// queueLen is how many lines may wait for the program's stdin.
	queueLen = 256
	// exitWait is how long a program that closed its stdout (or stdin)
	// has to exit before it is killed.
	exitWait = time.Second
	// drainWait bounds the reading of answers a program wrote before it
	// exited, when something else holds its stdout open.
	drainWait = time.Second
	// Restart backoff: backoffMin doubled per restart in the window.
	backoffMin = 100 * time.Millisecond
	backoffMax = 2 * time.Second
	writeBuf   = 64 << 10
)

// proc is one run of the program.
type proc struct {
	cmd    *exec.Cmd
	pid    int
	stdin  *os.File // our end of its stdin
	stdout *os.File // our end of its stdout
	in     chan []byte

	exited  chan struct{} // cmd.Wait returned: waitErr is set
	waitErr error

	readDone chan struct{} // the reader returned: readErr is set
	readErr  error

	writeFailed chan struct{}
	writeOnce   sync.Once
	writerDone  chan struct{}

	dead   chan struct{} // closed once the process ended
	warned atomic.Bool   // an invalid line was logged
}

// spawn starts the program with its stdin and stdout on pipes and its
// stderr on ours, in its own process group.
func (mw *Middleware) spawn() (*proc, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start middleware: stdin pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, fmt.Errorf("start middleware: stdout pipe: %w", err)
	}
	cmd := exec.CommandContext(mw.runCtx, mw.cfg.Command[0], mw.cfg.Command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, os.Stderr
	setGroup(cmd)
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("start middleware %s: %w", mw.cfg.Command[0], err)
	}
	p := &proc{
		cmd: cmd, pid: cmd.Process.Pid, stdin: inW, stdout: outR,
		in:          make(chan []byte, queueLen),
		exited:      make(chan struct{}),
		readDone:    make(chan struct{}),
		writeFailed: make(chan struct{}),
		writerDone:  make(chan struct{}),
		dead:        make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	go mw.read(p)
	go p.write()
	mw.log.Debug("middleware started", "pid", p.pid)
	return p, nil
}

// read passes each line of the program's stdout to the caller it answers.
func (mw *Middleware) read(p *proc) {
	defer close(p.readDone)
	sc := bufio.NewScanner(p.stdout)
	sc.Buffer(make([]byte, 0, min(64<<10, maxLine)), maxLine)
	for sc.Scan() {
		mw.answer(p, sc.Bytes())
	}
	p.readErr = sc.Err()
}

// answer hands one line to the caller waiting for it; any other line is
// counted and dropped (never logged: only its length is).
func (mw *Middleware) answer(p *proc, line []byte) {
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	id, a, err := parseAnswerID(line)
	if err != nil {
		mw.m.Discarded.WithLabelValues(DiscardInvalid).Inc()
		if p.warned.CompareAndSwap(false, true) {
			mw.log.Warn("middleware wrote a line that is not an answer; it is dropped (further ones are only counted)", "pid", p.pid, "bytes", len(line), "error", err)
		}
		return
	}
	mw.mu.Lock()
	c := mw.pending[id]
	late := false
	if c != nil {
		delete(mw.pending, id)
	} else {
		late = mw.late.take(id)
	}
	mw.mu.Unlock()
	switch {
	case c != nil:
		c.res <- result{ans: a}
	case late:
		mw.m.Discarded.WithLabelValues(DiscardLate).Inc()
	default:
		mw.m.Discarded.WithLabelValues(DiscardUnknownID).Inc()
	}
}

// write copies queued lines to the program's stdin, several per write
// when they queue up.
func (p *proc) write() {
	defer close(p.writerDone)
	bw := bufio.NewWriterSize(p.stdin, writeBuf)
	for {
		select {
		case <-p.dead:
			return
		case line := <-p.in:
			bw.Write(line) // a failed write is reported by Flush
		more:
			for bw.Buffered() < writeBuf {
				select {
				case l := <-p.in:
					bw.Write(l)
				default:
					break more
				}
			}
			if err := bw.Flush(); err != nil {
				p.writeOnce.Do(func() { close(p.writeFailed) })
				return
			}
		}
	}
}

// setProc makes p the running program.
func (mw *Middleware) setProc(p *proc) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	mw.proc = p
	closeReady(mw.ready)
}

func closeReady(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// supervise watches the running program, restarts it within the budget
// and stops it on Close or when Start's context ends.
func (mw *Middleware) supervise(p *proc) {
	defer close(mw.done)
	defer mw.stopRun()
	var restarts []time.Time // within RestartWindow
	for {
		closing, status := mw.watch(p)
		if closing {
			mw.retire(p, ErrClosed)
			mw.finishClose(status)
			return
		}
		crash := fmt.Errorf("%w: %s", ErrExited, status)
		mw.retire(p, crash)
		for p = nil; p == nil; {
			now := time.Now()
			for len(restarts) > 0 && now.Sub(restarts[0]) >= RestartWindow {
				restarts = restarts[1:]
			}
			if len(restarts) >= mw.restarts {
				mw.fail(crash, len(restarts))
				return
			}
			backoff := min(backoffMin<<len(restarts), backoffMax)
			mw.log.Warn("middleware exited; restarting it", "status", crash, "backoff", backoff, "restarts_left", mw.restarts-len(restarts)-1)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-mw.closing:
				t.Stop()
				mw.finishClose(nil)
				return
			case <-mw.ctx.Done():
				t.Stop()
				mw.finishClose(nil)
				return
			}
			restarts = append(restarts, time.Now())
			mw.m.Restarts.Inc()
			np, err := mw.spawn()
			if err != nil {
				crash = fmt.Errorf("%w: %w", ErrExited, err)
				continue
			}
			p = np
			mw.setProc(p)
		}
	}
}

// watch waits for p to end, or stops it on Close; status says how it ended.
func (mw *Middleware) watch(p *proc) (closing bool, status error) {
	var cause string
	select {
	case <-p.exited:
	case <-p.readDone:
		if errors.Is(p.readErr, bufio.ErrTooLong) {
			cause = fmt.Sprintf("killed: it wrote a line longer than %d bytes", maxLine)
			signalGroup(p.pid, syscall.SIGKILL)
		} else {
			cause = "it closed its stdout"
		}
		mw.waitExit(p, exitWait)
	case <-p.writeFailed:
		cause = "it closed its stdin"
		mw.waitExit(p, exitWait)
	case <-mw.closing:
		return true, mw.stop(p)
	case <-mw.ctx.Done():
		return true, mw.stop(p)
	}
	mw.reap(p)
	status = errors.New(exitStatus(p.waitErr))
	if cause != "" {
		status = fmt.Errorf("%s (%s)", exitStatus(p.waitErr), cause)
	}
	return false, status
}

// waitExit waits up to d for p to exit, then kills it.
func (mw *Middleware) waitExit(p *proc, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		signalGroup(p.pid, syscall.SIGKILL)
		<-p.exited
	}
}

// stop ends p: stdin closed, then SIGTERM after the grace period, then
// SIGKILL after another. The error says how it ended unless it exited
// with status 0 by itself.
func (mw *Middleware) stop(p *proc) error {
	mw.mu.Lock()
	mw.closed = true // new requests fail at once; those sent may be answered
	mw.mu.Unlock()
	p.stdin.Close()
	how := ""
	t := time.NewTimer(mw.grace)
	select {
	case <-p.exited:
	case <-t.C:
		how = fmt.Sprintf(" (no exit within %s of stdin closed: SIGTERM)", mw.grace)
		signalGroup(p.pid, syscall.SIGTERM)
		t.Reset(mw.grace)
		select {
		case <-p.exited:
		case <-t.C:
			how = fmt.Sprintf(" (no exit within %s of stdin closed, nor of SIGTERM: SIGKILL)", mw.grace)
			signalGroup(p.pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	t.Stop()
	mw.reap(p)
	if p.waitErr == nil && how == "" {
		mw.log.Debug("middleware stopped", "pid", p.pid)
		return nil
	}
	err := fmt.Errorf("stop middleware: %s%s", exitStatus(p.waitErr), how)
	mw.log.Warn("middleware stopped", "pid", p.pid, "status", err)
	return err
}

// reap finishes with an exited p: what is left of its process group is
// killed, the answers it wrote are read, its pipes closed and its
// goroutines done.
func (mw *Middleware) reap(p *proc) {
	signalGroup(p.pid, syscall.SIGKILL)
	close(p.dead)
	t := time.NewTimer(drainWait)
	select {
	case <-p.readDone:
	case <-t.C: // a process outside the group holds stdout open
		p.stdout.Close()
		<-p.readDone
	}
	t.Stop()
	p.stdout.Close()
	p.stdin.Close()
	<-p.writerDone
}

// retire forgets p and fails every caller still waiting with err.
func (mw *Middleware) retire(p *proc, err error) {
	mw.mu.Lock()
	if mw.proc == p {
		mw.proc = nil
		mw.ready = make(chan struct{})
	}
	calls := mw.pending
	mw.pending = map[string]*call{}
	mw.mu.Unlock()
	for _, c := range calls {
		c.res <- result{err: err}
	}
}

// fail records that the program failed for good.
func (mw *Middleware) fail(crash error, restarts int) {
	budget := fmt.Sprintf("%d restarts within %s spent", restarts, RestartWindow)
	if mw.restarts == 0 {
		budget = "restarts off"
	}
	err := fmt.Errorf("%w: %w (%s)", ErrFailed, crash, budget)
	mw.log.Error("middleware failed; no restart left", "error", err)
	mw.mu.Lock()
	mw.failed = err
	closeReady(mw.ready)
	mw.mu.Unlock()
	mw.errc <- err
	close(mw.errc)
}

// finishClose records that the middleware is closed.
func (mw *Middleware) finishClose(stopErr error) {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	mw.closed = true
	mw.stopErr = stopErr
	closeReady(mw.ready)
}

// exitStatus is how the program ended: "exit status 3", "signal: killed".
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
