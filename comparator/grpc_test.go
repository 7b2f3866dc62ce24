package comparator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/testproc"
)

const (
	ordersSet     = "../test/demo/orders/ordersv1/orders.pb"
	getOrderPath  = "/mirrorline.demo.orders.v1.Orders/GetOrder"
	listOrderPath = "/mirrorline.demo.orders.v1.Orders/ListOrders"
)

// demoOrder is the demo service's answer to GetOrder of id: version v2
// changes status only.
func demoOrder(id, version string) *ordersv1.Order {
	st := "shipped"
	if version == "v2" {
		st = "dispatched"
	}
	return &ordersv1.Order{
		Id: id, AmountCents: 4200, Currency: "EUR", Status: st,
		Shipping: &ordersv1.Address{Street: "1 Demo Street", City: "Lyon", Country: "FR"},
		Tags:     []string{"demo", "bucket-1"},
	}
}

func grpcMsg(t testing.TB, m proto.Message) *mlv1.Message {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &mlv1.Message{Data: b, Size: int64(len(b))}
}

// grpcResp is a gRPC answer with code in its trailers and msgs.
func grpcResp(code string, msgs ...*mlv1.Message) *mlv1.Response {
	return &mlv1.Response{
		Status: 200, LatencyNs: int64(3 * time.Millisecond),
		Headers:  []*mlv1.Header{{Name: "content-type", Value: "application/grpc"}},
		Trailers: []*mlv1.Header{{Name: "grpc-status", Value: code}},
		Messages: msgs,
	}
}

func grpcEx(id, path string, side Side, r *mlv1.Response) *mlv1.Exchange {
	var ex *mlv1.Exchange
	if side == Primary {
		ex = primaryEx(id, "POST", path, r)
	} else {
		ex = shadowEx(id, "POST", path, "live", r)
	}
	ex.Protocol = mlv1.Protocol_PROTOCOL_GRPC
	ex.Request.Proto = "HTTP/2.0"
	return ex
}

