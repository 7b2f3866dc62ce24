// Package ops tests the deployment artefacts under deploy/: the Helm chart
// (rendered, validated offline with kubeconform against the official Kubernetes
// and KEDA schemas, and checked for the properties operators rely on), the
// docker-compose file, the Prometheus rules (promtool) and the Grafana
// dashboard. Every mirrorline command and flag they use must exist in the
// binary built from this tree.
package ops

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/testproc"
)

var (
	mlBin string
	root  string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	bin, dir, err := testproc.BuildMirrorline("mirrorline-ops")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mlBin = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoPath(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }

// Tools are the pinned tools and schema sources of test/ops/tools.
type Tools struct {
	Helm, Kubeconform, K8sOpenAPI, KedaCRDs string
	Versions                                map[string]string
}

var (
	toolsOnce sync.Once
	tools     Tools
	toolsErr  error
)

// getTools runs test/ops/tools once (it installs what is missing from the Go
// module proxy; the first run compiles helm, about a minute and a half).
func getTools(t *testing.T) Tools {
	t.Helper()
	toolsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, repoPath("test", "ops", "tools"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			toolsErr = fmt.Errorf("test/ops/tools: %v\n%s", err, stderr.String())
			return
		}
		tools.Versions = map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), "=")
			if !ok {
				continue
			}
			switch k {
			case "HELM":
				tools.Helm = v
			case "KUBECONFORM":
				tools.Kubeconform = v
			case "K8S_OPENAPI":
				tools.K8sOpenAPI = v
			case "KEDA_CRDS":
				tools.KedaCRDs = v
			default:
				tools.Versions[k] = v
			}
		}
		if tools.Helm == "" || tools.Kubeconform == "" || tools.K8sOpenAPI == "" || tools.KedaCRDs == "" {
			toolsErr = fmt.Errorf("test/ops/tools printed an incomplete list:\n%s", out)
		}
	})
	if toolsErr != nil {
		t.Fatal(toolsErr)
	}
	return tools
}

// run runs a command with a time bound and returns its combined output.
func run(t *testing.T, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cliFlags is what `mirrorline <command> --help` says a command accepts.
type cliFlags struct {
	exists bool
	flags  map[string]bool
}

var (
	cliMu    sync.Mutex
	cliCache = map[string]cliFlags{}
	flagRE   = regexp.MustCompile(`(?m)^\s+(?:-([A-Za-z0-9]), )?--([a-z0-9][a-z0-9-]*)`)
)

// pendingCommands are commands of the contract being written while this test was: the
// artefacts may already use them; their flags are checked once the binary has them.
var pendingCommands = map[string]bool{"compare": true, "ebpf": true, "vpc": true, "import": true}

func mirrorlineFlags(t *testing.T, command []string) cliFlags {
	t.Helper()
	key := strings.Join(command, " ")
	cliMu.Lock()
	defer cliMu.Unlock()
	if f, ok := cliCache[key]; ok {
		return f
	}
	out, err := run(t, root, mlBin, append(append([]string{}, command...), "--help")...)
	f := cliFlags{flags: map[string]bool{}}
	if err == nil && !strings.Contains(out, "unknown command") {
		f.exists = true
		for _, m := range flagRE.FindAllStringSubmatch(out, -1) {
			if m[1] != "" {
				f.flags["-"+m[1]] = true
			}
			f.flags["--"+m[2]] = true
		}
	}
	cliCache[key] = f
	return f
}

// subcommandLen is how many leading arguments name the (sub)command.
func subcommandLen(args []string) int {
	if len(args) >= 2 && args[0] == "topics" && !strings.HasPrefix(args[1], "-") {
		return 2
	}
	return 1
}

// checkMirrorlineArgs fails the test unless args (what follows the binary) name
// an existing command and only flags it accepts. Commands still being written
// (pendingCommands) are reported and skipped until the binary has them.
func checkMirrorlineArgs(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s: mirrorline without a command", where)
		return
	}
	n := subcommandLen(args)
	cmd := args[:n]
	f := mirrorlineFlags(t, cmd)
	if !f.exists {
		if pendingCommands[cmd[0]] {
			t.Logf("%s: `mirrorline %s` is not in this binary yet; its flags are not checked", where, strings.Join(cmd, " "))
			return
		}
		t.Errorf("%s: `mirrorline %s` does not exist", where, strings.Join(cmd, " "))
		return
	}
	for _, a := range args[n:] {
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		if !f.flags[name] {
			t.Errorf("%s: `mirrorline %s` has no flag %s", where, strings.Join(cmd, " "), name)
		}
	}
}

// checkConfigFile fails the test unless mirrorline loads the -c file text
// (strict YAML: unknown keys and wrong types are errors).
func checkConfigFile(t *testing.T, where, text string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, root, mlBin, "redact", "-c", p, "--help"); err != nil {
		t.Errorf("%s: mirrorline rejects the config file: %v\n%s\n--- config:\n%s", where, err, firstLine(out), text)
	}
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "mirrorline:") {
			return l
		}
	}
	l, _, _ := strings.Cut(s, "\n")
	return l
}
