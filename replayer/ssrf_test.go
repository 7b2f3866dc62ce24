package replayer

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	"github.com/mirrorline/mirrorline/h1client"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/canary"
)

// recordingShadow is an allowed target recording the request-targets it gets.
type recordingShadow struct {
	*httptest.Server
	mu   sync.Mutex
	got  []string
	hits chan string
}

func newRecordingShadow(t *testing.T, redirectTo string) *recordingShadow {
	s := &recordingShadow{hits: make(chan string, 1000)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got = append(s.got, r.RequestURI)
		s.mu.Unlock()
		s.hits <- r.RequestURI
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, redirectTo, http.StatusFound)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *recordingShadow) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// hostileTargets are request-targets that must never make the replayer connect
// anywhere but its target; canary is "127.0.0.2:PORT" of a second canary.
func hostileTargets(canaryAddr string) []string {
	return []string{
		"http:@127.0.0.2/x",
		"http:@127.0.0.2:80/x",
		"@127.0.0.2/x",
		"@" + canaryAddr + "/x",
		"http:@" + canaryAddr + "/x",
		"http://user@127.0.0.2/x",
		"http://user:pw@" + canaryAddr + "/x",
		"https:@127.0.0.2/x",
		"//127.0.0.2/x",
		"//" + canaryAddr + "/x",
		"///127.0.0.2/x",
		`\\127.0.0.2\x`,
		`/\127.0.0.2`,
		`/\\127.0.0.2/x`,
		"%2F%2F127.0.0.2/x",
		"/%2F%2F127.0.0.2/x",
		"127.0.0.2:80/x",
		canaryAddr + "/x",
		"127.0.0.2:80",
		canaryAddr,
		"*",
		"x",
		".2/x",
		"evil.localhost:80/x",
		"/x\r\nHost: 127.0.0.2",
		"/x\tHTTP/1.1\r\nHost: 127.0.0.2",
		"/x#@127.0.0.2/",
		"/../x",
		"/%2e%2e/x",
		"/..;/x",
		"ftp://127.0.0.2/x",
	}
}

