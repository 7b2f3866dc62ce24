package credential

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInjectorSources(t *testing.T) {
	dir := t.TempDir()
	tokFile := writeFile(t, dir, "token", []byte("  tok-from-file\n"))
	t.Setenv("MIRRORLINE_TEST_API_KEY", " key-from-env ")
	tests := []struct {
		name     string
		h        Header
		wantName string
		want     string
	}{
		{"file, default header, prefix", Header{File: tokFile, Prefix: "Bearer "}, "Authorization", "Bearer tok-from-file"},
		{"env", Header{Name: "x-api-key", Env: "MIRRORLINE_TEST_API_KEY"}, "X-Api-Key", "key-from-env"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inj, err := tc.h.Compile()
			if err != nil {
				t.Fatal(err)
			}
			if inj.HeaderName() != tc.wantName {
				t.Errorf("HeaderName %q, want %q", inj.HeaderName(), tc.wantName)
			}
			hdr := http.Header{}
			hdr.Add(tc.wantName, "captured-1")
			hdr.Add(tc.wantName, "captured-2")
			if err := inj.Apply(hdr); err != nil {
				t.Fatal(err)
			}
			if got := hdr.Values(tc.wantName); len(got) != 1 || got[0] != tc.want {
				t.Errorf("%s = %q, want only %q", tc.wantName, got, tc.want)
			}
		})
	}
}

func TestInjectorCompileErrors(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-value"
	good := writeFile(t, dir, "good", []byte(secret))
	empty := writeFile(t, dir, "empty", []byte(" \n\t"))
	ctl := writeFile(t, dir, "ctl", []byte(secret+"\r\nX-Evil: 1"))
	big := writeFile(t, dir, "big", []byte(strings.Repeat(secret, MaxFileSize/len(secret)+1)))
	t.Setenv("MIRRORLINE_TEST_EMPTY", "")
	t.Setenv("MIRRORLINE_TEST_CTL", secret+"\x01tail")
	tests := []struct {
		name string
		h    Header
		want []string // in the error
		is   error
	}{
		{"no source", Header{}, []string{"Authorization", "file or env"}, nil},
		{"both sources", Header{File: good, Env: "X"}, []string{"exclusive"}, nil},
		{"bad name", Header{Name: "X Api", File: good}, []string{"not a valid header name"}, nil},
		{"name with newline", Header{Name: "X\nA", File: good}, []string{"not a valid header name"}, nil},
		{"missing file", Header{File: filepath.Join(dir, "missing")}, []string{"missing"}, os.ErrNotExist},
		{"empty file", Header{File: empty}, []string{empty}, ErrEmpty},
		{"control characters in file", Header{File: ctl}, []string{ctl}, ErrInvalidValue},
		{"file too large", Header{File: big}, []string{big, "more than"}, nil},
		{"empty env", Header{Env: "MIRRORLINE_TEST_EMPTY"}, []string{"MIRRORLINE_TEST_EMPTY"}, ErrEmpty},
		{"control character in env", Header{Env: "MIRRORLINE_TEST_CTL"}, []string{"MIRRORLINE_TEST_CTL"}, ErrInvalidValue},
		{"CR in prefix", Header{File: good, Prefix: "Bearer\r\n"}, []string{"prefix"}, ErrInvalidValue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.h.Compile()
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q leaks the value", err)
			}
		})
	}
}

// fakeClock is a settable clock for the check interval.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func applied(t *testing.T, inj *Injector) string {
	t.Helper()
	hdr := http.Header{}
	if err := inj.Apply(hdr); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return hdr.Get(inj.HeaderName())
}

// k8sSecret lays out a Kubernetes secret volume: dir/..data is a symlink to
// a timestamped directory and dir/token a symlink to ..data/token. update
// swaps ..data atomically to a new directory, keeping the file's size and
// mtime, so only the inode tells the versions apart.
type k8sSecret struct {
	t     *testing.T
	dir   string
	n     int
	mtime time.Time
}

