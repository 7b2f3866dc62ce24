package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spf13/pflag"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/telemetry"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// reloadRig is a proxy (and sink) built from a -c file as the commands do.
type reloadRig struct {
	a    *app
	path string
	log  *testproc.Output
	m    *collector.Metrics
	w    *configWatch
	reg  *prometheus.Registry
	p    *proxy.Proxy
}

func newReloadRig(t *testing.T, file string, flags *pflag.FlagSet) *reloadRig {
	t.Helper()
	r := &reloadRig{path: filepath.Join(t.TempDir(), "mirrorline.yaml"), log: &testproc.Output{}, reg: prometheus.NewRegistry()}
	r.write(t, file)
	r.a = &app{cfg: config.Default(), cfgPath: r.path, log: hclog.New(&hclog.LoggerOptions{Output: r.log, Level: hclog.Info})}
	if err := config.Load(r.path, &r.a.cfg); err != nil {
		t.Fatal(err)
	}
	if flags != nil {
		// As the command line would: the flag's value over the file's.
		if v, _ := flags.GetFloat64("sample"); flags.Changed("sample") {
			r.a.cfg.Proxy.Sample = v
		}
	}
	r.a.reload.flags = flags
	r.m = collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(&collectortest.Recorder{}, "svc", r.m, nil)
	var err error
	if r.p, err = r.a.buildProxy(em); err != nil {
		t.Fatal(err)
	}
	r.w = r.a.newConfigWatch(r.reg)
	t.Cleanup(func() { signal.Stop(r.w.hup) })
	return r
}

func (r *reloadRig) write(t *testing.T, content string) {
	t.Helper()
	// Rename-replace, as editors and Kubernetes do.
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		t.Fatal(err)
	}
}

func (r *reloadRig) ratio(route string) float64 {
	return testutil.ToFloat64(r.m.SampleRatio.WithLabelValues("proxy", route))
}

func (r *reloadRig) gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

const reloadBase = "service: svc\nproxy:\n  primary: http://127.0.0.1:1\n  listen: 127.0.0.1:8080\n"

// A valid file is put in force; an invalid one (bad value, unknown key,
// unreadable) keeps the configuration in force, says why on one line and
// sets the error metrics; a changed key that cannot be reloaded is named.
func TestReloadProxyPolicy(t *testing.T) {
	r := newReloadRig(t, reloadBase+"  sample: 0.1\n", nil)
	if got := r.ratio(collector.DefaultRoute); got != 0.1 {
		t.Fatalf("ratio at start %v, want 0.1", got)
	}
	r.write(t, reloadBase+"  sample: 0.5\n  body_limit: 64\n")
	r.w.reload()
	if got, bl := r.ratio(collector.DefaultRoute), r.p.Policy().BodyLimit(); got != 0.5 || bl != 64 {
		t.Fatalf("after reload: ratio %v body limit %d, want 0.5 and 64", got, bl)
	}
	if r.gauge(t, "mirrorline_config_reloads_total") != 1 || r.gauge(t, "mirrorline_config_last_reload_success") != 1 {
		t.Fatal("reload not counted as a success")
	}

	for i, bad := range []struct{ file, want string }{
		{reloadBase + "  sample: 2\n", "proxy.sample: 2 is not between 0 and 1"},
		{reloadBase + "  sampel: 1\n", "proxy.sampel: unknown key; did you mean sample?"},
		{reloadBase + "  routes:\n    - headers: {X-A: \"(\"}\n", "proxy.routes[0].headers[X-A]"},
		{"", "no such file"},
	} {
		if bad.file == "" {
			if err := os.Remove(r.path); err != nil {
				t.Fatal(err)
			}
		} else {
			r.write(t, bad.file)
		}
		r.w.reload()
		if got := r.ratio(collector.DefaultRoute); got != 0.5 {
			t.Fatalf("%s: ratio %v after a refused reload, want 0.5 kept", bad.want, got)
		}
		if got := r.gauge(t, "mirrorline_config_reload_errors_total"); got != float64(i+1) {
			t.Fatalf("%s: reload_errors_total %v, want %d", bad.want, got, i+1)
		}
		if r.gauge(t, "mirrorline_config_last_reload_success") != 0 {
			t.Fatalf("%s: last_reload_success not 0", bad.want)
		}
		if !strings.Contains(r.log.String(), bad.want) {
			t.Fatalf("log does not say why (%q):\n%s", bad.want, r.log)
		}
	}
	if r.p.Policy().BodyLimit() != 64 {
		t.Fatal("body limit changed by a refused reload")
	}

	r.write(t, strings.Replace(reloadBase, "127.0.0.1:8080", "127.0.0.1:9999", 1)+"  sample: 1\n  routes:\n    - name: api\n      path_prefix: /api\n      sample: 0.25\nbrokers: [127.0.0.1:2]\n")
	r.w.reload()
	if got := r.ratio("api"); got != 0.25 {
		t.Fatalf("route api ratio %v, want 0.25", got)
	}
	if r.gauge(t, "mirrorline_config_last_reload_success") != 1 {
		t.Fatal("valid file after refused ones: last_reload_success not 1")
	}
	if !strings.Contains(r.log.String(), `keys="brokers,proxy.listen"`) {
		t.Fatalf("log does not name the keys needing a restart (brokers, proxy.listen):\n%s", r.log)
	}
}

