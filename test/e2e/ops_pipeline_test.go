package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/demo/payments/app"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// Personal data the ops traffic carries; it must never show up in a label.
const (
	opsCard  = "4111111111111111"
	opsEmail = "olga.ops@example.com"
	opsToken = "ops-secret-bearer-token-7f3a9c"
)

// opsPipeline is `mirrorline up` (embedded broker) in front of the demo payments
// services (plus `mirrorline compare` on the same broker when up runs no
// comparator but the binary has the command).
type opsPipeline struct {
	service     string
	proxyURL    string
	embedded    string
	metrics     []string // metrics addresses: up, then compare (if any)
	hasCompare  bool
	primary     *app.App
	shadow      *app.App
	upOut       *testproc.Output
	compareOut  *testproc.Output
	trafficSent atomic.Int64
}

// startOpsPipeline starts the pipeline and waits until every metrics endpoint
// answers /readyz with 200 and the proxy accepts connections.
func startOpsPipeline(t *testing.T) *opsPipeline {
	t.Helper()
	noSleep := func(context.Context, time.Duration) {}
	p := &opsPipeline{service: "payments"}
	// v1 primary, regressed v2 shadow: the comparator has differences to find.
	p.primary = app.New(app.Config{Name: "primary", Version: app.V1, Sleep: noSleep})
	p.shadow = app.New(app.Config{Name: "shadow", Version: app.V2, Sleep: noSleep})
	ps, ss := httptest.NewServer(p.primary), httptest.NewServer(p.shadow)
	t.Cleanup(ps.Close)
	t.Cleanup(ss.Close)

	proxyAddr := testproc.FreeAddr(t)
	p.proxyURL = "http://" + proxyAddr
	p.embedded = testproc.FreeAddr(t)
	upMetrics := testproc.FreeAddr(t)
	cfg := fmt.Sprintf(`service: %s
metrics_addr: %s
embedded:
  addr: %s
topics:
  partitions: 2
proxy:
  listen: %s
  primary: %s
  body_limit: 4096
replay:
  target: %s
  concurrency: 8
redact:
  rules:
    json_fields:
      card.number: fake
      customer.email: hash
`, p.service, upMetrics, p.embedded, proxyAddr, ps.URL, ss.URL)
	cfgPath := filepath.Join(t.TempDir(), "up.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"MIRRORLINE_BROKERS=", "MIRRORLINE_REDACT_HASH_KEY=ops-test-hash-key-not-a-secret"}
	p.upOut = startML(t, env, "up", "-c", cfgPath)
	p.metrics = append(p.metrics, upMetrics)
	waitReady(t, upMetrics, p.upOut)

	// The contract has up run the comparator too. A binary whose up does not (yet) gets
	// a separate `mirrorline compare` on the embedded broker, when it has one.
	upExp, err := scrapeMetrics(upMetrics)
	if err != nil {
		t.Fatal(err)
	}
	if upExp.types["mirrorline_comparator_latency_seconds"] != "" {
		p.hasCompare = true
	} else if help, code := runML(t, env, "compare", "--help"); code == 0 {
		t.Logf("`mirrorline up` runs no comparator: starting `mirrorline compare` beside it")
		p.hasCompare = true
		cmpMetrics := testproc.FreeAddr(t)
		args := []string{"compare", "--service", p.service, "--brokers", p.embedded, "--metrics-addr", cmpMetrics}
		if strings.Contains(help, "--start ") {
			args = append(args, "--start", "earliest")
		}
		if strings.Contains(help, "--prime ") {
			args = append(args, "--prime", "off")
		}
		p.compareOut = startML(t, env, args...)
		p.metrics = append(p.metrics, cmpMetrics)
		waitReady(t, cmpMetrics, p.compareOut)
	} else {
		t.Logf("this binary has no comparator: comparator metrics are not required")
	}
	testproc.Eventually(t, 30*time.Second, "proxy listening", func() bool {
		c, err := net.Dial("tcp", proxyAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

func waitReady(t *testing.T, addr string, out *testproc.Output) {
	t.Helper()
	var code int
	var err error
	if !testproc.Wait(30*time.Second, func() bool {
		code, _, err = httpGet("http://" + addr + "/readyz")
		return err == nil && code == http.StatusOK
	}) {
		t.Fatalf("%s/readyz not 200 after 30s (%d, %v)\n%s", addr, code, err, out)
	}
}

func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// startTraffic sends a steady mix of requests with personal data through the
// proxy (about rate per second, at most max requests) until the test ends.
func (p *opsPipeline) startTraffic(t *testing.T, rate int, max int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { cancel(); wg.Wait() })
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := int64(0); i < max; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			var req *http.Request
			switch {
			case i%50 == 25:
				// A body over the proxy's body_limit: captured truncated, so
				// not replayed (mirrorline_replayer_errors_total{reason}).
				req, _ = http.NewRequestWithContext(ctx, "POST", p.proxyURL+"/payments", strings.NewReader(strings.Repeat("lorem ipsum ", 800)))
				req.Header.Set("Content-Type", "text/plain")
			case i%3 == 0:
				addr := "Main Street 1, Springfield"
				if i%2 == 0 {
					addr = "Straße 1, Berlin" // v2 rejects non-ASCII addresses: a difference
				}
				body := fmt.Sprintf(`{"amount": %d, "currency": "EUR", "card": {"number": %q, "expiry": "12/29", "holder": "Olga Ops"}, "customer": {"id": "c-%d", "email": %q, "address": %q}}`, 100+i, opsCard, i, opsEmail, addr)
				req, _ = http.NewRequestWithContext(ctx, "POST", p.proxyURL+"/payments", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
			case i%3 == 1:
				req, _ = http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/users/%d?email=%s", p.proxyURL, i, opsEmail), nil)
			default:
				req, _ = http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/payments/pay-%d", p.proxyURL, i), nil)
			}
			req.Header.Set("Authorization", "Bearer "+opsToken)
			resp, err := client.Do(req)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			p.trafficSent.Add(1)
		}
	}()
}

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// exposition is one scrape of /metrics.
type exposition struct {
	samples []sample
	types   map[string]string // family name -> counter, gauge, histogram, ...
}

var labelPairRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// scrapeMetrics reads and parses addr's /metrics.
func scrapeMetrics(addr string) (*exposition, error) {
	code, body, err := httpGet("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %d", code)
	}
	e := &exposition{types: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) == 4 {
				e.types[f[2]] = f[3]
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("bad line %q", line)
			}
			s.name = line[:i]
			for _, m := range labelPairRE.FindAllStringSubmatch(line[i+1:j], -1) {
				v, err := strconv.Unquote(`"` + m[2] + `"`)
				if err != nil {
					v = m[2]
				}
				s.labels[m[1]] = v
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			f := strings.Fields(line)
			if len(f) < 2 {
				return nil, fmt.Errorf("bad line %q", line)
			}
			s.name, rest = f[0], f[1]
		}
		valStr := strings.Fields(rest)
		if len(valStr) == 0 {
			return nil, fmt.Errorf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(valStr[0], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q", line)
		}
		s.value = v
		e.samples = append(e.samples, s)
	}
	return e, sc.Err()
}

// scrapeAll merges the expositions of every metrics endpoint of the pipeline.
func (p *opsPipeline) scrapeAll() (*exposition, error) {
	all := &exposition{types: map[string]string{}}
	for _, addr := range p.metrics {
		e, err := scrapeMetrics(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		all.samples = append(all.samples, e.samples...)
		for k, v := range e.types {
			all.types[k] = v
		}
	}
	return all, nil
}

// names returns the set of sample names.
func (e *exposition) names() map[string]bool {
	n := map[string]bool{}
	for _, s := range e.samples {
		n[s.name] = true
	}
	return n
}

// find returns the samples named name.
func (e *exposition) find(name string) []sample {
	var out []sample
	for _, s := range e.samples {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}
