package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/h1client"
)

// The benchmarks below put the proxy where a client sees it: a real loopback
// server (Serve: connection tracking, limits) in front of a real loopback
// primary, a keep-alive client reading each answer whole. Their ns/op is the
// client's round trip; their allocs/op and B/op count client and primary too
// (the same in both), so the difference between BenchmarkProxyHandler and
// BenchmarkReverseProxy is what the proxy adds. BenchmarkProxyVsReverseProxy
// alternates the two request by request and reports the ratios, which load
// on a shared machine moves far less than either figure alone.

// loopbackPrimary answers like a small JSON API.
func loopbackPrimary(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(benchAnswer)))
		w.Header().Set("X-Request-Id", "7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b")
		_, _ = io.WriteString(w, benchAnswer)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// serveBench serves on a loopback listener until the benchmark ends.
func serveBench(b *testing.B, serve func(context.Context, net.Listener) error) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// proxyFront is mirrorline's proxy, capturing every request into a producer
// that accepts it.
func proxyFront(b *testing.B, primary string) (string, *acceptProducer) {
	prod := &acceptProducer{}
	em := collector.NewEmitter(prod, "payments", nil, nil)
	b.Cleanup(func() { _ = em.Close(context.Background()) })
	p, err := New(primary, em, WithCollectorID("bench"))
	if err != nil {
		b.Fatal(err)
	}
	return serveBench(b, p.Serve), prod
}

// reverseProxyFront is a plain httputil.ReverseProxy with the transport
// settings of mirrorline's proxy, and no capture.
func reverseProxyFront(b *testing.B, primary string) string {
	return rpFront(b, primary, &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, ForceAttemptHTTP2: true})
}

// directRPFront is reverseProxyFront over h1client.Transport.
func directRPFront(b *testing.B, primary string) string {
	return rpFront(b, primary, h1client.New(&http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second},
		(&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext))
}

// rpFront serves a plain httputil.ReverseProxy to primary over rt.
func rpFront(b *testing.B, primary string, rt http.RoundTripper) string {
	u, _ := url.Parse(primary)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: rt,
	}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	return serveBench(b, func(ctx context.Context, ln net.Listener) error {
		go func() { <-ctx.Done(); _ = srv.Close() }()
		if err := srv.Serve(ln); err != http.ErrServerClosed {
			return err
		}
		return nil
	})
}

// roundTrip sends one benchmark request to base and reads the answer whole.
func roundTrip(b *testing.B, hc *http.Client, base string, post bool) {
	var req *http.Request
	if post {
		req, _ = http.NewRequest(http.MethodPost, base+"/v1/payments?expand=customer", strings.NewReader(benchBody))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, _ = http.NewRequest(http.MethodGet, base+"/v1/payments/p-1?expand=card", nil)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
	req.Header.Set("Authorization", "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || n != int64(len(benchAnswer)) {
		b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
	}
}

func benchClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

var loopbackCases = []struct {
	name string
	post bool
}{{"GET", false}, {"POST-1KB", true}}

// BenchmarkProxyHandler is one request through mirrorline's proxy on
// loopback, captured.
func BenchmarkProxyHandler(b *testing.B) {
	primary := loopbackPrimary(b)
	for _, tc := range loopbackCases {
		b.Run(tc.name, func(b *testing.B) {
			base, prod := proxyFront(b, primary.URL)
			hc := benchClient(b)
			roundTrip(b, hc, base, tc.post) // the connections, outside the figures
			b.ReportAllocs()
			for b.Loop() {
				roundTrip(b, hc, base, tc.post)
			}
			if prod.records.Load() == 0 {
				b.Fatal("nothing was captured")
			}
		})
	}
}

// BenchmarkReverseProxy is the same request through a plain Go
// httputil.ReverseProxy on loopback.
func BenchmarkReverseProxy(b *testing.B) {
	primary := loopbackPrimary(b)
	for _, tc := range loopbackCases {
		b.Run(tc.name, func(b *testing.B) {
			base := reverseProxyFront(b, primary.URL)
			hc := benchClient(b)
			roundTrip(b, hc, base, tc.post)
			b.ReportAllocs()
			for b.Loop() {
				roundTrip(b, hc, base, tc.post)
			}
		})
	}
}

// BenchmarkProxyVsReverseProxy alternates requests through mirrorline's proxy
// and the plain ReverseProxy (A B A B ...) and reports the ratios of their
// median and 99th percentile round trips (proxy/rp: 1.10 is 10 % slower).
func BenchmarkProxyVsReverseProxy(b *testing.B) {
	alternate(b, "proxy/rp", func(b *testing.B, primary string) string {
		base, _ := proxyFront(b, primary)
		return base
	}, reverseProxyFront)
}

// BenchmarkDirectVsReverseProxy is the same with a plain ReverseProxy over
// h1client.Transport as A: what the transport alone changes.
func BenchmarkDirectVsReverseProxy(b *testing.B) {
	alternate(b, "direct/rp", directRPFront, reverseProxyFront)
}

// alternate sends each case's request through the fronts a and b in turn
// and reports the ratios of their median and 99th percentile round trips.
func alternate(b *testing.B, unit string, a, c func(*testing.B, string) string) {
	primary := loopbackPrimary(b)
	for _, tc := range loopbackCases {
		b.Run(tc.name, func(b *testing.B) {
			abase, cbase := a(b, primary.URL), c(b, primary.URL)
			hc := benchClient(b)
			roundTrip(b, hc, abase, tc.post)
			roundTrip(b, hc, cbase, tc.post)
			var at, ct []time.Duration
			for b.Loop() {
				t0 := time.Now()
				roundTrip(b, hc, abase, tc.post)
				t1 := time.Now()
				roundTrip(b, hc, cbase, tc.post)
				at, ct = append(at, t1.Sub(t0)), append(ct, time.Since(t1))
			}
			slices.Sort(at)
			slices.Sort(ct)
			q := func(d []time.Duration, f float64) float64 { return float64(d[int(f*float64(len(d)-1))]) }
			b.ReportMetric(q(at, 0.5)/q(ct, 0.5), "p50-"+unit)
			b.ReportMetric(q(at, 0.99)/q(ct, 0.99), "p99-"+unit)
		})
	}
}
