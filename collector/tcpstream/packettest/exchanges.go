package packettest

import (
	"fmt"
	"slices"
	"sync"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// HTTP/1.1 messages the packet collectors' tests send: a GET and a POST
// with a body, answered with a length-delimited and a chunked response.
const (
	ReqA  = "GET /a HTTP/1.1\r\nHost: svc\r\nUser-Agent: t\r\n\r\n"
	ReqB  = "POST /b HTTP/1.1\r\nHost: svc\r\nContent-Length: 11\r\n\r\nhello world"
	RespA = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
	RespB = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n4\r\ntwo!\r\n6\r\n-three\r\n0\r\n\r\n"
)

// Collect is a publisher that keeps every exchange it is given.
type Collect struct {
	mu  sync.Mutex
	got []*mlv1.Exchange
}

// Emit keeps ex.
func (c *Collect) Emit(ex *mlv1.Exchange) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, ex)
	return nil
}

// Got returns the exchanges kept so far, in the order given.
func (c *Collect) Got() []*mlv1.Exchange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*mlv1.Exchange(nil), c.got...)
}

// Summary is "METHOD URL body -> status body [flags]" for one exchange.
func Summary(ex *mlv1.Exchange) string {
	s := fmt.Sprintf("%s %s %s", ex.Request.Method, ex.Request.Url, ex.Request.Body)
	if ex.Request.BodyTruncated {
		s += " [req-cut]"
	}
	if r := ex.Response; r != nil {
		s += fmt.Sprintf(" -> %d %s", r.Status, r.Body)
		if r.BodyTruncated {
			s += " [resp-cut]"
		}
	} else {
		s += " -> none"
	}
	return s
}

// Cat joins lists of frames into one.
func Cat(parts ...[][]byte) [][]byte { return slices.Concat(parts...) }

// One is a list of one frame.
func One(f []byte) [][]byte { return [][]byte{f} }
