package pcapimport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// MaxBlockBytes bounds one pcapng block (as Wireshark does): a longer declared
// length is taken for garbage rather than skipped to the end of the file.
const MaxBlockBytes = 16 << 20

// MaxRecordBytes bounds one packet record of a classic pcap file.
const MaxRecordBytes = MaxBlockBytes

// pcapng block types whose fixed fields ngFramer checks.
const (
	ngSectionHeader   = 0x0A0D0D0A
	ngInterface       = 0x00000001
	ngPacketObsolete  = 0x00000002
	ngSimplePacket    = 0x00000003
	ngEnhancedPacket  = 0x00000006
	ngByteOrderMagic  = 0x1A2B3C4D
	ngPrefix          = 28 // bytes of a block read before it is checked
	ngPacketOverhead  = 32 // EPB/PB: header, fixed fields, trailing length
	ngSimpleOverhead  = 16
	ngInterfaceSnapAt = 12
)

// ngFramer sits between a pcapng file and its reader and checks the block
// framing of the bytes that pass: every block's length (at least 12, a multiple
// of 4, at most MaxBlockBytes, repeated at its end), the byte-order magic of
// section headers and that a packet's captured length fits its block. The
// reader it feeds skips blocks it does not know by their declared length, so
// without this, garbage after a valid header reads as one unknown block that
// ends the file cleanly. The first violation ends the stream with a
// *FormatError at the offset of the block.
type ngFramer struct {
	r     io.Reader
	off   int64 // offset of the next byte read from r
	start int64 // offset of the current block
	pos   int64 // bytes of the current block seen
	pre   [ngPrefix]byte
	total int64 // declared length of the current block (0: not known yet)
	typ   uint32
	order binary.ByteOrder
	snap  uint32 // snap length of the section's first interface (0: none)
	ifs   int
	err   error
}

func newNgFramer(r io.Reader) *ngFramer { return &ngFramer{r: r, order: binary.LittleEndian} }

func (f *ngFramer) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.r.Read(p)
	return f.check(p[:n], err)
}

// check scans b, just read from the file with error rerr, and returns how many
// of its bytes to hand over and the error to report.
func (f *ngFramer) check(b []byte, rerr error) (int, error) {
	callStart := f.off
	if err := f.scan(b); err != nil {
		f.err = err
		// Hand over only what precedes the bad block.
		return int(max(0, min(int64(len(b)), f.start-callStart))), err
	}
	if errors.Is(rerr, io.EOF) && f.pos > 0 {
		what := fmt.Sprintf("a block of %d bytes", f.total)
		if f.total == 0 {
			what = "a block header"
		}
		f.err = &FormatError{Offset: f.start, Err: fmt.Errorf("file ends inside %s (%d bytes present)", what, f.pos)}
		return len(b), f.err
	}
	return len(b), rerr
}

// scan advances the block state over b.
func (f *ngFramer) scan(b []byte) error {
	for len(b) > 0 {
		if f.total == 0 || f.pos < min(f.total-4, ngPrefix) {
			// Assemble the block's start: its header, then its fixed fields.
			want := f.prefixWant()
			b = f.pass(b, int64(copy(f.pre[f.pos:want], b)))
			if f.pos < want {
				continue
			}
			if err := f.advanceHead(); err != nil {
				return err
			}
			continue
		}
		if f.pos < f.total-4 {
			b = f.pass(b, min(int64(len(b)), f.total-4-f.pos))
			continue
		}
		// The trailing copy of the length, assembled in pre[0:4] past the prefix.
		i := f.pos - (f.total - 4)
		b = f.pass(b, int64(copy(f.trailer()[i:4], b)))
		if f.pos == f.total {
			if got := f.order.Uint32(f.trailer()); int64(got) != f.total {
				return &FormatError{Offset: f.start, Err: fmt.Errorf("block length %d does not match its trailing copy %d", f.total, got)}
			}
			f.start, f.pos, f.total = f.off, 0, 0
		}
	}
	return nil
}

// pass counts the first k bytes of b as read and returns the rest.
func (f *ngFramer) pass(b []byte, k int64) []byte {
	f.pos += k
	f.off += k
	return b[k:]
}

