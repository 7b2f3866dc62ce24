package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

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
		Captured:  benchproc.Metric(page, "mirrorline_collector_captured_total"),
		Published: benchproc.Metric(page, "mirrorline_collector_published_total"),
		Dropped:   benchproc.Metric(page, "mirrorline_collector_dropped_total"),
	}, nil
}

// settleCollector waits (bounded) until everything captured was published or
// dropped, and returns the counters.
func settleCollector(ctx context.Context, addr string, timeout time.Duration) (c collectorCounts, err error) {
	benchproc.Poll(ctx, timeout, 100*time.Millisecond, func() bool {
		c, err = scrapeCollector(addr)
		return err == nil && c.Published+c.Dropped >= c.Captured
	})
	return c, err
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
	c = benchproc.NginxPrivate(c, dir)
	path := filepath.Join(dir, "nginx.conf")
	return path, os.WriteFile(path, []byte(c), 0o644)
}

// startNginx runs nginx in front of primary, mirroring to mirror.
func startNginx(ctx context.Context, bin, root, tmp, name, primary, mirror, workers string) (*benchproc.Proc, string, error) {
	dir := filepath.Join(tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	listen, err := benchproc.FreeAddr("tcp")
	if err != nil {
		return nil, "", err
	}
	conf, err := nginxConf(root, dir, listen, primary, mirror, workers)
	if err != nil {
		return nil, "", err
	}
	p, err := benchproc.StartNginx(ctx, bin, tmp, name, dir, conf, listen)
	if err != nil {
		return nil, "", err
	}
	return p, listen, nil
}

// mlWait is how long a mirrorline child may take to listen.
const mlWait = 20 * time.Second
