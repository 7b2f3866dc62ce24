package containers

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// image is the mirrorline image the tests run (deploy/local/images builds it).
const image = "mirrorline/mirrorline:dev"

var (
	engineOnce sync.Once
	engineErr  string
	builtMu    sync.Mutex
	built      = map[string]string{} // image set -> error ("" once built)
)

// root returns the repository's root directory.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// requireEngine skips t, with a one-line reason, unless a Docker engine
// answers.
func requireEngine(t *testing.T) {
	t.Helper()
	engineOnce.Do(func() {
		if _, err := exec.LookPath("docker"); err != nil {
			engineErr = "no docker client on PATH"
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
		if err != nil {
			engineErr = "no Docker engine answers (test/deps can install and start one): " + firstLine(string(out))
		}
	})
	if engineErr != "" {
		t.Skip(engineErr)
	}
}

// buildImages runs deploy/local/images for what (once per process and set)
// and fails t if it cannot.
func buildImages(t *testing.T, what ...string) {
	t.Helper()
	key := strings.Join(what, " ")
	builtMu.Lock()
	defer builtMu.Unlock()
	errText, done := built[key]
	if !done {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root(), "deploy", "local", "images"), what...)
		cmd.Dir = root()
		out, err := cmd.CombinedOutput()
		if err != nil {
			errText = "deploy/local/images " + key + ": " + err.Error() + "\n" + string(out)
		}
		built[key] = errText
	}
	if errText != "" {
		t.Fatal(errText)
	}
}

// docker runs the docker client with args and returns its trimmed stdout,
// failing t (with stderr) if it fails.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerOut(args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// dockerOut runs the docker client with args (two minutes at most) and
// returns its trimmed stdout; the error carries stderr.
func dockerOut(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", &cmdError{err: err, stderr: stderr.String()}
	}
	return strings.TrimSpace(string(out)), nil
}

type cmdError struct {
	err    error
	stderr string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

// removeContainer removes the container name (running or not) when t ends,
// logging its last output lines if t failed.
func removeContainer(t *testing.T, name string) {
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := exec.Command("docker", "logs", "--tail", "30", name).CombinedOutput(); err == nil {
				t.Logf("last lines of container %s:\n%s", name, out)
			}
		}
		if _, err := dockerOut("rm", "-f", "-v", name); err != nil {
			t.Errorf("remove container %s: %v", name, err)
		}
	})
}

// processUID returns the real uid of the process pid (on this host).
func processUID(pid string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			return f[1], nil
		}
	}
	return "", os.ErrNotExist
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
