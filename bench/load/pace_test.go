package main

import (
	"bufio"
	"context"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/testproc"
)

// The generator's own cost per answered request, paced against vegeta, both
// sending the same mix at the same rate to the same in-process app (its cost
// is in both figures): allocs/answer is independent of the machine's load;
// cpu-µs/answer (this process's CPU) is what the end-to-end steps depend on;
// answered/scheduled says whether the generator kept the schedule.
//
//	go test -run '^$' -bench BenchmarkGenerator -benchmem ./bench/load/
func BenchmarkGenerator(b *testing.B) {
	srv := httptest.NewServer(newApp("shadow"))
	defer srv.Close()
	const rate = 4000
	for _, g := range []struct {
		name string
		run  func(ctx context.Context, base string, step uint64, rate int, d time.Duration) latencies
	}{
		{"paced", paced},
		{"vegeta", openLoop},
	} {
		b.Run(g.name, func(b *testing.B) {
			d := time.Duration(b.N) * time.Second / rate
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			cpu0 := testproc.CPUTime()
			res := g.run(context.Background(), srv.URL, 1, rate, max(d, time.Millisecond))
			cpu := testproc.CPUTime() - cpu0
			runtime.ReadMemStats(&m1)
			if res.Requests == 0 {
				b.Fatalf("nothing answered (%d errors)", res.Errors)
			}
			n := float64(res.Requests)
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/n, "allocs/answer")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/answer")
			b.ReportMetric(n/float64(b.N), "answered/scheduled")
			b.ReportMetric(float64(res.P99.Microseconds()), "p99-µs")
		})
	}
}

// The paced generator sends the whole schedule, every request answered, and
// each request once with its own sequence number.
func TestPacedSendsTheSchedule(t *testing.T) {
	a := newApp("shadow")
	srv := httptest.NewServer(a)
	defer srv.Close()
	if _, err := newAppClient(srv.Listener.Addr().String()).get("/_bench/reset?step=3"); err != nil {
		t.Fatal(err)
	}
	res := paced(context.Background(), srv.URL, 3, 500, 400*time.Millisecond)
	if res.Requests != 200 || res.Errors != 0 {
		t.Fatalf("answered %d, errors %d; want 200, 0", res.Requests, res.Errors)
	}
	st, err := newAppClient(srv.Listener.Addr().String()).stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Distinct != 200 || st.Dups != 0 || st.Stale != 0 {
		t.Fatalf("app saw %d distinct, %d dups, %d stale; want 200, 0, 0", st.Distinct, st.Dups, st.Stale)
	}
	if res.Senders < 1 || res.Offered <= 0 {
		t.Fatalf("senders %d, offered %v", res.Senders, res.Offered)
	}
}

func TestAppendLetters(t *testing.T) {
	for _, v := range []uint64{0, 1, 9, 10, 15, 16, 255, 256, 1<<63 + 12345, ^uint64(0), uint64(time.Now().UnixNano())} {
		if got, want := string(appendLetters(nil, v)), letters(v); got != want {
			t.Errorf("appendLetters(%d) = %q, want %q", v, got, want)
		}
	}
}

// readAnswer accepts a 2xx answer with a length or chunked body, leaving the
// reader at the next answer, and refuses everything else.
func TestReadAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: x\r\n\r\nhelloNEXT", true},
		{"created", "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}NEXT", true},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\nNEXT", true},
		{"server error", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\nNEXT", false},
		{"no length", "HTTP/1.1 200 OK\r\n\r\nhello", false},
		{"closing", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\nNEXT", false},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nNEXT", false},
		{"truncated", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", false},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tc.in))
			err := readAnswer(r)
			if (err == nil) != tc.ok {
				t.Fatalf("readAnswer: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				if rest, _ := io.ReadAll(r); string(rest) != "NEXT" {
					t.Fatalf("left %q, want NEXT", rest)
				}
			}
		})
	}
}
