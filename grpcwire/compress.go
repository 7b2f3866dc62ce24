package grpcwire

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
)

// ErrUnsupportedEncoding is returned for a grpc-encoding mirrorline cannot read.
var ErrUnsupportedEncoding = errors.New("unsupported grpc-encoding")

// ErrTooLarge is returned when a message decompresses to more than the limit.
var ErrTooLarge = errors.New("decompressed grpc message over the limit")

// Decompress returns data decoded with encoding (a grpc-encoding value:
// identity, gzip, deflate, snappy, zstd), at most limit bytes (0: no limit).
func Decompress(encoding string, data []byte, limit int) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		if limit > 0 && len(data) > limit {
			return nil, ErrTooLarge
		}
		return data, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gunzip grpc message: %w", err)
		}
		defer zr.Close()
		r = zr
	case "deflate":
		fr := flate.NewReader(bytes.NewReader(data))
		defer fr.Close()
		r = fr
	case "snappy":
		r = snappy.NewReader(bytes.NewReader(data))
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd grpc message: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedEncoding, printable(encoding))
	}
	if limit > 0 {
		r = io.LimitReader(r, int64(limit)+1)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress grpc message (%s): %w", printable(encoding), err)
	}
	if limit > 0 && len(out) > limit {
		return nil, ErrTooLarge
	}
	return out, nil
}

// Compress encodes data with encoding (see Decompress).
func Compress(encoding string, data []byte) ([]byte, error) {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return data, nil
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
		if err != nil {
			return nil, err
		}
		w = fw
	case "snappy":
		w = snappy.NewBufferedWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		w = zw
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedEncoding, printable(encoding))
	}
	if _, err := w.Write(data); err != nil {
		return nil, fmt.Errorf("compress grpc message (%s): %w", encoding, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compress grpc message (%s): %w", encoding, err)
	}
	return buf.Bytes(), nil
}

// printable returns s cut to 32 bytes with anything but printable ASCII
// replaced, for error texts (s is captured, hostile).
func printable(s string) string {
	if len(s) > 32 {
		s = s[:32]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
