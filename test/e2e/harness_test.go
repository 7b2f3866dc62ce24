package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/replayer"
)

// seen is one request as a server received it.
type seen struct {
	Method string
	URI    string
	Host   string
	Header http.Header
	Body   []byte
}

// recorder is an HTTP server that records every request it gets.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
	got  chan struct{}
}

func newRecorder(t *testing.T, status int, answer string) *recorder {
	t.Helper()
	rec := &recorder{got: make(chan struct{}, 1<<16)}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read body: %v", err)
		}
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: b})
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
		rec.got <- struct{}{}
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) requests() []seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seen(nil), r.reqs...)
}

// runProxy starts the proxy collector in front of primary, publishing to cfg.
func runProxy(t *testing.T, cfg broker.Config, service, primary string, kopts ...kgo.Opt) (addr string, m *collector.Metrics) {
	t.Helper()
	cl, err := broker.NewClient(cfg, kopts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	m = collector.NewMetrics(prometheus.NewRegistry())
	p, err := proxy.New(primary, collector.NewEmitter(cl, service, m, nil))
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

// runLive starts a live replayer of topic into target in group.
func runLive(t *testing.T, cfg broker.Config, service, topic, group, target string) *replayer.Metrics {
	t.Helper()
	s, err := replayer.NewSender(target, 16)
	if err != nil {
		t.Fatal(err)
	}
	m := replayer.NewMetrics(prometheus.NewRegistry())
	l := replayer.NewLive(s, service, replayer.WithMetrics(m), replayer.Concurrency(16))
	cl, err := broker.NewClient(cfg, l.ClientOpts(group, topic, true)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	serve(t, func(ctx context.Context) error { return l.Run(ctx, cl) })
	return m
}

// serve runs fn until the test ends and fails the test if fn fails.
func serve(t *testing.T, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stage stopped with error: %v", err)
		}
	})
}

// runRedactor starts the redactor stage (safe default rules) for service.
func runRedactor(t *testing.T, cfg broker.Config, service string) *redactor.Metrics {
	t.Helper()
	engine, err := redactor.NewEngine(redactor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, redactor.SessionOpts(service, redactor.DefaultGroup(service), "txn-"+service)...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	m := redactor.NewMetrics(prometheus.NewRegistry())
	p, err := redactor.NewProcessor(sess, engine, service, redactor.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, p.Run)
	return m
}
