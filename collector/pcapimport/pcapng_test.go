package pcapimport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
)

// ngBlock builds a little-endian pcapng block of type typ with body, its
// length fields set to total (0: the true length) and trailer (0: total).
func ngBlock(typ uint32, body []byte, total, trailer uint32) []byte {
	if total == 0 {
		total = uint32(12 + len(body))
	}
	if trailer == 0 {
		trailer = total
	}
	b := binary.LittleEndian.AppendUint32(nil, typ)
	b = binary.LittleEndian.AppendUint32(b, total)
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, trailer)
}

// A capture whose valid start is followed by something that is not pcapng is an
// error naming the offset of the bad block; what came before is still
// published.
func TestImportPcapngGarbage(t *testing.T) {
	ngBytes, err := os.ReadFile("testdata/http.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	pcapBytes, err := os.ReadFile("testdata/http.pcap")
	if err != nil {
		t.Fatal(err)
	}
	whole := func(data []byte) int {
		pub := &packettest.Collect{}
		im := New(pub, WithPorts(8080))
		if err := im.Import(context.Background(), "ok", bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		im.Close()
		return len(pub.Got())
	}
	ngExchanges, pcapExchanges := whole(ngBytes), whole(pcapBytes)
	if ngExchanges == 0 || pcapExchanges == 0 {
		t.Fatal("test captures publish nothing")
	}
	epb := make([]byte, 20)                                    // interface 0, timestamp 0
	binary.LittleEndian.PutUint32(epb[12:], 1000)              // captured length
	binary.LittleEndian.PutUint32(epb[16:], 1000)              // original length
	hugePcap := append([]byte(nil), pcapBytes...)              // snap length "unlimited"
	binary.LittleEndian.PutUint32(hugePcap[16:20], 0xFFFFFFFF) // (the test file is little-endian)
	hugeRec := binary.LittleEndian.AppendUint32(nil, 0)        // ts sec
	hugeRec = binary.LittleEndian.AppendUint32(hugeRec, 0)     // ts usec
	hugeRec = binary.LittleEndian.AppendUint32(hugeRec, 1<<31) // captured length: 2 GiB
	hugeRec = binary.LittleEndian.AppendUint32(hugeRec, 1<<31) // original length
	for _, tc := range []struct {
		name      string
		base      []byte
		tail      []byte
		text      string
		published int
	}{
		{"garbage after the last block", ngBytes, []byte(strings.Repeat("this is not a pcapng block at all ", 4)), "exceeds", ngExchanges},
		{"huge block length", ngBytes, ngBlock(6, nil, 0xFFFFFFF0, 0), "exceeds the 16777216-byte limit", ngExchanges},
		{"length not a multiple of 4", ngBytes, ngBlock(0xBAD, make([]byte, 8), 18, 0), "is invalid", ngExchanges},
		{"unknown block running past the end", ngBytes, ngBlock(0xBAD, make([]byte, 16), 1024, 0)[:28], "file ends inside a block of 1024 bytes", ngExchanges},
		{"trailing length differs", ngBytes, ngBlock(0xBAD, make([]byte, 8), 0, 24), "does not match its trailing copy 24", ngExchanges},
		{"captured length beyond its block", ngBytes, ngBlock(6, epb, 0, 0), "captured length 1000 exceeds its block", ngExchanges},
		{"header cut short", ngBytes, []byte{6, 0, 0}, "file ends inside a block header", ngExchanges},
		{"pcap record of 2 GiB", hugePcap, hugeRec, "exceeds snap length", pcapExchanges},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := append(append([]byte(nil), tc.base...), tc.tail...)
			pub := &packettest.Collect{}
			im := New(pub, WithPorts(8080))
			err := im.Import(context.Background(), "f.bin", bytes.NewReader(data))
			im.Close()
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "f.bin" || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %v, want a FormatError with %q", err, tc.text)
			}
			if fe.Offset != int64(len(tc.base)) {
				t.Errorf("offset %d, want %d (where the bad block starts)", fe.Offset, len(tc.base))
			}
			if len(pub.Got()) != tc.published || im.Summary().Errors.Load() != 1 {
				t.Errorf("published %d, want %d (errors %d)", len(pub.Got()), tc.published, im.Summary().Errors.Load())
			}
		})
	}
}

// FuzzPcapng imports arbitrary bytes after a valid pcapng start: never a panic,
// and an error, when there is one, is a FormatError within the file.
func FuzzPcapng(f *testing.F) {
	ngBytes, err := os.ReadFile("testdata/http.pcapng")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ngBytes[:len(ngBytes)/2], ngBytes[len(ngBytes)/2:])
	f.Add(ngBytes, ngBlock(6, nil, 0xFFFFFFF0, 0))
	f.Add(ngBytes[:64], []byte("garbage"))
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		data := append(append([]byte(nil), head...), tail...)
		pub := &packettest.Collect{}
		im := New(pub, WithBodyLimit(64))
		err := im.Import(context.Background(), "fuzz.pcapng", bytes.NewReader(data))
		im.Close()
		var fe *FormatError
		if err != nil && (!errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > int64(len(data))) {
			t.Fatalf("error %v", err)
		}
	})
}

// An interface block whose timestamp resolution overflows (2^-64 s) made the
// pcapng reader divide by zero: it is a FormatError, not a crash.
func TestImportPcapngHostileInterface(t *testing.T) {
	shb := binary.LittleEndian.AppendUint32(nil, 0x1A2B3C4D)
	shb = binary.LittleEndian.AppendUint16(shb, 1)
	shb = binary.LittleEndian.AppendUint16(shb, 0)
	shb = binary.LittleEndian.AppendUint64(shb, ^uint64(0))
	idb := binary.LittleEndian.AppendUint16(nil, 1) // Ethernet
	idb = binary.LittleEndian.AppendUint16(idb, 0)
	idb = binary.LittleEndian.AppendUint32(idb, 65535)
	idb = append(idb, 9, 0, 1, 0, 0xC0, 0, 0, 0) // if_tsresol: binary, exponent 64
	idb = append(idb, 0, 0, 0, 0)                // end of options
	data := append(ngBlock(0x0A0D0D0A, shb, 0, 0), ngBlock(1, idb, 0, 0)...)
	data = append(data, ngBlock(6, make([]byte, 20), 0, 0)...)
	im := New(&packettest.Collect{})
	err := im.Import(context.Background(), "f.pcapng", bytes.NewReader(data))
	im.Close()
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "malformed capture") {
		t.Fatalf("error %v, want a FormatError for the malformed capture", err)
	}
}
