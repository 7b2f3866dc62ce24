// Command cost measures what each mirrorline stage costs per exchange, beside
// its peer measured in the same run: CPU time (utime+stime from
// /proc/PID/stat, every process of the stage's process group) over a fixed
// number of exchanges sent at a steady rate, divided by that number, and the
// peak resident set size (VmHWM from /proc/PID/status).
//
// Each stage runs as its own process (the built mirrorline binary) against a
// real Kafka broker:
//
//   - proxy -> redact (the exactly-once loop) -> replay --live -> compare, one
//     pipeline, each stage measured over the same window (from the first
//     request until every stage has handled every exchange);
//   - the proxy beside a plain Go httputil.ReverseProxy and nginx as a reverse
//     proxy with `mirror` (deploy/nginx/mirror.conf) into `mirrorline sink`;
//     the sink beside nginx's own cost of mirroring (nginx with mirror minus
//     nginx without, same requests) and beside a plain Go net/http server
//     that receives the same copies from nginx and only reads them;
//   - vpc: VXLAN datagrams of pre-built HTTP/1.1 exchanges sent over loopback
//     UDP;
//   - ebpf (root, Linux 5.8+): user side from /proc, kernel side from the BPF
//     programs' run time (kernel.bpf_stats_enabled through cilium/ebpf)
//     beside Speedscale's published figure (about 2.5 % of one core at 10k
//     requests/s: ~2.5 µs per request);
//   - the live replayer beside vegeta sending the same number of requests at
//     the same rate from its own process.
//
// Fronts are measured in -rounds interleaved rounds (order rotating), and a
// ratio is the median of the per-round ratios. Output: a Markdown table with
// date, machine and command.
//
// Usage (make bench runs this):
//
//	go run ./bench/cost [-n 3000] [-rate 1000] [-rounds 3] [-md FILE]
//
// Kafka: -brokers, else $KAFKA_BROKERS, else test/kafka/start on a free port
// (stopped again at the end).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

type config struct {
	n, rate, warm, rounds, partitions int
	brokers, nginx, mirrorline, md    string
	only                              map[string]bool
	keep                              bool
	timeout                           time.Duration
}

var fronts = []string{"pipeline", "goproxy", "nginx", "vegeta", "vpc", "ebpf"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "role" {
		os.Exit(runRole(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:]))
}

func parseFlags(args []string) (config, error) {
	var c config
	var only string
	fs := flag.NewFlagSet("cost", flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 3000, "exchanges per front and round")
	fs.IntVar(&c.rate, "rate", 1000, "steady rate, exchanges per second")
	fs.IntVar(&c.warm, "warm", 200, "unmeasured exchanges per front first (group joins, connections, JIT of the caches)")
	fs.IntVar(&c.rounds, "rounds", 3, "interleaved rounds (ratios: median over rounds)")
	fs.IntVar(&c.partitions, "partitions", 4, "partitions of the benchmark topics")
	fs.StringVar(&c.brokers, "brokers", "", "Kafka brokers (default $KAFKA_BROKERS, else test/kafka/start on a free port)")
	fs.StringVar(&c.nginx, "nginx", "", "nginx binary (default: from PATH or /usr/sbin/nginx)")
	fs.StringVar(&c.mirrorline, "mirrorline", "", "mirrorline binary (default: built from ./cmd/mirrorline)")
	fs.StringVar(&only, "only", strings.Join(fronts, ","), "fronts to run")
	fs.StringVar(&c.md, "md", "", "also write the Markdown report to this file")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory with the children's logs")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Minute, "hard limit for the whole run")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c.only = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "pipeline", "goproxy", "nginx", "vegeta", "vpc", "ebpf":
			c.only[s] = true
		case "":
		default:
			return c, fmt.Errorf("-only: unknown front %q (want %s)", s, strings.Join(fronts, ","))
		}
	}
	if c.n <= 0 || c.rate <= 0 || c.rounds <= 0 || c.partitions <= 0 || c.warm < 0 {
		return c, errors.New("-n, -rate, -rounds and -partitions must be positive, -warm not negative")
	}
	return c, nil
}

func run(args []string) int {
	cfg, err := parseFlags(args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench/cost:", err)
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	h := &harness{cfg: cfg, res: map[string][]sample{}}
	defer h.Cleanup()
	if err := h.setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench/cost:", err)
		return 1
	}
	began := time.Now()
	failed := false
	var active []*front
	for _, name := range fronts {
		if !cfg.only[name] || ctx.Err() != nil {
			continue
		}
		f, err := h.newFront(ctx, name)
		if err != nil {
			h.logf("%s: %v", name, err)
			h.notes = append(h.notes, fmt.Sprintf("%s: not measured: %v", name, err))
			if !errors.Is(err, errSkip) {
				failed = true
			}
			continue
		}
		active = append(active, f)
	}
	for r := 0; r < cfg.rounds && ctx.Err() == nil; r++ {
		for i := range active {
			f := active[(i+r)%len(active)]
			h.logf("round %d/%d: %s", r+1, cfg.rounds, f.name)
			if err := h.measure(ctx, f, r); err != nil {
				h.logf("%s: %v", f.name, err)
				h.notes = append(h.notes, fmt.Sprintf("round %d, %s: FAILED: %v", r+1, f.name, err))
				failed = true
			}
		}
	}
	if cfg.only["pipeline"] && ctx.Err() == nil {
		sz, err := h.recordSizes(ctx, 1000)
		if err != nil {
			h.logf("%v", err)
		}
		h.sizes = sz
	}
	text := h.report(args, time.Since(began))
	return benchproc.Finish(ctx, os.Stdout, "bench/cost", text, cfg.md, failed)
}

// errSkip marks a front that cannot run here (the reason is reported).
var errSkip = errors.New("skipped")

// setupKafka uses -brokers or $KAFKA_BROKERS, else starts a broker with
// test/kafka/start on a free port (stopped at the end).
func (h *harness) setupKafka(ctx context.Context) error {
	brokers := cmp.Or(h.cfg.brokers, os.Getenv("KAFKA_BROKERS"))
	if brokers != "" {
		h.brokers, h.kafka = brokers, "Apache Kafka at "+brokers+" (given)"
		return nil
	}
	addr, err := benchproc.FreeAddr("tcp")
	if err != nil {
		return err
	}
	_, port, _ := strings.Cut(addr, ":")
	dir := filepath.Join(h.tmp, "kafka")
	h.logf("starting Kafka with test/kafka/start --port %s", port)
	brokers, stop, err := benchproc.StartKafka(ctx, h.root, "--port", port, "--dir", dir)
	h.Defer(stop)
	if err != nil {
		return err
	}
	h.brokers = brokers
	h.kafka = "Apache Kafka " + benchproc.KafkaVersion() + " (KRaft, single broker, test/kafka/start) at " + h.brokers
	return nil
}
