package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

// harness holds what the fronts share.
type harness struct {
	cfg                config
	root               string
	tmp                string
	ml                 string // mirrorline binary
	brokers            string
	kafka              string // how Kafka was obtained, for the report
	svc                string // service name prefix of this run
	benchproc.Cleanups        // stops children, deletes topics and the work directory

	primaryAddr, shadowAddr string

	res   map[string][]sample // per measured process, one per round
	bpf   []bpfSample
	sizes []recordSize
	notes []string
}

// sample is one process group's cost over one round.
type sample struct {
	round int
	usPer float64 // CPU µs per exchange
	hwmKB int64
}

// bpfSample is the kernel side of the eBPF collector over one round.
type bpfSample struct {
	usPer   float64 // BPF run time per exchange
	nsRun   float64 // per program run
	runsPer float64 // program runs per exchange (every packet on the interface)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench/cost: "+format+"\n", args...)
}

func (h *harness) setup(ctx context.Context) error {
	var err error
	if h.root, err = benchproc.ModuleRoot(); err != nil {
		return err
	}
	var remove func()
	if h.tmp, remove, err = benchproc.Workdir("mirrorline-cost-", h.cfg.keep, h.logf); err != nil {
		return err
	}
	h.Defer(remove)
	h.svc = fmt.Sprintf("cost-%d", time.Now().Unix())
	if h.ml = h.cfg.mirrorline; h.ml == "" {
		h.logf("building ./cmd/mirrorline")
		if h.ml, err = benchproc.BuildMirrorline(ctx, h.root, h.tmp); err != nil {
			return err
		}
	}
	if err := h.setupKafka(ctx); err != nil {
		return err
	}
	svcs := make([]string, len(fronts))
	for i, f := range fronts {
		svcs[i] = h.svc + "-" + f
	}
	remove, err = benchproc.CreateTopics(ctx, h.brokers, "mirrorline-cost", h.cfg.partitions, svcs, h.logf)
	if err != nil {
		return err
	}
	h.Defer(remove)
	p, addr, err := benchproc.StartRole(h.tmp, "primary", "app", "-name", "primary")
	if err != nil {
		return err
	}
	h.Defer(p.Stop)
	h.primaryAddr = addr
	s, addr, err := benchproc.StartRole(h.tmp, "shadow", "app", "-name", "shadow")
	if err != nil {
		return err
	}
	h.Defer(s.Stop)
	h.shadowAddr = addr
	return nil
}

// member is a measured process group of a front. handled reports whether
// it has handled want exchanges so far (from its /metrics); nil: once the
// front's drive returns.
type member struct {
	name    string // row key, e.g. "proxy"
	p       *benchproc.Proc
	handled func(want int) bool
}

// settled reports whether every member has handled want exchanges.
func (f *front) settled(want int) bool {
	for _, m := range f.members {
		if m.handled != nil && !m.handled(want) {
			return false
		}
	}
	return true
}

// front is one way of carrying n exchanges, with the processes it measures.
type front struct {
	name    string
	members []member
	// prepare runs before the CPU is read (building packets, starting a
	// sender process); drive sends n exchanges.
	prepare func(ctx context.Context, n int) error
	drive   func(ctx context.Context, n int) error
	finish  func() // after the CPU is read (the vegeta sender exits)
	total   int    // exchanges carried so far (warm-up included)
	kernel  bool
}