func newK8sSecret(t *testing.T, value string) *k8sSecret {
	s := &k8sSecret{t: t, dir: t.TempDir(), mtime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.update(value)
	if err := os.Symlink(filepath.Join("..data", "token"), filepath.Join(s.dir, "token")); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *k8sSecret) path() string { return filepath.Join(s.dir, "token") }

func (s *k8sSecret) update(value string) {
	t := s.t
	s.n++
	ts := fmt.Sprintf("..2026_01_02_%02d", s.n)
	if err := os.Mkdir(filepath.Join(s.dir, ts), 0o700); err != nil {
		t.Fatal(err)
	}
	f := writeFile(t, filepath.Join(s.dir, ts), "token", []byte(value))
	if err := os.Chtimes(f, s.mtime, s.mtime); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestInjectorRotation(t *testing.T) {
	t.Run("rename over", func(t *testing.T) {
		dir := t.TempDir()
		p := writeFile(t, dir, "token", []byte("old-token\n"))
		inj, err := Header{File: p, Prefix: "Bearer "}.Compile()
		if err != nil {
			t.Fatal(err)
		}
		clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
		inj.file.now = clk.now
		inj.file.next.Store(0)
		if got := applied(t, inj); got != "Bearer old-token" {
			t.Fatalf("got %q", got)
		}
		tmp := writeFile(t, dir, "token.new", []byte("new-token\n"))
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
		// Within the check interval the cached value is used (no stat).
		if got := applied(t, inj); got != "Bearer old-token" {
			t.Fatalf("within the interval: got %q, want the cached value", got)
		}
		clk.add(CheckInterval)
		if got := applied(t, inj); got != "Bearer new-token" {
			t.Fatalf("after the interval: got %q, want the new token", got)
		}
	})
	t.Run("kubernetes symlink swap, same size and mtime", func(t *testing.T) {
		s := newK8sSecret(t, "token-AAAA")
		inj, err := Header{File: s.path()}.Compile()
		if err != nil {
			t.Fatal(err)
		}
		if got := applied(t, inj); got != "token-AAAA" {
			t.Fatalf("got %q", got)
		}
		s.update("token-BBBB")
		if err := inj.Check(); err != nil {
			t.Fatal(err)
		}
		if got := applied(t, inj); got != "token-BBBB" {
			t.Fatalf("after the swap: got %q, want token-BBBB", got)
		}
	})
}

func TestInjectorFileGoesBad(t *testing.T) {
	const secret = "the-token-value"
	dir := t.TempDir()
	p := writeFile(t, dir, "token", []byte(secret))
	inj, err := Header{Name: "X-Api-Key", File: p}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name  string
		do    func()
		is    error
		wantV string
	}{
		{"emptied", func() { writeFile(t, dir, "token", nil) }, ErrEmpty, ""},
		{"fixed", func() { writeFile(t, dir, "token", []byte(secret+"-2")) }, nil, secret + "-2"},
		{"removed", func() { os.Remove(p) }, os.ErrNotExist, ""},
		{"back", func() { writeFile(t, dir, "token", []byte(secret)) }, nil, secret},
	}
	for _, st := range steps {
		st.do()
		if err := inj.Check(); !errors.Is(err, st.is) && (st.is != nil || err != nil) {
			t.Fatalf("%s: Check = %v, want %v", st.name, err, st.is)
		}
		hdr := http.Header{"X-Api-Key": {"captured"}}
		err := inj.Apply(hdr)
		if st.is != nil {
			if !errors.Is(err, st.is) || !strings.Contains(err.Error(), p) || strings.Contains(err.Error(), secret) {
				t.Fatalf("%s: Apply = %v, want %v naming the file and not the value", st.name, err, st.is)
			}
			continue
		}
		if err != nil || hdr.Get("X-Api-Key") != st.wantV {
			t.Fatalf("%s: Apply = %v, header %q, want %q", st.name, err, hdr.Get("X-Api-Key"), st.wantV)
		}
	}
}

// TestInjectorConcurrent applies from several goroutines while the file is
// rotated: every value seen is one of the versions written (run with -race).
func TestInjectorConcurrent(t *testing.T) {
	s := newK8sSecret(t, "v-0")
	inj, err := Header{File: s.path()}.Compile()
	if err != nil {
		t.Fatal(err)
	}
	inj.file.now = func() time.Time { return time.Unix(0, 1<<62) } // every call is due for a check
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				inj.file.next.Store(0)
				hdr := http.Header{}
				if err := inj.Apply(hdr); err != nil {
					errs <- err
					return
				}
				if v := hdr.Get("Authorization"); !strings.HasPrefix(v, "v-") {
					errs <- fmt.Errorf("value %q", v)
					return
				}
			}
		})
	}
	for i := 1; i <= 20; i++ {
		s.update(fmt.Sprintf("v-%d", i))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := inj.Check(); err != nil {
		t.Fatal(err)
	}
	if got := applied(t, inj); got != "v-20" {
		t.Fatalf("final value %q, want v-20", got)
	}
}
