package collector

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Serve runs srv on ln until ctx ends, then shuts it down gracefully (at most
// 10 s for requests in flight). what names the server in errors.
func Serve(ctx context.Context, what string, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s serve: %w", what, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("%s shutdown: %w", what, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s serve: %w", what, err)
	}
	return nil
}

// ServerErrorLog is the ErrorLog of a collector's http.Server: its lines go
// to l, cut where a quotation begins. net/http quotes what a client sent in
// some errors (the HTTP/2 server's "bogus greeting %q"), and a client's bytes
// are captured data, never logged.
func ServerErrorLog(l hclog.Logger) *log.Logger {
	return log.New(&quoteCutter{w: l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})}, "", 0)
}

type quoteCutter struct{ w io.Writer }

func (q *quoteCutter) Write(p []byte) (int, error) {
	line := p
	if i := bytes.IndexByte(line, '"'); i >= 0 {
		line = append(bytes.TrimRight(line[:i:i], " :"), " (the client's bytes are not shown)\n"...)
	}
	if _, err := q.w.Write(line); err != nil {
		return 0, err
	}
	return len(p), nil
}
