//go:build linux && amd64

package ebpf

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// A kernel without uprobes or BTF is named in one line before anything is
// loaded.
func TestTLSCheckKernel(t *testing.T) {
	cfg := TLSConfig{PIDs: []int{os.Getpid()}}
	for _, tc := range []struct {
		v    *string
		want error
	}{
		{&uprobePMU, ErrNoUprobes},
		{&kernelBTF, ErrNoBTF},
	} {
		old := *tc.v
		*tc.v = "/nonexistent/" + t.Name()
		err := cfg.Check()
		*tc.v = old
		if !errors.Is(err, tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Check: %v, want %v", err, tc.want)
		}
	}
}

// tlsServerProgram serves HTTPS with an in-memory self-signed certificate on
// a loopback port and prints the port.
const tlsServerProgram = `package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"time"
)

func main() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	ln, err := tls.Listen("tcp4", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		panic(err)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
	}))
}
`

// A Go HTTPS server selected by pid, many concurrent connections: every
// exchange once, paired, with the server's real client addresses (run with
// -race: the scan, flush and read goroutines).
func TestTLSCaptureGoServer(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("builds a Go binary")
	}
	bin := buildGo(t, "tlsserve", tlsServerProgram)
	srv := exec.Command(bin)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	port := strings.TrimSpace(line)

	pub := &sink{}
	c, err := OpenTLS(pub, TLSConfig{PIDs: []int{srv.Process.Pid}, RingSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	if c.Processes() != 1 || len(c.Attached()) != 1 {
		stop()
		t.Fatalf("processes %d, attached %v", c.Processes(), c.Attached())
	}

	const conns, perConn = 8, 5
	var wg sync.WaitGroup
	clientAddrs := make(chan string, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local string
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxConnsPerHost: 1,
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err == nil {
						local = conn.LocalAddr().String()
					}
					return conn, err
				}}
			defer tr.CloseIdleConnections()
			cl := &http.Client{Transport: tr, Timeout: 20 * time.Second}
			for j := range perConn {
				resp, err := cl.Post(fmt.Sprintf("https://127.0.0.1:%s/c%d/r%d", port, i, j), "text/plain", strings.NewReader(strings.Repeat("b", 1000*j)))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			clientAddrs <- local
		}()
	}
	wg.Wait()
	close(clientAddrs)
	waitFor(t, 30*time.Second, "exchanges", func() bool { return len(pub.all()) >= conns*perConn })
	stop()
	addrs := map[string]bool{}
	for a := range clientAddrs {
		addrs[a] = true
	}
	seen := map[string]int{}
	for _, ex := range pub.all() {
		var i, j int
		if _, err := fmt.Sscanf(ex.Request.Url, "/c%d/r%d", &i, &j); err != nil || ex.Response == nil ||
			string(ex.Response.Body) != fmt.Sprintf("POST %s %d", ex.Request.Url, 1000*j) || len(ex.Request.Body) != 1000*j ||
			!addrs[ex.Request.RemoteAddr] || ex.Request.Scheme != "https" {
			t.Fatalf("exchange %v", ex)
		}
		seen[ex.Request.Url]++
	}
	if len(seen) != conns*perConn {
		t.Fatalf("%d distinct requests of %d", len(seen), conns*perConn)
	}
	for u, n := range seen {
		if n != 1 {
			t.Fatalf("%s captured %d times", u, n)
		}
	}
	if ks := c.KernelStats(); ks.RingbufDrops != 0 || ks.Errors != 0 || ks.Calls == 0 {
		t.Fatalf("kernel stats %+v", ks)
	}
}
