// Command idleconns measures `mirrorline proxy` under many idle client
// connections: a normal client's latency while N connections (default 20,000)
// sit open without sending a byte, reopened as the proxy closes them, and the
// proxy's resident memory before, during and after.
//
//	go run ./bench/idleconns -brokers 127.0.0.1:29092
//
// The idle connections are held by child processes (this binary run again with
// -hold), 9,000 each, so no process needs more file descriptors than a default
// hard limit allows. Everything runs on loopback; the proxy runs with its
// default limits unless -proxy-args says otherwise.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mirrorline/mirrorline/test/testproc"
)

const perHolder = 9000

func main() {
	hold := flag.Int("hold", 0, "child role: hold this many idle connections to -addr until stdin closes")
	redial := flag.Bool("redial", false, "reopen every idle connection the proxy closes, at once")
	addr := flag.String("addr", "", "child role: proxy address")
	conns := flag.Int("conns", 20000, "idle connections")
	requests := flag.Int("requests", 2000, "normal requests measured in each phase")
	brokers := flag.String("brokers", os.Getenv("KAFKA_BROKERS"), "Kafka brokers for the proxy")
	bin := flag.String("mirrorline", "", "mirrorline binary (default: built from ./cmd/mirrorline)")
	proxyArgs := flag.String("proxy-args", "", "extra flags for mirrorline proxy, space separated")
	flag.Parse()
	if *hold > 0 {
		holdConns(*addr, *hold, *redial)
		return
	}
	if err := run(*conns, *requests, *brokers, *bin, *proxyArgs, *redial); err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		os.Exit(1)
	}
}

// holdConns opens n connections to addr that send nothing and keeps them
// until stdin is closed; with redial each one the proxy closes is reopened at
// once (an attacker holding its slots), else it stays closed.
func holdConns(addr string, n int, redial bool) {
	stop := make(chan struct{})
	var dialed atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c, err := net.Dial("tcp", addr)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				dialed.Add(1)
				done := make(chan struct{})
				go func() {
					select {
					case <-stop:
						c.Close()
					case <-done:
					}
				}()
				_, _ = c.Read(make([]byte, 1)) // until the proxy (or stop) closes it
				close(done)
				c.Close()
				if !redial {
					<-stop
					return
				}
			}
		}()
	}
	for dialed.Load() < int64(n) {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	close(stop)
	wg.Wait()
}

func run(conns, requests int, brokers, bin, proxyArgs string, redial bool) error {
	if brokers == "" {
		return errors.New("-brokers (or KAFKA_BROKERS) is required")
	}
	if bin == "" {
		b, dir, err := testproc.BuildMirrorline("idleconns")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = b
	}
	primary := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = primary.Serve(pln) }()
	defer primary.Close()

	listen, metrics := freeAddr(), freeAddr()
	service := fmt.Sprintf("idleconns-%d", time.Now().UnixNano())
	if out, err := exec.Command(bin, "topics", "create", "--service", service, "--brokers", brokers).CombinedOutput(); err != nil {
		return fmt.Errorf("topics create: %v\n%s", err, out)
	}
	args := []string{"proxy", "--service", service, "--brokers", brokers,
		"--primary", "http://" + pln.Addr().String(), "--listen", listen, "--metrics-addr", metrics, "--log-level", "warn"}
	if proxyArgs != "" {
		args = append(args, strings.Fields(proxyArgs)...)
	}
	proxy := exec.Command(bin, args...)
	proxy.Stderr = os.Stderr
	proxy.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := proxy.Start(); err != nil {
		return err
	}
	defer func() { _ = proxy.Process.Signal(syscall.SIGTERM); _ = proxy.Wait() }()
	if !testproc.Wait(30*time.Second, func() bool { return get("http://"+listen+"/") == nil }) {
		return errors.New("proxy not answering within 30s")
	}

	fmt.Printf("open-file limit %d (the proxy's default --max-conns is half of it after a reserve of 512)\n", nofile())
	report("baseline (no idle connections)", measure(listen, requests), rss(proxy.Process.Pid), metrics)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var holders []*exec.Cmd
	var stdins []io.WriteCloser
	for left := conns; left > 0; left -= perHolder {
		n := min(left, perHolder)
		h := exec.Command(self, "-hold", strconv.Itoa(n), "-addr", listen, "-redial="+strconv.FormatBool(redial))
		h.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		in, _ := h.StdinPipe()
		out, _ := h.StdoutPipe()
		h.Stderr = os.Stderr
		if err := h.Start(); err != nil {
			return err
		}
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || line != "ready\n" {
			return fmt.Errorf("holder: %q %v", line, err)
		}
		holders = append(holders, h)
		stdins = append(stdins, in)
	}
	report(fmt.Sprintf("under %d idle connections (redial %v)", conns, redial), measure(listen, requests), rss(proxy.Process.Pid), metrics)

	for i, in := range stdins {
		in.Close()
		_ = holders[i].Wait()
	}
	if !testproc.Wait(60*time.Second, func() bool { return scrape(metrics, "mirrorline_collector_open_connections ") == "0" }) {
		return errors.New("connections not released within 60s")
	}
	report("after they closed", measure(listen, requests), rss(proxy.Process.Pid), metrics)
	for _, wait := range []time.Duration{10 * time.Second, 30 * time.Second} {
		time.Sleep(wait)
		fmt.Printf("  RSS %s later: %.1f MiB (Go heap in use %s, stacks %s)\n", wait, float64(rss(proxy.Process.Pid))/(1<<20),
			mib(scrape(metrics, "go_memstats_heap_inuse_bytes ")), mib(scrape(metrics, "go_memstats_stack_inuse_bytes ")))
	}
	return nil
}

func report(what string, lat []time.Duration, rssBytes int64, metrics string) {
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	fmt.Printf("%s: %d requests, p50 %s, p99 %s, max %s; proxy RSS %.1f MiB; open %s, shed idle %s, rejected %s\n",
		what, len(lat), pct(0.50), pct(0.99), lat[len(lat)-1], float64(rssBytes)/(1<<20),
		scrape(metrics, "mirrorline_collector_open_connections "),
		scrape(metrics, `mirrorline_collector_connections_shed_total{reason="idle_closed"} `),
		scrape(metrics, `mirrorline_collector_connections_shed_total{reason="rejected"} `))
	fmt.Printf("  Go heap in use %s, stacks %s, heap idle %s of which released %s, goroutines %s\n",
		mib(scrape(metrics, "go_memstats_heap_inuse_bytes ")), mib(scrape(metrics, "go_memstats_stack_inuse_bytes ")),
		mib(scrape(metrics, "go_memstats_heap_idle_bytes ")), mib(scrape(metrics, "go_memstats_heap_released_bytes ")),
		scrape(metrics, "go_goroutines "))
}

func mib(v string) string {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return v
	}
	return fmt.Sprintf("%.1f MiB", f/(1<<20))
}

// measure times n GETs, each on a new connection, as a normal client.
func measure(addr string, n int) []time.Duration {
	lat := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if err := get("http://" + addr + "/"); err != nil {
			lat = append(lat, time.Minute) // counted as a failure at the top
			continue
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func scrape(addr, prefix string) string {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			return v
		}
	}
	return "-"
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func nofile() uint64 {
	var rl syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	return rl.Cur
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
