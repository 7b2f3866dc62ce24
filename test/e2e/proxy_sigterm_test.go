package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// proxyProc is a `mirrorline proxy` process of the test.
type proxyProc struct {
	cmd           *exec.Cmd
	addr, metrics string
	exited        chan error
	stopped       bool
	out           *testproc.Output
}

// startProxyProc starts `mirrorline proxy` in front of primary (with extra
// arguments, if any) and waits until it is ready (listening, Kafka reachable).
// It is killed when the test ends unless the test stopped it.
func startProxyProc(t *testing.T, brokers []string, svc, primary string, extra ...string) *proxyProc {
	t.Helper()
	p := &proxyProc{addr: testproc.FreeAddr(t), metrics: testproc.FreeAddr(t), exited: make(chan error, 1), out: &testproc.Output{}}
	p.cmd = exec.Command(mlBin, append([]string{"proxy", "--service", svc, "--listen", p.addr, "--primary", primary, "--metrics-addr", p.metrics}, extra...)...)
	p.cmd.Env = append(os.Environ(), "MIRRORLINE_BROKERS="+strings.Join(brokers, ","))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.stopped {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("mirrorline proxy output:\n%s", p.out)
		}
	})
	// Ready: listening, and Kafka reachable (so records are not held back by
	// a first connection).
	testproc.Eventually(t, 60*time.Second, "proxy ready", func() bool {
		resp, err := http.Get("http://" + p.metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		c, err := net.Dial("tcp", p.addr)
		if err == nil {
			c.Close()
		}
		return resp.StatusCode == http.StatusOK && err == nil
	})
	return p
}

// signal sends sig and waits (at most a minute) for the process to exit; it
// returns the exit error.
func (p *proxyProc) signal(t *testing.T, sig os.Signal) error {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		p.stopped = true
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("proxy did not exit within 60s of %s", sig)
	}
	return nil
}

// burst sends n GET /PREFIX/i through the proxy from several clients at once
// and fails the test unless every one is answered 200.
func burst(t *testing.T, addr, prefix string, n int) {
	t.Helper()
	const clients = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for i := c; i < n; i += clients {
				resp, err := hc.Get(fmt.Sprintf("http://%s/%s/%d", addr, prefix, i))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("request %d: status %d", i, resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// expectExactly fails the test unless the raw topic of svc holds the n
// exchanges GET /PREFIX/0 .. /PREFIX/n-1, each once.
func expectExactly(t *testing.T, brokers []string, svc, prefix string, n int) {
	t.Helper()
	got := kafkatest.ReadExchanges(t, brokers, "mirror.raw."+svc, n, 60*time.Second)
	var urls []string
	for _, ex := range got {
		urls = append(urls, ex.GetRequest().GetUrl())
	}
	sort.Strings(urls)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("/%s/%d", prefix, i)
	}
	sort.Strings(want)
	if strings.Join(urls, ",") != strings.Join(want, ",") {
		t.Fatalf("raw topic holds %d exchanges, want the %d answered ones exactly once", len(urls), n)
	}
}

// A proxy stopped with SIGTERM right after answering requests publishes every
// one of them before it exits: shutdown drains the requests in flight and
// flushes the producer's queue (what was answered is in Kafka, not lost in
// the queue as with kill -9).
func TestProxySIGTERMFlushesAnsweredCaptures(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	primary := newRecorder(t, http.StatusOK, "ok")
	p := startProxyProc(t, brokers, svc, primary.URL)
	// A burst from several clients, so records are still lingering in the
	// producer's queue when the signal comes.
	const n = 400
	burst(t, p.addr, "sigterm", n)
	// Every request was answered: stop the proxy at once.
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("proxy exit after SIGTERM: %v", err)
	}
	expectExactly(t, brokers, svc, "sigterm", n)
}

// What a kill -9 can lose is what mirrorline_collector_queue_records shows:
// once the gauge reads 0 after the answers, a kill -9 loses nothing.
func TestProxyKillLosesOnlyTheQueue(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	primary := newRecorder(t, http.StatusOK, "ok")
	p := startProxyProc(t, brokers, svc, primary.URL)
	const n = 200
	burst(t, p.addr, "kill", n)
	testproc.Eventually(t, 30*time.Second, "queue gauge 0 and published_total "+fmt.Sprint(n), func() bool {
		resp, err := http.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := string(b)
		return strings.Contains(m, "\nmirrorline_collector_queue_records 0\n") &&
			strings.Contains(m, fmt.Sprintf("\nmirrorline_collector_published_total %d\n", n))
	})
	_ = p.signal(t, syscall.SIGKILL)
	expectExactly(t, brokers, svc, "kill", n)
}
