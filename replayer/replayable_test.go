package replayer

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Records that would not reproduce what the client sent are refused by
// BuildRequest (so by every sender) and counted with their own reason.
func TestBuildRequestRefusesUnreplayable(t *testing.T) {
	target := &url.URL{Scheme: "http", Host: "shadow.test"}
	hdr := func(kv ...string) []*mlv1.Header {
		var hs []*mlv1.Header
		for i := 0; i < len(kv); i += 2 {
			hs = append(hs, &mlv1.Header{Name: kv[i], Value: kv[i+1]})
		}
		return hs
	}
	for _, tc := range []struct {
		name   string
		req    *mlv1.Request
		status int32
		want   error
		reason string
	}{
		{"complete post", &mlv1.Request{Method: "POST", Url: "/a", Body: []byte("x"), BodySize: 1}, 200, nil, ""},
		{"short body", &mlv1.Request{Method: "POST", Url: "/a", Body: make([]byte, 431), BodySize: 431, BodyIncomplete: true, BodyTruncated: true}, 200, ErrIncomplete, ReasonIncomplete},
		{"incomplete only", &mlv1.Request{Method: "POST", Url: "/a", BodyIncomplete: true}, 0, ErrIncomplete, ReasonIncomplete},
		{"over body limit", &mlv1.Request{Method: "POST", Url: "/a", BodyTruncated: true}, 200, ErrTruncated, ReasonTruncated},
		{"websocket 101", &mlv1.Request{Method: "GET", Url: "/ws", Headers: hdr("Connection", "Upgrade", "Upgrade", "websocket")}, 101, ErrUpgrade, ReasonUpgrade},
		{"websocket, no response (sink)", &mlv1.Request{Method: "GET", Url: "/ws", Headers: hdr("connection", "upgrade", "upgrade", "websocket")}, 0, ErrUpgrade, ReasonUpgrade},
		{"101 without upgrade header", &mlv1.Request{Method: "GET", Url: "/x"}, 101, ErrUpgrade, ReasonUpgrade},
		// A tunnel's authority-form target is refused first as unsafe (counted
		// as dropped{reason="unsafe_target"}, see TestReplayNeverLeavesTarget).
		{"connect", &mlv1.Request{Method: "CONNECT", Url: "db:5432"}, 200, reqtarget.ErrUnsafe, ReasonBuild},
		{"h2c upgrade answered 200", &mlv1.Request{Method: "GET", Url: "/", Headers: hdr("Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c")}, 200, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex := &mlv1.Exchange{Id: "id-1", Request: tc.req}
			if tc.status != 0 {
				ex.Response = &mlv1.Response{Status: tc.status}
			}
			req, err := BuildRequest(context.Background(), target, ex, false)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("BuildRequest: %v", err)
				}
				if req.Header.Get("Upgrade") != "" {
					t.Fatalf("Upgrade forwarded: %q", req.Header.Get("Upgrade"))
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("BuildRequest error %v, want %v", err, tc.want)
			}
			if got := SkipReason(err); got != tc.reason {
				t.Fatalf("reason %q, want %q", got, tc.reason)
			}
		})
	}
}

// A window replay sends none of them and reports each reason.
func TestWindowSkipsIncompleteAndUpgrades(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	its := items(t0, 4, 0)
	its[1].Exchange.Request.BodyIncomplete = true
	its[2].Exchange.Response = &mlv1.Response{Status: 101}
	its[3].Exchange.Request.Headers = []*mlv1.Header{{Name: "Upgrade", Value: "websocket"}}
	clk := NewVirtualClock(t0)
	target := newFakeTarget(clk)
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), &buildingTarget{target}, WithClock(clk))
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 1 || sum.Errors[ReasonIncomplete] != 1 || sum.Errors[ReasonUpgrade] != 2 {
		t.Fatalf("summary: sent %d errors %v", sum.Sent, sum.Errors)
	}
	if s := recv(t, target); s.id != "0" {
		t.Fatalf("sent %q, want only record 0", s.id)
	}
}