func mustSchema(t testing.TB) *grpcwire.Schema {
	t.Helper()
	s, err := grpcwire.LoadSchemas(ordersSet)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// decideGRPC joins one primary/shadow pair of path and returns its diff.
func decideGRPC(t *testing.T, c *Comparator, id, path string, p, s *mlv1.Response) *mlv1.Diff {
	t.Helper()
	c.Add(Primary, grpcEx(id, path, Primary, p), Ref{Offset: 1}, t0)
	ds, _ := c.Add(Shadow, grpcEx(id, path, Shadow, s), Ref{Offset: 2}, t0)
	if len(ds) != 1 {
		t.Fatalf("%d decisions, want 1", len(ds))
	}
	return ds[0].Diff
}

// fields lists a diff's differences as "field kind primary→shadow".
func fields(d *mlv1.Diff) []string {
	var out []string
	for _, df := range d.GetDifferences() {
		out = append(out, fmt.Sprintf("%s %s %s→%s", df.Field, KindLabel(df.Kind), df.Primary, df.Shadow))
	}
	return out
}

func TestGRPCDiff(t *testing.T) {
	v1, v2 := demoOrder("o-1", "v1"), demoOrder("o-1", "v2")
	tracked := func(n int) []*mlv1.Message {
		var ms []*mlv1.Message
		for i := range n {
			ms = append(ms, grpcMsg(t, &ordersv1.TrackAck{OrderId: "o-1", Seq: int32(i), State: "seen"}))
		}
		return ms
	}
	trailersOnly := func(code, msg string) *mlv1.Response {
		return &mlv1.Response{Status: 200, LatencyNs: 1, Headers: []*mlv1.Header{
			{Name: "content-type", Value: "application/grpc"}, {Name: "grpc-status", Value: code}, {Name: "grpc-message", Value: msg}}}
	}
	gz := func(m *mlv1.Message) *mlv1.Message {
		b, err := grpcwire.Compress("gzip", m.Data)
		if err != nil {
			t.Fatal(err)
		}
		return &mlv1.Message{Data: b, Compressed: true, Size: int64(len(b))}
	}
	withEncoding := func(r *mlv1.Response) *mlv1.Response {
		r.Headers = append(r.Headers, &mlv1.Header{Name: "grpc-encoding", Value: "gzip"})
		return r
	}
	const track = "/mirrorline.demo.orders.v1.Orders/Track"
	tests := []struct {
		name         string
		path         string
		schema       bool
		p, s         *mlv1.Response
		want         []string
		verdict      mlv1.Verdict
		reason       string
		wantNote     string
		pStat, sStat string
	}{
		{name: "v1 vs v2 by name", path: getOrderPath, schema: true,
			p: grpcResp("0", grpcMsg(t, v1)), s: grpcResp("0", grpcMsg(t, v2)),
			want: []string{`body.0.status changed "shipped"→"dispatched"`}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, pStat: "OK", sStat: "OK"},
		{name: "v1 vs v2 by number", path: getOrderPath,
			p: grpcResp("0", grpcMsg(t, v1)), s: grpcResp("0", grpcMsg(t, v2)),
			want: []string{`body.0.5 changed "shipped"→"dispatched"`}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, pStat: "OK", sStat: "OK"},
		{name: "method unknown to the schema: by number", path: "/mirrorline.demo.orders.v1.Orders/Other", schema: true,
			p: grpcResp("0", grpcMsg(t, v1)), s: grpcResp("0", grpcMsg(t, v2)),
			want: []string{`body.0.5 changed "shipped"→"dispatched"`}, verdict: mlv1.Verdict_VERDICT_DIFFERENT, wantNote: "method not in the schema"},
		{name: "compressed messages", path: getOrderPath, schema: true,
			p: withEncoding(grpcResp("0", gz(grpcMsg(t, v1)))), s: grpcResp("0", grpcMsg(t, v2)),
			want: []string{`body.0.status changed "shipped"→"dispatched"`}, verdict: mlv1.Verdict_VERDICT_DIFFERENT},
		{name: "identical streams", path: track, schema: true,
			p: grpcResp("0", tracked(3)...), s: grpcResp("0", tracked(3)...), verdict: mlv1.Verdict_VERDICT_SAME},
		{name: "a stream with one message more", path: track, schema: true,
			p: grpcResp("0", tracked(2)...), s: grpcResp("0", tracked(3)...),
			want:    []string{"messages changed 2→3", `body.2 added →{"order_id":"o-1","seq":2,"state":"seen"}`},
			verdict: mlv1.Verdict_VERDICT_DIFFERENT},
		{name: "a stream with one message less, by number", path: track,
			p: grpcResp("0", tracked(3)...), s: grpcResp("0", tracked(2)...),
			want:    []string{"messages changed 3→2", `body.2 removed {"1":"o-1","2":2,"3":"seen"}→`},
			verdict: mlv1.Verdict_VERDICT_DIFFERENT},
		{name: "status OK vs INVALID_ARGUMENT", path: getOrderPath, schema: true,
			p: grpcResp("0", grpcMsg(t, v1)), s: trailersOnly("3", "order id is required"),
			want: []string{"status changed OK→INVALID_ARGUMENT", `trailer.grpc-message added →order id is required`,
				"messages changed 1→0", `body.0 removed {"amount_cents":4200,"card_number":"","currency":"EUR","customer_email":"","id":"o-1","shipping":{"city":"Lyon","country":"FR","street":"1 Demo Street"},"status":"shipped","tags":["demo","bucket-1"]}→`},
			verdict: mlv1.Verdict_VERDICT_DIFFERENT, pStat: "OK", sStat: "INVALID_ARGUMENT"},
		{name: "same error on both sides", path: getOrderPath, schema: true,
			p: trailersOnly("3", "order id is required"), s: trailersOnly("3", "order id is required"), verdict: mlv1.Verdict_VERDICT_SAME},
		{name: "grpc-message differs", path: getOrderPath, schema: true,
			p: trailersOnly("5", "no such order"), s: trailersOnly("5", "order not found"),
			want: []string{"trailer.grpc-message changed no such order→order not found"}, verdict: mlv1.Verdict_VERDICT_DIFFERENT},
		{name: "shadow UNAVAILABLE is a shadow error", path: getOrderPath, schema: true,
			p: grpcResp("0", grpcMsg(t, v1)), s: trailersOnly("14", "connection refused to 10.0.0.1"),
			verdict: mlv1.Verdict_VERDICT_SHADOW_ERROR, reason: "shadow: grpc-status UNAVAILABLE", pStat: "OK", sStat: "UNAVAILABLE"},
		{name: "shadow without grpc-status", path: getOrderPath, schema: true,
			p: grpcResp("0", grpcMsg(t, v1)), s: &mlv1.Response{Status: 200, LatencyNs: 1, Messages: []*mlv1.Message{grpcMsg(t, v1)}},
			verdict: mlv1.Verdict_VERDICT_SHADOW_ERROR, reason: "shadow: no grpc-status"},
		{name: "primary 503 without grpc-status", path: getOrderPath, schema: true,
			p: &mlv1.Response{Status: 503, LatencyNs: 1}, s: grpcResp("0", grpcMsg(t, v1)),
			verdict: mlv1.Verdict_VERDICT_PRIMARY_ERROR, reason: "primary: status 503"},
		{name: "truncated message not compared", path: getOrderPath, schema: true,
			p: grpcResp("0", grpcMsg(t, v1)), s: grpcResp("0", &mlv1.Message{Data: []byte{0x0a, 0x03}, Size: 90, Truncated: true}),
			verdict: mlv1.Verdict_VERDICT_SAME, wantNote: "message 0 truncated at capture; not compared"},
		{name: "messages left out: count not compared", path: track, schema: true,
			p: grpcResp("0", tracked(3)...), s: func() *mlv1.Response { r := grpcResp("0", tracked(2)...); r.MessagesTruncated = true; return r }(),
			verdict: mlv1.Verdict_VERDICT_SAME, wantNote: "their number not compared"},
		{name: "not a message of the method's type: by bytes", path: getOrderPath, schema: true,
			p: grpcResp("0", grpcMsg(t, v1)), s: grpcResp("0", &mlv1.Message{Data: []byte{0x2a, 0x01, 0xff}, Size: 3}),
			verdict: mlv1.Verdict_VERDICT_DIFFERENT, wantNote: "message 0: shadow not a protobuf message of the method's type; compared by bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.schema {
				opts = append(opts, WithSchema(mustSchema(t)))
			}
			c := mustNew(t, noWarmup(), opts...)
			d := decideGRPC(t, c, "x", tc.path, tc.p, tc.s)
			if d.Verdict != tc.verdict || d.Reason != tc.reason {
				t.Errorf("verdict %s %q, want %s %q", VerdictLabel(d.Verdict), d.Reason, VerdictLabel(tc.verdict), tc.reason)
			}
			if got := fields(d); tc.want != nil && !slices.Equal(got, tc.want) {
				t.Errorf("differences\n got %q\nwant %q", got, tc.want)
			}
			if !strings.Contains(d.Note, tc.wantNote) {
				t.Errorf("note %q, want %q in it", d.Note, tc.wantNote)
			}
			if tc.pStat != "" && (d.PrimaryGrpcStatus != tc.pStat || d.ShadowGrpcStatus != tc.sStat) {
				t.Errorf("grpc status %q → %q, want %q → %q", d.PrimaryGrpcStatus, d.ShadowGrpcStatus, tc.pStat, tc.sStat)
			}
			if d.Endpoint != tc.path {
				t.Errorf("endpoint %q, want %q", d.Endpoint, tc.path)
			}
		})
	}
}

