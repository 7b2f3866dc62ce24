package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// rampLoad is steady traffic through the proxy on keep-alive connections:
// each client has one connection and sends one request after the other, each
// tagged with the phase in force when it was sent (?phase=), so the captured
// share of a phase is read from the records, not from timing.
type rampLoad struct {
	phase    atomic.Pointer[string]
	stop     atomic.Bool
	wg       sync.WaitGroup
	newConns atomic.Int64
	mu       sync.Mutex
	sent     map[string]int
	errs     []string
}

func startRampLoad(t *testing.T, addr string, clients int, phase string) *rampLoad {
	l := &rampLoad{sent: map[string]int{}}
	l.phase.Store(&phase)
	for c := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
				if !ci.Reused {
					l.newConns.Add(1)
				}
			}}
			for i := 0; !l.stop.Load(); i++ {
				p := *l.phase.Load()
				req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", fmt.Sprintf("http://%s/ramp/%d/%d?phase=%s", addr, c, i, p), nil)
				if err != nil {
					l.fail(err.Error())
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.fail(fmt.Sprintf("status %d", resp.StatusCode))
					continue
				}
				l.mu.Lock()
				l.sent[p]++
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(l.halt)
	return l
}

func (l *rampLoad) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, msg)
}

func (l *rampLoad) count(phase string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent[phase]
}

func (l *rampLoad) halt() {
	l.stop.Store(true)
	l.wg.Wait()
}

