package middleware

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// The test binary doubles as the middleware program: with helperEnv set,
// TestMain runs the behaviour it names instead of the tests.
const (
	helperEnv  = "MIRRORLINE_MW_HELPER"
	helperNEnv = "MIRRORLINE_MW_HELPER_N"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

type helperMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Request json.RawMessage `json:"request"`
	Shadow  *struct {
		Status int `json:"status"`
	} `json:"shadow"`
	Primary *struct {
		Status int `json:"status"`
	} `json:"primary"`
}

// runHelper is the middleware program of the tests. Modes:
//
//	echo       answers each request with itself
//	ack        answers {"id"} (send unchanged)
//	drop       drops every request
//	modify     adds X-Helper: go (and X-Last-Response: shadow/primary
//	           statuses of the last response line, when there was one)
//	never      never answers; exits when stdin closes
//	holdfirst  holds the first request; answers it with the second, then echoes
//	bad        answers invalidly, by the request's url (see badAnswer)
//	exit       echoes N-1 requests, exits with status 3 at the Nth
//	crashloop  exits with status 3 at once
//	reverse    collects N requests, answers them in reverse order, each
//	           with X-Seen-Id: its id
//	stubborn   starts a child (mode sleep) in its group, answers with
//	           X-Child-Pid, ignores SIGTERM and stdin closing
//	closestdin closes its stdin, echoes the first request and sleeps
//	longline   answers with a line of N bytes
//	sleep      sleeps
func runHelper(mode string) int {
	n, _ := strconv.Atoi(os.Getenv(helperNEnv))
	in := bufio.NewReaderSize(os.Stdin, 1<<16)
	out := bufio.NewWriter(os.Stdout)
	send := func(v any) {
		b, _ := json.Marshal(v)
		out.Write(append(b, '\n'))
		out.Flush()
	}
	echo := func(m helperMsg) { send(map[string]any{"id": m.ID, "request": m.Request}) }
	withHeaders := func(m helperMsg, hs ...[2]string) {
		var r map[string]any
		json.Unmarshal(m.Request, &r)
		headers, _ := r["headers"].([]any)
		for _, h := range hs {
			headers = append(headers, []string{h[0], h[1]})
		}
		r["headers"] = headers
		send(map[string]any{"id": m.ID, "request": r})
	}
	switch mode {
	case "crashloop":
		return 3
	case "sleep":
		time.Sleep(time.Hour)
		return 0
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
	}
	var child *exec.Cmd
	if mode == "stubborn" {
		child = exec.Command(os.Args[0])
		child.Env = append(os.Environ(), helperEnv+"=sleep")
		if err := child.Start(); err != nil {
			return 1
		}
	}
	var held []helperMsg
	lastResponse := ""
	count := 0
	for {
		line, err := in.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			return 1
		}
		var m helperMsg
		if err := json.Unmarshal(line, &m); err != nil {
			return 2
		}
		if m.Type == "response" {
			lastResponse = fmt.Sprintf("%d/", m.Shadow.Status)
			if m.Primary != nil {
				lastResponse += strconv.Itoa(m.Primary.Status)
			}
			continue
		}
		count++
		switch mode {
		case "echo":
			echo(m)
		case "ack":
			send(map[string]any{"id": m.ID})
		case "drop":
			send(map[string]any{"id": m.ID, "drop": true})
		case "modify":
			hs := [][2]string{{"X-Helper", "go"}}
			if lastResponse != "" {
				hs = append(hs, [2]string{"X-Last-Response", lastResponse})
			}
			withHeaders(m, hs...)
		case "never":
		case "closestdin":
			os.Stdin.Close() // before the answer: the next request is written after it
			echo(m)
			time.Sleep(time.Hour)
		case "longline":
			out.Write(bytes.Repeat([]byte("x"), n))
			out.WriteString("\n")
			out.Flush()
		case "holdfirst":
			if count == 1 {
				held = append(held, m)
				continue
			}
			for _, h := range held {
				echo(h)
			}
			held = nil
			echo(m)
		case "bad":
			badAnswer(m, send, out)
		case "exit":
			if count >= n {
				return 3
			}
			echo(m)
		case "reverse":
			held = append(held, m)
			if len(held) == n {
				for i := len(held) - 1; i >= 0; i-- {
					withHeaders(held[i], [2]string{"X-Seen-Id", held[i].ID})
				}
				held = nil
			}
		case "stubborn":
			withHeaders(m, [2]string{"X-Child-Pid", strconv.Itoa(child.Process.Pid)})
		default:
			return 4
		}
	}
	if mode == "stubborn" {
		time.Sleep(time.Hour)
	}
	return 0
}

// badAnswer answers m invalidly, as its url asks.
func badAnswer(m helperMsg, send func(any), out *bufio.Writer) {
	var r map[string]any
	json.Unmarshal(m.Request, &r)
	url, _ := r["url"].(string)
	ans := map[string]any{"id": m.ID, "request": r}
	switch url {
	case "/bad-method":
		r["method"] = "GE T"
	case "/empty-method":
		r["method"] = ""
	case "/crlf":
		r["headers"] = []any{[]string{"X-Evil", "a\r\nInjected: yes"}}
	case "/nul":
		r["headers"] = []any{[]string{"X-Evil", "a\x00b"}}
	case "/header-name":
		r["headers"] = []any{[]string{"Bad Name", "v"}}
	case "/header-shape":
		r["headers"] = []any{[]string{"X-Only-Name"}}
	case "/header-type":
		r["headers"] = []any{[]any{"X-A", 5}}
	case "/base64":
		r["body"] = "%%%not base64%%%"
	case "/url-space":
		r["url"] = "/a b"
	case "/url-empty":
		r["url"] = ""
	case "/host-crlf":
		r["host"] = "h\r\nX: y"
	case "/type":
		ans["type"] = "response"
	case "/drop-type":
		ans["drop"] = "yes"
	case "/request-type":
		ans["request"] = "GET /"
	case "/noise":
		// Lines that answer nothing, then the right answer.
		out.WriteString("this is not json\n")
		out.WriteString("{\"id\": 5}\n")
		out.WriteString("\n")
		out.WriteString("{\"id\": \"nobody-waits-for-this\"}\n")
		out.Flush()
	}
	send(ans)
}

// startHelper starts the test binary as the middleware program in mode,
// with a goroutine leak check and Close at the end of the test.
func startHelper(t *testing.T, mode string, cfg Config, n int) (*Middleware, *Metrics) {
	t.Helper()
	checkNoLeak(t)
	t.Setenv(helperEnv, mode)
	t.Setenv(helperNEnv, strconv.Itoa(n))
	if cfg.Command == nil {
		cfg.Command = []string{os.Args[0]}
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	mw, err := Start(context.Background(), cfg, testLogger(t), m)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { mw.Close() })
	return mw, m
}

func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: testWriter{t}})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// checkNoLeak fails the test when goroutines of this package (or of
// os/exec) are left once the test's cleanups ran; it is registered first so
// that it runs last.
func checkNoLeak(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(15 * time.Second)
		for {
			leaks := leakedGoroutines()
			if len(leaks) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines left after Close:\n%s", strings.Join(leaks, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond) // polling a condition, bounded
		}
	})
}

func leakedGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var leaks []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		ours := strings.Contains(g, "/replayer/middleware.") && !strings.Contains(g, "_test.go")
		if ours || strings.Contains(g, "os/exec.") {
			leaks = append(leaks, g)
		}
	}
	return leaks
}
