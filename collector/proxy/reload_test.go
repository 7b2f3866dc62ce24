package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
)

func mustPolicy(t *testing.T, sample float64, routes []collector.Route, bodyLimit int64) *collector.Policy {
	t.Helper()
	p, err := collector.NewPolicy(sample, routes, bodyLimit)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Reloads swapped in while requests run on keep-alive connections: every
// request is captured under one policy, old or new, never a mix (its request
// and response bodies are cut at the same limit), no request fails, and the
// policy in force afterwards is the last one stored.
func TestProxyReloadIsAtomicPerRequest(t *testing.T) {
	body := strings.Repeat("x", 64)
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(primary.Close)
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	em := collector.NewEmitter(rec, "svc", m, nil)
	p, err := New(primary.URL, em, WithBodyLimit(8))
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, p.Serve)
	policies := []*collector.Policy{mustPolicy(t, 1, nil, 8), mustPolicy(t, 1, nil, 16)}

	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	var sent atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer hc.CloseIdleConnections()
			for !stop.Load() {
				resp, err := hc.Post("http://"+addr+"/x", "text/plain", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
				sent.Add(1)
			}
		}()
	}
	for i := 0; i < 2000 || sent.Load() < 500; i++ {
		p.Reload(policies[i%2])
		if len(errs) > 0 {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if int64(len(exs)) != sent.Load() {
		t.Fatalf("%d exchanges captured of %d requests at sample 1", len(exs), sent.Load())
	}
	seen := map[int]int{}
	for _, ex := range exs {
		req, resp := len(ex.GetRequest().GetBody()), len(ex.GetResponse().GetBody())
		if req != resp || (req != 8 && req != 16) {
			t.Fatalf("request body cut at %d, response body at %d: want both at the same policy's limit (8 or 16)", req, resp)
		}
		seen[req]++
	}
	if seen[8] == 0 || seen[16] == 0 {
		t.Logf("limits seen %v: the reloads did not interleave with requests", seen)
	}
	p.Reload(mustPolicy(t, 0.5, []collector.Route{{Name: "api", PathPrefix: "/api"}}, 4))
	if got := testutil.ToFloat64(m.SampleRatio.WithLabelValues("proxy", "api")); got != 0.5 {
		t.Fatalf("sample_ratio{proxy,api} = %v after reload, want 0.5", got)
	}
	if got := p.Policy().BodyLimit(); got != 4 {
		t.Fatalf("body limit in force %d, want 4", got)
	}
}

// A reload changes what is captured from the next request on, on the same
// keep-alive connection.
func TestProxyReloadSampleOnOpenConnection(t *testing.T) {
	primary := startPrimary(t)
	rec := &collectortest.Recorder{}
	m := collector.NewMetrics(prometheus.NewRegistry())
	f, err := collector.NewFilter(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	em := collector.NewEmitter(rec, "svc", m, nil)
	p, err := New(primary.URL, em, WithFilter(f))
	if err != nil {
		t.Fatal(err)
	}
	addr := collectortest.Serve(t, p.Serve)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer hc.CloseIdleConnections()
	get := func(path string) {
		t.Helper()
		resp, err := hc.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for i := range 10 {
		get(fmt.Sprintf("/before/%d", i))
	}
	p.Reload(mustPolicy(t, 1, nil, collector.DefaultBodyLimit))
	for i := range 10 {
		get(fmt.Sprintf("/after/%d", i))
	}
	collectortest.Flush(t, em)
	exs := rec.Exchanges(t)
	if len(exs) != 10 {
		t.Fatalf("%d captured, want the 10 after the reload", len(exs))
	}
	for _, ex := range exs {
		if !strings.HasPrefix(ex.GetRequest().GetUrl(), "/after/") || ex.GetSequence() <= 10 {
			t.Fatalf("captured %s (sequence %d): want only /after/ requests, on the connection opened before the reload", ex.GetRequest().GetUrl(), ex.GetSequence())
		}
	}
}
