package mirrorlinev1

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// bodySlack covers the length prefixes of the bodies, which shrink or grow by
// a few bytes as the bodies are cut.
const bodySlack = 16

// Fit cuts x so that its encoding is at most maxBytes (a topic's record
// budget): first the bodies, sharing the room left by everything else (a
// body shorter than half of it keeps all its bytes); then, when even empty
// bodies do not fit, header entries, the largest first, after which the
// bodies get what room is left. Cut bodies are marked body_truncated and
// keep their original body_size; messages that lost headers are marked
// headers_truncated. A direction's gRPC messages are cut like its body
// (after it, sharing its room): whole messages are kept from the first on,
// the first one that does not fit is cut (marked truncated, its size kept)
// when room is left for part of it, and those after it are left out
// (messages_truncated). Nothing else changes: ids, URL, status and sizes
// stay.
// It reports whether anything was cut and whether x now fits (it cannot when
// the rest of the record alone is larger than maxBytes).
func (x *Exchange) Fit(maxBytes int) (cut, fits bool) {
	if proto.Size(x) <= maxBytes {
		return false, true
	}
	req, resp := x.GetRequest(), x.GetResponse()
	var reqC, respC content
	if req != nil {
		reqC = contentOf(req.Body, req.Messages)
	}
	if resp != nil {
		respC = contentOf(resp.Body, resp.Messages)
	}
	var reqMsgsCut, respMsgsCut bool
	setBodies := func(a, b int) {
		if req != nil {
			req.Body, req.Messages, reqMsgsCut = reqC.cut(a)
		}
		if resp != nil {
			resp.Body, resp.Messages, respMsgsCut = respC.cut(b)
		}
	}
	setBodies(0, 0)
	if over := proto.Size(x) - maxBytes; over > 0 {
		dropHeaders(over, req, resp)
	}
	room := maxBytes - proto.Size(x) - bodySlack
	ka, kb := splitRoom(reqC.size, respC.size, room)
	for {
		setBodies(ka, kb)
		over := proto.Size(x) - maxBytes
		if over <= 0 || (ka == 0 && kb == 0) {
			break
		}
		if ka >= kb {
			ka = max(ka-over, 0)
		} else {
			kb = max(kb-over, 0)
		}
	}
	if req != nil {
		if ka < len(reqC.body) {
			markBodyCut(&req.BodyTruncated, &req.BodySize, len(reqC.body))
		}
		req.MessagesTruncated = req.MessagesTruncated || reqMsgsCut
	}
	if resp != nil {
		if kb < len(respC.body) {
			markBodyCut(&resp.BodyTruncated, &resp.BodySize, len(respC.body))
		}
		resp.MessagesTruncated = resp.MessagesTruncated || respMsgsCut
	}
	return true, proto.Size(x) <= maxBytes
}

// content is what Fit cuts of one direction: its body, then its gRPC
// messages; size is their room when whole (a message's encoded size and
// its tag and length).
type content struct {
	body []byte
	msgs []*Message
	cost []int
	size int
}

func contentOf(body []byte, msgs []*Message) content {
	c := content{body: body, msgs: msgs, cost: make([]int, len(msgs)), size: len(body)}
	for i, m := range msgs {
		c.cost[i] = 1 + protowire.SizeBytes(proto.Size(m)) // tag (field 11 or 14), length, message
		c.size += c.cost[i]
	}
	return c
}

// cut returns the body and messages that take at most k bytes of room, and
// whether messages were left out. The original messages are not changed: a
// cut one is a copy.
func (c content) cut(k int) (body []byte, msgs []*Message, msgsCut bool) {
	body = c.body[:min(k, len(c.body))]
	k -= len(body)
	if len(c.msgs) == 0 {
		return body, c.msgs, false
	}
	msgs = make([]*Message, 0, len(c.msgs))
	for i, m := range c.msgs {
		if c.cost[i] <= k {
			msgs = append(msgs, m)
			k -= c.cost[i]
			continue
		}
		// Room for part of its data, after what it has besides?
		if room := k - (c.cost[i] - len(m.Data)); room > 0 {
			msgs = append(msgs, &Message{OffsetNs: m.OffsetNs, Compressed: m.Compressed, Data: m.Data[:room], Size: m.Size, Truncated: true})
		}
		break
	}
	return body, msgs, len(msgs) < len(c.msgs)
}