// A flag given on the command line keeps overriding the file across reloads.
func TestReloadFlagOverridesFile(t *testing.T) {
	flags := pflag.NewFlagSet("proxy", pflag.ContinueOnError)
	flags.Float64("sample", 1, "")
	if err := flags.Parse([]string{"--sample", "0.3"}); err != nil {
		t.Fatal(err)
	}
	r := newReloadRig(t, reloadBase+"  sample: 0.1\n", flags)
	r.write(t, reloadBase+"  sample: 0.9\n")
	r.w.reload()
	if got := r.ratio(collector.DefaultRoute); got != 0.3 {
		t.Fatalf("ratio %v after reload, want the --sample 0.3", got)
	}
	if !strings.Contains(r.log.String(), "--sample on the command line overrides the file") {
		t.Fatalf("override not logged:\n%s", r.log)
	}
}

// The watch reloads when the file is replaced (rename, as editors and
// ConfigMaps do), without a signal.
func TestReloadOnFileChange(t *testing.T) {
	r := newReloadRig(t, reloadBase+"  sample: 0.1\n", nil)
	r.w.interval = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.run(ctx) }()
	defer func() { cancel(); <-done }()
	r.write(t, reloadBase+"  sample: 0.75\n")
	if !testproc.Wait(30*time.Second, func() bool { return r.ratio(collector.DefaultRoute) == 0.75 }) {
		t.Fatalf("file replaced, ratio still %v after 30 s:\n%s", r.ratio(collector.DefaultRoute), r.log)
	}
}

// The live replayer's rate cap follows replay.max_rate; an invalid one is
// refused naming the key.
func TestReloadLiveMaxRate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("replay:\n  max_rate: 100/s\n")
	a := &app{cfg: config.Default(), cfgPath: path, log: hclog.NewNullLogger()}
	if err := config.Load(path, &a.cfg); err != nil {
		t.Fatal(err)
	}
	a.cfg.Service, a.cfg.Kafka.Brokers, a.cfg.Replay.Target = "s", []string{"127.0.0.1:1"}, "http://127.0.0.1:1"
	l, cl, err := a.newLiveReplayer(telemetry.NewServer())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if l.MaxRate() != 100 {
		t.Fatalf("max rate at start %v, want 100", l.MaxRate())
	}
	w := a.newConfigWatch(prometheus.NewRegistry())
	t.Cleanup(func() { signal.Stop(w.hup) })
	for _, tc := range []struct {
		file string
		want float64
	}{
		{"replay:\n  max_rate: 500/s\n", 500},
		{"replay:\n  max_rate: fast\n", 500}, // refused: kept
		{"replay:\n  target: http://127.0.0.1:1\n", 0},
	} {
		write(tc.file)
		w.reload()
		if got := l.MaxRate(); got != tc.want {
			t.Fatalf("file %q: max rate %v, want %v", tc.file, got, tc.want)
		}
	}
}

// The sink reloads sink.sample, sink.routes and sink.body_limit; --sample on
// the command line sets its fraction at start.
func TestReloadSink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("sink:\n  listen: 127.0.0.1:0\n  sample: 0.2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &app{cfg: config.Default(), cfgPath: path, log: hclog.NewNullLogger()}
	if err := config.Load(path, &a.cfg); err != nil {
		t.Fatal(err)
	}
	m := collector.NewMetrics(prometheus.NewRegistry())
	sink, err := a.newSink(collector.NewEmitter(&collectortest.Recorder{}, "svc", m, nil), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Closes the listener newSink opened.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = sink.Run(ctx)
	})
	ratio := func(route string) float64 { return testutil.ToFloat64(m.SampleRatio.WithLabelValues("sink", route)) }
	if got := ratio(collector.DefaultRoute); got != 0.2 {
		t.Fatalf("sink ratio at start %v, want 0.2", got)
	}
	w := a.newConfigWatch(prometheus.NewRegistry())
	t.Cleanup(func() { signal.Stop(w.hup) })
	if err := os.WriteFile(path, []byte("sink:\n  listen: 127.0.0.1:0\n  routes:\n    - {name: orders, path_prefix: /orders, sample: 0.6}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.reload()
	if got := ratio("orders"); got != 0.6 {
		t.Fatalf("sink ratio{orders} after reload %v, want 0.6", got)
	}
	if err := os.WriteFile(path, []byte("sink:\n  listen: 127.0.0.1:0\n  body_limit: -1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.reload()
	if got := ratio("orders"); got != 0.6 {
		t.Fatalf("sink ratio{orders} after a refused reload %v, want 0.6 kept", got)
	}
}