// TestGRPCScrubFailure: a shadow answer the redactor cannot scrub is
// compared on its gRPC status only.
func TestGRPCScrubFailure(t *testing.T) {
	c := mustNew(t, noWarmup(), WithSchema(mustSchema(t)), WithScrubber(func(*mlv1.Exchange) error { return fmt.Errorf("unparseable") }))
	v1 := grpcResp("0", grpcMsg(t, demoOrder("o-1", "v1")))
	d := decideGRPC(t, c, "x", getOrderPath, v1, grpcResp("0", grpcMsg(t, demoOrder("o-1", "v2"))))
	if d.Verdict != mlv1.Verdict_VERDICT_SAME || len(d.Differences) != 0 || !strings.Contains(d.Note, "only the status compared") {
		t.Errorf("same status: %s %q note %q", VerdictLabel(d.Verdict), fields(d), d.Note)
	}
	d = decideGRPC(t, c, "y", getOrderPath, v1, grpcResp("5"))
	if got := fields(d); !slices.Equal(got, []string{"status changed OK→NOT_FOUND"}) {
		t.Errorf("other status: %q", got)
	}
}

// TestGRPCUnderStatus: the differences of an answer whose gRPC status
// changed are marked as consequences of it.
func TestGRPCUnderStatus(t *testing.T) {
	c := mustNew(t, noWarmup(), WithSchema(mustSchema(t)))
	s := grpcResp("5")
	s.Trailers = append(s.Trailers, &mlv1.Header{Name: "grpc-message", Value: "not found"})
	d := decideGRPC(t, c, "x", getOrderPath, grpcResp("0", grpcMsg(t, demoOrder("o-1", "v1"))), s)
	if len(d.Differences) < 2 || d.Differences[0].Field != FieldStatus {
		t.Fatalf("differences %q", fields(d))
	}
	for _, df := range d.Differences[1:] {
		if !df.UnderStatus {
			t.Errorf("%s not under the status difference", df.Field)
		}
	}
}

