package benchproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ModuleRoot returns the root directory of the mirrorline module the harness
// runs in.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the mirrorline module")
	}
	return filepath.Dir(mod), nil
}

// BuildMirrorline builds root's cmd/mirrorline into dir and returns the
// binary's path.
func BuildMirrorline(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, "mirrorline")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/mirrorline")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mirrorline: %v: %s", err, bytes.TrimSpace(b))
	}
	return out, nil
}

// StartMirrorline runs "mirrorline SUBCOMMAND args..." with a metrics address
// and waits (up to wait each) until listen (if set, TCP) and the metrics
// endpoint accept connections. It returns the child and its metrics address.
func StartMirrorline(ctx context.Context, bin, tmp, name, brokers, listen string, wait time.Duration, args ...string) (*Proc, string, error) {
	maddr, err := FreeAddr("tcp")
	if err != nil {
		return nil, "", err
	}
	args = append(args, "--brokers", brokers, "--metrics-addr", maddr, "--log-level", "warn")
	p, err := Start(tmp, name, bin, args...)
	if err != nil {
		return nil, "", err
	}
	for _, a := range []string{listen, maddr} {
		if a == "" {
			continue
		}
		if err := WaitListening(ctx, p, a, wait); err != nil {
			p.Stop()
			return nil, "", err
		}
	}
	return p, maddr, nil
}

// FindNginx returns flagPath if set, else the nginx binary on PATH or in
// /usr/sbin.
func FindNginx(flagPath string) (string, error) {
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

// NginxPrivate puts nginx's pid file, error log and temp paths under dir, so
// that a run needs no root and leaves nothing behind: it rewrites the http
// block opening of config c.
func NginxPrivate(c, dir string) string {
	return strings.Replace(c, "\nhttp {", fmt.Sprintf("\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log;\n\nhttp {\n    client_body_temp_path %[1]s/body;\n    proxy_temp_path %[1]s/proxy;\n    fastcgi_temp_path %[1]s/fastcgi;\n    uwsgi_temp_path %[1]s/uwsgi;\n    scgi_temp_path %[1]s/scgi;", dir), 1)
}

// StartNginx runs nginx with config conf and prefix dir (its error log in
// dir), its output going to tmp/name.log, and waits until it listens on
// listen.
func StartNginx(ctx context.Context, bin, tmp, name, dir, conf, listen string) (*Proc, error) {
	p, err := Start(tmp, name, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", conf, "-g", "daemon off; master_process on;")
	if err != nil {
		return nil, err
	}
	if err := WaitListening(ctx, p, listen, 15*time.Second); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w (error.log: %s)", err, Tail(filepath.Join(dir, "error.log")))
	}
	return p, nil
}

// Metric sums the samples of a counter or gauge in a Prometheus text page
// (all label sets).
func Metric(page, name string) float64 {
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

// Counter reads the sum of a metric from the /metrics page at addr (-1 when
// it cannot be read).
func Counter(addr, name string) float64 {
	resp, err := scrapeClient.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	return Metric(string(b), name)
}
