package main

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

func TestRunRejectsBadFlags(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tests := []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{"unknown version", []string{"--version", "v3"}, 2, "--version"},
		{"bad seed", []string{"--seed", "x"}, 2, "seed"},
		{"unknown flag", []string{"--nope"}, 2, "nope"},
		{"stray argument", []string{"extra"}, 2, "extra"},
		{"bad max-requests", []string{"--max-requests", "0"}, 2, "--max-requests"},
		{"address in use", []string{"--listen", ln.Addr().String()}, 1, "address already in use"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			if got := run(tc.args, &stderr); got != tc.want {
				t.Fatalf("exit %d, want %d (stderr %q)", got, tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantErr)
			}
		})
	}
}
