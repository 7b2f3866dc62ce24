// Multipart bodies: scrubbed part by part, each by its own Content-Type.

package redactor

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
)

// maxMultipartDepth bounds nested multipart bodies.
const maxMultipartDepth = 4

var errMultipart = fmt.Errorf("multipart: malformed body: %w", ErrUnparseable)

// scrubMultipart scrubs a multipart body part by part, in place: a part whose
// name matches a form_fields rule gets that rule (remove drops the part);
// other parts are scrubbed according to their own Content-Type (text through
// the detectors, JSON through the JSON rules, form, nested multipart; binary
// parts follow the binary policy and keep their headers when dropped).
func (st *state) scrubMultipart(b []byte, ct string, depth int) ([]byte, bool, error) {
	if depth >= maxMultipartDepth {
		return nil, false, errMultipart
	}
	dash, nlDash, first := multipartFirst(b, ct)
	if first < 0 {
		return nil, false, errMultipart
	}
	ed := jsonEd{st: st, in: b} // reused for its lazy replace
	open, openLB := first, 0    // where this part's delimiter line starts, and the line break before it
	pos := first + len(dash)
	for {
		if bytes.HasPrefix(b[pos:], []byte("--")) {
			break // closing delimiter; the epilogue is kept as is
		}
		for pos < len(b) && (b[pos] == ' ' || b[pos] == '\t') {
			pos++
		}
		switch {
		case bytes.HasPrefix(b[pos:], []byte("\r\n")):
			pos += 2
		case bytes.HasPrefix(b[pos:], []byte("\n")):
			pos++
		default:
			return nil, false, errMultipart
		}
		partStart := pos
		k := bytes.Index(b[partStart:], nlDash)
		if k < 0 {
			return nil, false, errMultipart
		}
		nl := partStart + k // the '\n' before the next delimiter
		nextOpen := nl
		if nl > partStart && b[nl-1] == '\r' {
			nextOpen = nl - 1
		}
		section := b[partStart:nextOpen]
		hdr, bodyOff := splitPart(section)
		if bodyOff < 0 {
			return nil, false, errMultipart
		}
		ph := parsePartHeaders(hdr)
		newBody, keep, changed, err := st.scrubPart(ph, section[bodyOff:], depth)
		if err != nil {
			return nil, false, err
		}
		var newHdr []byte
		if keep {
			newHdr = st.scrubPartHeaders(hdr)
		}
		nextLB := nl + 1 - nextOpen
		switch {
		case !keep && openLB == 0:
			// First part: cut through the next delimiter's line break so
			// that delimiter becomes the first.
			ed.replace(open, nl+1, nil)
			open, openLB = nl+1, 0
		case !keep:
			ed.replace(open, nextOpen, nil)
			open, openLB = nextOpen, nextLB
		default:
			if newHdr != nil {
				ed.replace(partStart, partStart+len(hdr), newHdr)
			}
			if changed {
				ed.replace(partStart+bodyOff, nextOpen, newBody)
			}
			open, openLB = nextOpen, nextLB
		}
		pos = nl + 1 + len(dash)
	}
	if ed.out == nil {
		return nil, false, nil
	}
	ed.out = append(ed.out, b[ed.copied:]...)
	return ed.out, true, nil
}

// multipartFirst parses the boundary of the multipart Content-Type ct and
// finds the first delimiter line in b. It returns the delimiter, the
// delimiter after a line break, and the offset of the first delimiter, -1 if
// the boundary is missing or invalid or b has no delimiter.
func multipartFirst(b []byte, ct string) (dash, nlDash []byte, first int) {
	_, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, nil, -1
	}
	boundary := params["boundary"]
	if boundary == "" || len(boundary) > 200 {
		return nil, nil, -1
	}
	dash = []byte("--" + boundary)
	nlDash = []byte("\n--" + boundary)
	if bytes.HasPrefix(b, dash) {
		return dash, nlDash, 0
	}
	if k := bytes.Index(b, nlDash); k >= 0 {
		return dash, nlDash, k + 1
	}
	return nil, nil, -1
}

