package pcapimport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
)

// A malformed .gor file is refused with an error that says where (file,
// payload number, line, byte offset) and what was expected, but never
// quotes the bytes it found: they are captured data. What was read before
// the bad payload is still published.
func TestGorErrorsNeverEchoPayload(t *testing.T) {
	const secret = "4111111111111111-SECRET\x1b]52;c;cHduZWQ=\a"
	sampleLines := strings.Count(gorSample, "\n")
	tests := []struct {
		name       string
		data       string
		wantOffset int64
		wantText   []string
		published  int
	}{
		{"type is not 1, 2 or 3", gorSample + "9 " + secret + " 1709287200000000000\nGET / HTTP/1.1\r\n\r\n",
			int64(len(gorSample)), []string{fmt.Sprintf("GoReplay payload 7 (line %d)", sampleLines+1), "TYPE (field 1, 1 bytes) is not 1, 2 or 3", `want "TYPE ID TIMESTAMP [LATENCY]"`}, 3},
		{"type is a long word", gorSample + secret + " abc 1709287200000000000\nGET / HTTP/1.1\r\n\r\n",
			int64(len(gorSample)), []string{"GoReplay payload 7", "TYPE (field 1,", "is not 1, 2 or 3"}, 3},
		{"too few fields", gorSample + "1 " + secret + "\nGET /" + secret + " HTTP/1.1\r\n\r\n",
			int64(len(gorSample)), []string{"GoReplay payload 7", "bad GoReplay header: 2 fields", `want "TYPE ID TIMESTAMP [LATENCY]"`}, 3},
		{"timestamp is not a number", gorSample + "1 abc " + secret + "\nGET / HTTP/1.1\r\n\r\n",
			int64(len(gorSample)), []string{"GoReplay payload 7", "TIMESTAMP (field 3,", "not a positive whole number of nanoseconds"}, 3},
		{"timestamp is negative", "1 " + secret + " -5\nGET /" + secret + " HTTP/1.1\r\n\r\n",
			0, []string{"GoReplay payload 1 (line 1)", "TIMESTAMP (field 3, 2 bytes)"}, 0},
		{"no header line", gorSample + "1 " + secret,
			int64(len(gorSample)), []string{"GoReplay payload 7", "no header line"}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &packettest.Collect{}
			im := New(pub)
			err := im.Import(context.Background(), "capture.gor", bytes.NewReader([]byte(tc.data)))
			im.Close()
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FormatError", err)
			}
			msg := err.Error()
			for _, part := range []string{"4111", "SECRET", "\x1b", "\a", "cHduZWQ"} {
				if strings.Contains(msg, part) {
					t.Errorf("error echoes payload bytes %q: %q", part, msg)
				}
			}
			want := append([]string{fmt.Sprintf("import capture.gor: offset %d: ", tc.wantOffset)}, tc.wantText...)
			for _, w := range want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if fe.Offset != tc.wantOffset {
				t.Errorf("offset %d, want %d", fe.Offset, tc.wantOffset)
			}
			if len(pub.Got()) != tc.published {
				t.Errorf("published %d exchanges read before the bad payload, want %d", len(pub.Got()), tc.published)
			}
		})
	}
}
