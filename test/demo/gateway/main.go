// Command gateway is the bundled demo "card gateway": the dependency the
// demo payments service charges cards with (POST /charge). It counts the
// calls per calling instance (X-Demo-Instance) on GET /_demo/stats, so the
// demo shows that the shadow's calls never reach it:
//
//	gateway --listen 127.0.0.1:18090
//
// See package app for details.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mirrorline/mirrorline/test/demo/gateway/app"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:18090", "address to listen on")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gateway: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: app.New(app.Config{}), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	fmt.Fprintf(stderr, "card gateway listening on http://%s\n", ln.Addr())
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "gateway: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintf(stderr, "gateway: shutdown: %v\n", err)
		return 1
	}
	return 0
}
