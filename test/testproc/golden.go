package testproc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Golden compares got with the golden file at path, byte for byte, and
// fails the test naming the first line that differs. With update it
// rewrites the file instead (creating its directory); a test package passes
// its own -update flag:
//
//	var update = flag.Bool("update", false, "rewrite golden files")
//
// and `go test ./pkg -run TestX -update` refreshes the files, which are
// then reviewed as part of the change.
func Golden(tb testing.TB, path string, got []byte, update bool) {
	tb.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatalf("update golden file: %v", err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			tb.Fatalf("update golden file: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("read golden file (run the test with -update to create it): %v", err)
	}
	if bytes.Equal(got, want) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	line := 0
	for line < len(gl) && line < len(wl) && gl[line] == wl[line] {
		line++
	}
	at := func(ls []string) string {
		if line < len(ls) {
			return ls[line]
		}
		return "(end of output)"
	}
	tb.Fatalf("output differs from %s at line %d (if the change is intended, rerun with -update and review the diff):\n got: %q\nwant: %q\nfull output:\n%s",
		path, line+1, at(gl), at(wl), got)
}
