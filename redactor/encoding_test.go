package redactor

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zlibBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zlib.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func flateBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func brotliBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := brotli.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

func TestCompressedBodies(t *testing.T) {
	plain := `{"email":"zoe@example.org","name":"Zoë"}`
	want := `{"email":"****","name":"Zoë"}`
	tests := []struct {
		ce     string
		body   []byte
		decode func([]byte) ([]byte, error)
	}{
		{"gzip", gzipBytes(t, []byte(plain)), nil},
		{"x-gzip", gzipBytes(t, []byte(plain)), nil},
		{"deflate", zlibBytes(t, []byte(plain)), nil},
		{"deflate", flateBytes(t, []byte(plain)), nil}, // raw deflate, as some servers send
		{"br", brotliBytes(t, []byte(plain)), nil},
		{"zstd", zstdBytes(t, []byte(plain)), nil},
		{"GZIP", gzipBytes(t, []byte(plain)), nil},
		{"identity", []byte(plain), nil},
		{"gzip, br", brotliBytes(t, gzipBytes(t, []byte(plain))), nil},
	}
	e := newEngine(t, Config{})
	for _, tc := range tests {
		t.Run(tc.ce, func(t *testing.T) {
			ex := reqEx("application/json", string(tc.body), "Content-Encoding", tc.ce, "Content-Length", strconv.Itoa(len(tc.body)))
			if _, err := e.Redact(ex); err != nil {
				t.Fatal(err)
			}
			if ce, _ := header(ex.Request.Headers, "Content-Encoding"); ce != tc.ce {
				t.Errorf("Content-Encoding changed to %q", ce)
			}
			if cl, _ := header(ex.Request.Headers, "Content-Length"); cl != strconv.Itoa(len(ex.Request.Body)) {
				t.Errorf("Content-Length %s, body %d", cl, len(ex.Request.Body))
			}
			got := plainBodies(t, ex)[0]
			if string(got) != want {
				t.Errorf("decoded %s, want %s", got, want)
			}
		})
	}
}

// TestReencodedInterop decodes our re-encoded bodies with the standard
// library (and the reference brotli reader), not with our own decoder.
func TestReencodedInterop(t *testing.T) {
	plain := []byte("mail zoe@example.org now")
	for _, tc := range []struct {
		c      coding
		decode func(io.Reader) (io.Reader, error)
	}{
		{codingGzip, func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
		{codingZlib, func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }},
		{codingRawFlate, func(r io.Reader) (io.Reader, error) { return flate.NewReader(r), nil }},
		{codingBrotli, func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }},
		{codingZstd, func(r io.Reader) (io.Reader, error) { return zstd.NewReader(r) }},
	} {
		out, err := encodeBody(plain, codings{n: 1, c: [maxCodings]coding{tc.c}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := tc.decode(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("coding %d: %v", tc.c, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("coding %d: %q %v", tc.c, got, err)
		}
	}
}

func TestCompressedUntouchedKeepsBytes(t *testing.T) {
	e := newEngine(t, Config{})
	body := gzipBytes(t, []byte(`{"a":"nothing personal"}`))
	ex := reqEx("application/json", string(body), "Content-Encoding", "gzip")
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ex.Request.Body, body) {
		t.Error("untouched compressed body was re-encoded")
	}
}

func TestRawDeflateReencodedRaw(t *testing.T) {
	cs := codings{n: 1, c: [maxCodings]coding{codingZlib}}
	plain, err := decodeBody(flateBytes(t, []byte("hello")), &cs, 1<<20)
	if err != nil || string(plain) != "hello" || cs.c[0] != codingRawFlate {
		t.Fatalf("raw deflate: %q %v %v", plain, err, cs.c[0])
	}
	out, err := encodeBody([]byte("bye"), cs)
	if err != nil {
		t.Fatal(err)
	}
	r := flate.NewReader(bytes.NewReader(out))
	var got bytes.Buffer
	if _, err := got.ReadFrom(r); err != nil || got.String() != "bye" {
		t.Fatalf("re-encoded raw deflate: %q %v", got.String(), err)
	}
}

func TestDecompressionBomb(t *testing.T) {
	e := newEngine(t, Config{MaxDecodedBytes: 1000})
	for _, tc := range []struct {
		ce   string
		body []byte
	}{
		{"gzip", gzipBytes(t, bytes.Repeat([]byte("a"), 5000))},
		{"br", brotliBytes(t, bytes.Repeat([]byte("a"), 5000))},
		{"zstd", zstdBytes(t, bytes.Repeat([]byte("a"), 5000))},
		{"deflate", zlibBytes(t, bytes.Repeat([]byte("a"), 5000))},
	} {
		ex := reqEx("text/plain", string(tc.body), "Content-Encoding", tc.ce)
		_, err := e.Redact(ex)
		if !errors.Is(err, ErrUnparseable) || !strings.Contains(err.Error(), "max_decoded_bytes") {
			t.Errorf("%s bomb: %v", tc.ce, err)
		}
	}
}

func TestParseEncodings(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{"", 0, false},
		{"identity", 0, false},
		{"gzip", 1, false},
		{" gzip , br ", 2, false},
		{"gzip,,br", 2, false},
		{"compress", 0, true},
		{"gzip,gzip,gzip,gzip,gzip", 0, true},
	} {
		cs, err := parseEncodings(tc.in)
		if (err != nil) != tc.fail || (!tc.fail && cs.n != tc.n) {
			t.Errorf("parseEncodings(%q) = %d, %v", tc.in, cs.n, err)
		}
	}
}

func TestTrailingGarbageRejected(t *testing.T) {
	for _, tc := range []struct {
		c    coding
		body []byte
	}{
		{codingBrotli, append(brotliBytes(t, []byte("x")), "junk"...)},
		{codingRawFlate, append(flateBytes(t, []byte("x")), "junk"...)},
	} {
		if _, err := decodeOne(tc.body, tc.c, 1<<20); err == nil {
			t.Errorf("coding %d: trailing garbage accepted", tc.c)
		}
	}
}

func TestDroppedCompressedBodyLosesEncoding(t *testing.T) {
	e := newEngine(t, Config{OnTruncated: TruncatedDrop})
	body := gzipBytes(t, []byte(`{"a":1}`))
	ex := reqEx("application/json", string(body[:10]), "Content-Encoding", "gzip", "Content-Length", "99")
	ex.Request.BodyTruncated = true
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if _, ok := header(ex.Request.Headers, "Content-Encoding"); ok || ex.Request.Body != nil {
		t.Errorf("dropped body: %v %q", ex.Request.Headers, ex.Request.Body)
	}
	e = newEngine(t, Config{})
	ex = reqEx("image/png", string(gzipBytes(t, []byte("png"))), "Content-Encoding", "gzip")
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if _, ok := header(ex.Request.Headers, "Content-Encoding"); ok {
		t.Error("Content-Encoding kept on a dropped binary body")
	}
}

func TestHeadersOnlyCompressedEmptyBody(t *testing.T) {
	// A HEAD response: Content-Encoding but no body.
	e := newEngine(t, Config{})
	ex := &mlv1.Exchange{Response: &mlv1.Response{Status: 200, Headers: hdr("Content-Encoding", "gzip", "Content-Length", "1234")}}
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if cl, _ := header(ex.Response.Headers, "Content-Length"); cl != "1234" {
		t.Errorf("Content-Length of a bodiless response changed to %s", cl)
	}
}
