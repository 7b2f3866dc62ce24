// Command orders is the bundled gRPC demo service (package app): one method
// of each call kind, over h2c (plaintext HTTP/2) or TLS, with gRPC server
// reflection. Run v1 as the primary and v2 (which changes Order.status) as
// the shadow:
//
//	orders --listen 127.0.0.1:18091 --version v1
//	orders --listen 127.0.0.1:18092 --version v2
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/reflection"

	"github.com/mirrorline/mirrorline/test/demo/orders/app"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:18091", "address to listen on")
	version := fs.String("version", app.V1, "release to emulate: v1 or v2 (changes Order.status)")
	cert := fs.String("tls-cert", "", "serve TLS with this certificate (PEM); h2c without")
	key := fs.String("tls-key", "", "private key of --tls-cert (PEM)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	srv, err := app.New(*version)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	var opts []grpc.ServerOption
	if *cert != "" {
		creds, err := credentials.NewServerTLSFromFile(*cert, *key)
		if err != nil {
			fmt.Fprintf(stderr, "orders: tls: %v\n", err)
			return 2
		}
		opts = append(opts, grpc.Creds(creds))
	}
	g := grpc.NewServer(opts...)
	srv.Register(g)
	reflection.Register(g)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "orders: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "orders %s listening on %s\n", *version, ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		g.GracefulStop()
	}()
	if err := g.Serve(ln); err != nil {
		fmt.Fprintf(stderr, "orders: %v\n", err)
		return 1
	}
	return 0
}
