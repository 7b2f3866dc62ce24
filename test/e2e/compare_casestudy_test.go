package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/comparator"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/demo/payments/app"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// The case study of issue 5: the demo payments service, v1 as the primary and
// the regressed v2 as the shadow, half of the traffic mirrored through the
// whole pipeline (proxy -> Kafka -> redactor -> replayer -> comparator), with
// a second v1 instance as the secondary. The report must name POST /payments
// and its 422 + body.error regression for non-ASCII addresses, flag v2's
// latency tail although its mean is better, and report no difference for the
// fields that only carry ids and timestamps (id, created_at, fetched_at,
// request_id) nor for card_last4 (the replayed card is a redacted fake: the
// secondary shows the same difference).
func TestCompareCaseStudy(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	kcfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 2)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ","), "MIRRORLINE_DEMO_HASH_KEY=case-study-hmac-key-0123456789"}

	// v1 answers in 0-150 ms (mean 75); v2 in 0-1 ms, but 5 % of its
	// requests take 450-500 ms more (mean about 25): a better mean, a far
	// worse tail. Real sleeps, so latency is real. The gaps are wide against
	// what a loaded machine adds to either side: p99 ~150 against ~475 ms
	// (the primary's p99 would have to pass 380 ms to hide the regression),
	// means 75 against 25 ms (an endpoint drawing twice its share of slow
	// requests still has 50). With v1 at 0-20 ms and a tail of 80-100 ms,
	// load alone took the primary's p99 to 80 ms and hid the regression.
	v1Tail := app.SlowTail{Jitter: 150 * time.Millisecond}
	v2Tail := app.SlowTail{Jitter: time.Millisecond, Fraction: 0.05, Min: 450 * time.Millisecond, Max: 500 * time.Millisecond}
	primary := app.New(app.Config{Name: "primary", Version: app.V1, Seed: 1, SlowTail: &v1Tail})
	shadow := app.New(app.Config{Name: "shadow", Version: app.V2, Seed: 2, SlowTail: &v2Tail})
	secondary := app.New(app.Config{Name: "secondary", Version: app.V1, Seed: 3, SlowTail: &v1Tail})
	ps, ss, sec := httptest.NewServer(primary), httptest.NewServer(shadow), httptest.NewServer(secondary)
	t.Cleanup(ps.Close)
	t.Cleanup(ss.Close)
	t.Cleanup(sec.Close)

	// One configuration for the redactor and the comparator: the comparator
	// scrubs shadow responses with the redactor's rules (redact.rules).
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "mirrorline.yaml")
	cmpWriteFile(t, cfgFile, fmt.Sprintf(`service: %s
redact:
  rules:
    hash_key_env: MIRRORLINE_DEMO_HASH_KEY
    json_fields:
      card.number: fake
      customer.email: hash
      card.holder: mask
      # Shape-keeping fake: a non-ASCII address stays non-ASCII, so v2's
      # regression reproduces on redacted traffic.
      customer.address: shape
compare:
  start: earliest
  join_window: 20s
  shadow_job: live
  secondary:
    job: secondary
`, svc))
	startML(t, env, "redact", "-c", cfgFile, "--transactional-id", "redact-"+svc, "--metrics-addr", "")
	cmpMetrics := testproc.FreeAddr(t)
	cmpOut := startML(t, env, "compare", "-c", cfgFile, "--metrics-addr", cmpMetrics)
	runJobReplayer(t, kcfg, svc, "replay-"+svc, ss.URL, "live")
	runJobReplayer(t, kcfg, svc, "replay-secondary-"+svc, sec.URL, "secondary")
	proxyAddr, pm := runSampledProxy(t, kcfg, svc, ps.URL, 0.5)

	const n = 800
	sendPaymentsTraffic(t, "http://"+proxyAddr, n)
	captured := int(testutil.ToFloat64(pm.Captured))
	if captured < n*35/100 || captured > n*65/100 {
		t.Fatalf("captured %d of %d requests with --sample 0.5", captured, n)
	}

	// Every captured exchange is decided and its diff record published.
	adm := kadm.NewClient(kafkatest.Client(t))
	diffTopic := broker.Topic(broker.Diff, svc)
	testproc.Eventually(t, 120*time.Second, fmt.Sprintf("%d diff records", captured), func() bool {
		return cmpEndOffsets(adm, diffTopic) >= int64(captured)
	})

	// What the shadow saw: the regression is a 422 for a non-ASCII address.
	var posts, nonASCII int
	for _, r := range shadow.Requests() {
		if r.Route != "POST /payments" {
			continue
		}
		posts++
		var body struct{ Customer struct{ Address string } }
		if err := json.Unmarshal([]byte(r.Body), &body); err != nil {
			t.Fatalf("shadow got an undecodable payment: %v", err)
		}
		if !cmpIsASCII(body.Customer.Address) {
			nonASCII++
		}
	}
	if posts == 0 || nonASCII == 0 || nonASCII == posts {
		t.Fatalf("traffic mix: %d payments at the shadow, %d with non-ASCII addresses", posts, nonASCII)
	}

	htmlPath := filepath.Join(dir, "report.html")
	out, code := runML(t, env, "compare", "report", "-c", cfgFile, "--json", "--html", htmlPath)
	if code != 0 {
		t.Fatalf("compare report --json: exit %d\n%s", code, out)
	}
	var rep comparator.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, out)
	}
	text, code := runML(t, env, "compare", "report", "-c", cfgFile)
	if code != 0 {
		t.Fatalf("compare report: exit %d\n%s", code, text)
	}
	if out, code := runML(t, env, "compare", "report", "-c", cfgFile, "--fail-on-significant"); code != 1 || !strings.Contains(out, "significant differences or tail regressions at POST /payments") {
		t.Errorf("compare report --fail-on-significant: exit %d, want 1 naming POST /payments\n%s", code, out)
	}
	t.Logf("mirrorline compare report (%d requests sent, %d captured, %d payments at the shadow, %d with non-ASCII addresses):\n%s", n, captured, posts, nonASCII, text)

	if rep.Exchanges != captured || rep.Verdicts["missing"] != 0 || rep.Verdicts["shadow-error"] != 0 || rep.Verdicts["primary-error"] != 0 {
		t.Fatalf("report: %d exchanges (captured %d), verdicts %v", rep.Exchanges, captured, rep.Verdicts)
	}
	byName := map[string]comparator.EndpointReport{}
	var names, significant []string
	for _, e := range rep.Endpoints {
		byName[e.Endpoint] = e
		names = append(names, e.Endpoint)
		if e.Significant {
			significant = append(significant, e.Endpoint)
		}
	}
	slices.Sort(names)
	if want := []string{"GET /payments/{id}", "GET /users/{id}", "POST /payments"}; !slices.Equal(names, want) {
		t.Fatalf("endpoints %q, want %q", names, want)
	}
	if !slices.Equal(significant, []string{"POST /payments"}) || rep.Endpoints[0].Endpoint != "POST /payments" {
		t.Fatalf("significant endpoints %q, want exactly POST /payments", significant)
	}

	post := byName["POST /payments"]
	if post.Comparable != posts || post.Differing != nonASCII {
		t.Errorf("POST /payments: %d of %d differ, want the %d of %d with non-ASCII addresses", post.Differing, post.Comparable, nonASCII, posts)
	}
	var fields []string
	for _, f := range post.Fields {
		fields = append(fields, f.Field+" "+f.Kind)
	}
	if want := []string{"status changed", "body.error added", "body removed"}; !slices.Equal(fields, want) {
		t.Errorf("POST /payments differing fields %q, want %q", fields, want)
	}
	if len(post.Fields) == 3 {
		st, errField := post.Fields[0], post.Fields[1]
		if st.Primary != "201" || st.Shadow != "422" || post.StatusTransitions["201 → 422"] != nonASCII {
			t.Errorf("status row %+v, transitions %v", st, post.StatusTransitions)
		}
		if errField.Shadow != `"invalid address"` || !errField.UnderStatus || errField.Count != nonASCII {
			t.Errorf("body.error row %+v", errField)
		}
	}
	if !post.Latency.TailRegression || !post.Latency.MeanImproved {
		t.Errorf("POST /payments latency: want a tail regression with a better mean: %s", post.Latency.Summary)
	}
	// No field that only carries ids or timestamps is reported; they are
	// learned as noise.
	noisy := map[string][]string{
		"POST /payments":     {"body.id", "body.created_at", "body.card_last4"},
		"GET /payments/{id}": {"body.fetched_at"},
		"GET /users/{id}":    {"body.request_id"},
	}
	for ep, want := range noisy {
		e := byName[ep]
		var got []string
		for _, f := range e.Noise {
			got = append(got, f.Field)
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: %s not learned as noise (noise: %q)", ep, w, got)
			}
		}
		if ep != "POST /payments" && (len(e.Fields) != 0 || e.Differing != 0) {
			t.Errorf("%s: %d differing exchanges, fields %+v", ep, e.Differing, e.Fields)
		}
	}

	// The text report names the endpoint, the fields and the tail, and no noise.
	top := text[strings.Index(text, "Top differing endpoints"):strings.Index(text, "Latency per endpoint")]
	for _, want := range []string{"1. POST /payments", "status", "201 → 422", "body.error", `"invalid address"`, "TAIL REGRESSION", "although the mean improved"} {
		if !strings.Contains(top, want) {
			t.Errorf("text report lacks %q", want)
		}
	}
	if strings.Contains(top, "2. ") {
		t.Errorf("text report lists more than one differing endpoint")
	}
	for _, noise := range []string{"created_at", "fetched_at", "request_id", "body.id", "card_last4"} {
		if strings.Contains(text, noise) {
			t.Errorf("text report names noise field %s", noise)
		}
	}

	// Metrics: the alert is raised for POST /payments only, verdicts are counted per endpoint.
	testproc.Eventually(t, 60*time.Second, "alert gauge of POST /payments", func() bool {
		return cmpMetricValue(t, cmpMetrics, `mirrorline_comparator_alert{endpoint="POST /payments"}`) == 1
	})
	m := cmpScrape(t, cmpMetrics)
	for _, want := range []string{
		`mirrorline_comparator_exchanges_total{endpoint="POST /payments",verdict="different"}`,
		`mirrorline_comparator_latency_seconds_bucket{side="shadow",le=`,
		`mirrorline_comparator_latency_seconds_bucket{side="secondary",le=`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, `mirrorline_comparator_alert{endpoint="GET`) && !strings.Contains(m, `mirrorline_comparator_alert{endpoint="GET /users/{id}"} 0`) && !strings.Contains(m, `mirrorline_comparator_alert{endpoint="GET /payments/{id}"} 0`) {
		t.Errorf("alert raised for a GET endpoint:\n%s", m)
	}
	if !strings.Contains(cmpOut.String(), "comparator alert: endpoint differs") || !strings.Contains(cmpOut.String(), `endpoint="POST /payments"`) {
		t.Errorf("no alert log line for POST /payments:\n%s", cmpOut)
	}

	// The HTML report, opened in a real browser.
	dom := chromiumDOM(t, htmlPath)
	for _, want := range []string{`data-endpoint="POST /payments"`, `data-field="status"`, `data-field="body.error"`, "tail latency regression", "invalid address"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered HTML report lacks %q", want)
		}
	}
	if c := strings.Count(dom, `class="endpoint"`); c != 1 {
		t.Errorf("rendered HTML report details %d endpoints, want 1", c)
	}
}

func cmpWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runSampledProxy starts the proxy collector capturing a sample of requests.
func runSampledProxy(t *testing.T, cfg broker.Config, service, primary string, sample float64) (string, *collector.Metrics) {
	t.Helper()
	cl, err := broker.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	f, err := collector.NewFilter(sample, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := collector.NewMetrics(prometheus.NewRegistry())
	p, err := proxy.New(primary, collector.NewEmitter(cl, service, m, nil), proxy.WithFilter(f))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })
	return ln.Addr().String(), m
}

// runJobReplayer starts a live replayer of the clean topic into target whose
// shadow records carry replay job job.
func runJobReplayer(t *testing.T, cfg broker.Config, service, group, target, job string) {
	t.Helper()
	s, err := replayer.NewSender(target, 8)
	if err != nil {
		t.Fatal(err)
	}
	l := replayer.NewLive(s, service, replayer.Concurrency(8), replayer.Job(job, job+"-1"))
	cl, err := broker.NewClient(cfg, l.ClientOpts(group, broker.Topic(broker.Clean, service), true)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	serve(t, func(ctx context.Context) error { return l.Run(ctx, cl) })
}

// sendPaymentsTraffic sends n requests of the demo mix (60 % POST /payments
// with synthetic personal data, 40 % of them with a non-ASCII address; 25 %
// GET /payments/{id}; 15 % GET /users/{id}) from 8 clients.
func sendPaymentsTraffic(t *testing.T, base string, n int) {
	t.Helper()
	addresses := []string{
		"Straße des 17. Juni 1, 10623 Berlin", "ul. Piotrkowska 12, 90-001 Łódź", "東京都千代田区丸の内1-1",
		"Ørstedsgade 7, 1400 København", "221B Baker Street, London", "1600 Amphitheatre Pkwy, Mountain View, CA",
		"5 Rue de Rivoli, 75001 Paris", "Calle Mayor 3, 28013 Madrid", "Keizersgracht 123, Amsterdam", "42 Main St, Springfield",
	}
	cards := []string{"4111111111111111", "5555555555554444", "4012888888881881", "5105105105105100"}
	rng := rand.New(rand.NewPCG(5, 5))
	type req struct {
		method, path, body string
	}
	reqs := make([]req, n)
	for i := range reqs {
		switch r := rng.IntN(100); {
		case r < 60:
			reqs[i] = req{"POST", "/payments", fmt.Sprintf(`{"amount":%d,"currency":"EUR","card":{"number":%q,"expiry":"12/29","holder":"Zoë Müller"},"customer":{"id":"c-%d","email":"zoe.mueller@example.com","phone":"+49 30 1234567","address":%q}}`,
				100+rng.IntN(50000), cards[rng.IntN(len(cards))], 100+rng.IntN(900), addresses[rng.IntN(len(addresses))])}
		case r < 85:
			reqs[i] = req{"GET", fmt.Sprintf("/payments/%08x-%04x-4%03x-8%03x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<12), rng.IntN(1<<12), rng.Int64N(1<<48)), ""}
		default:
			reqs[i] = req{"GET", fmt.Sprintf("/users/c-%d?include=profile&email=zoe.mueller%%40example.com", 100+rng.IntN(900)), ""}
		}
	}
	work := make(chan req)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			client := &http.Client{Timeout: 10 * time.Second}
			for r := range work {
				var body io.Reader = http.NoBody
				if r.body != "" {
					body = strings.NewReader(r.body)
				}
				hr, _ := http.NewRequest(r.method, base+r.path, body)
				hr.Header.Set("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYXNlIn0.c2lnbmF0dXJl")
				if r.body != "" {
					hr.Header.Set("Content-Type", "application/json")
				}
				resp, err := client.Do(hr)
				if err != nil {
					errs <- err
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					errs <- fmt.Errorf("%s %s: primary answered %d", r.method, strings.SplitN(r.path, "?", 2)[0], resp.StatusCode)
				}
			}
		})
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func cmpIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// endOffsets sums the end offsets of topic's partitions (-1 on error).
func cmpEndOffsets(adm *kadm.Client, topic string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return -1
	}
	var sum int64
	ends.Each(func(o kadm.ListedOffset) { sum += o.Offset })
	return sum
}

// scrape returns the metrics text of a mirrorline process.
func cmpScrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metricValue is the value of the sample named exactly series, or -1.
func cmpMetricValue(t *testing.T, addr, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(cmpScrape(t, addr), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// chromiumDOM renders file in headless Chromium (Debian package "chromium")
// and returns the DOM; the test is skipped when Chromium is not installed.
func chromiumDOM(t *testing.T, file string) string {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("chromium not installed (apt-get install -y chromium): HTML report not rendered in a browser")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir="+t.TempDir(),
		"--dump-dom", "file://"+file)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --dump-dom: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "</html>") {
		t.Fatalf("chromium rendered no document:\n%s\n%s", stdout.String(), stderr.String())
	}
	return stdout.String()
}
