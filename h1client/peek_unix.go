//go:build unix

package h1client

import "syscall"

// peekOpen reports whether the connection under raw is open with nothing to
// read, without waiting: a peek of one byte that finds none.
func peekOpen(raw syscall.RawConn) bool {
	ok := false
	var b [1]byte
	err := raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// The raw errno, compared as such; true: never wait.
		ok = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK) //nolint:errorlint
		return true
	})
	return err == nil && ok
}
