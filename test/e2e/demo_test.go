package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `make demo` as a newcomer runs it with DEMO_KEEP=1: the script (test/demo/run)
// starts the demo services and `mirrorline up -c examples/demo.yaml`, sends its
// requests, says "demo OK", then prints the embedded broker's address and three
// commands. Each of those commands, run exactly as printed from the repository
// root, exits 0 and prints what it promises. The demo's fixed ports (8080,
// 9464, 18081, 18082) live in a fresh network namespace, so the test clashes
// with nothing on the host.
func TestDemoKeepBanner(t *testing.T) {
	ns := newNetns(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skipf("the demo script needs curl: %v", err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skipf("the demo script needs python3: %v", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Dir(mlBin) // the demo's BIN: mirrorline, payments, gateway, load
	for _, p := range []string{"payments", "gateway", "load"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(bin, p), "github.com/mirrorline/mirrorline/test/demo/"+p).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", p, err, out)
		}
	}

	demo := exec.Command("nsenter", "--net="+ns.path, "--", "bash", "test/demo/run")
	demo.Dir = root
	demo.Env = append(os.Environ(), "BIN="+bin, "DEMO_KEEP=1", "DEMO_REQUESTS=40", "DEMO_RATE=200",
		"MIRRORLINE_BROKERS=", "MIRRORLINE_SERVICE=")
	demo.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	demo.Stderr = stderr
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	t.Cleanup(func() {
		// The script's trap stops everything it started on SIGTERM; the
		// process group is killed too if it does not within 30 s.
		_ = demo.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-demo.Process.Pid, syscall.SIGKILL)
			<-done
			t.Errorf("the demo did not stop on SIGTERM")
		}
	})

	// Read the script's output until the three commands are printed.
	lines := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- demo.Wait()
	}()
	var seen []string
	var ok, isolated bool
	var kafka string
	var cmds []string
	timeout := time.After(4 * time.Minute)
	for len(cmds) < 3 {
		select {
		case l, open := <-lines:
			if !open {
				t.Fatalf("the demo ended before printing its commands:\n%s\nstderr:\n%s", strings.Join(seen, "\n"), stderr)
			}
			seen = append(seen, l)
			switch {
			case strings.Contains(l, "demo OK"):
				ok = true
			case strings.TrimSpace(l) == "card gateway calls from the shadow:  0":
				isolated = true
			case strings.HasPrefix(l, "embedded Kafka:"):
				kafka = strings.Fields(strings.TrimPrefix(l, "embedded Kafka:"))[0]
			case strings.HasPrefix(l, "  "+bin+"/mirrorline "):
				cmds = append(cmds, strings.TrimSpace(l))
			}
		case <-timeout:
			t.Fatalf("no DEMO_KEEP banner within 4 min:\n%s\nstderr:\n%s", strings.Join(seen, "\n"), stderr)
		}
	}
	if !ok {
		t.Fatalf("the demo printed its banner without \"demo OK\":\n%s", strings.Join(seen, "\n"))
	}
	if !isolated {
		t.Errorf("the demo does not show 0 card gateway calls from the shadow:\n%s", strings.Join(seen, "\n"))
	}
	if !strings.Contains(strings.Join(seen, "\n"), "body.amount_cents") {
		t.Errorf("the demo's report does not show v2's downstream difference (body.amount_cents):\n%s", strings.Join(seen, "\n"))
	}
	if kafka == "" {
		t.Fatalf("the banner names no embedded Kafka address:\n%s", strings.Join(seen, "\n"))
	}

	// Each command as printed: from the repository root, in the demo's
	// network namespace, with none of the test's MIRRORLINE_ settings.
	wants := map[string]string{"lag": "mirrorline-", "compare": "same", "replay": "dry run"}
	for _, c := range cmds {
		if !strings.Contains(c, kafka) {
			t.Errorf("printed command %q does not name the embedded broker %s", c, kafka)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		run := exec.CommandContext(ctx, "nsenter", "--net="+ns.path, "--", "sh", "-c", c)
		run.Dir = root
		run.Env = append(os.Environ(), "MIRRORLINE_BROKERS=", "MIRRORLINE_SERVICE=")
		out, err := run.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s: %v\n%s", c, err, out)
			continue
		}
		sub := strings.Fields(c)[1]
		if w := wants[sub]; w != "" && !strings.Contains(strings.ToLower(string(out)), w) {
			t.Errorf("%s: output lacks %q:\n%s", c, w, out)
		}
	}
}
