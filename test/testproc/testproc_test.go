package testproc

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	var n atomic.Int32
	if !Wait(30*time.Second, func() bool { return n.Add(1) >= 5 }) {
		t.Fatal("a condition that comes true within the timeout was reported false")
	}
	if got := n.Load(); got != 5 {
		t.Fatalf("cond ran %d times, want 5 (polling stops once it holds)", got)
	}
	start := time.Now()
	if Wait(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds was reported true")
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Fatal("Wait gave up before its timeout")
	}
	// The deadline check runs cond one last time.
	var calls atomic.Int32
	if !Wait(0, func() bool { return calls.Add(1) == 2 }) {
		t.Fatal("a condition true at the final check was reported false")
	}
}

func TestWaitEvery(t *testing.T) {
	var n atomic.Int32
	start := time.Now()
	if !WaitEvery(30*time.Second, 20*time.Millisecond, func() bool { return n.Add(1) >= 8 }) {
		t.Fatal("a condition that comes true within the timeout was reported false")
	}
	// 1+2+4+8+16 ms of backoff, then 20 ms pauses: at least 71 ms for 8 checks.
	if took := time.Since(start); took < 71*time.Millisecond {
		t.Fatalf("8 checks took %s; the pause is not capped at 20 ms but shorter", took)
	}
}

// fatalTB records Fatalf instead of stopping the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper()                           {}
func (f *fatalTB) Fatalf(format string, args ...any) { f.msg = fmt.Sprintf(format, args...) }

func TestEventually(t *testing.T) {
	f := &fatalTB{TB: t}
	Eventually(f, 10*time.Millisecond, "the thing", func() bool { return false })
	if !strings.Contains(f.msg, "the thing") || !strings.Contains(f.msg, "10ms") {
		t.Fatalf("failure message %q names neither what nor the timeout", f.msg)
	}
	f.msg = ""
	EventuallyEvery(f, 10*time.Millisecond, time.Millisecond, "the other thing", func() bool { return false })
	if !strings.Contains(f.msg, "the other thing") || !strings.Contains(f.msg, "10ms") {
		t.Fatalf("failure message %q names neither what nor the timeout", f.msg)
	}
	f.msg = ""
	Eventually(f, 30*time.Second, "ok", func() bool { return true })
	if f.msg != "" {
		t.Fatalf("a condition that holds failed the test: %q", f.msg)
	}
}

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "testdata", "x.golden")
	f := &fatalTB{TB: t}
	Golden(f, path, []byte("a\nb\n"), true)
	if f.msg != "" {
		t.Fatalf("update: %s", f.msg)
	}
	Golden(f, path, []byte("a\nb\n"), false)
	if f.msg != "" {
		t.Fatalf("same bytes reported different: %s", f.msg)
	}
	Golden(f, path, []byte("a\nc\n"), false)
	if !strings.Contains(f.msg, "line 2") || !strings.Contains(f.msg, `"c"`) || !strings.Contains(f.msg, `"b"`) {
		t.Fatalf("a difference at line 2 reported as %q", f.msg)
	}
	f.msg = ""
	Golden(f, path+".missing", []byte("a"), false)
	if !strings.Contains(f.msg, "-update") {
		t.Fatalf("a missing golden file reported as %q", f.msg)
	}
}

// FreeAddr never returns an address twice in one process, however often the
// kernel offers a port just released.
func TestFreeAddrNeverTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 500 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("%s returned twice", a)
		}
		seen[a] = true
	}
}