// measure runs one round of f: n exchanges at the steady rate. Each
// member's CPU is read before the first and again as soon as it has handled
// the last, so a stage that is done early is not charged for the time its
// downstream takes. Only the members not done yet are scraped (a scrape
// costs the measured process CPU too).
func (h *harness) measure(ctx context.Context, f *front, round int) error {
	n := h.cfg.n
	if f.finish != nil {
		defer f.finish()
	}
	if f.prepare != nil {
		if err := f.prepare(ctx, n); err != nil {
			return err
		}
	}
	before := make([]benchproc.Usage, len(f.members))
	for i, m := range f.members {
		u, err := benchproc.GroupUsage(m.p.PID())
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		before[i] = u
	}
	var bpf0 bpfRun
	if f.kernel {
		bpf0, _ = bpfPrograms(ebpfPrograms...)
	}
	if err := f.drive(ctx, n); err != nil {
		return err
	}
	f.total += n
	after := make([]*benchproc.Usage, len(f.members))
	var readErr error
	done := benchproc.Poll(ctx, 2*time.Minute+time.Duration(n/h.cfg.rate)*time.Second, 100*time.Millisecond, func() bool {
		left := 0
		for i, m := range f.members {
			if after[i] != nil {
				continue
			}
			if m.handled != nil && !m.handled(f.total) {
				left++
				continue
			}
			u, err := benchproc.GroupUsage(m.p.PID())
			if err != nil {
				readErr = fmt.Errorf("%s: %w", m.name, err)
				return true
			}
			after[i] = &u
		}
		return left == 0
	})
	if readErr != nil {
		return readErr
	}
	if !done {
		var late []string
		for i, m := range f.members {
			if after[i] == nil {
				late = append(late, m.name)
			}
		}
		return fmt.Errorf("%s did not handle the %d exchanges within the time allowed (logs: -keep)", strings.Join(late, ", "), f.total)
	}
	for i, m := range f.members {
		h.res[m.name] = append(h.res[m.name], sample{round: round,
			usPer: float64((after[i].CPU - before[i].CPU).Microseconds()) / float64(n), hwmKB: after[i].HWMKB})
	}
	if f.kernel {
		bpf1, err := bpfPrograms(ebpfPrograms...)
		if err == nil && bpf1.count > bpf0.count {
			runs := float64(bpf1.count - bpf0.count)
			rt := float64(bpf1.runtime - bpf0.runtime)
			h.bpf = append(h.bpf, bpfSample{usPer: rt / 1e3 / float64(n), nsRun: rt / runs, runsPer: runs / float64(n)})
		}
	}
	return nil
}

// warm carries the front's unmeasured warm-up exchanges.
func (h *harness) warmFront(ctx context.Context, f *front) error {
	if h.cfg.warm == 0 {
		return nil
	}
	if f.finish != nil {
		defer f.finish()
	}
	if f.prepare != nil {
		if err := f.prepare(ctx, h.cfg.warm); err != nil {
			return err
		}
	}
	if err := f.drive(ctx, h.cfg.warm); err != nil {
		return err
	}
	f.total += h.cfg.warm
	if !benchproc.Poll(ctx, 2*time.Minute, 100*time.Millisecond, func() bool { return f.settled(f.total) }) {
		return fmt.Errorf("warm-up: not every stage handled %d exchanges within 2 minutes", f.total)
	}
	return nil
}

// attackN sends n requests to base at the configured rate and fails unless
// every one was answered with 2xx.
func (h *harness) attackN(ctx context.Context, base string, n int) error {
	ok, bad, first := attack(ctx, base, n, h.cfg.rate, 64)
	if bad > 0 || ok != n {
		return fmt.Errorf("%d of %d requests failed (first: %s)", bad, n, first)
	}
	return nil
}

func (h *harness) ml_(ctx context.Context, name, listen string, args ...string) (*benchproc.Proc, string, error) {
	p, maddr, err := benchproc.StartMirrorline(ctx, h.ml, h.tmp, name, h.brokers, listen, 30*time.Second, args...)
	if err != nil {
		return nil, "", err
	}
	h.Defer(p.Stop)
	return p, maddr, nil
}

// atLeast reports whether the metric name on each of addrs is at least want.
func atLeast(want int, name string, addrs ...string) bool {
	for _, a := range addrs {
		if benchproc.Counter(a, name) < float64(want) {
			return false
		}
	}
	return true
}

const (
	mPublished = "mirrorline_collector_published_total"
	mRedacted  = "mirrorline_redactor_records_total"
	mSent      = "mirrorline_replayer_sent_total"
	mJudged    = "mirrorline_comparator_exchanges_total"
)

var ebpfPrograms = []string{"capture_ingress", "capture_egress"}

