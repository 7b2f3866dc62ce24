package pcapimport

import (
	"bytes"
	"context"
	"testing"

	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
)

// FuzzGor imports arbitrary bytes as a GoReplay file: never a panic, and every
// exchange published has a request and a capture time.
func FuzzGor(f *testing.F) {
	f.Add([]byte(gorSample))
	f.Add([]byte("1 a 1 0\nGET / HTTP/1.1\r\n\r\n\n🐵🙈🙉\n2 a 2 1\nHTTP/1.1 200 OK\r\n\r\n"))
	f.Add([]byte("2 zz 5\nHTTP/1.1 204 No Content\r\n\r\n\n🐵🙈🙉\n3 zz 6 7\n\n🐵🙈🙉\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pub := &packettest.Collect{}
		im := New(pub, WithBodyLimit(64))
		_ = im.Import(context.Background(), "fuzz.gor", bytes.NewReader(data))
		im.Close()
		for _, ex := range pub.Got() {
			if ex.Request == nil || ex.CaptureTimeNs <= 0 || len(ex.Request.Body) > 64 {
				t.Fatalf("bad record %v", ex)
			}
		}
	})
}
