package main

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/telemetry"
)

// A failing stage of `up` does not stop the others; /readyz names it.
func TestIsolateKeepsOtherStagesRunning(t *testing.T) {
	a := &app{log: hclog.NewNullLogger()}
	tel := telemetry.NewServer()
	ctx, cancel := context.WithCancel(context.Background())
	failed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.isolate(tel, "redactor", func(context.Context) error {
			defer close(failed)
			return errors.New("end transaction: broker gone")
		})(ctx)
	}()
	<-failed
	// The wrapped stage must not have returned: it blocks until ctx ends.
	select {
	case err := <-done:
		t.Fatalf("isolated stage returned %v before shutdown", err)
	default:
	}
	srv := httptest.NewServer(tel.Handler())
	defer srv.Close()
	var body string
	for i := 0; i < 1000 && !strings.Contains(body, "redactor"); i++ {
		resp, err := srv.Client().Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if strings.Contains(body, "redactor") && resp.StatusCode != 503 {
			t.Fatalf("readyz %d with a stopped stage", resp.StatusCode)
		}
	}
	if !strings.Contains(body, "stage redactor: not ready: stopped: end transaction: broker gone") {
		t.Fatalf("readyz body %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("isolated stage returned %v on shutdown", err)
	}
}

func TestUpCollectors(t *testing.T) {
	tests := []struct {
		name       string
		primary    string
		collectors []string
		want       string // joined result, or the error
	}{
		{"default with a primary", "http://p", nil, "proxy"},
		{"default without a primary", "", nil, ""},
		{"listed", "", []string{"sink", "vpc", "ebpf"}, "sink,vpc,ebpf"},
		{"unknown", "", []string{"proxy", "tcpdump"}, `collectors: "tcpdump" is not one of proxy, sink, vpc, ebpf`},
		{"twice", "", []string{"sink", "sink"}, `collectors: "sink" is listed twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &app{log: hclog.NewNullLogger(), cfg: config.Default()}
			a.cfg.Proxy.Primary, a.cfg.Collectors = tc.primary, tc.collectors
			got, err := a.upCollectors()
			s := strings.Join(got, ",")
			if err != nil {
				var ue usageError
				if !errors.As(err, &ue) {
					t.Fatalf("error %v is not a usage error (exit 2)", err)
				}
				s = err.Error()
			}
			if s != tc.want {
				t.Fatalf("got %q, want %q", s, tc.want)
			}
		})
	}
}
