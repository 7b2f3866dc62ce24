package containers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// composeServices are the services of deploy/docker-compose.yml the test
// starts: the pipeline and the demo services (Prometheus and Grafana have no
// local images).
var composeServices = []string{"kafka", "topics", "primary", "shadow", "proxy", "redactor", "replayer", "comparator"}

// compose runs docker compose on deploy/docker-compose.yml with the local
// override (deploy/compose/local.yml) as project name.
type compose struct {
	t       *testing.T
	cmd     []string // docker compose, or docker-compose
	files   []string
	project string
	env     []string
}

// newCompose finds docker compose (v2), or else docker-compose (v1), and
// skips t without either. Compose v1 does not know the base file's
// top-level name: it gets a copy without that line (-p names the project
// anyway).
func newCompose(t *testing.T, env map[string]string) *compose {
	t.Helper()
	base := filepath.Join(root(), "deploy", "docker-compose.yml")
	c := &compose{t: t, project: "mlcompose" + strings.ToLower(rand.Text()[:8])}
	switch {
	case exec.Command("docker", "compose", "version").Run() == nil:
		c.cmd = []string{"docker", "compose"}
	case exec.Command("docker-compose", "version").Run() == nil:
		c.cmd = []string{"docker-compose"}
		b, err := os.ReadFile(base)
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "name:") {
				kept = append(kept, l)
			}
		}
		base = filepath.Join(t.TempDir(), "docker-compose.yml")
		if err := os.WriteFile(base, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	default:
		t.Skip("neither docker compose nor docker-compose is installed (Debian: apt-get install docker-compose)")
	}
	c.files = []string{base, filepath.Join(root(), "deploy", "compose", "local.yml")}
	c.env = os.Environ()
	for k, v := range env {
		c.env = append(c.env, k+"="+v)
	}
	return c
}

// run runs compose with args (timeout at most) and returns its output.
func (c *compose) run(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{}, c.cmd[1:]...)
	full = append(full, "--project-directory", filepath.Join(root(), "deploy"), "-p", c.project)
	for _, f := range c.files {
		full = append(full, "-f", f)
	}
	cmd := exec.CommandContext(ctx, c.cmd[0], append(full, args...)...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The compose stack, on locally built images: demo payments through the
// containerised proxy reach the containerised shadow scrubbed (card number
// replaced, email hashed), and the comparator's report names the endpoint.
// Everything the test started (containers, network, volumes) is removed.
func TestComposeStack(t *testing.T) {
	requireEngine(t)
	if testing.Short() {
		t.Skip("starts the whole compose stack; skipped with -short")
	}
	proxyAddr, shadowAddr, kafkaAddr := testproc.FreeAddr(t), testproc.FreeAddr(t), testproc.FreeAddr(t)
	port := func(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
	c := newCompose(t, map[string]string{
		"MIRRORLINE_PROXY_PORT":  port(proxyAddr),
		"MIRRORLINE_SHADOW_PORT": port(shadowAddr),
		"MIRRORLINE_KAFKA_PORT":  port(kafkaAddr),
	})
	buildImages(t, "mirrorline", "kafka")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.run(time.Minute, "logs", "--no-color", "--tail", "20")
			t.Logf("last lines of the stack's logs:\n%s", out)
		}
		if out, err := c.run(3*time.Minute, "down", "-v", "--remove-orphans", "--timeout", "10"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
		if left, _ := dockerOut("ps", "-aq", "--filter", "label=com.docker.compose.project="+c.project); left != "" {
			t.Errorf("containers of project %s left after down: %s", c.project, left)
		}
	})
	start := time.Now()
	if out, err := c.run(8*time.Minute, append([]string{"up", "-d", "--no-build"}, composeServices...)...); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	t.Logf("compose up: %s", time.Since(start).Round(time.Second))

	// The live replayer and the comparator start at the end of their topics
	// on their group's first join: traffic waits until every stage's group
	// has joined (the lag command lists it).
	testproc.EventuallyEvery(t, 3*time.Minute, 2*time.Second, "the redactor's, replayer's and comparator's groups to join", func() bool {
		out, err := c.run(2*time.Minute, "run", "--rm", "--no-deps", "-T", "comparator", "lag", "-c", "/etc/mirrorline/config.yaml")
		return err == nil && strings.Contains(out, "mirrorline-redact-payments") &&
			strings.Contains(out, "mirrorline-replay-payments") && strings.Contains(out, "mirrorline-compare-payments")
	})
	t.Logf("stages joined: %s", time.Since(start).Round(time.Second))

	const (
		card  = "4111111111111111"
		email = "zoe.compose@example.com"
		// The comparator holds an endpoint's verdicts until it has seen
		// 20 exchanges of it (noise warm-up).
		payments = 25
	)
	body := `{"amount":1250,"currency":"EUR","card":{"number":"` + card + `","expiry":"12/29","holder":"Zoe Holderton"},"customer":{"id":"c-1","email":"` + email + `"}}`
	client := &http.Client{Timeout: 10 * time.Second}
	sent := 0
	testproc.EventuallyEvery(t, 3*time.Minute, time.Second, "the proxy to answer a payment", func() bool {
		resp, err := client.Post("http://"+proxyAddr+"/payments", "application/json", strings.NewReader(body))
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			sent++
		}
		return resp.StatusCode/100 == 2
	})
	for range payments - 1 {
		resp, err := client.Post("http://"+proxyAddr+"/payments", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("the primary answered %d through the proxy", resp.StatusCode)
		}
		sent++
	}

	var shadowSaw []string
	testproc.EventuallyEvery(t, 3*time.Minute, time.Second, "the shadow to receive the "+strconv.Itoa(sent)+" payments", func() bool {
		resp, err := client.Get("http://" + shadowAddr + "/_demo/requests")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var reqs []struct {
			Method, Path, Body string
		}
		if json.NewDecoder(resp.Body).Decode(&reqs) != nil {
			return false
		}
		shadowSaw = shadowSaw[:0]
		for _, r := range reqs {
			if r.Method == http.MethodPost && r.Path == "/payments" {
				shadowSaw = append(shadowSaw, r.Body)
			}
		}
		return len(shadowSaw) >= sent
	})
	for _, b := range shadowSaw {
		if strings.Contains(b, card) || strings.Contains(b, email) || strings.Contains(b, "zoe.compose") || strings.Contains(b, "Holderton") {
			t.Fatal("a payment reached the shadow with the card number, the email or the card holder unscrubbed")
		}
		var p struct {
			Card     struct{ Number string }
			Customer struct{ Email string }
		}
		if err := json.Unmarshal([]byte(b), &p); err != nil || len(p.Card.Number) != 16 || p.Customer.Email == "" {
			t.Fatalf("the shadow got a payment without a 16-digit fake card number and a hashed email (%d bytes; parse error %v)", len(b), err)
		}
	}

	var report string
	testproc.EventuallyEvery(t, 3*time.Minute, 2*time.Second, "the comparator's report to cover POST /payments", func() bool {
		out, err := c.run(2*time.Minute, "run", "--rm", "--no-deps", "-T", "comparator",
			"compare", "report", "-c", "/etc/mirrorline/config.yaml")
		report = out
		return err == nil && strings.Contains(out, "POST /payments  ") && !strings.Contains(out, "exchanges: 0 ")
	})
	t.Logf("report (first lines):\n%s", firstLines(report, 12))
	t.Logf("whole test: %s", time.Since(start).Round(time.Second))
}

func firstLines(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[:n]
	}
	return strings.Join(ls, "\n")
}
