//go:build linux && amd64

package ebpf

import (
	"errors"
	"os"
	"strings"
	"testing"
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
