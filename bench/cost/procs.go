package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the harness started; stop ends it (and its process
// group: nginx's workers) by its id.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
	in   io.WriteCloser // lifeline and command channel of role children
}

// start runs bin with args, its output going to dir/name.log.
func start(dir, name, bin string, args ...string) (*proc, error) {
	return launch(dir, name, exec.Command(bin, args...), nil)
}

// launch starts cmd in its own process group, its stderr (and its stdout
// unless onLine is set) going to dir/name.log. With onLine, stdout is read
// line by line into onLine and stdin is the child's lifeline. The child is
// killed if the harness dies (Pdeathsig).
func launch(dir, name string, cmd *exec.Cmd, onLine func(string)) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
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

// role is a child running this binary as "role NAME args...": it prints
// "ADDR host:port" once listening, and further lines the harness waits for.
type role struct {
	*proc
	lines chan string
}

// startRole runs this binary as "role ROLE args..." and returns it once it
// printed its address.
func startRole(dir, name string, args ...string) (*role, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	r := &role{lines: make(chan string, 16)}
	p, err := launch(dir, name, exec.Command(self, append([]string{"role"}, args...)...), func(line string) {
		select {
		case r.lines <- line:
		default:
		}
	})
	if err != nil {
		return nil, "", err
	}
	r.proc = p
	line, err := r.expect("ADDR ", 15*time.Second)
	if err != nil {
		p.stop()
		return nil, "", err
	}
	return r, line, nil
}

// expect waits for a line starting with prefix and returns the rest.
func (r *role) expect(prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-r.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest, nil
			}
		case <-r.done:
			return "", fmt.Errorf("%s exited: %v (%s)", r.name, r.err, tail(r.log))
		case <-deadline:
			return "", fmt.Errorf("%s did not print %q within %s", r.name, prefix, timeout)
		}
	}
}

// stop asks the process group to end (SIGTERM), then kills it after 10 s.
func (p *proc) stop() {
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

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, " | ")
}

// freeAddr returns a loopback address with a port free right now.
func freeAddr(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitListening waits until addr accepts connections or p exits.
func waitListening(ctx context.Context, p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited: %v (%s)", p.name, p.err, tail(p.log))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not listening on %s after %s", p.name, addr, timeout)
}

// metric sums the samples of a counter or gauge in a Prometheus text page
// (all label sets).
func metric(page, name string) float64 {
	var sum float64
	for _, l := range strings.Split(page, "\n") {
		if !strings.HasPrefix(l, name) || len(l) == len(name) || (l[len(name)] != ' ' && l[len(name)] != '{') {
			continue
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

var scrapeClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}

// counter reads the sum of a metric from the /metrics page at addr (-1 when
// it cannot be read).
func counter(addr, name string) float64 {
	resp, err := scrapeClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	return metric(string(b), name)
}

// poll calls done every interval until it returns true (poll reports true),
// or timeout passes or ctx ends (false).
func poll(ctx context.Context, timeout, interval time.Duration, done func() bool) bool {
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

// startMirrorline runs "mirrorline SUBCOMMAND args..." with a metrics address
// and waits until listen (if set, TCP) and the metrics endpoint accept
// connections.
func startMirrorline(ctx context.Context, bin, tmp, name, brokers, listen string, args ...string) (*proc, string, error) {
	maddr, err := freeAddr("tcp")
	if err != nil {
		return nil, "", err
	}
	args = append(args, "--brokers", brokers, "--metrics-addr", maddr, "--log-level", "warn")
	p, err := start(tmp, name, bin, args...)
	if err != nil {
		return nil, "", err
	}
	for _, a := range []string{listen, maddr} {
		if a == "" {
			continue
		}
		if err := waitListening(ctx, p, a, 30*time.Second); err != nil {
			p.stop()
			return nil, "", err
		}
	}
	return p, maddr, nil
}
