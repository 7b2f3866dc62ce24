package mirrorlinev1

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

func body(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

func TestExchangeFit(t *testing.T) {
	const mb = 1 << 20
	small := []*Header{{Name: "Accept", Value: "*/*"}, {Name: "Traceparent", Value: "00-abc-def-01"}}
	cases := []struct {
		name     string
		max      int
		ex       func() *Exchange
		cut      bool
		fits     bool
		reqBody  int // -1: cut (less than the original), else exactly
		respBody int
		reqHdrs  []string // header names left on the request, in order
		reqHT    bool
	}{
		{
			name: "fits already", max: mb, cut: false, fits: true, reqBody: 1000, respBody: 1000, reqHdrs: []string{"Accept", "Traceparent"},
			ex: func() *Exchange {
				return &Exchange{Id: "a", Request: &Request{Url: "/x", Headers: small, Body: body(1000, 'q'), BodySize: 1000}, Response: &Response{Status: 200, Body: body(1000, 'r'), BodySize: 1000}}
			},
		},
		{
			name: "large response body cut, small request kept whole", max: mb, cut: true, fits: true, reqBody: 5000, respBody: -1, reqHdrs: []string{"Accept", "Traceparent"},
			ex: func() *Exchange {
				return &Exchange{Id: "b", Request: &Request{Url: "/x", Headers: small, Body: body(5000, 'q'), BodySize: 5000}, Response: &Response{Status: 200, Body: body(2*mb, 'r'), BodySize: 2 * mb}}
			},
		},
		{
			name: "two large bodies share the room", max: mb, cut: true, fits: true, reqBody: -1, respBody: -1, reqHdrs: []string{"Accept", "Traceparent"},
			ex: func() *Exchange {
				return &Exchange{Id: "c", Request: &Request{Url: "/x", Headers: small, Body: body(3*mb/2, 'q'), BodySize: 3 * mb / 2}, Response: &Response{Status: 200, Body: body(3*mb/2, 'r'), BodySize: 3 * mb / 2}}
			},
		},
		{
			name: "0.95 MB header kept, body cut to the rest", max: mb, cut: true, fits: true, reqBody: -1, respBody: 2, reqHdrs: []string{"Accept", "X-Big", "Traceparent"},
			ex: func() *Exchange {
				hs := []*Header{small[0], {Name: "X-Big", Value: strings.Repeat("h", 950_000)}, small[1]}
				return &Exchange{Id: "d", Request: &Request{Url: "/x", Headers: hs, Body: body(3*mb/2, 'q'), BodySize: 3 * mb / 2}, Response: &Response{Status: 200, Body: []byte("ok"), BodySize: 2}}
			},
		},
		{
			name: "header larger than the budget left out, the others kept in order", max: mb, cut: true, fits: true, reqBody: -1, respBody: 2, reqHdrs: []string{"Accept", "Traceparent"}, reqHT: true,
			ex: func() *Exchange {
				hs := []*Header{small[0], {Name: "X-Huge", Value: strings.Repeat("h", 1_200_000)}, small[1]}
				return &Exchange{Id: "e", Request: &Request{Url: "/x", Headers: hs, Body: body(mb, 'q'), BodySize: mb}, Response: &Response{Status: 200, Body: []byte("ok"), BodySize: 2}}
			},
		},
		{
			name: "URL alone over the budget cannot fit", max: mb, cut: true, fits: false, reqBody: 0, respBody: 0, reqHdrs: nil, reqHT: true,
			ex: func() *Exchange {
				return &Exchange{Id: "f", Request: &Request{Url: "/" + strings.Repeat("u", 2*mb), Headers: small, Body: body(10, 'q'), BodySize: 10}, Response: &Response{Status: 200, Body: []byte("ok"), BodySize: 2}}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := tc.ex()
			orig := proto.Clone(ex).(*Exchange)
			cut, fits := ex.Fit(tc.max)
			if cut != tc.cut || fits != tc.fits {
				t.Fatalf("Fit = cut %v fits %v, want %v %v", cut, fits, tc.cut, tc.fits)
			}
			size := proto.Size(ex)
			if fits && size > tc.max {
				t.Fatalf("encoded %d bytes, over the budget of %d", size, tc.max)
			}
			if fits && cut && size < tc.max-1024 {
				t.Errorf("encoded %d bytes: cut far more than needed for %d", size, tc.max)
			}
			checkBody := func(side string, got, had []byte, want int, truncated bool, gotSize, hadSize int64) {
				t.Helper()
				if !bytes.HasPrefix(had, got) {
					t.Errorf("%s body is not a prefix of the original", side)
				}
				if gotSize != hadSize {
					t.Errorf("%s body_size %d, want the original %d", side, gotSize, hadSize)
				}
				switch {
				case want == -1 && (len(got) >= len(had) || len(got) == 0):
					t.Errorf("%s body %d of %d bytes: want cut, not emptied", side, len(got), len(had))
				case want >= 0 && len(got) != want:
					t.Errorf("%s body %d bytes, want %d", side, len(got), want)
				}
				if truncated != (len(got) < len(had)) {
					t.Errorf("%s body_truncated %v with %d of %d bytes", side, truncated, len(got), len(had))
				}
			}
			checkBody("request", ex.Request.Body, orig.Request.Body, tc.reqBody, ex.Request.BodyTruncated, ex.Request.BodySize, orig.Request.BodySize)
			checkBody("response", ex.Response.Body, orig.Response.Body, tc.respBody, ex.Response.BodyTruncated, ex.Response.BodySize, orig.Response.BodySize)
			var names []string
			for _, h := range ex.Request.Headers {
				names = append(names, h.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.reqHdrs) {
				t.Errorf("request headers %v, want %v", names, tc.reqHdrs)
			}
			if ex.Request.HeadersTruncated != tc.reqHT {
				t.Errorf("headers_truncated %v, want %v", ex.Request.HeadersTruncated, tc.reqHT)
			}
			if ex.Id != orig.Id || ex.Request.Url != orig.Request.Url || ex.Response.Status != orig.Response.Status {
				t.Error("ids, URL or status changed")
			}
		})
	}
}

// msgs returns n messages of size bytes each, at offsets 0, 10, 20, ...
func msgs(n, size int, c byte) []*Message {
	out := make([]*Message, n)
	for i := range out {
		out[i] = &Message{OffsetNs: int64(10 * i), Data: body(size, c), Size: int64(size)}
	}
	return out
}

// A gRPC exchange's messages are cut like bodies: whole messages kept from
// the first, the next one cut (truncated, its size kept) or left out, those
// after it left out (messages_truncated).
func TestExchangeFitMessages(t *testing.T) {
	const kb = 1 << 10
	cases := []struct {
		name                string
		max                 int
		req, resp           []*Message
		cut                 bool
		reqWhole, respWhole int  // messages kept whole
		reqPart, respPart   bool // then one cut
		reqMT, respMT       bool // messages_truncated
	}{
		{name: "fits already", max: 64 * kb, req: msgs(3, kb, 'q'), resp: msgs(3, kb, 'r'), reqWhole: 3, respWhole: 3},
		{name: "a long response stream keeps its first messages, the next cut", max: 64 * kb, req: msgs(1, 100, 'q'), resp: msgs(200, kb, 'r'),
			cut: true, reqWhole: 1, respWhole: 60, respPart: true, respMT: true},
		{name: "one huge message cut, the following left out", max: 64 * kb, req: msgs(1, 100, 'q'), resp: append(msgs(1, 200*kb, 'r'), msgs(2, 10, 'r')...),
			cut: true, reqWhole: 1, respWhole: 0, respPart: true, respMT: true},
		{name: "both directions share the room", max: 64 * kb, req: msgs(100, kb, 'q'), resp: msgs(100, kb, 'r'),
			cut: true, reqWhole: 30, respWhole: 30, reqPart: true, respPart: true, reqMT: true, respMT: true},
		{name: "many small messages", max: 8 * kb, req: msgs(2000, 3, 'q'), resp: nil,
			cut: true, reqWhole: 680, reqPart: false, reqMT: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := &Exchange{Id: "g", Protocol: Protocol_PROTOCOL_GRPC, Request: &Request{Url: "/svc.S/M", Proto: "HTTP/2.0", Messages: tc.req},
				Response: &Response{Status: 200, Messages: tc.resp, Trailers: []*Header{{Name: "Grpc-Status", Value: "0"}}}}
			orig := proto.Clone(ex).(*Exchange)
			cut, fits := ex.Fit(tc.max)
			if cut != tc.cut || !fits || proto.Size(ex) > tc.max {
				t.Fatalf("Fit = cut %v fits %v (%d bytes of %d), want cut %v and fitting", cut, fits, proto.Size(ex), tc.max, tc.cut)
			}
			if cut && proto.Size(ex) < tc.max-kb-100 {
				t.Errorf("encoded %d bytes: cut far more than needed for %d", proto.Size(ex), tc.max)
			}
			check := func(side string, got, had []*Message, whole int, part, mt, gotMT bool) {
				t.Helper()
				n := 0
				for n < len(got) && !got[n].Truncated {
					if !proto.Equal(got[n], had[n]) {
						t.Fatalf("%s message %d changed", side, n)
					}
					n++
				}
				// Roughly: the shares are not exact.
				if whole > 0 && (n < whole*9/10 || n > whole*11/10+1) || whole == 0 && n != 0 {
					t.Errorf("%s: %d messages kept whole, want about %d", side, n, whole)
				}
				gotPart := n < len(got)
				if gotPart != part || len(got) > n+1 {
					t.Errorf("%s: %d messages kept, %d whole; want one cut: %v", side, len(got), n, part)
				}
				if gotPart {
					m, o := got[n], had[n]
					if !m.Truncated || m.Size != o.Size || m.OffsetNs != o.OffsetNs || len(m.Data) == 0 || len(m.Data) >= len(o.Data) || !bytes.HasPrefix(o.Data, m.Data) {
						t.Errorf("%s: cut message %d: truncated %v size %d/%d, %d of %d bytes", side, n, m.Truncated, m.Size, o.Size, len(m.Data), len(o.Data))
					}
				}
				if gotMT != mt {
					t.Errorf("%s: messages_truncated %v, want %v", side, gotMT, mt)
				}
			}
			check("request", ex.Request.Messages, orig.Request.Messages, tc.reqWhole, tc.reqPart, tc.reqMT, ex.Request.MessagesTruncated)
			check("response", ex.Response.Messages, orig.Response.Messages, tc.respWhole, tc.respPart, tc.respMT, ex.Response.MessagesTruncated)
			if len(ex.Response.Trailers) != 1 || ex.Protocol != Protocol_PROTOCOL_GRPC {
				t.Error("trailers or protocol changed")
			}
			for i, m := range orig.Response.Messages {
				if !proto.Equal(m, tc.resp[i]) {
					t.Fatalf("the original message %d was changed", i)
				}
			}
		})
	}
}

func TestDiffFit(t *testing.T) {
	d := &Diff{Id: "x", Endpoint: "GET /items", Verdict: Verdict_VERDICT_DIFFERENT, Note: "shadow body truncated"}
	for i := range 50_000 {
		d.Differences = append(d.Differences, &Difference{Field: fmt.Sprintf("body.items.%d.price", i), Key: "body.items.*.price", Kind: DiffKind_DIFF_KIND_CHANGED, Primary: "1.00", Shadow: "2.00"})
		d.VolatileKeys = append(d.VolatileKeys, fmt.Sprintf("body.items.%d.ts", i))
	}
	const budget = 1 << 20
	if proto.Size(d) <= budget {
		t.Fatalf("test diff of %d bytes is within the budget", proto.Size(d))
	}
	cut, fits := d.Fit(budget)
	if !cut || !fits || proto.Size(d) > budget {
		t.Fatalf("Fit = cut %v fits %v, %d bytes for a budget of %d", cut, fits, proto.Size(d), budget)
	}
	if len(d.Differences) == 0 || d.Differences[0].Field != "body.items.0.price" {
		t.Fatal("the first differences were not kept")
	}
	if !strings.HasPrefix(d.Note, "shadow body truncated; differences cut to fit the record budget: ") || !strings.Contains(d.Note, "of 50000 kept") {
		t.Fatalf("note %q", d.Note)
	}
	if d.Verdict != Verdict_VERDICT_DIFFERENT || d.Id != "x" {
		t.Fatal("verdict or id changed")
	}
	small := &Diff{Id: "y", Differences: []*Difference{{Field: "status"}}}
	if cut, fits := small.Fit(budget); cut || !fits || small.Note != "" {
		t.Fatalf("a small diff was changed: cut %v fits %v note %q", cut, fits, small.Note)
	}
}

// BenchmarkExchangeFit cuts a 0.95 MB header and two 1.5 MB bodies to 1 MB.
func BenchmarkExchangeFit(b *testing.B) {
	hdr := strings.Repeat("h", 950_000)
	reqBody, respBody := body(1_500_000, 'q'), body(1_500_000, 'r')
	b.ReportAllocs()
	for b.Loop() {
		ex := &Exchange{Id: "x", Request: &Request{Url: "/x", Headers: []*Header{{Name: "X-Big", Value: hdr}}, Body: reqBody, BodySize: 1_500_000},
			Response: &Response{Status: 200, Body: respBody, BodySize: 1_500_000}}
		if _, fits := ex.Fit(1 << 20); !fits {
			b.Fatal("does not fit")
		}
	}
}

// FuzzExchangeFitMessages: whatever the messages and the budget, Fit keeps
// each direction's messages as a prefix of the original (the last one
// possibly cut, marked truncated, its size kept), flags what it left out,
// and the result fits whenever the rest of the record does.
func FuzzExchangeFitMessages(f *testing.F) {
	f.Add([]byte{10, 200, 3, 0, 50}, []byte{1, 1, 1}, uint16(300))
	f.Add([]byte{255, 255, 255}, []byte{}, uint16(100))
	f.Add([]byte{}, []byte{0, 0, 0, 0, 0, 0, 0}, uint16(40))
	f.Fuzz(func(t *testing.T, reqSizes, respSizes []byte, budget uint16) {
		mk := func(sizes []byte) []*Message {
			var out []*Message
			for i, s := range sizes {
				n := int(s) * 7
				out = append(out, &Message{OffsetNs: int64(i * 1000), Data: body(n, byte('a'+i%26)), Size: int64(n), Compressed: i%3 == 0})
			}
			return out
		}
		ex := &Exchange{Id: "f", Protocol: Protocol_PROTOCOL_GRPC, Request: &Request{Url: "/s.S/M", Messages: mk(reqSizes)},
			Response: &Response{Status: 200, Messages: mk(respSizes)}}
		orig := proto.Clone(ex).(*Exchange)
		restSize := proto.Size(&Exchange{Id: "f", Protocol: Protocol_PROTOCOL_GRPC, Request: &Request{Url: "/s.S/M", MessagesTruncated: true},
			Response: &Response{Status: 200, MessagesTruncated: true}})
		max := int(budget)
		_, fits := ex.Fit(max)
		if fits != (proto.Size(ex) <= max) {
			t.Fatalf("Fit says fits %v with %d bytes of %d", fits, proto.Size(ex), max)
		}
		if !fits && restSize+bodySlack < max {
			t.Fatalf("does not fit (%d of %d) though the rest takes %d", proto.Size(ex), max, restSize)
		}
		for side, d := range map[string][2][]*Message{"request": {ex.Request.Messages, orig.Request.Messages}, "response": {ex.Response.Messages, orig.Response.Messages}} {
			got, had := d[0], d[1]
			if len(got) > len(had) {
				t.Fatalf("%s: %d messages from %d", side, len(got), len(had))
			}
			for i, m := range got {
				o := had[i]
				if m.Truncated && i == len(got)-1 {
					if !bytes.HasPrefix(o.Data, m.Data) || m.Size != o.Size || m.OffsetNs != o.OffsetNs || m.Compressed != o.Compressed || len(m.Data) >= len(o.Data) {
						t.Fatalf("%s: cut message %d is not a prefix of the original", side, i)
					}
					continue
				}
				if !proto.Equal(m, o) {
					t.Fatalf("%s: message %d changed", side, i)
				}
			}
		}
		reqCut := len(ex.Request.Messages) < len(orig.Request.Messages)
		respCut := len(ex.Response.Messages) < len(orig.Response.Messages)
		if ex.Request.MessagesTruncated != reqCut || ex.Response.MessagesTruncated != respCut {
			t.Fatalf("messages_truncated %v/%v with %d/%d of %d/%d messages", ex.Request.MessagesTruncated, ex.Response.MessagesTruncated,
				len(ex.Request.Messages), len(ex.Response.Messages), len(orig.Request.Messages), len(orig.Response.Messages))
		}
	})
}
