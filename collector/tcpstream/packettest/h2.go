package packettest

import (
	"bytes"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// H2 writes the bytes of an HTTP/2 connection, each side with its own
// framer and HPACK encoder (the client's starting with the preface when
// asked).
type H2 struct {
	buf [2]bytes.Buffer
	fr  [2]*http2.Framer
	enc [2]*hpack.Encoder
	hb  [2]bytes.Buffer
}

// NewH2 returns an HTTP/2 connection writer.
func NewH2() *H2 {
	h := &H2{}
	for i := range 2 {
		h.fr[i] = http2.NewFramer(&h.buf[i], nil)
		h.enc[i] = hpack.NewEncoder(&h.hb[i])
	}
	return h
}

// ClientStart returns the client preface and its SETTINGS.
func (h *H2) ClientStart() []byte {
	h.buf[0].WriteString(http2.ClientPreface)
	_ = h.fr[0].WriteSettings()
	return h.take(0)
}

// ServerStart returns the server's SETTINGS.
func (h *H2) ServerStart() []byte {
	_ = h.fr[1].WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 100})
	return h.take(1)
}

// Request returns a HEADERS frame of a request without a body on stream id.
func (h *H2) Request(id uint32, method, authority, path string) []byte {
	h.headers(0, id, true, ":method", method, ":scheme", "http", ":authority", authority, ":path", path, "user-agent", "t")
	return h.take(0)
}

// Response returns the HEADERS and DATA frames of a response on stream id.
func (h *H2) Response(id uint32, status, body string) []byte {
	h.headers(1, id, body == "", ":status", status, "content-type", "text/plain")
	if body != "" {
		_ = h.fr[1].WriteData(id, true, []byte(body))
	}
	return h.take(1)
}

func (h *H2) headers(side int, id uint32, end bool, kv ...string) {
	h.hb[side].Reset()
	for i := 0; i+1 < len(kv); i += 2 {
		_ = h.enc[side].WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	_ = h.fr[side].WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.hb[side].Bytes(), EndStream: end, EndHeaders: true})
}

func (h *H2) take(side int) []byte {
	out := bytes.Clone(h.buf[side].Bytes())
	h.buf[side].Reset()
	return out
}
