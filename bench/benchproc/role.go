package benchproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Role is a child running the harness's own binary as "role NAME args...":
// it prints "ADDR host:port" once listening, and further lines the harness
// can wait for with Expect.
type Role struct {
	*Proc
	lines chan string
}

// StartRole runs this binary as "role ROLE args..." (args[0] is the role),
// its log going to dir/name.log, and returns it once it printed its address.
func StartRole(dir, name string, args ...string) (*Role, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	r := &Role{lines: make(chan string, 16)}
	p, err := Launch(dir, name, exec.Command(self, append([]string{"role"}, args...)...), func(line string) {
		select {
		case r.lines <- line:
		default:
		}
	})
	if err != nil {
		return nil, "", err
	}
	r.Proc = p
	line, err := r.Expect("ADDR ", 15*time.Second)
	if err != nil {
		p.Stop()
		return nil, "", err
	}
	return r, line, nil
}

// Expect waits for a line starting with prefix and returns the rest.
func (r *Role) Expect(prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l := <-r.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest, nil
			}
		case <-r.done:
			return "", r.exitErr()
		case <-deadline:
			return "", fmt.Errorf("%s did not print %q within %s", r.name, prefix, timeout)
		}
	}
}

// Lifeline calls cancel once stdin reaches its end: the harness holds the
// other end of a role child's stdin, so EOF means it is gone.
func Lifeline(cancel context.CancelFunc) {
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
}

// ServeRole is the body of a role child that serves HTTP: it listens on
// 127.0.0.1:0, prints "ADDR host:port" on stdout and serves h until ctx ends.
// It returns the child's exit code.
func ServeRole(ctx context.Context, h http.Handler) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 3*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