// metricValue reads the series name{labels...} (label name, value, ...) from
// the /metrics endpoint at addr.
func metricValue(addr, name string, labels ...string) (float64, bool) {
	e, err := scrapeMetrics(addr)
	if err != nil {
		return 0, false
	}
next:
	for _, s := range e.find(name) {
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	// Rename-replace, as editors and Kubernetes ConfigMaps do.
	if err := os.WriteFile(path+".new", []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// The seed's ramp without a restart: a proxy in front of a primary under
// steady load on keep-alive connections ramps its sample 10 % -> 50 % (the
// file rewritten and SIGHUP) -> 100 % (the file rewritten only). Each phase's
// captured share is within 3 % of its sample, no request fails, and no
// connection is closed by a reload. An invalid file then keeps 100 %, sets
// the error metrics and the proxy keeps serving.
func TestProxyRampWithoutRestart(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(primary.Close)
	cfg := filepath.Join(t.TempDir(), "mirrorline.yaml")
	writeConfig(t, cfg, "proxy:\n  sample: 0.1\n")
	p := startProxyProc(t, brokers, svc, primary.URL, "-c", cfg)

	waitRatio := func(want float64) {
		t.Helper()
		testproc.Eventually(t, 60*time.Second, fmt.Sprintf("proxy sample ratio %v", want), func() bool {
			v, ok := metricValue(p.metrics, "mirrorline_collector_sample_ratio", "collector", "proxy", "route", "default")
			return ok && v == want
		})
	}
	waitRatio(0.1)
	const clients, perPhase = 4, 1500
	load := startRampLoad(t, p.addr, clients, "p10")
	waitSent := func(phase string, n int) {
		t.Helper()
		testproc.Eventually(t, 120*time.Second, fmt.Sprintf("%d requests of phase %s", n, phase), func() bool { return load.count(phase) >= n })
	}
	waitSent("p10", perPhase)

	// 50 %: the file rewritten, and SIGHUP (two triggers, one result).
	tr := "t50"
	load.phase.Store(&tr)
	writeConfig(t, cfg, "proxy:\n  sample: 0.5\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitRatio(0.5)
	ph := "p50"
	load.phase.Store(&ph)
	waitSent("p50", perPhase)

	// 100 %: the file rewritten only.
	tr = "t100"
	load.phase.Store(&tr)
	writeConfig(t, cfg, "proxy:\n  sample: 1\n")
	waitRatio(1)
	ph = "p100"
	load.phase.Store(&ph)
	waitSent("p100", perPhase)

	// An invalid file: refused, 100 % kept, said on /metrics.
	writeConfig(t, cfg, "proxy:\n  sample: 7\n")
	testproc.Eventually(t, 60*time.Second, "mirrorline_config_last_reload_success 0", func() bool {
		v, ok := metricValue(p.metrics, "mirrorline_config_last_reload_success")
		return ok && v == 0
	})
	if v, _ := metricValue(p.metrics, "mirrorline_config_reload_errors_total"); v != 1 {
		t.Fatalf("mirrorline_config_reload_errors_total = %v after one invalid file, want 1", v)
	}
	ph = "invalid"
	load.phase.Store(&ph)
	waitSent("invalid", 300)
	load.halt()

	if len(load.errs) > 0 {
		t.Fatalf("%d client errors during the ramp, want 0; first: %s", len(load.errs), load.errs[0])
	}
	if n := load.newConns.Load(); n != clients {
		t.Fatalf("%d connections opened by %d keep-alive clients: the proxy closed connections during reloads", n, clients)
	}
	select {
	case err := <-p.exited:
		p.stopped = true
		t.Fatalf("proxy exited during the ramp: %v", err)
	default:
	}

	// Every capture published, then counted per phase from the records.
	var published float64
	testproc.Eventually(t, 60*time.Second, "every capture published", func() bool {
		c, ok1 := metricValue(p.metrics, "mirrorline_collector_captured_total")
		pub, ok2 := metricValue(p.metrics, "mirrorline_collector_published_total")
		q, ok3 := metricValue(p.metrics, "mirrorline_collector_queue_records")
		published = pub
		return ok1 && ok2 && ok3 && c == pub && q == 0
	})
	e, err := scrapeMetrics(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range e.find("mirrorline_collector_dropped_total") {
		if d.value != 0 {
			t.Fatalf("mirrorline_collector_dropped_total{reason=%q} = %v: captures lost during the ramp", d.labels["reason"], d.value)
		}
	}
	exs := kafkatest.ReadExchanges(t, brokers, "mirror.raw."+svc, int(published), 60*time.Second)
	captured := map[string]int{}
	for _, ex := range exs {
		u, err := url.Parse(ex.GetRequest().GetUrl())
		if err != nil {
			t.Fatalf("captured URL does not parse: %v", err)
		}
		captured[u.Query().Get("phase")]++
	}
	for _, ph := range []struct {
		name   string
		sample float64
	}{{"p10", 0.1}, {"p50", 0.5}, {"p100", 1}, {"invalid", 1}} {
		sent := load.count(ph.name)
		share := float64(captured[ph.name]) / float64(sent)
		t.Logf("phase %s: %d of %d captured (%.2f %%, sample %.0f %%)", ph.name, captured[ph.name], sent, 100*share, 100*ph.sample)
		if math.Abs(share-ph.sample) > 0.03 {
			t.Errorf("phase %s: captured share %.4f, want %.2f ± 0.03", ph.name, share, ph.sample)
		}
	}
	if !strings.Contains(p.out.String(), "reload refused") {
		t.Errorf("the refused reload is not logged")
	}
}

// `mirrorline sink` reloads too: copies are published at sink.sample 0, then,
// after the file is rewritten, at 1 with the new body limit, on the same
// keep-alive connection, every copy answered 200 throughout.
func TestSinkReloadWithoutRestart(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	addr, metrics := testproc.FreeAddr(t), testproc.FreeAddr(t)
	cfg := filepath.Join(t.TempDir(), "mirrorline.yaml")
	writeConfig(t, cfg, "sink:\n  sample: 0\n")
	startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")},
		"sink", "-c", cfg, "--service", svc, "--listen", addr, "--metrics-addr", metrics)
	ratio := func() (float64, bool) {
		return metricValue(metrics, "mirrorline_collector_sample_ratio", "collector", "sink", "route", "default")
	}
	testproc.Eventually(t, 60*time.Second, "sink sample ratio 0", func() bool {
		v, ok := ratio()
		return ok && v == 0
	})
	// One connection at most: a request waits for it to come back to the
	// pool (which the transport does asynchronously, after the body's end)
	// instead of dialling a second one, so a new connection means the sink
	// closed the old one.
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var newConns int
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
		if !ci.Reused {
			newConns++
		}
	}}
	send := func(phase string, n int) {
		t.Helper()
		for i := range n {
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "POST",
				fmt.Sprintf("http://%s/copy/%s/%d", addr, phase, i), strings.NewReader("0123456789"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s copy %d: %v", phase, i, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s copy %d: status %d, want 200", phase, i, resp.StatusCode)
			}
		}
	}
	send("before", 100)
	writeConfig(t, cfg, "sink:\n  sample: 1\n  body_limit: 4\n")
	testproc.Eventually(t, 60*time.Second, "sink sample ratio 1", func() bool {
		v, ok := ratio()
		return ok && v == 1
	})
	send("after", 100)
	if newConns != 1 {
		t.Fatalf("%d connections opened for 200 copies sent one after the other: the sink closed the connection on reload", newConns)
	}
	for _, ex := range kafkatest.ReadExchanges(t, brokers, "mirror.raw."+svc, 100, 60*time.Second) {
		if !strings.HasPrefix(ex.GetRequest().GetUrl(), "/copy/after/") || string(ex.GetRequest().GetBody()) != "0123" {
			t.Fatalf("published %s body %q: want only /copy/after/ copies cut at 4 bytes", ex.GetRequest().GetUrl(), ex.GetRequest().GetBody())
		}
	}
	testproc.Eventually(t, 60*time.Second, "100 published, none more", func() bool {
		v, ok := metricValue(metrics, "mirrorline_collector_published_total")
		return ok && v == 100
	})
	if v, _ := metricValue(metrics, "mirrorline_collector_skipped_total", "reason", "sampled_out"); v != 100 {
		t.Fatalf("skipped{sampled_out} = %v, want the 100 copies before the reload", v)
	}
}

// `mirrorline up` reloads the stages it runs from its one -c file: the
// proxy's and the sink's sample fractions and the live replayer's rate cap; a
// changed key that needs a restart is named in the log.
func TestUpReloadsItsStages(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 2)
	shadow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(shadow.Close)
	proxyAddr, sinkAddr, metrics := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	file := func(proxySample, sinkSample float64, maxRate, logLevel string) string {
		return fmt.Sprintf(`service: %s
brokers: [%s]
metrics_addr: %s
log_level: %s
collectors: [proxy, sink]
proxy:
  listen: %s
  primary: %s
  sample: %v
sink:
  listen: %s
  sample: %v
replay:
  target: %s
  max_rate: %s
`, svc, strings.Join(brokers, ", "), metrics, logLevel, proxyAddr, shadow.URL, proxySample, sinkAddr, sinkSample, shadow.URL, maxRate)
	}
	cfg := filepath.Join(t.TempDir(), "up.yaml")
	writeConfig(t, cfg, file(0.25, 0.5, "100/s", "info"))
	out := startML(t, []string{"MIRRORLINE_BROKERS="}, "up", "-c", cfg)
	waitRatios := func(p, s float64) {
		t.Helper()
		testproc.Eventually(t, 60*time.Second, fmt.Sprintf("proxy ratio %v, sink ratio %v", p, s), func() bool {
			pv, ok1 := metricValue(metrics, "mirrorline_collector_sample_ratio", "collector", "proxy", "route", "default")
			sv, ok2 := metricValue(metrics, "mirrorline_collector_sample_ratio", "collector", "sink", "route", "default")
			return ok1 && ok2 && pv == p && sv == s
		})
	}
	waitRatios(0.25, 0.5)
	writeConfig(t, cfg, file(0.75, 1, "250/s", "debug"))
	waitRatios(0.75, 1)
	testproc.Eventually(t, 30*time.Second, "the replayer's new cap and the key needing a restart logged", func() bool {
		s := out.String()
		return strings.Contains(s, "max_rate_per_second=250") && strings.Contains(s, `keys=log_level`)
	})
	if v, _ := metricValue(metrics, "mirrorline_config_reloads_total"); v != 1 {
		t.Fatalf("mirrorline_config_reloads_total = %v, want 1", v)
	}
}
