package e2e

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/orderstest"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// `mirrorline import` of a capture of real gRPC traffic (grpc-go client and
// server over h2c, recorded by a relay) into a real Kafka: one record per
// call with its messages, metadata and grpc-status trailer as the client
// saw them; an HTTP/2 connection captured without its preface is reported,
// not published.
func TestImportH2cGRPCIntoKafka(t *testing.T) {
	_, srvAddr := orderstest.Serve(t, app.V1)
	relay := packettest.NewRelay(t, srvAddr)
	cc, err := grpc.NewClient("passthrough:///"+relay.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := ordersv1.NewOrdersClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "x-tenant", "acme")
	getReq := &ordersv1.GetOrderRequest{Id: "o-7", CustomerEmail: "bob@example.com"}
	order, err := client.GetOrder(ctx, getReq)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := client.Track(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var notes, acks []proto.Message
	for i := range 2 {
		n := &ordersv1.TrackNote{OrderId: "o-7", Note: "step", Seq: int32(i + 1)}
		if err := stream.Send(n); err != nil {
			t.Fatal(err)
		}
		ack, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		notes, acks = append(notes, n), append(acks, ack)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of Track: %v", err)
	}
	_ = cc.Close()
	relay.Close()

	// The capture: the relayed connection, and one joined after its preface.
	conns := relay.Conns()
	if len(conns) != 1 {
		t.Fatalf("%d connections relayed", len(conns))
	}
	h := packettest.NewH2()
	h.ClientStart()
	h.ServerStart()
	at := conns[0][len(conns[0])-1].At
	midway := []packettest.Chunk{{ToServer: true, Data: h.Request(9, "GET", "svc", "/late"), At: at.Add(time.Second)},
		{ToServer: false, Data: h.Response(9, "200", "late"), At: at.Add(2 * time.Second)}}
	path := filepath.Join(t.TempDir(), "grpc.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for i, chunks := range [][]packettest.Chunk{conns[0], midway} {
		client := []string{"192.0.2.10:50000", "192.0.2.11:50001"}[i]
		pkts, err := packettest.Packets(client, "192.0.2.20:50051", chunks, 1400)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: p.At, CaptureLength: len(p.Frame), Length: len(p.Frame)}, p.Frame); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 1)
	out, code := runML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}, "import", "--service", svc, "--port", "50051", path)
	if code != 0 || !strings.Contains(out, "2 exchanges published") || !strings.Contains(out, "1 HTTP/2 connections not parsed") {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	recs := readRecords(t, brokers, broker.Topic(broker.Raw, svc), 2, 30*time.Second)
	want := map[string][2][]proto.Message{
		ordersv1.Orders_GetOrder_FullMethodName: {{getReq}, {order}},
		ordersv1.Orders_Track_FullMethodName:    {notes, acks},
	}
	for _, r := range recs {
		ex := r.ex
		w, ok := want[ex.Request.Url]
		if !ok || ex.Protocol != mlv1.Protocol_PROTOCOL_GRPC || ex.Source != mlv1.Source_SOURCE_PCAP || ex.Response == nil ||
			r.ts.UnixNano()/1e6 != ex.CaptureTimeNs/1e6 {
			t.Fatalf("record %v", ex)
		}
		delete(want, ex.Request.Url)
		if got := header(ex.Request.Headers, "x-tenant"); got != "acme" {
			t.Errorf("%s: x-tenant %q", ex.Request.Url, got)
		}
		if got := header(ex.Response.Trailers, "grpc-status"); got != "0" {
			t.Errorf("%s: grpc-status %q", ex.Request.Url, got)
		}
		for side, msgs := range [][]*mlv1.Message{ex.Request.Messages, ex.Response.Messages} {
			if len(msgs) != len(w[side]) {
				t.Fatalf("%s side %d: %d messages, want %d", ex.Request.Url, side, len(msgs), len(w[side]))
			}
			for i, m := range msgs {
				got := w[side][i].ProtoReflect().New().Interface()
				if err := proto.Unmarshal(m.Data, got); err != nil || !proto.Equal(got, w[side][i]) {
					t.Errorf("%s side %d message %d: %v %v, want %v", ex.Request.Url, side, i, err, got, w[side][i])
				}
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("calls not imported: %v", want)
	}
}