// TestReplayNeverLeavesTarget sends every hostile request-target through
// BuildRequest and the Sender's real client: neither canary (one on port 80,
// one on a random port) sees a connection, and the target sees only the safe
// requests, under their path and query.
func TestReplayNeverLeavesTarget(t *testing.T) {
	c80 := canary.Start(t, "127.0.0.2:80")
	cAny := canary.Start(t, "127.0.0.2:0")
	shadow := newRecordingShadow(t, "http://"+cAny.Addr()+"/followed")

	targets := []string{
		shadow.URL,
		shadow.URL + "/base",
		// A target that a dot suffix would turn into the canary's host.
		"http://127.0.0",
	}
	for _, target := range targets {
		for _, keepHost := range []bool{false, true} {
			s, err := NewSender(target, 2, KeepHost(keepHost), Timeout(10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			hostile := hostileTargets(cAny.Addr())
			hostile = append(hostile, "CONNECT 127.0.0.2:80", "CONNECT "+cAny.Addr(), "CONNECT /")
			for i, raw := range hostile {
				method := "GET"
				if rest, ok := strings.CutPrefix(raw, "CONNECT "); ok {
					method, raw = "CONNECT", rest
				}
				ex := &mlv1.Exchange{Id: "hostile-" + strconv.Itoa(i), Request: &mlv1.Request{Method: method, Url: raw, Host: "127.0.0.2"}}
				resp, err := s.Send(context.Background(), ex)
				if err == nil {
					t.Errorf("target %s: record with request-target %q was sent (status %d, error %q), want it refused as unsafe", target, raw, resp.GetStatus(), resp.GetError())
					continue
				}
				if !errors.Is(err, reqtarget.ErrUnsafe) {
					t.Errorf("target %s: request-target %q: error %v does not wrap reqtarget.ErrUnsafe", target, raw, err)
				}
			}
		}
	}
	for len(shadow.hits) > 0 {
		<-shadow.hits
	}
	// Safe records reach the target, under their path and query only.
	s, err := NewSender(shadow.URL+"/base/", 2)
	if err != nil {
		t.Fatal(err)
	}
	safe := []struct{ raw, want string }{
		{"/ok?a=1", "/base/ok?a=1"},
		{"http://127.0.0.2/abs?q=1", "/base/abs?q=1"},
		{"HTTP://" + cAny.Addr(), "/base/"},
		{"/a%2Fb/c%20d", "/base/a%2Fb/c%20d"},
		{"/redirect", "/base/redirect"},
	}
	for _, tc := range safe {
		resp, err := s.Send(context.Background(), &mlv1.Exchange{Id: "safe", Request: &mlv1.Request{Method: "GET", Url: tc.raw}})
		if err != nil || resp.Error != "" {
			t.Fatalf("safe request-target %q: %v %v", tc.raw, err, resp.GetError())
		}
		if got := <-shadow.hits; got != tc.want {
			t.Errorf("request-target %q reached the target as %q, want %q", tc.raw, got, tc.want)
		}
	}
	// A redirect at the target to the canary is not followed.
	if n := len(shadow.requests()); n != len(safe) {
		t.Errorf("target got %d requests %q, want %d", n, shadow.requests(), len(safe))
	}
	if c80.Hits() != 0 || cAny.Hits() != 0 {
		t.Fatalf("canaries reached: port 80 %d connections %q, port %d %d connections %q", c80.Hits(), c80.Lines(), cAny.Port(), cAny.Hits(), cAny.Lines())
	}
}

// TestSenderDialsOnlyTarget: the Sender's client refuses to connect to any
// address but its target's, whatever request it is handed (defence in depth
// behind BuildRequest).
func TestSenderDialsOnlyTarget(t *testing.T) {
	c := canary.Start(t, "127.0.0.2:0")
	samehost := canary.Start(t, "127.0.0.1:0") // the target's host, another port
	shadow := newRecordingShadow(t, "")
	s, err := NewSender(shadow.URL, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://" + c.Addr() + "/x", "http://" + samehost.Addr() + "/x", "https://" + c.Addr() + "/x"} {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("client connected to %s", u)
		} else if !errors.Is(err, ErrDialNotTarget) {
			t.Errorf("dial %s: %v, want ErrDialNotTarget", u, err)
		}
	}
	if c.Hits() != 0 || samehost.Hits() != 0 {
		t.Fatalf("canaries got %d and %d connections", c.Hits(), samehost.Hits())
	}
	req, _ := http.NewRequest(http.MethodGet, shadow.URL+"/fine", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("the target itself: %v", err)
	}
	resp.Body.Close()
}

// TestLiveDropsUnsafeTarget: a live replayer counts a record with an unsafe
// request-target as dropped{reason="unsafe_target"}, commits it and sends
// nothing for it; the next record of the connection is replayed.
func TestLiveDropsUnsafeTarget(t *testing.T) {
	c := canary.Start(t, "127.0.0.2:80")
	shadow := newRecordingShadow(t, "")
	fc := newFakeClient()
	m := NewMetrics(nil)
	startLive(t, fc, shadow.URL, WithMetrics(m))
	val := func(id, u string) []byte {
		v, _ := proto.Marshal(&mlv1.Exchange{Id: id, Request: &mlv1.Request{Method: "GET", Url: u}})
		return v
	}
	fc.polls <- []*kgo.Record{
		{Topic: "mirror.clean.svc", Partition: 0, Offset: 0, Key: []byte("c"), Value: val("a", "http:@127.0.0.2/x")},
		{Topic: "mirror.clean.svc", Partition: 0, Offset: 1, Key: []byte("c"), Value: val("b", "/safe")},
	}
	fc.waitFor(t, "both offsets marked", func(f *fakeClient) bool { return f.marked[0] == 2 })
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues(DropUnsafeTarget)); got != 1 {
		t.Errorf("dropped{unsafe_target} = %v, want 1", got)
	}
	if got := shadow.requests(); len(got) != 1 || got[0] != "/safe" {
		t.Errorf("target got %q, want only /safe", got)
	}
	if c.Hits() != 0 {
		t.Fatalf("canary got %d connections", c.Hits())
	}
}

