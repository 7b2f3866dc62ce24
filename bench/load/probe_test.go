package main

import (
	"net"
	"os"
	"testing"
)

// The process listening on a loopback port is found (here: this test).
func TestListenerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := listenerPID(ln.Addr().String()); got != os.Getpid() {
		t.Fatalf("listenerPID = %d, want %d", got, os.Getpid())
	}
	if got := listenerPID("not an address"); got != 0 {
		t.Fatalf("listenerPID(bad) = %d, want 0", got)
	}
}
