package grpcwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// PrefixLen is the size of a gRPC frame's prefix: a compressed flag byte and
// a 4-byte big-endian message length.
const PrefixLen = 5

// ErrBadFrame is returned for a frame whose compressed flag is neither 0 nor 1.
var ErrBadFrame = errors.New("grpc frame: compressed flag not 0 or 1")

// IsGRPC reports whether contentType is gRPC's (application/grpc, optionally
// with +proto, +json or parameters). gRPC-Web (application/grpc-web) is not.
func IsGRPC(contentType string) bool {
	ct := strings.ToLower(strings.TrimSpace(contentType))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = strings.TrimSpace(ct[:i])
	}
	if !strings.HasPrefix(ct, "application/grpc") {
		return false
	}
	rest := ct[len("application/grpc"):]
	return rest == "" || (rest[0] == '+' && !strings.HasPrefix(rest, "+web"))
}

// SplitMethod splits a gRPC request path "/package.Service/Method" into its
// service and method. ok is false for anything else.
func SplitMethod(path string) (service, method string, ok bool) {
	if len(path) < 4 || path[0] != '/' {
		return "", "", false
	}
	service, method, ok = strings.Cut(path[1:], "/")
	if !ok || service == "" || method == "" || strings.ContainsAny(method, "/?#") {
		return "", "", false
	}
	return service, method, true
}

// Framer cuts one direction of a call's body into messages as its bytes
// arrive. It keeps at most limit bytes of each message's data (the rest is
// counted, the message marked truncated) and at most budget framed bytes in
// all: each kept message costs its 5-byte prefix and the data kept, so a
// body of many tiny or empty messages keeps no more messages than a record
// could carry. Messages beyond the budget are counted and left out, without
// allocating. Feed it the body in order; it never fails on a short read, only
// on a bad prefix.
type Framer struct {
	limit, budget int
	kept          int // framed bytes kept: prefixes and data
	msgs          []*mlv1.Message
	dropped       int
	err           error
	over          bool         // cur is left out: its prefix did not fit the budget
	scratch       mlv1.Message // cur while over (marks a message in progress)

	prefix      [PrefixLen]byte
	havePref    int
	cur         *mlv1.Message // message whose data is being read
	remaining   int64         // data bytes of cur still to come
	total       int64         // framed bytes seen
	startOffset int64         // offset of the current prefix's first byte
}

// NewFramer returns a Framer keeping at most limit bytes of data per message
// and budget framed bytes in all (0 or less: no limit).
func NewFramer(limit, budget int) *Framer { return &Framer{limit: limit, budget: budget} }

// Feed consumes p, whose first byte was seen offsetNs after the request
// started. After an error it ignores its input.
func (f *Framer) Feed(p []byte, offsetNs int64) {
	f.total += int64(len(p))
	for len(p) > 0 && f.err == nil {
		if f.cur == nil {
			n := copy(f.prefix[f.havePref:], p)
			if f.havePref == 0 {
				f.startOffset = offsetNs
			}
			f.havePref += n
			p = p[n:]
			if f.havePref < PrefixLen {
				return
			}
			f.havePref = 0
			if f.prefix[0] > 1 {
				f.err = ErrBadFrame
				return
			}
			size := int64(binary.BigEndian.Uint32(f.prefix[1:]))
			f.over = f.budget > 0 && f.kept+PrefixLen > f.budget
			if f.over {
				f.cur = &f.scratch // never read: the message is only counted
			} else {
				f.kept += PrefixLen
				f.cur = &mlv1.Message{OffsetNs: f.startOffset, Compressed: f.prefix[0] == 1, Size: size}
			}
			f.remaining = size
			if size == 0 {
				f.finishMessage()
			}
			continue
		}
		n := int64(len(p))
		if n > f.remaining {
			n = f.remaining
		}
		f.keep(p[:n])
		p = p[n:]
		f.remaining -= n
		if f.remaining == 0 {
			f.finishMessage()
		}
	}
}

// keep appends data to the current message within the limits.
func (f *Framer) keep(data []byte) {
	if f.over {
		return
	}
	room := len(data)
	if f.limit > 0 {
		room = min(room, f.limit-len(f.cur.Data))
	}
	if f.budget > 0 {
		room = min(room, f.budget-f.kept)
	}
	if room < len(data) {
		f.cur.Truncated = true
	}
	if room > 0 {
		f.cur.Data = append(f.cur.Data, data[:room]...)
		f.kept += room
	}
}

func (f *Framer) finishMessage() {
	m := f.cur
	f.cur = nil
	if f.over || f.budget > 0 && f.kept >= f.budget && len(m.Data) == 0 && m.Size > 0 {
		f.dropped++
		return
	}
	f.msgs = append(f.msgs, m)
}

// Finish returns the messages read: a message cut short by the end of the
// body is kept, marked truncated. messagesTruncated is true when messages
// were left out for the budget or the body ended inside a prefix; framed is
// the number of body bytes fed. err is ErrBadFrame when a prefix was invalid
// (the messages before it are returned).
func (f *Framer) Finish() (msgs []*mlv1.Message, messagesTruncated bool, framed int64, err error) {
	if f.cur != nil {
		if f.over {
			f.dropped++
		} else {
			f.cur.Truncated = true
			f.msgs = append(f.msgs, f.cur)
		}
		f.cur = nil
	}
	if f.havePref > 0 {
		f.dropped++
		f.havePref = 0
	}
	return f.msgs, f.dropped > 0, f.total, f.err
}

// AppendFrame appends m framed (prefix and data) to dst. A truncated message
// cannot be framed faithfully: the caller must not send it.
func AppendFrame(dst []byte, m *mlv1.Message) []byte {
	var p [PrefixLen]byte
	if m.GetCompressed() {
		p[0] = 1
	}
	binary.BigEndian.PutUint32(p[1:], uint32(len(m.GetData())))
	dst = append(dst, p[:]...)
	return append(dst, m.GetData()...)
}

// Frames returns msgs framed one after another: a call's body. It fails on a
// truncated message.
func Frames(msgs []*mlv1.Message) ([]byte, error) {
	n := 0
	for i, m := range msgs {
		if m.GetTruncated() {
			return nil, fmt.Errorf("grpc frame %d: message truncated at capture", i)
		}
		n += PrefixLen + len(m.GetData())
	}
	out := make([]byte, 0, n)
	for _, m := range msgs {
		out = AppendFrame(out, m)
	}
	return out, nil
}
