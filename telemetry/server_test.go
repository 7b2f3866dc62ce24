package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServerProfilingOnlyWhenAsked(t *testing.T) {
	for _, tc := range []struct {
		name      string
		profiling bool
		path      string
		status    int
		body      string // a part of the answer
	}{
		{"metrics without profiling", false, "/metrics", http.StatusOK, "go_goroutines"},
		{"no profiles by default", false, "/debug/pprof/", http.StatusNotFound, ""},
		{"no goroutine dump by default", false, "/debug/pprof/goroutine?debug=1", http.StatusNotFound, ""},
		{"profile index", true, "/debug/pprof/", http.StatusOK, "goroutine"},
		{"goroutine dump", true, "/debug/pprof/goroutine?debug=1", http.StatusOK, "goroutine profile:"},
		{"heap profile", true, "/debug/pprof/heap?debug=1", http.StatusOK, "heap profile:"},
		{"metrics with profiling", true, "/metrics", http.StatusOK, "go_goroutines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer()
			s.Profiling = tc.profiling
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || !strings.Contains(string(b), tc.body) {
				t.Fatalf("GET %s: %d, %d bytes; want %d with %q", tc.path, res.StatusCode, len(b), tc.status, tc.body)
			}
		})
	}
}