// trailer is where the trailing length is assembled (the prefix is done with).
func (f *ngFramer) trailer() []byte { return f.pre[24:28] }

// prefixWant is how many bytes of the block to assemble before the next check.
func (f *ngFramer) prefixWant() int64 {
	switch {
	case f.pos < 8:
		return 8
	case f.total == 0:
		return 12 // a section header's byte-order magic
	default:
		return min(f.total-4, ngPrefix)
	}
}

// advanceHead checks what has been assembled of the block's start.
func (f *ngFramer) advanceHead() error {
	if f.total == 0 {
		typ := binary.LittleEndian.Uint32(f.pre[0:4]) // the section header type is a palindrome
		if typ == ngSectionHeader {
			if f.pos < 12 {
				return nil
			}
			switch {
			case binary.LittleEndian.Uint32(f.pre[8:12]) == ngByteOrderMagic:
				f.order = binary.LittleEndian
			case binary.BigEndian.Uint32(f.pre[8:12]) == ngByteOrderMagic:
				f.order = binary.BigEndian
			default:
				return &FormatError{Offset: f.start, Err: errors.New("section header has no valid byte-order magic")}
			}
			f.snap, f.ifs = 0, 0
		}
		f.typ = f.order.Uint32(f.pre[0:4])
		total := int64(f.order.Uint32(f.pre[4:8]))
		switch {
		case total < 12 || total%4 != 0:
			return &FormatError{Offset: f.start, Err: fmt.Errorf("block length %d is invalid (at least 12, a multiple of 4)", total)}
		case total > MaxBlockBytes:
			return &FormatError{Offset: f.start, Err: fmt.Errorf("block length %d exceeds the %d-byte limit", total, MaxBlockBytes)}
		case f.typ == ngSectionHeader && total < 28:
			return &FormatError{Offset: f.start, Err: fmt.Errorf("section header length %d is too short", total)}
		}
		f.total = total
		if f.pos < min(f.total-4, ngPrefix) {
			return nil
		}
	}
	if f.pos != min(f.total-4, ngPrefix) {
		return nil
	}
	// The fixed fields are in: check what the reader will trust.
	body := f.total - 4
	switch f.typ {
	case ngInterface:
		if body >= ngInterfaceSnapAt+4 && f.ifs == 0 {
			f.snap = f.order.Uint32(f.pre[ngInterfaceSnapAt : ngInterfaceSnapAt+4])
		}
		f.ifs++
	case ngEnhancedPacket, ngPacketObsolete:
		if f.total < ngPacketOverhead {
			return &FormatError{Offset: f.start, Err: fmt.Errorf("packet block length %d is too short", f.total)}
		}
		if capLen := int64(f.order.Uint32(f.pre[20:24])); capLen > f.total-ngPacketOverhead {
			return &FormatError{Offset: f.start, Err: fmt.Errorf("captured length %d exceeds its block of %d bytes", capLen, f.total)}
		}
	case ngSimplePacket:
		if f.total < ngSimpleOverhead {
			return &FormatError{Offset: f.start, Err: fmt.Errorf("simple packet block length %d is too short", f.total)}
		}
		capLen := int64(f.order.Uint32(f.pre[8:12]))
		if f.snap > 0 {
			capLen = min(capLen, int64(f.snap))
		}
		if capLen > f.total-ngSimpleOverhead {
			return &FormatError{Offset: f.start, Err: fmt.Errorf("packet length %d exceeds its block of %d bytes", capLen, f.total)}
		}
	}
	return nil
}

// sniffFramer checks pcapng framing (ngFramer) when the stream starts like a
// pcapng file and passes any other format through untouched.
type sniffFramer struct {
	r       io.Reader
	decided bool
	ng      *ngFramer
}

func (s *sniffFramer) Read(p []byte) (int, error) {
	if s.ng != nil {
		return s.ng.Read(p)
	}
	if s.decided {
		return s.r.Read(p)
	}
	n, err := s.r.Read(p)
	if n == 0 {
		return n, err
	}
	s.decided = true
	if p[0] != 0x0A { // not a section header: not pcapng
		return n, err
	}
	s.ng = newNgFramer(s.r)
	return s.ng.check(p[:n], err)
}
