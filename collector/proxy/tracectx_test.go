package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func TestAddTraceContext(t *testing.T) {
	id := uuid.MustParse("01939a5e-8c3f-7b2a-9d4e-5f6a7b8c9d0e")
	const idHex = "01939a5e8c3f7b2a9d4e5f6a7b8c9d0e"
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	many := make([]string, 40)
	for i := range many {
		many[i] = "k" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + "=v"
	}
	tests := []struct {
		name        string
		traceparent []string
		tracestate  []string
		keep        bool   // the traceparent kept
		wantState   string // "": mirrorline only
	}{
		{name: "absent: added"},
		{name: "valid: kept", traceparent: []string{valid}, keep: true},
		{name: "valid, sampled out flag: kept", traceparent: []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}, keep: true},
		{name: "valid with tracestate: ours first, others kept", traceparent: []string{valid}, tracestate: []string{"congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"}, keep: true,
			wantState: "mirrorline=" + idHex + ",congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"},
		{name: "older mirrorline entry replaced", traceparent: []string{valid}, tracestate: []string{"rojo=1,mirrorline=0190aaaaaaaaaaaaaaaaaaaaaaaaaaaa", "congo=2"}, keep: true,
			wantState: "mirrorline=" + idHex + ",rojo=1,congo=2"},
		{name: "at most 32 members", traceparent: []string{valid}, tracestate: []string{strings.Join(many, ",")}, keep: true,
			wantState: "mirrorline=" + idHex + "," + strings.Join(many[:31], ",")},
		{name: "invalid: tracestate of another trace dropped", traceparent: []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"}, tracestate: []string{"congo=1"}},
		{name: "version ff", traceparent: []string{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{name: "future version", traceparent: []string{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}},
		{name: "trace id all zeros", traceparent: []string{"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}},
		{name: "parent id all zeros", traceparent: []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}},
		{name: "uppercase hex", traceparent: []string{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}},
		{name: "non-hex flags", traceparent: []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"}},
		{name: "trailing data", traceparent: []string{valid + "-x"}},
		{name: "two values", traceparent: []string{valid, valid}},
		{name: "empty", traceparent: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.traceparent != nil {
				h["Traceparent"] = tt.traceparent
			}
			if tt.tracestate != nil {
				h["Tracestate"] = tt.tracestate
			}
			got := addTraceContext(h, id)
			tp := h["Traceparent"]
			if len(tp) != 1 {
				t.Fatalf("traceparent %q, want one value", tp)
			}
			if tt.keep {
				if tp[0] != tt.traceparent[0] || got != tt.traceparent[0][3:35] {
					t.Fatalf("traceparent %q trace id %q, want %q kept", tp[0], got, tt.traceparent[0])
				}
			} else {
				if got != idHex || !strings.HasPrefix(tp[0], "00-"+idHex+"-") || !strings.HasSuffix(tp[0], "-01") {
					t.Fatalf("traceparent %q trace id %q, want a new one with trace id %s", tp[0], got, idHex)
				}
				if tid, ok := traceIDOf(tp); !ok || tid != idHex {
					t.Fatalf("the added traceparent %q is not valid", tp[0])
				}
			}
			want := tt.wantState
			if want == "" {
				want = "mirrorline=" + idHex
			}
			if ts := h["Tracestate"]; len(ts) != 1 || ts[0] != want {
				t.Fatalf("tracestate %q, want %q", ts, want)
			}
			if p := parentOf(h); p != id.String() {
				t.Fatalf("parent read back %q, want %s", p, id)
			}
		})
	}
}

func TestParentOf(t *testing.T) {
	for _, tt := range []struct {
		state []string
		want  string
	}{
		{nil, ""},
		{[]string{"congo=1"}, ""},
		{[]string{"congo=1", " mirrorline=01939a5e8c3f7b2a9d4e5f6a7b8c9d0e"}, "01939a5e-8c3f-7b2a-9d4e-5f6a7b8c9d0e"},
		{[]string{"mirrorline=01939A5E8C3F7B2A9D4E5F6A7B8C9D0E"}, ""},
		{[]string{"mirrorline=01939a5e"}, ""},
		{[]string{"mirrorline=../../etc/passwd0000000000000000000000"}, ""},
	} {
		if got := parentOf(http.Header{"Tracestate": tt.state}); got != tt.want {
			t.Errorf("parentOf(%q) = %q, want %q", tt.state, got, tt.want)
		}
	}
}

// Whatever a client sends as trace context, the proxy forwards one valid
// traceparent and a tracestate led by its own member, at most 32 members,
// and reads its exchange id back from it.
func FuzzAddTraceContext(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE, mirrorline=x")
	f.Add("", "")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", strings.Repeat("a=1,", 100))
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", " mirrorline =1,,\t,mirrorline=2")
	id := uuid.MustParse("01939a5e-8c3f-7b2a-9d4e-5f6a7b8c9d0e")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		h := http.Header{"Traceparent": {tp}, "Tracestate": {ts}}
		traceID := addTraceContext(h, id)
		got, ok := traceIDOf(h["Traceparent"])
		if !ok || got != traceID {
			t.Fatalf("forwarded traceparent %q invalid or not trace %q", h["Traceparent"], traceID)
		}
		state := h["Tracestate"]
		if len(state) != 1 || !strings.HasPrefix(state[0], "mirrorline=01939a5e8c3f7b2a9d4e5f6a7b8c9d0e") {
			t.Fatalf("tracestate %q", state)
		}
		members := strings.Split(state[0], ",")
		if len(members) > mlv1.MaxTracestateMembers {
			t.Fatalf("tracestate has %d members", len(members))
		}
		for _, m := range members[1:] {
			if key, _, _ := strings.Cut(m, "="); strings.Trim(key, " \t") == mlv1.TracestateKey || m == "" {
				t.Fatalf("tracestate %q: a second mirrorline member or an empty one", state[0])
			}
		}
		if parentOf(h) != id.String() {
			t.Fatalf("parent of %q: %q", state, parentOf(h))
		}
	})
}
