package middleware

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func TestDecodeAnswer(t *testing.T) {
	in := &mlv1.Request{
		Method: "GET", Url: "/a\xff", Host: "h", Proto: "HTTP/1.1",
		Headers: []*mlv1.Header{{Name: "A", Value: "1"}, {Name: "B", Value: "x\xfey"}},
		Body:    []byte("body"), BodySize: 4,
	}
	for _, tc := range []struct {
		name, line string
		drop       bool
		modified   bool
		err        error
		check      func(t *testing.T, out *mlv1.Request)
	}{
		{name: "no request: unchanged", line: `{"id":"1"}`, check: func(t *testing.T, out *mlv1.Request) {
			if out.Url != in.Url || out.BodySize != 4 || out.Proto != "HTTP/1.1" {
				t.Errorf("out = %v", out)
			}
		}},
		{name: "null request: unchanged", line: `{"id":"1","request":null,"drop":false}`},
		{name: "drop", line: `{"id":"1","drop":true,"request":{"method":"GE T"}}`, drop: true},
		{name: "echo through JSON keeps bytes", line: `{"id":"1","type":"request","request":{"method":"GET","url":"/a\ufffd","host":"h","headers":[["A","1"],["B","x\ufffdy"]],"body":"Ym9keQ=="}}`,
			check: func(t *testing.T, out *mlv1.Request) {
				if out.Url != "/a\xff" || out.Headers[1].Value != "x\xfey" {
					t.Errorf("captured bytes lost: %q %q", out.Url, out.Headers[1].Value)
				}
			}},
		{name: "replacement is entire", line: `{"id":"1","request":{"method":"PUT","url":"/b"}}`, modified: true,
			check: func(t *testing.T, out *mlv1.Request) {
				if out.Method != "PUT" || out.Url != "/b" || out.Host != "" || len(out.Headers) != 0 || len(out.Body) != 0 || out.BodySize != 0 {
					t.Errorf("out = %v", out)
				}
				if out.Proto != "HTTP/1.1" {
					t.Errorf("fields outside the protocol lost: %v", out)
				}
			}},
		{name: "headers reordered", line: `{"id":"1","request":{"method":"GET","url":"/a\ufffd","host":"h","headers":[["B","x\ufffdy"],["A","1"]],"body":"Ym9keQ=="}}`, modified: true,
			check: func(t *testing.T, out *mlv1.Request) {
				if out.Headers[0].Value != "x\ufffdy" {
					t.Errorf("a value moved is taken as written: %q", out.Headers[0].Value)
				}
			}},
		{name: "body changed", line: `{"id":"1","request":{"method":"GET","url":"/x","body":"bG9uZ2VyIGJvZHk="}}`, modified: true,
			check: func(t *testing.T, out *mlv1.Request) {
				if string(out.Body) != "longer body" || out.BodySize != 11 {
					t.Errorf("body %q size %d", out.Body, out.BodySize)
				}
			}},
		{name: "string drop", line: `{"id":"1","drop":"true"}`, err: ErrBadAnswer},
		{name: "tab in value is fine", line: `{"id":"1","request":{"method":"GET","url":"/","headers":[["A","a\tb"]]}}`, modified: true},
		{name: "DEL in value", line: `{"id":"1","request":{"method":"GET","url":"/","headers":[["A","a\u007fb"]]}}`, err: ErrBadAnswer},
		{name: "non-ASCII method", line: `{"id":"1","request":{"method":"G\u00c9T","url":"/"}}`, err: ErrBadAnswer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, a, err := parseAnswerID([]byte(tc.line))
			if err != nil {
				t.Fatalf("parseAnswerID: %v", err)
			}
			out, drop, modified, err := decodeAnswer(a, in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if drop != tc.drop || modified != tc.modified {
				t.Errorf("drop %v modified %v, want %v %v", drop, modified, tc.drop, tc.modified)
			}
			if out == in {
				t.Error("out is the input itself")
			}
			if tc.check != nil {
				tc.check(t, out)
			}
		})
	}
}

func TestParseAnswerIDRejects(t *testing.T) {
	for _, line := range []string{`not json`, `[]`, `{"id":5}`, `{"drop":true}`, `{"id":null}`, `"x"`} {
		if _, _, err := parseAnswerID([]byte(line)); err == nil {
			t.Errorf("%s: accepted", line)
		}
	}
}

func TestEncodeRequestIsOneLine(t *testing.T) {
	req := &mlv1.Request{Method: "GET", Url: "/a\nb\u2028", Headers: []*mlv1.Header{{Name: "X", Value: "\r\n"}}, Body: []byte("\n")}
	line, err := encodeRequest("id\n", Meta{Service: "s\n"}, req)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(line), "\n") != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("not one line: %q", line)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	r := m["request"].(map[string]any)
	if r["url"] != "/a\nb\u2028" || r["body"] != "Cg==" || m["type"] != "request" || m["service"] != "s\n" {
		t.Errorf("decoded %v", m)
	}
}