// TestWindowDropsUnsafeTarget: a window replay counts an unsafe record as
// dropped{reason="unsafe_target"} (and in its summary's errors) and sends
// nothing for it.
func TestWindowDropsUnsafeTarget(t *testing.T) {
	c := canary.Start(t, "127.0.0.2:80")
	shadow := newRecordingShadow(t, "")
	s, err := NewSender(shadow.URL, 2)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	its := items(t0, 3, 0)
	its[0].Exchange.Request.Url = "@127.0.0.2/x"
	its[1].Exchange.Request.Url = "/safe"
	its[2].Exchange.Request.Url = "//127.0.0.2/x"
	m := NewMetrics(nil)
	sum, err := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), s, WithMetrics(m)).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 1 || sum.Errors[DropUnsafeTarget] != 2 {
		t.Errorf("summary: sent %d, errors %v; want 1 sent, 2 unsafe_target", sum.Sent, sum.Errors)
	}
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues(DropUnsafeTarget)); got != 2 {
		t.Errorf("dropped{unsafe_target} = %v, want 2", got)
	}
	if got := shadow.requests(); len(got) != 1 || got[0] != "/safe" {
		t.Errorf("target got %q, want only /safe", got)
	}
	if c.Hits() != 0 {
		t.Fatalf("canary got %d connections", c.Hits())
	}
	// A dry run reports them the same way, and does not schedule them.
	dry, err := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), nil, WithClock(NewVirtualClock(t0))).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if dry.Scheduled != 1 || dry.Sent != 1 || dry.Errors[DropUnsafeTarget] != 2 {
		t.Errorf("dry run: scheduled %d, would send %d, errors %v; want 1, 1, 2 unsafe_target", dry.Scheduled, dry.Sent, dry.Errors)
	}
}

// TestSenderReachesItsTarget: the dial check admits the target however it is
// written (IPv6, default port, upper-case name).
func TestSenderReachesItsTarget(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "127.0.0.2:80", "localhost"} {
		name := addr == "localhost"
		if name {
			addr = "127.0.0.1:0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		srv.Listener = ln
		srv.Start()
		target := srv.URL
		if strings.HasSuffix(addr, ":80") {
			target = "http://127.0.0.2"
		}
		if name {
			target = strings.Replace(target, "127.0.0.1", "LocalHost", 1)
		}
		s, err := NewSender(target+"/", 1)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.Send(context.Background(), &mlv1.Exchange{Id: "x", Request: &mlv1.Request{Method: "GET", Url: "/ok"}})
		if err != nil || resp.Error != "" || resp.Status != 200 {
			t.Errorf("target %s: %v %q status %d", target, err, resp.GetError(), resp.GetStatus())
		}
		srv.Close()
	}
	if got := h1client.Addr(&url.URL{Scheme: "https", Host: "Shadow.Internal"}); got != "Shadow.Internal:443" {
		t.Errorf("h1client.Addr = %q", got)
	}
}

// FuzzShadowURL: whatever the request-target, a URL ShadowURL returns is on
// the target (scheme, host, port) under the target's path, also once written
// out and parsed again as the HTTP client does.
func FuzzShadowURL(f *testing.F) {
	for _, s := range append(hostileTargets("127.0.0.2:8080"), "/ok?a=1", "http://h/x", "/a%2Fb", "/%") {
		f.Add(s)
	}
	target, _ := url.Parse("http://shadow.internal:8080/base")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ShadowURL(target, "GET", raw)
		if err != nil {
			if !errors.Is(err, reqtarget.ErrUnsafe) {
				t.Fatalf("error %v does not wrap ErrUnsafe", err)
			}
			return
		}
		back, err := url.Parse(u.String())
		if err != nil {
			t.Fatalf("%q -> %q does not parse: %v", raw, u.String(), err)
		}
		for _, v := range []*url.URL{u, back} {
			if v.Scheme != "http" || v.Host != "shadow.internal:8080" || v.User != nil || v.Opaque != "" || !strings.HasPrefix(v.EscapedPath(), "/base/") {
				t.Fatalf("%q -> %q leaves the target", raw, v.String())
			}
		}
		if back.RequestURI() != u.RequestURI() {
			t.Fatalf("%q -> request-URI %q, reparsed %q", raw, u.RequestURI(), back.RequestURI())
		}
	})
}

func BenchmarkBuildRequest(b *testing.B) {
	target, _ := url.Parse("http://shadow.internal:8080")
	ex := &mlv1.Exchange{Id: "id", Request: &mlv1.Request{Method: "GET", Url: "/api/v1/payments/12345/items?expand=lines&limit=50",
		Headers: []*mlv1.Header{{Name: "Accept", Value: "application/json"}, {Name: "Traceparent", Value: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := BuildRequest(ctx, target, ex, false); err != nil {
			b.Fatal(err)
		}
	}
}
