package redactor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// Content codings. Compressed bodies are decoded before scanning and, when
// something was redacted, re-encoded with the same codings (Content-Encoding
// is kept, Content-Length updated); an untouched body keeps its original
// compressed bytes.
type coding uint8

const (
	codingGzip     coding = iota + 1
	codingZlib            // "deflate" as RFC 9110 defines it (zlib framing)
	codingRawFlate        // "deflate" as some servers send it (no framing)
	codingBrotli
	codingZstd
)

// maxCodings bounds the codings stacked in one Content-Encoding.
const maxCodings = 4

// codings is a Content-Encoding list in the order the codings were applied.
type codings struct {
	n int
	c [maxCodings]coding
}

var (
	errCoding      = fmt.Errorf("unsupported content-encoding: %w", ErrUnparseable)
	errDecode      = fmt.Errorf("cannot decode compressed body: %w", ErrUnparseable)
	errDecodedSize = fmt.Errorf("decompressed body exceeds max_decoded_bytes: %w", ErrUnparseable)
)

// parseEncodings parses a Content-Encoding value ("identity" is skipped).
func parseEncodings(ce string) (codings, error) {
	var cs codings
	for ce != "" {
		var tok string
		tok, ce, _ = strings.Cut(ce, ",")
		tok = strings.TrimSpace(tok)
		var c coding
		switch {
		case tok == "" || asciiEqualFold(tok, "identity"):
			continue
		case asciiEqualFold(tok, "gzip"), asciiEqualFold(tok, "x-gzip"):
			c = codingGzip
		case asciiEqualFold(tok, "deflate"):
			c = codingZlib
		case asciiEqualFold(tok, "br"):
			c = codingBrotli
		case asciiEqualFold(tok, "zstd"):
			c = codingZstd
		default:
			return cs, errCoding
		}
		if cs.n == maxCodings {
			return cs, errCoding
		}
		cs.c[cs.n] = c
		cs.n++
	}
	return cs, nil
}

// decodeBody undoes the codings (last applied first). A "deflate" layer that
// is not zlib-framed is read as raw deflate, and cs records that so the
// re-encoding uses the same framing.
func decodeBody(b []byte, cs *codings, max int64) ([]byte, error) {
	for i := cs.n - 1; i >= 0; i-- {
		out, err := decodeOne(b, cs.c[i], max)
		if err != nil && cs.c[i] == codingZlib && !errors.Is(err, errDecodedSize) {
			if out, err = decodeOne(b, codingRawFlate, max); err == nil {
				cs.c[i] = codingRawFlate
			}
		}
		if err != nil {
			return nil, err
		}
		b = out
	}
	return b, nil
}

func decodeOne(b []byte, c coding, max int64) ([]byte, error) {
	var r io.Reader
	var closeFn func()
	src := bytes.NewReader(b)
	switch c {
	case codingGzip:
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(src)
		} else {
			err = zr.Reset(src)
		}
		if err != nil {
			return nil, errDecode
		}
		r, closeFn = zr, func() { gzipReaders.Put(zr) }
	case codingZlib:
		zr, _ := zlibReaders.Get().(io.ReadCloser)
		var err error
		if zr == nil {
			zr, err = zlib.NewReader(src)
		} else {
			err = zr.(zlib.Resetter).Reset(src, nil)
		}
		if err != nil {
			return nil, errDecode
		}
		r, closeFn = zr, func() { zlibReaders.Put(zr) }
	case codingRawFlate:
		fr, _ := flateReaders.Get().(io.ReadCloser)
		if fr == nil {
			fr = flate.NewReader(src)
		} else if err := fr.(flate.Resetter).Reset(src, nil); err != nil {
			return nil, errDecode
		}
		r, closeFn = fr, func() { flateReaders.Put(fr) }
	case codingBrotli:
		r = brotli.NewReader(src)
	case codingZstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(max)+1))
		if err != nil {
			return nil, errDecode
		}
		r, closeFn = zr, zr.Close
	default:
		return nil, errCoding
	}
	if closeFn != nil {
		defer closeFn()
	}
	var out bytes.Buffer
	out.Grow(min(len(b)*4, int(min(max, 1<<20))))
	n, err := out.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		if n > max || errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
			return nil, errDecodedSize
		}
		return nil, errDecode
	}
	if n > max {
		return nil, errDecodedSize
	}
	if c == codingBrotli || c == codingRawFlate {
		// These formats do not reject trailing garbage on their own: the
		// whole input must have been consumed.
		if src.Len() > 0 {
			return nil, errDecode
		}
	}
	return out.Bytes(), nil
}

// Re-encoding favours speed: the shadow needs a valid encoding of the
// scrubbed body, not the smallest one.
const (
	reencodeLevel       = 2 // flate family (gzip, zlib, raw deflate)
	reencodeBrotliLevel = 2
)

// Decoders and encoders are pooled: a flate state is about 40 KB (decoding)
// and 1 MB (encoding).
var (
	gzipReaders, zlibReaders, flateReaders sync.Pool
	// writers holds the pooled encoders (a resetWriter) of every coding but
	// zstd, which has one encoder of its own.
	writers = [...]sync.Pool{
		codingGzip:     {New: func() any { w, _ := gzip.NewWriterLevel(nil, reencodeLevel); return w }},
		codingZlib:     {New: func() any { w, _ := zlib.NewWriterLevel(nil, reencodeLevel); return w }},
		codingRawFlate: {New: func() any { w, _ := flate.NewWriter(nil, reencodeLevel); return w }},
		codingBrotli:   {New: func() any { return brotli.NewWriterLevel(nil, reencodeBrotliLevel) }},
	}
	zstdEncoder *zstd.Encoder
	zstdOnce    sync.Once
)

// resetWriter is a pooled encoder.
type resetWriter interface {
	io.WriteCloser
	Reset(w io.Writer)
}

// encodeBody applies the codings in order.
func encodeBody(b []byte, cs codings) ([]byte, error) {
	for i := 0; i < cs.n; i++ {
		var buf bytes.Buffer
		buf.Grow(len(b)/2 + 64)
		var err error
		if c := cs.c[i]; c == codingZstd {
			zstdOnce.Do(func() {
				zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			})
			buf.Write(zstdEncoder.EncodeAll(b, nil))
		} else {
			w := writers[c].Get().(resetWriter)
			w.Reset(&buf)
			err = writeClose(w, b)
			writers[c].Put(w)
		}
		if err != nil {
			return nil, fmt.Errorf("re-encode body: %w", err)
		}
		b = buf.Bytes()
	}
	return b, nil
}

func writeClose(w io.WriteCloser, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Close()
}
