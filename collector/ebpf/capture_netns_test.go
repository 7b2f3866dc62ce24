//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// netnsPair is two network namespaces made for a test, joined by a veth pair:
// the server side (addr 10.<x>.<y>.1 on ifServer) and the client side
// (.2 on the peer). Nothing else is in them, so only the test's traffic
// crosses the link.
type netnsPair struct {
	server, client     string // namespace names
	ifServer, ifClient string
	serverIP           string
}

// newNetnsPair creates the namespaces and the link, and removes them when the
// test ends.
func newNetnsPair(t *testing.T) netnsPair {
	t.Helper()
	ipTool, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("the veth test needs iproute2's ip (test/deps installs it)")
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	p := netnsPair{server: "mlsrv-" + id, client: "mlcli-" + id, ifServer: "mls" + id, ifClient: "mlc" + id,
		serverIP: fmt.Sprintf("10.%d.%d.1", 64+int(b[0])%64, b[1])}
	clientIP := strings.TrimSuffix(p.serverIP, ".1") + ".2"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipTool, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", p.server)
	t.Cleanup(func() { _ = exec.Command(ipTool, "netns", "del", p.server).Run() })
	run("netns", "add", p.client)
	t.Cleanup(func() { _ = exec.Command(ipTool, "netns", "del", p.client).Run() })
	run("link", "add", p.ifServer, "netns", p.server, "type", "veth", "peer", "name", p.ifClient, "netns", p.client)
	run("-n", p.server, "addr", "add", p.serverIP+"/30", "dev", p.ifServer)
	run("-n", p.client, "addr", "add", clientIP+"/30", "dev", p.ifClient)
	for _, l := range [][2]string{{p.server, p.ifServer}, {p.client, p.ifClient}, {p.server, "lo"}, {p.client, "lo"}} {
		run("-n", l[0], "link", "set", l[1], "up")
	}
	return p
}

// inNetns runs f on an OS thread switched into the named namespace. Sockets,
// netlink requests and BPF attachments made by f belong to that namespace and
// stay there after the thread switches back.
func inNetns(t *testing.T, name string, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked if switching back fails: the runtime
		// then discards it rather than reuse it in the wrong namespace.
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Real HTTP traffic between two network namespaces over a veth pair, captured
// on the server's veth with both TC hooks (ingress: requests, egress:
// responses), as on a pod's eth0: every exchange exactly once, nothing lost.
func TestCaptureVeth(t *testing.T) {
	requireRoot(t)
	p := newNetnsPair(t)

	var ln net.Listener
	if err := inNetns(t, p.server, func() (err error) {
		ln, err = net.Listen("tcp4", p.serverIP+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: app(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := uint16(ln.Addr().(*net.TCPAddr).Port)

	s := &sink{}
	var c *Capture
	if err := inNetns(t, p.server, func() (err error) {
		c, err = Open(s, Config{Interfaces: []string{p.ifServer}, Ports: []uint16{port}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	at := c.Attached()
	if len(at) != 2 || at[0].Interface != p.ifServer || at[0].Hook != "ingress" || at[1].Hook != "egress" {
		t.Fatalf("attached %v, want %s ingress and egress", at, p.ifServer)
	}

	// The client dials from its own namespace; the connection works from any
	// thread afterwards.
	base := "http://" + ln.Addr().String()
	dial := func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
		err = inNetns(t, p.client, func() (derr error) {
			conn, derr = (&net.Dialer{}).DialContext(ctx, network, addr)
			return derr
		})
		return conn, err
	}
	const conns = 3
	for range conns {
		trafficVia(t, base, dial)
	}

	want := 4 * conns
	waitFor(t, 30*time.Second, fmt.Sprintf("%d exchanges", want), func() bool { return len(s.all()) >= want })
	waitFor(t, 30*time.Second, "connections closed", func() bool { return c.Stats().StreamsActive.Load() == 0 })
	all := s.all()
	byC := byConn(all)
	if len(byC) != conns || len(all) != want {
		t.Fatalf("%d exchanges on %d connections, want %d on %d", len(all), len(byC), want, conns)
	}
	for _, exs := range byC {
		checkConn(t, exs, port)
		if !strings.HasPrefix(exs[0].Request.RemoteAddr, strings.TrimSuffix(p.serverIP, ".1")+".2:") {
			t.Fatalf("remote addr %q, want the client namespace's address", exs[0].Request.RemoteAddr)
		}
	}
	waitFor(t, 30*time.Second, "every captured packet read", func() bool {
		in, eg := c.Packets()
		return in+eg == c.KernelStats().Packets
	})
	ks, st := c.KernelStats(), c.Stats()
	in, eg := c.Packets()
	t.Logf("veth %s: %d packets (ingress %d, egress %d), %d bytes; retransmits %d", p.ifServer, ks.Packets, in, eg, ks.Bytes, st.Packets[tcpstream.ResultRetransmit].Load())
	if in == 0 || eg == 0 || ks.RingbufDrops != 0 || ks.Errors != 0 || ks.Truncated != 0 || st.Gaps.Load() != 0 || st.HTTP.ParseErrors.Load() != 0 {
		t.Fatalf("kernel %+v, packets ingress %d egress %d, gaps %d, parse errors %d", ks, in, eg, st.Gaps.Load(), st.HTTP.ParseErrors.Load())
	}
}
