package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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
	in   io.WriteCloser // lifeline of role children
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

// startRole runs this binary as "role ROLE args..." and returns its address.
func startRole(dir, name string, args ...string) (*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	addrc := make(chan string, 1)
	p, err := launch(dir, name, exec.Command(self, append([]string{"role"}, args...)...), func(line string) {
		if a, ok := strings.CutPrefix(line, "ADDR "); ok {
			select {
			case addrc <- a:
			default:
			}
		}
	})
	if err != nil {
		return nil, "", err
	}
	select {
	case a := <-addrc:
		return p, a, nil
	case <-p.done:
		return nil, "", fmt.Errorf("%s exited: %v (%s)", name, p.err, tail(p.log))
	case <-time.After(15 * time.Second):
		p.stop()
		return nil, "", fmt.Errorf("%s did not report its address within 15s", name)
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
func freeAddr() (string, error) {
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

func scrape(addr string) (string, error) {
	b, err := newAppClient(addr).get("/metrics")
	return string(b), err
}

// collectorCounts are a collector's capture counters.
type collectorCounts struct {
	Captured, Published, Dropped float64
}

func scrapeCollector(addr string) (collectorCounts, error) {
	page, err := scrape(addr)
	if err != nil {
		return collectorCounts{}, err
	}
	return collectorCounts{
		Captured:  metric(page, "mirrorline_collector_captured_total"),
		Published: metric(page, "mirrorline_collector_published_total"),
		Dropped:   metric(page, "mirrorline_collector_dropped_total"),
	}, nil
}

// settleCollector waits (bounded) until everything captured was published or
// dropped, and returns the counters.
func settleCollector(ctx context.Context, addr string, timeout time.Duration) (c collectorCounts, err error) {
	poll(ctx, timeout, 100*time.Millisecond, func() bool {
		c, err = scrapeCollector(addr)
		return err == nil && c.Published+c.Dropped >= c.Captured
	})
	return c, err
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

// appClient talks to the control endpoints of the primary and the shadow.
type appClient struct {
	base string
	c    *http.Client
}

func newAppClient(addr string) *appClient {
	return &appClient{base: "http://" + addr, c: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}}
}

func (a *appClient) get(path string) ([]byte, error) {
	resp, err := a.c.Get(a.base + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, err
}

func (a *appClient) setDelay(d time.Duration) error {
	_, err := a.get("/_bench/ctl?delay=" + d.String())
	return err
}

func (a *appClient) reset(step uint64) error {
	_, err := a.get("/_bench/reset?step=" + strconv.FormatUint(step, 10))
	return err
}

func (a *appClient) stats() (appStats, error) {
	var st appStats
	b, err := a.get("/_bench/stats")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// ---- nginx ----

// nginxConf turns deploy/nginx/mirror.conf into a runnable config the way
// test/e2e/nginx_test.go does: its three addresses replaced, private pid, log
// and temp paths, and worker_processes set.
func nginxConf(root, dir, listen, primary, mirror, workers string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "deploy/nginx/mirror.conf"))
	if err != nil {
		return "", err
	}
	c := string(b)
	for old, repl := range map[string]string{"127.0.0.1:8081": primary, "127.0.0.1:9080": mirror, "127.0.0.1:8088": listen} {
		if !strings.Contains(c, old) {
			return "", fmt.Errorf("deploy/nginx/mirror.conf no longer mentions %s", old)
		}
		c = strings.ReplaceAll(c, old, repl)
	}
	if !strings.Contains(c, "worker_processes 1;") {
		return "", errors.New("deploy/nginx/mirror.conf no longer says worker_processes 1;")
	}
	c = strings.Replace(c, "worker_processes 1;", "worker_processes "+workers+";", 1)
	c = strings.Replace(c, "\nhttp {", fmt.Sprintf("\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log;\n\nhttp {\n    client_body_temp_path %[1]s/body;\n    proxy_temp_path %[1]s/proxy;\n    fastcgi_temp_path %[1]s/fastcgi;\n    uwsgi_temp_path %[1]s/uwsgi;\n    scgi_temp_path %[1]s/scgi;", dir), 1)
	path := filepath.Join(dir, "nginx.conf")
	return path, os.WriteFile(path, []byte(c), 0o644)
}

func findNginx(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err == nil {
		return "/usr/sbin/nginx", nil
	}
	return "", errors.New("nginx is not installed (Debian: apt-get install nginx-light)")
}

// startNginx runs nginx in front of primary, mirroring to mirror.
func startNginx(ctx context.Context, bin, root, tmp, name, primary, mirror, workers string) (*proc, string, error) {
	dir := filepath.Join(tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	conf, err := nginxConf(root, dir, listen, primary, mirror, workers)
	if err != nil {
		return nil, "", err
	}
	p, err := start(tmp, name, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off; master_process on;")
	if err != nil {
		return nil, "", err
	}
	if err := waitListening(ctx, p, listen, 15*time.Second); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("%w (error.log: %s)", err, tail(filepath.Join(dir, "error.log")))
	}
	return p, listen, nil
}

// ---- mirrorline ----

// buildMirrorline builds cmd/mirrorline into dir.
func buildMirrorline(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "mirrorline")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/mirrorline")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mirrorline: %v: %s", err, bytes.TrimSpace(b))
	}
	return out, nil
}

// startMirrorline runs "mirrorline SUBCOMMAND args..." with a metrics address
// and waits until listen (if set) and the metrics endpoint accept connections.
func startMirrorline(ctx context.Context, bin, tmp, name, brokers, listen string, args ...string) (*proc, string, error) {
	maddr, err := freeAddr()
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
		if err := waitListening(ctx, p, a, 20*time.Second); err != nil {
			p.stop()
			return nil, "", err
		}
	}
	return p, maddr, nil
}
