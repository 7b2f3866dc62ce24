package ebpf

import (
	"crypto/tls"
	"debug/elf"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"unsafe"
)

func TestFindRets(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		want []uint64
	}{
		{"ret only", []byte{0xc3}, []uint64{0}},
		{"mov then ret", []byte{0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3}, []uint64{5}},
		// mov eax, 0xc3: the immediate holds a RET byte that is not a RET.
		{"ret byte in an immediate", []byte{0xb8, 0xc3, 0x00, 0x00, 0x00, 0xc3}, []uint64{5}},
		// test rax,rax; je +1; ret; xor eax,eax; ret
		{"two returns", []byte{0x48, 0x85, 0xc0, 0x74, 0x01, 0xc3, 0x31, 0xc0, 0xc3}, []uint64{5, 8}},
		// ret imm16
		{"ret with pop count", []byte{0x90, 0xc2, 0x08, 0x00}, []uint64{1}},
		// lea rcx, [rip+0xc3c3c3c3]; int3 padding
		{"ret bytes in a displacement", []byte{0x48, 0x8d, 0x0d, 0xc3, 0xc3, 0xc3, 0xc3, 0xcc, 0xcc}, nil},
		{"no code", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := findRets(tc.code)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("RETs at %v, want %v", got, tc.want)
			}
		})
	}
	// mov eax with its immediate cut off (x86asm decodes it as a prefix), and
	// an opcode invalid in 64-bit mode.
	for _, code := range [][]byte{{0xc3, 0xb8, 0x01}, {0xc3, 0x48}, {0x06, 0xc3}} {
		if rets, err := findRets(code); err == nil {
			t.Errorf("% x: RETs %v, no error", code, rets)
		}
	}
}

func TestGoRegABI(t *testing.T) {
	for v, want := range map[string]bool{
		"go1.16.15": false, "go1.17": true, "go1.17rc1": true, "go1.21.3": true, "go1.26.8": true,
		"go1.9": false, "devel go1.27-abc": true, "gccgo": false, "go2": false,
	} {
		if got := goRegABI(v); got != want {
			t.Errorf("goRegABI(%q) = %v, want %v", v, got, want)
		}
	}
}

// buildGo builds a main package of source src with go build flags.
func buildGo(t *testing.T, name, src string, flags ...string) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(d, name)
	cmd := exec.Command("go", append([]string{"build", "-o", bin}, flags...)...)
	cmd.Dir = d
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
}

const tlsProgram = "package main\n\nimport (\"crypto/tls\"; \"fmt\")\n\nfunc main() { c := tls.Client(nil, &tls.Config{}); fmt.Println(c.Write, c.Read, c.Close) }\n"

// A Go binary with crypto/tls: every RET found is a RET byte at an offset
// inside the function past its entry. A stripped Go binary, a Go binary
// without crypto/tls and a C binary are refused with the reason.
func TestInspectGo(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("Go probes are amd64 only")
	}
	if testing.Short() {
		t.Skip("builds Go binaries")
	}
	bin := buildGo(t, "withtls", tlsProgram)
	g, err := inspectGo(bin)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, fn := range []goFunc{g.Write, g.Read} {
		i := slices.IndexFunc(syms, func(s elf.Symbol) bool { return s.Name == fn.Symbol })
		if i < 0 || len(fn.Rets) == 0 {
			t.Fatalf("%s: symbol %d, RETs %v", fn.Symbol, i, fn.Rets)
		}
		code, err := symbolCode(f, syms[i])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range fn.Rets {
			if r == 0 || r >= uint64(len(code)) || code[r] != 0xc3 {
				t.Fatalf("%s: RET at %#x of %d bytes is not a RET byte", fn.Symbol, r, len(code))
			}
		}
	}
	if g.Close.Symbol != goSymClose || g.GoVersion != runtime.Version() {
		t.Fatalf("close %q, version %q", g.Close.Symbol, g.GoVersion)
	}

	for _, tc := range []struct {
		path string
		want error
	}{
		{buildGo(t, "stripped", tlsProgram, "-ldflags=-s -w"), ErrStripped},
		{buildGo(t, "plain", "package main\n\nfunc main() { println(1) }\n"), ErrNoGoTLS},
		{"/bin/sh", ErrNotGo},
	} {
		if _, err := inspectGo(tc.path); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.path, err, tc.want)
		}
	}
}

// The BPF program finds a Go connection's socket by following goConnOff,
// goNetFDOff and goSysfdOff from the *tls.Conn (the receiver, in RAX at
// (*Conn).Read/Write's entry): here they are followed the same way in a
// real tls.Conn over TCP.
func TestGoConnFDOffsets(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("64-bit only")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	data := *(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(c), goConnOff))
	netFD := *(*unsafe.Pointer)(unsafe.Add(data, goNetFDOff))
	got := *(*int)(unsafe.Add(netFD, goSysfdOff))
	sc, err := raw.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	want := -1
	if err := sc.Control(func(fd uintptr) { want = int(fd) }); err != nil {
		t.Fatal(err)
	}
	if got != want || want < 0 {
		t.Fatalf("fd through the offsets %d, the socket's %d", got, want)
	}
}
