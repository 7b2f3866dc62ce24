package ebpf

import (
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Symbols of Go's crypto/tls probed in Go binaries.
const (
	goSymWrite = "crypto/tls.(*Conn).Write"
	goSymRead  = "crypto/tls.(*Conn).Read"
	goSymClose = "crypto/tls.(*Conn).Close"
)

// Offsets from a *crypto/tls.Conn to its socket's file descriptor, as the
// BPF program follows them: the word at goConnOff is the data pointer of the
// tls.Conn's net.Conn interface (its first field); when the net.Conn is a
// *net.TCPConn, the word at goNetFDOff of it is its *netFD, and the int at
// goSysfdOff of that is poll.FD.Sysfd (after the 16-byte fdMutex). They
// have held since Go 1.12; TestGoConnFDOffsets checks them against the Go
// that builds mirrorline. A net.Conn of another type yields no or a wrong
// fd, which the kernel side then fails to resolve to a TCP socket.
const (
	goConnOff  = 8
	goNetFDOff = 0
	goSysfdOff = 16
)

// Errors of inspecting a Go binary; the errors returned wrap one of them.
var (
	// ErrNotGo: the file is not a Go binary.
	ErrNotGo = errors.New("not a Go binary")
	// ErrStripped: the Go binary has no symbol table (built with -ldflags=-s).
	ErrStripped = errors.New("stripped Go binary (built with -ldflags=-s): its crypto/tls functions cannot be located; rebuild without -s")
	// ErrNoGoTLS: the Go binary does not contain crypto/tls's Conn.Read/Write.
	ErrNoGoTLS = errors.New("Go binary without crypto/tls")
	// ErrGoUnsupported: the Go binary's architecture or Go version is not
	// supported (amd64, Go 1.17+ for the register ABI).
	ErrGoUnsupported = errors.New("unsupported Go binary")
)

// goFunc is a probed function of a Go binary: its symbol and the offsets of
// its RET instructions from the symbol's start.
type goFunc struct {
	Symbol string
	Rets   []uint64
}

// goBinary are the probe points of a Go binary's crypto/tls.
type goBinary struct {
	GoVersion          string
	Write, Read, Close goFunc
}

// inspectGo finds the probe points of crypto/tls in the Go binary at path.
func inspectGo(path string) (*goBinary, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", path, ErrNotGo)
	}
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("inspect %s: %w: %s binaries are not supported (amd64 only)", path, ErrGoUnsupported, f.Machine)
	}
	if !goRegABI(bi.GoVersion) {
		return nil, fmt.Errorf("inspect %s: %w: built with %s, the register ABI needs Go 1.17 or later", path, ErrGoUnsupported, bi.GoVersion)
	}
	syms, err := f.Symbols()
	if err != nil {
		if errors.Is(err, elf.ErrNoSymbols) {
			return nil, fmt.Errorf("inspect %s: %w", path, ErrStripped)
		}
		return nil, fmt.Errorf("inspect %s: read symbols: %w", path, err)
	}
	g := &goBinary{GoVersion: bi.GoVersion}
	found := 0
	for _, s := range syms {
		var fn *goFunc
		switch s.Name {
		case goSymWrite:
			fn = &g.Write
		case goSymRead:
			fn = &g.Read
		case goSymClose:
			fn = &g.Close
		default:
			continue
		}
		code, err := symbolCode(f, s)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %s: %w", path, s.Name, err)
		}
		rets, err := findRets(code)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %s: %w", path, s.Name, err)
		}
		if len(rets) == 0 && fn != &g.Close {
			return nil, fmt.Errorf("inspect %s: %s: no RET instruction found", path, s.Name)
		}
		*fn = goFunc{Symbol: s.Name, Rets: rets}
		found++
	}
	if g.Write.Symbol == "" || g.Read.Symbol == "" {
		return nil, fmt.Errorf("inspect %s: %w (no %s or %s)", path, ErrNoGoTLS, goSymWrite, goSymRead)
	}
	return g, nil
}

// goRegABI reports whether Go version v (as "go1.21.3") passes arguments in
// registers on amd64 (Go 1.17 and later). Development versions count as new.
func goRegABI(v string) bool {
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return strings.HasPrefix(v, "devel")
	}
	minor, _, _ := strings.Cut(rest, ".")
	minor, _, _ = strings.Cut(minor, "rc")
	minor, _, _ = strings.Cut(minor, "beta")
	n, err := strconv.Atoi(minor)
	return err == nil && n >= 17
}

// symbolCode returns the machine code of function symbol s.
func symbolCode(f *elf.File, s elf.Symbol) ([]byte, error) {
	if s.Size == 0 {
		return nil, errors.New("symbol has no size")
	}
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 {
			continue
		}
		if s.Value < sec.Addr || s.Value+s.Size > sec.Addr+sec.Size {
			continue
		}
		code := make([]byte, s.Size)
		if _, err := sec.ReadAt(code, int64(s.Value-sec.Addr)); err != nil {
			return nil, fmt.Errorf("read code: %w", err)
		}
		return code, nil
	}
	return nil, errors.New("symbol is in no executable section")
}

// findRets disassembles amd64 code and returns the offsets of its RET
// instructions. Disassembling, not scanning for 0xC3 bytes, matters: the byte
// also occurs inside other instructions' operands.
func findRets(code []byte) ([]uint64, error) {
	var rets []uint64
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			// Padding after the last instruction (INT3) decodes; anything else
			// that does not is an instruction the disassembler lacks.
			return nil, fmt.Errorf("disassemble at offset %#x: %w", off, err)
		}
		if inst.Op == 0 {
			// x86asm's answer to a cut-off instruction: a lone prefix byte.
			return nil, fmt.Errorf("disassemble at offset %#x: truncated instruction", off)
		}
		if inst.Op == x86asm.RET {
			rets = append(rets, uint64(off))
		}
		off += inst.Len
	}
	return rets, nil
}
