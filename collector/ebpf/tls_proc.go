//go:build linux

package ebpf

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// procRoot is where the proc file system is mounted.
const procRoot = "/proc"

// fileID identifies a file by device and inode: uprobes attach to inodes.
type fileID struct{ dev, ino uint64 }

func statID(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

// listPIDs returns the processes in /proc.
func listPIDs() ([]int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// parentPID returns the parent of pid (0 if unknown).
func parentPID(pid int) int {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// procCgroup returns the cgroup v2 path of pid ("/system.slice/x.service").
func procCgroup(pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// inCgroup reports whether cgroup path p is cg or below it.
func inCgroup(p, cg string) bool {
	cg = strings.TrimSuffix(cg, "/")
	return p == cg || strings.HasPrefix(p, cg+"/") || cg == ""
}

// libsslOf returns the path (through /proc/PID/root, so it works across
// mount namespaces) of the libssl the process has mapped, "" if none.
func libsslOf(pid int) (string, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	if err != nil {
		return "", fmt.Errorf("read memory maps of process %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := fields[5]
		if strings.HasPrefix(filepath.Base(path), "libssl.so") {
			return filepath.Join(procRoot, strconv.Itoa(pid), "root", path), nil
		}
	}
	return "", sc.Err()
}

// socketAddrs returns the local and remote address of socket fd of pid, from
// /proc/PID/fd and /proc/PID/net/tcp{,6}.
func socketAddrs(pid uint32, fd int32) (local, remote netip.AddrPort, ok bool) {
	base := filepath.Join(procRoot, strconv.FormatUint(uint64(pid), 10))
	link, err := os.Readlink(filepath.Join(base, "fd", strconv.Itoa(int(fd))))
	if err != nil {
		return local, remote, false
	}
	inode, found := strings.CutPrefix(link, "socket:[")
	if !found {
		return local, remote, false
	}
	inode = strings.TrimSuffix(inode, "]")
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join(base, "net", name))
		if err != nil {
			continue
		}
		if l, r, ok := findSocket(b, inode); ok {
			return l, r, true
		}
	}
	return local, remote, false
}

// findSocket finds the socket of inode in the text of /proc/net/tcp or tcp6.
func findSocket(table []byte, inode string) (local, remote netip.AddrPort, ok bool) {
	for line := range strings.SplitSeq(string(table), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[9] != inode {
			continue
		}
		l, err1 := parseProcAddr(f[1])
		r, err2 := parseProcAddr(f[2])
		if err1 != nil || err2 != nil {
			return local, remote, false
		}
		return l, r, true
	}
	return local, remote, false
}

// parseProcAddr parses "0100007F:1F90" (IPv4) or 32 hex digits and a port
// (IPv6): the address in 32-bit words of host byte order (little endian
// here), the port in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("address %q: no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("address %q: port: %w", s, err)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q: not 4 or 16 hex bytes", s)
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}
