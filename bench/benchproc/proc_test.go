package benchproc

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary be its own role child, as the benchmark
// programs are: "role echo" serves the payments answers.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "role" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		Lifeline(cancel)
		os.Exit(ServeRole(ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			WriteAnswer(w, r, "echo")
		})))
	}
	os.Exit(m.Run())
}

// A role child prints its address, serves the payments answers, and ends
// when the harness stops it.
func TestStartRole(t *testing.T) {
	r, addr, err := StartRole(t.TempDir(), "echo", "echo")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Post("http://"+addr+"/payments", "application/json", strings.NewReader(PaymentJSON))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(b) != PostAnswer || resp.Header.Get("X-Served-By") != "echo" {
		t.Fatalf("POST answered %d %q (served by %q)", resp.StatusCode, b, resp.Header.Get("X-Served-By"))
	}
	r.Stop()
	if !r.Exited() {
		t.Fatal("role still running after Stop")
	}
}

// Stop ends the whole process group (a shell and its child), and
// WaitListening reports a child that exits instead of listening.
func TestStopAndWaitListening(t *testing.T) {
	dir := t.TempDir()
	p, err := Start(dir, "sh", "sh", "-c", "sleep 60 & wait")
	if err != nil {
		t.Skip("no sh:", err)
	}
	pgid := p.PID()
	p.Stop()
	if !p.Exited() {
		t.Fatal("child still running after Stop")
	}
	var left bool
	for i := 0; i < 200; i++ { // bounded: the orphaned sleep may take a moment to be reaped
		if _, err := GroupUsage(pgid); err != nil {
			left = false
			break
		}
		left = true
		time.Sleep(10 * time.Millisecond) // poll interval of a bounded wait
	}
	if left {
		t.Fatalf("process group %d still has processes after Stop", pgid)
	}

	q, err := Start(dir, "false", "sh", "-c", "echo no listener; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop()
	addr, err := FreeAddr("tcp")
	if err != nil {
		t.Fatal(err)
	}
	err = WaitListening(context.Background(), q, addr, 30*time.Second)
	if err == nil || !strings.Contains(err.Error(), "false exited") || !strings.Contains(err.Error(), "no listener") {
		t.Fatalf("WaitListening = %v, want the child's exit and its log", err)
	}
}
