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

// A proxy stopped with SIGTERM right after answering requests publishes every
// one of them before it exits: shutdown drains the requests in flight and
// flushes the producer's queue (what was answered is in Kafka, not lost in
// the queue as with kill -9).
func TestProxySIGTERMFlushesAnsweredCaptures(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	primary := newRecorder(t, http.StatusOK, "ok")

	proxyAddr, metricsAddr := testproc.FreeAddr(t), testproc.FreeAddr(t)
	cmd := exec.Command(mlBin, "proxy", "--service", svc, "--listen", proxyAddr, "--primary", primary.URL, "--metrics-addr", metricsAddr)
	cmd.Env = append(os.Environ(), "MIRRORLINE_BROKERS="+strings.Join(brokers, ","))
	out := &testproc.Output{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("mirrorline proxy output:\n%s", out)
		}
	})
	// Ready: listening, and Kafka reachable (so records are not held back by
	// a first connection).
	eventually(t, 60*time.Second, "proxy ready", func() bool {
		resp, err := http.Get("http://" + metricsAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		c, err := net.Dial("tcp", proxyAddr)
		if err == nil {
			c.Close()
		}
		return resp.StatusCode == http.StatusOK && err == nil
	})

	// A burst from several clients, so records are still lingering in the
	// producer's queue when the signal comes.
	const n, clients = 400, 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for i := c; i < n; i += clients {
				resp, err := hc.Get(fmt.Sprintf("http://%s/sigterm/%d", proxyAddr, i))
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
	// Every request was answered: stop the proxy at once.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("proxy exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("proxy did not exit within 60s of SIGTERM")
	}

	got := kafkatest.ReadExchanges(t, brokers, "mirror.raw."+svc, n, 60*time.Second)
	var urls []string
	for _, ex := range got {
		urls = append(urls, ex.GetRequest().GetUrl())
	}
	sort.Strings(urls)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("/sigterm/%d", i)
	}
	sort.Strings(want)
	if strings.Join(urls, ",") != strings.Join(want, ",") {
		t.Fatalf("raw topic holds %d exchanges, want the %d answered ones exactly once", len(urls), n)
	}
}
