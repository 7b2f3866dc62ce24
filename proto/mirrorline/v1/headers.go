package mirrorlinev1

import (
	"net/http"
	"sort"
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
