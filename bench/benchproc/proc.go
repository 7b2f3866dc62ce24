package benchproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// Proc is a child process a harness started; Stop ends it (and its process
// group: nginx's workers) by its id.
type Proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	in   io.WriteCloser // lifeline and command channel of role children
}

// Start runs bin with args, its output going to dir/name.log.
func Start(dir, name, bin string, args ...string) (*Proc, error) {
	return Launch(dir, name, exec.Command(bin, args...), nil)
}

// Launch starts cmd in its own process group, its stderr (and its stdout
// unless onLine is set) going to dir/name.log. With onLine, stdout is read
// line by line into onLine and stdin is the child's lifeline. The child is
// killed if the harness dies (Pdeathsig).
func Launch(dir, name string, cmd *exec.Cmd, onLine func(string)) (*Proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = f, f
	var out io.Reader
	if onLine != nil {
		cmd.Stdout = nil
		if out, err = cmd.StdoutPipe(); err == nil {
			p.in, err = cmd.StdinPipe()
		}
		if err != nil {
			f.Close()
			return nil, err
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		if out != nil {
			for sc := bufio.NewScanner(out); sc.Scan(); {
				onLine(sc.Text())
			}
		}
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Name is the name the child was started with.
func (p *Proc) Name() string { return p.name }

// Log is the path of the child's log file.
func (p *Proc) Log() string { return p.log }

// PID is the child's process id, which is also its process group id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Stdin is the write end of a role child's stdin (nil for other children):
// closing it tells the child to end.
func (p *Proc) Stdin() io.WriteCloser { return p.in }

// Stop asks the process group to end (SIGTERM), then kills it after 10 s.
func (p *Proc) Stop() {
	if p == nil {
		return
	}
	if p.in != nil {
		p.in.Close()
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// Exited reports whether the child has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitErr describes how an ended child exited, with the end of its log.
func (p *Proc) exitErr() error {
	return fmt.Errorf("%s exited: %v (%s)", p.name, p.err, Tail(p.log))
}

// Tail returns the last lines of a log file, for error messages.
func Tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, " | ")
}

// FreeAddr returns a loopback address ("tcp" or "udp") with a port free right
// now, never one it returned before (testproc.LoopbackAddr).
func FreeAddr(network string) (string, error) { return testproc.LoopbackAddr(network) }

// WaitListening waits until addr accepts TCP connections, or p (if not nil)
// exits, or timeout passes or ctx ends.
func WaitListening(ctx context.Context, p *Proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.Exited() {
			return p.exitErr()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening on %s after %s", p.name, addr, timeout)
}

// Poll calls done every interval until it returns true (Poll reports true),
// or timeout passes or ctx ends (false).
func Poll(ctx context.Context, timeout, interval time.Duration, done func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
	return true
}