// newFront starts the processes of front name and warms it up.
func (h *harness) newFront(ctx context.Context, name string) (*front, error) {
	svc := h.svc + "-" + name
	f := &front{name: name}
	switch name {
	case "pipeline":
		listen, err := benchproc.FreeAddr("tcp")
		if err != nil {
			return nil, err
		}
		proxy, pm, err := h.ml_(ctx, "proxy", listen, "proxy", "--listen", listen, "--primary", "http://"+h.primaryAddr, "--service", svc)
		if err != nil {
			return nil, err
		}
		red, rm, err := h.ml_(ctx, "redact", "", "redact", "--service", svc, "--transactional-id", "mirrorline-cost-"+svc)
		if err != nil {
			return nil, err
		}
		rep, lm, err := h.ml_(ctx, "replay", "", "replay", "--live", "--service", svc, "--target", "http://"+h.shadowAddr, "--start", "earliest")
		if err != nil {
			return nil, err
		}
		cmpr, cm, err := h.ml_(ctx, "compare", "", "compare", "--service", svc, "--start", "earliest", "--prime", "off")
		if err != nil {
			return nil, err
		}
		f.members = []member{
			{"proxy", proxy, func(want int) bool { return atLeast(want, mPublished, pm) }},
			{"redact", red, func(want int) bool { return atLeast(want, mRedacted, rm) }},
			{"replay", rep, func(want int) bool { return atLeast(want, mSent, lm) }},
			{"compare", cmpr, func(want int) bool { return atLeast(want, mJudged, cm) }},
		}
		f.drive = func(ctx context.Context, n int) error { return h.attackN(ctx, "http://"+listen, n) }
	case "goproxy":
		gp, addr, err := benchproc.StartRole(h.tmp, "goproxy", "goproxy", "-primary", "http://"+h.primaryAddr)
		if err != nil {
			return nil, err
		}
		h.Defer(gp.Stop)
		f.members = []member{{"goproxy", gp.Proc, nil}}
		f.drive = func(ctx context.Context, n int) error { return h.attackN(ctx, "http://"+addr, n) }
	case "nginx":
		bin, err := benchproc.FindNginx(h.cfg.nginx)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSkip, err)
		}
		sinkAddr, err := benchproc.FreeAddr("tcp")
		if err != nil {
			return nil, err
		}
		sink, sm, err := h.ml_(ctx, "sink", sinkAddr, "sink", "--listen", sinkAddr, "--service", svc, "--key-header", "X-Forwarded-For")
		if err != nil {
			return nil, err
		}
		ngx, addr, err := h.startNginx(ctx, bin, "nginx", sinkAddr, true)
		if err != nil {
			return nil, err
		}
		plain, paddr, err := h.startNginx(ctx, bin, "nginx-plain", "", false)
		if err != nil {
			return nil, err
		}
		// The sink's floor in Go: the same nginx mirroring the same
		// requests to a plain net/http server that only reads them.
		recv, raddr, err := benchproc.StartRole(h.tmp, "receiver", "receiver")
		if err != nil {
			return nil, err
		}
		h.Defer(recv.Stop)
		ngxr, rnaddr, err := h.startNginx(ctx, bin, "nginx-receiver", raddr, true)
		if err != nil {
			return nil, err
		}
		f.members = []member{{"sink", sink, func(want int) bool { return atLeast(want, mPublished, sm) }},
			{"nginx", ngx, nil}, {"nginx-plain", plain, nil}, {"receiver", recv.Proc, nil}, {"nginx-receiver", ngxr, nil}}
		f.drive = func(ctx context.Context, n int) error {
			for _, a := range []string{addr, rnaddr, paddr} {
				if err := h.attackN(ctx, "http://"+a, n); err != nil {
					return err
				}
			}
			return nil
		}
	case "vegeta":
		var sender *benchproc.Role
		f.prepare = func(ctx context.Context, n int) error {
			var err error
			sender, _, err = benchproc.StartRole(h.tmp, "vegeta", "vegeta", "-target", "http://"+h.shadowAddr, "-n", strconv.Itoa(n), "-rate", strconv.Itoa(h.cfg.rate))
			if err != nil {
				return err
			}
			f.members = []member{{"vegeta", sender.Proc, nil}}
			return nil
		}
		f.finish = func() { sender.Stop() }
		f.drive = func(ctx context.Context, n int) error {
			if _, err := io.WriteString(sender.Stdin(), "go\n"); err != nil {
				return err
			}
			line, err := sender.Expect("DONE ", 2*time.Minute+time.Duration(n/h.cfg.rate)*time.Second)
			if err != nil {
				return err
			}
			if fs := strings.Fields(line); len(fs) != 2 || fs[0] != strconv.Itoa(n) {
				return fmt.Errorf("vegeta: %s of %d requests answered 2xx", line, n)
			}
			return nil
		}
	case "vpc":
		udp, err := benchproc.FreeAddr("udp")
		if err != nil {
			return nil, err
		}
		vpc, vm, err := h.ml_(ctx, "vpc", "", "vpc", "--service", svc, "--listen", udp, "--port", "8080", "--vni", "42")
		if err != nil {
			return nil, err
		}
		conn, err := net.Dial("udp", udp)
		if err != nil {
			return nil, err
		}
		h.Defer(func() { conn.Close() })
		f.members = []member{{"vpc", vpc, func(want int) bool { return atLeast(want, mPublished, vm) }}}
		var plan [][][]byte
		f.prepare = func(ctx context.Context, n int) error {
			plan = h.vpcPlan(n)
			return nil
		}
		f.drive = func(ctx context.Context, n int) error { return h.sendVXLAN(ctx, conn, plan, vm) }
	case "ebpf":
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("%w: needs root (CAP_BPF, CAP_NET_ADMIN)", errSkip)
		}
		closer, err := enableBPFStats()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSkip, err)
		}
		h.Defer(func() { closer.Close() })
		app, addr, err := benchproc.StartRole(h.tmp, "ebpf-app", "app", "-name", "primary")
		if err != nil {
			return nil, err
		}
		h.Defer(app.Stop)
		_, port, _ := strings.Cut(addr, ":")
		eb, em, err := h.ml_(ctx, "ebpf", "", "ebpf", "--service", svc, "--interface", "lo", "--port", port)
		if err != nil {
			return nil, fmt.Errorf("%w: mirrorline ebpf: %v", errSkip, err)
		}
		f.members = []member{{"ebpf", eb, func(want int) bool { return atLeast(want, mPublished, em) }}}
		f.kernel = true
		f.drive = func(ctx context.Context, n int) error { return h.attackN(ctx, "http://"+addr, n) }
		// The programs attach a moment after the metrics endpoint is up:
		// requests before that are not seen. Wait until one is.
		if !benchproc.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() bool {
			_ = h.attackN(ctx, "http://"+addr, 1)
			return benchproc.Counter(em, mPublished) >= 1
		}) {
			return nil, fmt.Errorf("%w: mirrorline ebpf captured nothing within 30s (%s)", errSkip, benchproc.Tail(eb.Log()))
		}
		f.total = int(benchproc.Counter(em, mPublished))
	}
	if err := h.warmFront(ctx, f); err != nil {
		return nil, err
	}
	return f, nil
}