// TestGRPCIgnoreRules: ignore patterns name protobuf fields inside a message
// (by name with a schema, by number without), or whole paths; ignore.headers
// covers trailers.
func TestGRPCIgnoreRules(t *testing.T) {
	p := grpcResp("0", grpcMsg(t, demoOrder("o-1", "v1")))
	p.Trailers = append(p.Trailers, &mlv1.Header{Name: "grpc-message", Value: "a"})
	s := grpcResp("0", grpcMsg(t, demoOrder("o-1", "v2")))
	s.Trailers = append(s.Trailers, &mlv1.Header{Name: "grpc-message", Value: "b"})
	for _, tc := range []struct {
		name   string
		schema bool
		ignore IgnoreConfig
		want   []string
	}{
		{name: "nothing ignored", schema: true, want: []string{"trailer.grpc-message changed a→b", `body.0.status changed "shipped"→"dispatched"`}},
		{name: "by field name", schema: true, ignore: IgnoreConfig{JSONPaths: []string{"status"}, Headers: []string{"grpc-message"}}},
		{name: "by whole path", schema: true, ignore: IgnoreConfig{JSONPaths: []string{"body.*.status", "grpc-*"}}, want: []string{"trailer.grpc-message changed a→b"}},
		{name: "by name at the method only", schema: true,
			ignore: IgnoreConfig{Endpoints: []EndpointIgnore{{Endpoint: "/mirrorline.demo.orders.v1.Orders/*", JSONPaths: []string{"status"}}}},
			want:   []string{"trailer.grpc-message changed a→b"}},
		{name: "by name elsewhere", schema: true,
			ignore: IgnoreConfig{Endpoints: []EndpointIgnore{{Endpoint: "/other.Service/*", JSONPaths: []string{"status"}}}},
			want:   []string{"trailer.grpc-message changed a→b", `body.0.status changed "shipped"→"dispatched"`}},
		{name: "by number", ignore: IgnoreConfig{JSONPaths: []string{"5"}}, want: []string{"trailer.grpc-message changed a→b"}},
		{name: "by name without schema: not ignored", ignore: IgnoreConfig{JSONPaths: []string{"status"}},
			want: []string{"trailer.grpc-message changed a→b", `body.0.5 changed "shipped"→"dispatched"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := noWarmup()
			cfg.Ignore = tc.ignore
			var opts []Option
			if tc.schema {
				opts = append(opts, WithSchema(mustSchema(t)))
			}
			d := decideGRPC(t, mustNew(t, cfg, opts...), "x", getOrderPath, p, s)
			if got := fields(d); !slices.Equal(got, tc.want) {
				t.Errorf("differences\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestGRPCNoiseLearned: a protobuf field that differs in every call with a
// volatile value (a generated id) is learned as noise; the status change of
// v2 is not.
func TestGRPCNoiseLearned(t *testing.T) {
	c := mustNew(t, Config{}, WithSchema(mustSchema(t)))
	var decided []*mlv1.Diff
	for i := range 40 {
		id := fmt.Sprintf("ex-%02d", i)
		a, b := demoOrder("", "v1"), demoOrder("", "v1")
		if i%4 == 0 {
			b.Status = "dispatched"
		}
		// A server-generated id: a new UUID on each side of every call.
		a.Id = fmt.Sprintf("0190b2c4-%04d-7000-8000-%012d", i, 2*i)
		b.Id = fmt.Sprintf("0190b2c4-%04d-7000-8000-%012d", i, 2*i+1)
		// A timestamp-like string: when each side handled the call.
		a.Tags[1] = t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
		b.Tags[1] = t0.Add(time.Duration(i)*time.Second + 1234*time.Microsecond).Format(time.RFC3339Nano)
		now := t0.Add(time.Duration(i) * time.Millisecond)
		c.Add(Primary, grpcEx(id, getOrderPath, Primary, grpcResp("0", grpcMsg(t, a))), Ref{Offset: int64(i)}, now)
		ds, _ := c.Add(Shadow, grpcEx(id, getOrderPath, Shadow, grpcResp("0", grpcMsg(t, b))), Ref{Offset: int64(i)}, now)
		for _, d := range ds {
			decided = append(decided, d.Diff)
		}
	}
	if len(decided) != 40 {
		t.Fatalf("%d decided, want 40", len(decided))
	}
	for _, d := range decided {
		var i int
		if _, err := fmt.Sscanf(d.Id, "ex-%d", &i); err != nil {
			t.Fatal(err)
		}
		want := mlv1.Verdict_VERDICT_SAME
		if i%4 == 0 {
			want = mlv1.Verdict_VERDICT_DIFFERENT
		}
		if d.Verdict != want {
			t.Fatalf("%s: %s, want %s: %q", d.Id, VerdictLabel(d.Verdict), VerdictLabel(want), fields(d))
		}
		for _, df := range d.Differences {
			if df.Noise != (df.Key == "body.*.id" || df.Key == "body.*.tags.*") {
				t.Fatalf("%s: %s noise=%v", d.Id, df.Field, df.Noise)
			}
		}
	}
	rep := c.Stats().Report("orders", t0)
	var noise []string
	for _, f := range rep.Endpoints[0].Noise {
		noise = append(noise, f.Field+" "+f.Reason)
	}
	if slices.Sort(noise); !slices.Equal(noise, []string{"body.*.id volatile", "body.*.tags.* volatile"}) {
		t.Fatalf("report noise %+v", rep.Endpoints)
	}
	if f := rep.Endpoints[0].Fields; len(f) != 1 || f[0].Field != "body.*.status" || f[0].Count != 10 {
		t.Errorf("report fields %+v", f)
	}
}

// TestGRPCEndpoints: a gRPC method is its own endpoint (with its latency);
// paths that are not protobuf names are templated like HTTP ones.
func TestGRPCEndpoints(t *testing.T) {
	tm, err := NewTemplater(nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{getOrderPath, getOrderPath},
		{"/pkg.Svc/Get", "/pkg.Svc/Get"},
		{"/pkg.Svc/a@b.example", "POST /pkg.Svc/{id}"},
		{"/pkg.Svc/Third", OtherGRPCEndpoint},
		{getOrderPath, getOrderPath},
		{"/pkg.Svc/x%40y", "POST /pkg.Svc/{id}"},
		{"/pkg.Svc/Get?x=1", "POST (other)"},
	} {
		if got := tm.GRPCEndpoint(tc.path); got != tc.want {
			t.Errorf("GRPCEndpoint(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestGRPCLatencyPerMethod: latency tails are kept per method.
func TestGRPCLatencyPerMethod(t *testing.T) {
	cfg := noWarmup()
	cfg.Latency.MinSamples = 10
	c := mustNew(t, cfg)
	for i := range 100 {
		for _, m := range []struct {
			path string
			p, s time.Duration
		}{{getOrderPath, 2 * time.Millisecond, 2 * time.Millisecond}, {listOrderPath, 10 * time.Millisecond, 40 * time.Millisecond}} {
			p, s := grpcResp("0"), grpcResp("0")
			p.LatencyNs, s.LatencyNs = int64(m.p)+int64(i)*int64(time.Microsecond), int64(m.s)+int64(i)*int64(time.Microsecond)
			id := fmt.Sprintf("%s-%d", m.path, i)
			c.Add(Primary, grpcEx(id, m.path, Primary, p), Ref{}, t0)
			c.Add(Shadow, grpcEx(id, m.path, Shadow, s), Ref{}, t0)
		}
	}
	get, list := c.Stats().Latency(getOrderPath), c.Stats().Latency(listOrderPath)
	if !get.Judged || get.TailRegression || get.Primary.Count != 100 {
		t.Errorf("GetOrder latency %+v", get)
	}
	if !list.Judged || !list.TailRegression || list.Shadow.Max < 40 || list.Primary.Max >= 40 {
		t.Errorf("ListOrders latency %+v", list)
	}
}

// grpcCaseStudy are the decided diffs of a v1 primary and a v2 shadow of
// the demo orders service: GetOrder differs in status (by name with the
// schema, by number without), some calls fail with INVALID_ARGUMENT on the
// shadow, Track streams agree.
func grpcCaseStudy(t *testing.T, schema bool) []*mlv1.Diff {
	t.Helper()
	cfg := noWarmup()
	cfg.Alert.MinSamples = 10
	var opts []Option
	if schema {
		opts = append(opts, WithSchema(mustSchema(t)))
	}
	c := mustNew(t, cfg, opts...)
	var out []*mlv1.Diff
	add := func(id, path string, p, s *mlv1.Response, i int) {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		pe, se := grpcEx(id, path, Primary, p), grpcEx(id, path, Shadow, s)
		pe.CaptureTimeNs, se.CaptureTimeNs = now.UnixNano(), now.UnixNano()
		c.Add(Primary, pe, Ref{Offset: int64(i)}, now)
		ds, _ := c.Add(Shadow, se, Ref{Offset: int64(i)}, now)
		for _, d := range ds {
			out = append(out, d.Diff)
		}
	}
	for i := range 20 {
		id := fmt.Sprintf("o-%02d", i)
		p := grpcResp("0", grpcMsg(t, demoOrder(id, "v1")))
		s := grpcResp("0", grpcMsg(t, demoOrder(id, "v2")))
		if i%5 == 4 {
			s = grpcResp("3")
			s.Trailers = append(s.Trailers, &mlv1.Header{Name: "grpc-message", Value: "order id is required"})
		}
		p.LatencyNs, s.LatencyNs = int64(2*time.Millisecond)+int64(i)*1000, int64(3*time.Millisecond)+int64(i)*1000
		add("get-"+id, getOrderPath, p, s, i)
		acks := []*mlv1.Message{grpcMsg(t, &ordersv1.TrackAck{OrderId: id, Seq: 1, State: "seen"}), grpcMsg(t, &ordersv1.TrackAck{OrderId: id, Seq: 2, State: "seen"})}
		add("track-"+id, "/mirrorline.demo.orders.v1.Orders/Track", grpcResp("0", acks...), grpcResp("0", acks...), 100+i)
	}
	return out
}

// TestGRPCReportGolden: the text, JSON and HTML reports of gRPC methods show
// the gRPC status and the differing protobuf fields by name:
// go test ./comparator -run TestGRPCReportGolden -update rewrites them.
func TestGRPCReportGolden(t *testing.T) {
	cfg := Config{Alert: AlertConfig{MinSamples: 10}}
	rep := BuildReport("orders", cfg, grpcCaseStudy(t, true), t0)
	get := rep.Endpoints[0]
	if get.Endpoint != getOrderPath || !get.Significant || get.Fields[0].Field != FieldStatus ||
		get.StatusTransitions["OK → INVALID_ARGUMENT"] != 4 || get.GRPCStatuses["OK → OK"] != 16 {
		t.Fatalf("GetOrder %+v", get)
	}
	if f := get.Fields[1]; f.Field != "body.*.status" || f.Count != 16 || f.Primary != `"shipped"` || f.Shadow != `"dispatched"` {
		t.Errorf("GetOrder status field %+v", f)
	}
	byNumber := BuildReport("orders", cfg, grpcCaseStudy(t, false), t0)
	if f := byNumber.Endpoints[0].Fields[1]; f.Field != "body.*.5" || f.Count != 16 {
		t.Errorf("GetOrder without schema: field %+v", f)
	}
	for _, tc := range []struct {
		golden string
		write  func(*bytes.Buffer) error
	}{
		{"report_grpc.txt.golden", func(b *bytes.Buffer) error { return WriteText(b, rep, TextOptions{}) }},
		{"report_grpc.json.golden", func(b *bytes.Buffer) error {
			e := json.NewEncoder(b)
			e.SetIndent("", "  ")
			return e.Encode(rep)
		}},
		{"report_grpc.html.golden", func(b *bytes.Buffer) error { return WriteHTML(b, rep, HTMLOptions{}) }},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b); err != nil {
				t.Fatal(err)
			}
			testproc.Golden(t, filepath.Join("testdata", tc.golden), b.Bytes(), *update)
		})
	}
}

// BenchmarkGRPCCompare measures the diff of one GetOrder answer pair (v1
// against v2), with and without the schema.
func BenchmarkGRPCCompare(b *testing.B) {
	p := grpcResp("0", grpcMsg(b, demoOrder("o-1", "v1")))
	s := grpcResp("0", grpcMsg(b, demoOrder("o-1", "v2")))
	for _, bc := range []struct {
		name   string
		schema *grpcwire.Schema
	}{{"schema", mustSchema(b)}, {"numbers", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			c := mustNew(b, noWarmup(), WithSchema(bc.schema))
			b.ReportAllocs()
			for b.Loop() {
				if cmp := c.differ.compareGRPC(getOrderPath, getOrderPath, p, s); len(cmp.diffs) != 1 {
					b.Fatalf("%d differences", len(cmp.diffs))
				}
			}
		})
	}
}
