package mirrorlinev1

import (
	"net/http"
	"sort"
	"strings"
)

// HeadersFromHTTP lists h as Header entries, names sorted, values in order.
// Use it where the wire order of h is not known.
func HeadersFromHTTP(h http.Header) []*Header {
	names := make([]string, 0, len(h))
	for n := range h {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*Header, 0, len(names))
	for _, n := range names {
		for _, v := range h[n] {
			out = append(out, &Header{Name: n, Value: v})
		}
	}
	return out
}

// hopByHop are the hop-by-hop headers (RFC 9110 7.6.1 and the usual proxy
// extras), by canonical name.
var hopByHop = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// HopByHop reports whether name (in canonical form) is a hop-by-hop
// header: one a record's headers never pass on to another connection
// (replayed requests, the stub's answers). Headers a Connection header
// names are hop-by-hop too; DropHopByHop removes those as well.
func HopByHop(name string) bool { return hopByHop[name] }

// DropHopByHop removes from h the hop-by-hop headers and those its
// Connection header names.
func DropHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for name := range hopByHop {
		h.Del(name)
	}
}
