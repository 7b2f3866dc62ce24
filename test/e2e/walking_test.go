package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// sent is one request as the test client sent it.
type sent struct {
	method, uri string
	header      http.Header
	body        []byte
}

func makeRequests(n int, seed uint64) []sent {
	rng := rand.New(rand.NewPCG(seed, seed))
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE", "GET"}
	paths := []string{"/payments", "/payments/42", "/users/7/profile", "/search", "/a%2Fb/c", "/%C3%BCmlaut/ok"}
	out := make([]sent, n)
	for i := range out {
		m := methods[rng.IntN(len(methods))]
		s := sent{method: m, header: http.Header{}}
		s.uri = paths[rng.IntN(len(paths))] + fmt.Sprintf("?seq=%d&q=%s&empty=", i, []string{"a+b", "x%20y", "%E2%9C%93", "plain"}[rng.IntN(4)])
		s.header.Set("X-Test-Seq", strconv.Itoa(i))
		s.header.Set("X-Tenant", fmt.Sprintf("t-%d", rng.IntN(5)))
		s.header["X-Multi"] = []string{"one", "two"}
		s.header.Set("Accept", "application/json")
		if rng.IntN(2) == 0 {
			// hop-by-hop: must not reach the shadow
			s.header.Set("Connection", "keep-alive, X-Hop")
			s.header.Set("X-Hop", "hop-value")
			s.header.Set("Keep-Alive", "timeout=5")
		}
		if m != "GET" && m != "DELETE" {
			size := rng.IntN(4096)
			b := make([]byte, size)
			for j := range b {
				b[j] = byte(rng.IntN(256))
			}
			s.body = b
			s.header.Set("Content-Type", "application/octet-stream")
		}
		out[i] = s
	}
	return out
}

// The walking skeleton: 2,000 requests through the proxy, captured to a real
// Kafka, replayed live into a shadow; every one arrives exactly as sent.
func TestProxyToShadowThroughKafka(t *testing.T) {
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 4)
	primary := newRecorder(t, http.StatusOK, "primary")
	shadow := newRecorder(t, http.StatusAccepted, "shadow")

	proxyAddr, pm := runProxy(t, cfg, svc, primary.URL)
	// The redactor is a stage of its own; this scenario reads the raw topic.
	rm := runLive(t, cfg, svc, broker.Topic(broker.Raw, svc), "e2e-"+svc, shadow.URL)

	const n = 2000
	reqs := makeRequests(n, 42)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := range work {
				s := reqs[i]
				req, _ := http.NewRequest(s.method, "http://"+proxyAddr+s.uri, bytes.NewReader(s.body))
				if len(s.body) == 0 {
					req.Body = http.NoBody
				}
				req.Header = s.header.Clone()
				resp, err := client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(b) != "primary" {
					errs <- fmt.Errorf("request %d: client got %d %q, want the primary's answer", i, resp.StatusCode, b)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	deadline := time.After(90 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-shadow.got:
		case <-deadline:
			t.Fatalf("shadow got %d of %d requests within 90s; proxy captured %v, published %v, dropped %s; replayer sent %s",
				i, n, testutil.ToFloat64(pm.Captured), testutil.ToFloat64(pm.Published), counts(pm.Dropped), counts(rm.Sent))
		}
	}
	got := shadow.requests()
	if len(got) != n {
		t.Fatalf("shadow got %d requests, want %d", len(got), n)
	}
	bySeq := map[int]seen{}
	for _, g := range got {
		seq, err := strconv.Atoi(g.Header.Get("X-Test-Seq"))
		if err != nil {
			t.Fatalf("shadow request without X-Test-Seq: %v", g.Header)
		}
		if _, dup := bySeq[seq]; dup {
			t.Fatalf("request %d replayed twice", seq)
		}
		bySeq[seq] = g
	}
	shadowHost := shadow.Listener.Addr().String()
	for i, s := range reqs {
		g, ok := bySeq[i]
		if !ok {
			t.Fatalf("request %d never reached the shadow", i)
		}
		if g.Method != s.method || g.URI != s.uri || !bytes.Equal(g.Body, s.body) {
			t.Fatalf("request %d: shadow got %s %s (%d bytes), sent %s %s (%d bytes)", i, g.Method, g.URI, len(g.Body), s.method, s.uri, len(s.body))
		}
		if g.Host != shadowHost {
			t.Fatalf("request %d: Host %q, want the target's %q", i, g.Host, shadowHost)
		}
		want := s.header.Clone()
		for _, h := range []string{"Connection", "Keep-Alive", "X-Hop"} {
			want.Del(h)
		}
		want.Set("User-Agent", "Go-http-client/1.1")
		if len(s.body) > 0 || s.method == "POST" || s.method == "PUT" || s.method == "PATCH" {
			// as the client sent it
			want.Set("Content-Length", strconv.Itoa(len(s.body)))
		}
		want.Set("Accept-Encoding", "gzip") // the Go client of this test adds it
		if g.Header.Get(replayer.HeaderShadow) != "true" || g.Header.Get(replayer.HeaderID) == "" {
			t.Fatalf("request %d: shadow headers missing: %v", i, g.Header)
		}
		have := g.Header.Clone()
		have.Del(replayer.HeaderShadow)
		have.Del(replayer.HeaderID)
		// The trace context the proxy gave the primary reaches the shadow
		// too: the exchange id in tracestate, a trace the proxy started.
		idHex := strings.ReplaceAll(g.Header.Get(replayer.HeaderID), "-", "")
		want.Set("Tracestate", "mirrorline="+idHex)
		if tp := have.Get("Traceparent"); !strings.HasPrefix(tp, "00-"+idHex+"-") {
			t.Fatalf("request %d: traceparent %q, want the trace the proxy started", i, tp)
		}
		want.Set("Traceparent", have.Get("Traceparent"))
		if !equalHeaders(have, want) {
			t.Fatalf("request %d headers:\n got  %v\n want %v", i, have, want)
		}
	}
	if got := rm.Sent.WithLabelValues("2xx"); got == nil {
		t.Fatal("no sent metric")
	}
	// The shadow's responses are published for the comparator.
	shadowRecs := kafkatest.ReadExchanges(t, cfg.Brokers, broker.Topic(broker.Shadow, svc), n, 30*time.Second)
	ids := map[string]bool{}
	for _, ex := range shadowRecs {
		if ex.Response.GetStatus() != http.StatusAccepted || string(ex.Response.GetBody()) != "shadow" || ex.Replay.GetTarget() != shadow.URL {
			t.Fatalf("shadow record %s: status %d body %q target %q", ex.Id, ex.Response.GetStatus(), ex.Response.GetBody(), ex.Replay.GetTarget())
		}
		ids[ex.Id] = true
	}
	if len(ids) != n {
		t.Fatalf("%d distinct exchange ids on the shadow topic, want %d", len(ids), n)
	}
}

func equalHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// counts renders a counter vector's series as label values = value, for a
// failure message.
func counts(c prometheus.Collector) string {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var out []string
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			continue
		}
		var labels []string
		for _, l := range d.GetLabel() {
			labels = append(labels, l.GetName()+"="+l.GetValue())
		}
		out = append(out, fmt.Sprintf("{%s} %v", strings.Join(labels, ","), d.GetCounter().GetValue()))
	}
	slices.Sort(out)
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}
