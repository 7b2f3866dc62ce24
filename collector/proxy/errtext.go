package proxy

import "strings"

// primaryErrText is the text of an error from forwarding to the primary, for
// the log and the captured exchange: net/http quotes the bytes of an answer
// it cannot parse ("malformed HTTP status code \"...\"", "bad Content-Length
// \"...\"", "malformed MIME header line: ..."), which are captured data, so
// the text is cut where they begin.
func primaryErrText(err error) string {
	s := err.Error()
	cut := strings.IndexByte(s, '"')
	if i := strings.Index(s, "header line:"); i >= 0 && (cut < 0 || i < cut) {
		cut = i + len("header line:")
	}
	if cut < 0 {
		return s
	}
	return strings.TrimRight(s[:cut], " :") + " (the primary's bytes are not shown)"
}
