package replayer

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/replayer/middleware"
)

// A replay whose middleware fails for good fails with the middleware's
// error, however the replay itself then ends: a live replayer stops cleanly
// (nil) when its context ends, a window replay with its context's error.
// It used to return nil for the first: the live replayer went on without
// its middleware and never exited.
func TestSuperviseReturnsTheMiddlewaresFailure(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh to run a failing middleware")
	}
	for _, tc := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"stops cleanly when cancelled", func(ctx context.Context) error { <-ctx.Done(); return nil }},
		{"returns the context's error", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			none := 0
			mw, err := middleware.Start(context.Background(), middleware.Config{Command: []string{sh, "-c", "exit 3"}, Restarts: &none}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = mw.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = supervise(ctx, mw, tc.fn)
			if ctx.Err() != nil {
				t.Fatalf("supervise returned only when its context timed out: %v", err)
			}
			if !errors.Is(err, middleware.ErrFailed) || !strings.Contains(err.Error(), "exit status 3") {
				t.Fatalf("supervise: %v; want the middleware's failure naming exit status 3", err)
			}
		})
	}
}
