package collector

import (
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestOrderTracker(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   [][]string
	}{
		{
			name:   "single request",
			chunks: []string{"GET / HTTP/1.1\r\nHost: a\r\nX-B: 1\r\nAccept: */*\r\nX-A: 2\r\n\r\n"},
			want:   [][]string{{"Host", "X-B", "Accept", "X-A"}},
		},
		{
			name: "split across reads, body with content-length, then pipelined",
			chunks: []string{
				"POST /p HTTP/1.1\r\nZ: 1\r\nCon", "tent-Length: 5\r\n\r\nhel",
				"loGET /q HTTP/1.1\r\nb-second: x\r\na-first: y\r\n\r\n",
			},
			want: [][]string{{"Z", "Content-Length"}, {"B-Second", "A-First"}},
		},
		{
			name: "chunked body with trailer",
			chunks: []string{
				"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nX-1: a\r\n\r\n",
				"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
				"GET /next HTTP/1.1\r\nY: 1\r\n\r\n",
			},
			want: [][]string{{"Transfer-Encoding", "X-1"}, {"Y"}},
		},
		{
			name: "lower-case names, common and not, kept after the next head is read",
			chunks: []string{
				"POST /p HTTP/1.1\r\ncontent-length: 3\r\nuser-agent: u\r\nx-custom-name: 1\r\nACCEPT: */*\r\n\r\nabc" +
					"GET /q HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /r HTTP/1.1\r\nX-Last: 1\r\n\r\n",
			},
			want: [][]string{{"Content-Length", "User-Agent", "X-Custom-Name", "Accept"}, {"Transfer-Encoding"}, {"X-Last"}},
		},
		{
			name:   "bare LF line endings",
			chunks: []string{"GET / HTTP/1.1\nB: 1\nA: 2\n\n"},
			want:   [][]string{{"B", "A"}},
		},
		{
			name:   "upgrade stops tracking",
			chunks: []string{"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /x HTTP/1.1\r\nA: 1\r\n\r\n"},
			want:   [][]string{{"Upgrade"}},
		},
		{
			name:   "bad content-length stops tracking",
			chunks: []string{"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\nGET / HTTP/1.1\r\nA: 1\r\n\r\n"},
			want:   nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tr orderTracker
			for _, c := range tc.chunks {
				tr.feed([]byte(c))
			}
			var got [][]string
			for n := tr.next(); n != nil; n = tr.next() {
				got = append(got, n)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestOrderedHeaders(t *testing.T) {
	h := http.Header{"A": {"1"}, "B": {"2", "3"}, "C": {"4"}, "Host": {"x"}}
	got := orderedHeaders(h, []string{"Host", "C", "B", "Gone"})
	var names []string
	for _, kv := range got {
		names = append(names, kv.Name+"="+kv.Value)
	}
	want := []string{"C=4", "B=2", "B=3", "A=1"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("got %v, want %v", names, want)
	}
}

func FuzzOrderTracker(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nA: 1\r\n\r\n"), 3)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 7)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		var tr orderTracker
		if split < 0 {
			split = -split
		}
		for len(data) > 0 {
			n := split%len(data) + 1
			tr.feed(data[:n])
			data = data[n:]
		}
		for i := 0; i < 1000 && tr.next() != nil; i++ {
		}
	})
}

// errAfter yields its bytes, then fails.
type errAfter struct {
	r   *strings.Reader
	err error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if e.r.Len() == 0 {
		return 0, e.err
	}
	return e.r.Read(p)
}

// BodyCapture read through ReadFrom (what io.Copy uses) keeps the first
// Limit bytes, counts them all, and passes a failure on, as Write does.
func TestBodyCaptureReadFrom(t *testing.T) {
	broken := errors.New("connection reset")
	body := strings.Repeat("0123456789", 10) // 100 bytes
	for _, tc := range []struct {
		name      string
		limit     int64
		presize   int64
		src       io.Reader
		kept      string
		truncated bool
		err       error
	}{
		{"under the limit", 200, 100, strings.NewReader(body), body, false, nil},
		{"exactly the limit", 100, 100, strings.NewReader(body), body, false, nil},
		{"over the limit", 30, -1, strings.NewReader(body), body[:30], true, nil},
		{"keep nothing", 0, 100, strings.NewReader(body), "", true, nil},
		{"fails within the limit", 200, 1 << 30, &errAfter{strings.NewReader(body[:40]), broken}, body[:40], false, broken},
		{"fails past the limit", 10, -1, &errAfter{strings.NewReader(body), broken}, body[:10], true, broken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := BodyCapture{Limit: tc.limit}
			c.Presize(tc.presize)
			n, err := io.Copy(&c, tc.src)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			kept, truncated, size := c.Result()
			wantSize := int64(100)
			if tc.err != nil && tc.name == "fails within the limit" {
				wantSize = 40
			}
			if string(kept) != tc.kept || truncated != tc.truncated || size != wantSize || n != wantSize {
				t.Fatalf("kept %q truncated %v size %d copied %d; want %q %v %d", kept, truncated, size, n, tc.kept, tc.truncated, wantSize)
			}
		})
	}
}
