package containers

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// The image answers `version`, runs as uid 65532 and has nothing but the
// binary, the CA bundle, a passwd file and /tmp.
func TestImageVersionNonRoot(t *testing.T) {
	requireEngine(t)
	buildImages(t, "mirrorline")
	out := docker(t, "run", "--rm", image, "version")
	if !strings.HasPrefix(out, "mirrorline ") || !strings.Contains(out, "go:") {
		t.Fatalf("docker run %s version printed %q", image, out)
	}
	if user := docker(t, "image", "inspect", "--format", "{{.Config.User}}", image); user != "65532:65532" {
		t.Fatalf("image user %q, want 65532:65532", user)
	}
	size, err := strconv.ParseInt(docker(t, "image", "inspect", "--format", "{{.Size}}", image), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %.1f MB", image, float64(size)/1e6)
	if size > 80e6 {
		t.Fatalf("image is %d bytes: more than the static binary on scratch should be", size)
	}
}

// The proxy in a container (host network: loopback only) forwards to a
// primary on the host, answers the client with the primary's answer, and
// captures the exchange to the test broker; the process runs as uid 65532.
func TestProxyInContainer(t *testing.T) {
	requireEngine(t)
	buildImages(t, "mirrorline")
	cfg := kafkatest.Config(t)
	svc := kafkatest.Service(t, 1)

	var hits atomic.Int32
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, "paid "+strconv.Itoa(len(b)))
	}))
	defer primary.Close()

	listen, metrics := testproc.FreeAddr(t), testproc.FreeAddr(t)
	name := "mirrorline-test-proxy-" + strings.ToLower(rand.Text()[:8])
	removeContainer(t, name)
	docker(t, "run", "-d", "--name", name, "--network", "host", image,
		"proxy", "--listen", listen, "--primary", primary.URL, "--brokers", strings.Join(cfg.Brokers, ","),
		"--service", svc, "--metrics-addr", metrics, "--collector-id", "container-proxy")

	client := &http.Client{Timeout: 10 * time.Second}
	testproc.Eventually(t, 60*time.Second, "the proxy in the container to be ready", func() bool {
		resp, err := client.Get("http://" + metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	body := `{"amount":100,"card":{"number":"4111111111111111"}}`
	resp, err := client.Post("http://"+listen+"/payments", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || string(got) != "paid "+strconv.Itoa(len(body)) || hits.Load() != 1 {
		t.Fatalf("through the proxy: %d %q, primary hit %d times", resp.StatusCode, got, hits.Load())
	}

	ex := kafkatest.ReadExchanges(t, cfg.Brokers, broker.Topic(broker.Raw, svc), 1, 60*time.Second)[0]
	if ex.GetRequest().GetUrl() != "/payments" || ex.GetResponse().GetStatus() != http.StatusCreated ||
		string(ex.GetRequest().GetBody()) != body || ex.GetCollector() != "container-proxy" {
		t.Fatalf("captured %s %s -> %d from collector %q (body %d bytes)", ex.GetRequest().GetMethod(),
			ex.GetRequest().GetUrl(), ex.GetResponse().GetStatus(), ex.GetCollector(), len(ex.GetRequest().GetBody()))
	}

	pid := docker(t, "inspect", "--format", "{{.State.Pid}}", name)
	uid, err := processUID(pid)
	if err != nil {
		t.Fatalf("uid of the container's process %s: %v", pid, err)
	}
	if uid != "65532" {
		t.Fatalf("the proxy runs as uid %s, want 65532 (non-root)", uid)
	}
}