// splitPart splits the section of one part (between delimiter lines) into
// its headers and the offset of its body, -1 if no blank line ends the
// headers. A section starting with a blank line has no headers.
func splitPart(section []byte) (hdr []byte, bodyOff int) {
	switch {
	case bytes.HasPrefix(section, []byte("\r\n")):
		return nil, 2
	case bytes.HasPrefix(section, []byte("\n")):
		return nil, 1
	}
	bodyOff = -1
	if h := bytes.Index(section, []byte("\r\n\r\n")); h >= 0 {
		hdr, bodyOff = section[:h], h+4
	}
	if h := bytes.Index(section, []byte("\n\n")); h >= 0 && (bodyOff < 0 || h < len(hdr)) {
		hdr, bodyOff = section[:h], h+2
	}
	return hdr, bodyOff
}

// partHeaders is what the redactor needs of a part's headers.
type partHeaders struct {
	name     string
	filename bool
	ct       string
	encoding string // Content-Transfer-Encoding
}

// scrubPartHeaders runs the detectors over part header lines (a field name or
// file name can carry personal data), except Content-Type and
// Content-Transfer-Encoding, which frame the part. It returns nil when
// nothing changed.
func (st *state) scrubPartHeaders(h []byte) []byte {
	var out []byte
	for off := 0; off < len(h); {
		end := bytes.IndexByte(h[off:], '\n')
		if end < 0 {
			end = len(h)
		} else {
			end += off + 1
		}
		line := h[off:end]
		name, _, _ := bytes.Cut(line, []byte(":"))
		name = bytes.TrimSpace(name)
		if !asciiEqualFold(string(name), "Content-Type") && !asciiEqualFold(string(name), "Content-Transfer-Encoding") {
			if nv, ok := st.scrubString(string(line)); ok {
				if out == nil {
					out = append(make([]byte, 0, len(h)), h[:off]...)
				}
				out = append(out, nv...)
				off = end
				continue
			}
		}
		if out != nil {
			out = append(out, line...)
		}
		off = end
	}
	return out
}

func parsePartHeaders(h []byte) partHeaders {
	var ph partHeaders
	for _, line := range strings.Split(string(h), "\n") {
		line = strings.TrimRight(line, "\r")
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case asciiEqualFold(k, "Content-Disposition"):
			if _, params, err := mime.ParseMediaType(v); err == nil {
				ph.name = params["name"]
				_, ph.filename = params["filename"]
			}
		case asciiEqualFold(k, "Content-Type"):
			ph.ct = v
		case asciiEqualFold(k, "Content-Transfer-Encoding"):
			ph.encoding = strings.ToLower(v)
		}
	}
	return ph
}

// scrubPart scrubs one part body; it returns the new body, whether the part
// is kept, and whether it changed.
func (st *state) scrubPart(h partHeaders, body []byte, depth int) ([]byte, bool, bool, error) {
	if h.name != "" {
		if r := st.formRule(&st.e.form, h.name); r != nil {
			switch r.act {
			case actKeep:
				return body, true, false, nil
			case actRemove:
				st.hit(r.name, 1)
				return nil, false, true, nil
			case actUnsign:
				nv, ok := st.unsign(string(body))
				st.hit(r.name, 1)
				if !ok {
					return nil, false, true, nil // not a JWT: the part is removed
				}
				return []byte(nv), true, true, nil
			}
			return []byte(st.applyRule(r, string(body))), true, true, nil
		}
	}
	switch h.encoding {
	case "", "7bit", "8bit", "binary":
	default:
		// base64 or quoted-printable: not scanned; treat as binary.
		out, changed, _ := st.binary(body)
		return out, true, changed, nil
	}
	kind := classify(h.ct)
	if h.ct == "" {
		kind = bodyUnknown
		if !h.filename {
			kind = bodyText
		}
	}
	if kind == bodyUnknown {
		kind = sniff(body)
	}
	var out []byte
	var changed bool
	var err error
	switch kind {
	case bodyBinary:
		out, changed, _ = st.binary(body)
		if out == nil {
			out = []byte{}
		}
	case bodyJSON, bodyNDJSON:
		out, changed, err = st.scrubJSON(body, kind == bodyNDJSON)
	case bodyForm:
		out, changed, err = st.scrubForm(body)
	case bodyMultipart:
		out, changed, err = st.scrubMultipart(body, h.ct, depth+1)
	default:
		out, changed = st.scrubTextBody(body, false)
	}
	if err != nil {
		return nil, false, false, err
	}
	return out, true, changed, nil
}