// startNginx runs nginx from deploy/nginx/mirror.conf in front of the
// primary, mirroring to mirror (without the mirror directives when mirror is
// false), one worker per core.
func (h *harness) startNginx(ctx context.Context, bin, name, mirror string, withMirror bool) (*benchproc.Proc, string, error) {
	dir := filepath.Join(h.tmp, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	listen, err := benchproc.FreeAddr("tcp")
	if err != nil {
		return nil, "", err
	}
	b, err := os.ReadFile(filepath.Join(h.root, "deploy/nginx/mirror.conf"))
	if err != nil {
		return nil, "", err
	}
	c := string(b)
	if mirror == "" {
		mirror = "127.0.0.1:9" // unused
	}
	for old, repl := range map[string]string{"127.0.0.1:8081": h.primaryAddr, "127.0.0.1:9080": mirror, "127.0.0.1:8088": listen,
		"worker_processes 1;": "worker_processes auto;"} {
		if !strings.Contains(c, old) {
			return nil, "", fmt.Errorf("deploy/nginx/mirror.conf no longer mentions %s", old)
		}
		c = strings.ReplaceAll(c, old, repl)
	}
	if !withMirror {
		for _, d := range []string{"mirror /_mirrorline;", "mirror_request_body on;"} {
			if !strings.Contains(c, d) {
				return nil, "", fmt.Errorf("deploy/nginx/mirror.conf no longer says %s", d)
			}
			c = strings.Replace(c, d, "", 1)
		}
	}
	c = benchproc.NginxPrivate(c, dir)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(c), 0o644); err != nil {
		return nil, "", err
	}
	p, err := benchproc.StartNginx(ctx, bin, h.tmp, name, dir, conf, listen)
	if err != nil {
		return nil, "", err
	}
	h.Defer(p.Stop)
	return p, listen, nil
}
