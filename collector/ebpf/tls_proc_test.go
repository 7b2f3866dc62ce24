//go:build linux

package ebpf

import (
	"net"
	"os"
	"testing"
)

func TestParseProcAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0100007F:1F90":                         "127.0.0.1:8080",
		"0A00020F:01BB":                         "15.2.0.10:443",
		"00000000000000000000000001000000:0016": "[::1]:22",
		"0000000000000000FFFF00000100007F:C350": "127.0.0.1:50000", // v4-mapped
	} {
		got, err := parseProcAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v %v, want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"0100007F", "0100007F:XYZ", "01007F:0050", "zz00007F:0050"} {
		if _, err := parseProcAddr(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// A real socket of this process is found through /proc.
func TestSocketAddrs(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := c.(*net.TCPConn).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	local, remote, ok := socketAddrs(uint32(os.Getpid()), int32(f.Fd()))
	if !ok || local.String() != c.LocalAddr().String() || remote.String() != ln.Addr().String() {
		t.Fatalf("%v %v %v, want %s %s", local, remote, ok, c.LocalAddr(), ln.Addr())
	}
	if _, _, ok := socketAddrs(uint32(os.Getpid()), 0); ok {
		t.Fatal("stdin resolved as a socket")
	}
	if parentPID(os.Getpid()) != os.Getppid() {
		t.Fatalf("parent %d, want %d", parentPID(os.Getpid()), os.Getppid())
	}
}