// splitRoom shares room between two bodies of a and b bytes: each gets half,
// and what one does not need goes to the other.
func splitRoom(a, b, room int) (ka, kb int) {
	if room <= 0 {
		return 0, 0
	}
	ka = min(a, room/2)
	kb = min(b, room-ka)
	ka = min(a, room-kb)
	return ka, kb
}

func markBodyCut(truncated *bool, size *int64, had int) {
	*truncated = true
	if *size >= 0 && *size < int64(had) {
		*size = int64(had)
	}
}

// dropHeaders leaves out header entries of req and resp, the largest first,
// until at least over bytes are gone.
func dropHeaders(over int, req *Request, resp *Response) {
	type entry struct{ msg, idx, size int }
	var all []entry
	lists := [2][]*Header{}
	if req != nil {
		lists[0] = req.Headers
	}
	if resp != nil {
		lists[1] = resp.Headers
	}
	for m, hs := range lists {
		for i, h := range hs {
			all = append(all, entry{m, i, proto.Size(h) + 4}) // tag and length prefix
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].size > all[j].size })
	drop := [2]map[int]bool{{}, {}}
	for _, e := range all {
		if over <= 0 {
			break
		}
		drop[e.msg][e.idx] = true
		over -= e.size
	}
	keep := func(m int) []*Header {
		out := make([]*Header, 0, len(lists[m])-len(drop[m]))
		for i, h := range lists[m] {
			if !drop[m][i] {
				out = append(out, h)
			}
		}
		return out
	}
	if req != nil && len(drop[0]) > 0 {
		req.Headers, req.HeadersTruncated = keep(0), true
	}
	if resp != nil && len(drop[1]) > 0 {
		resp.Headers, resp.HeadersTruncated = keep(1), true
	}
}

// Fit cuts d so that its encoding is at most maxBytes: it keeps the first
// differences (then volatile keys, then secondary differences) that fit and
// says in note how many were left out. It reports whether anything was cut
// and whether d now fits.
func (d *Diff) Fit(maxBytes int) (cut, fits bool) {
	if proto.Size(d) <= maxBytes {
		return false, true
	}
	diffs, sec, vol := d.Differences, d.SecondaryDifferences, d.VolatileKeys
	d.Differences, d.SecondaryDifferences, d.VolatileKeys = nil, nil, nil
	note := d.Note
	setNote := func() {
		d.Note = note
		if n, m := len(d.Differences)+len(d.SecondaryDifferences), len(diffs)+len(sec); n < m {
			msg := fmt.Sprintf("differences cut to fit the record budget: %d of %d kept", n, m)
			if note != "" {
				msg = note + "; " + msg
			}
			d.Note = msg
		}
	}
	setNote()
	// Room for the fields added back, with the note's growth reserved.
	room := maxBytes - proto.Size(d) - 64
	for _, df := range diffs {
		n := proto.Size(df) + 4
		if n > room {
			break
		}
		d.Differences = append(d.Differences, df)
		room -= n
	}
	for _, k := range vol {
		n := len(k) + 4
		if n > room {
			break
		}
		d.VolatileKeys = append(d.VolatileKeys, k)
		room -= n
	}
	for _, df := range sec {
		n := proto.Size(df) + 4
		if n > room {
			break
		}
		d.SecondaryDifferences = append(d.SecondaryDifferences, df)
		room -= n
	}
	setNote()
	return true, proto.Size(d) <= maxBytes
}

// MarshalWithin encodes m for a record whose value may take maxBytes: when
// the encoding is larger, m is cut with its Fit method (Exchange.Fit,
// Diff.Fit) and encoded again. It reports whether m was cut and whether the
// value now fits; a value that cannot fit is still returned, cut as far as
// Fit goes, for the caller to drop or send. An Exchange is encoded by
// MarshalExchange, anything else by proto.Marshal: the same bytes either way.
func MarshalWithin(m interface {
	proto.Message
	Fit(maxBytes int) (cut, fits bool)
}, maxBytes int) (val []byte, cut, fits bool, err error) {
	if val, err = marshal(m); err != nil || len(val) <= maxBytes {
		return val, false, err == nil, err
	}
	cut, fits = m.Fit(maxBytes)
	if val, err = marshal(m); err != nil {
		return nil, cut, false, err
	}
	return val, cut, fits, nil
}

// marshal encodes m as proto.Marshal does, an Exchange with MarshalExchange.
func marshal(m proto.Message) ([]byte, error) {
	if x, ok := m.(*Exchange); ok {
		return MarshalExchange(x)
	}
	return proto.Marshal(m)
}
