package app

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

func start(t *testing.T, version string) (*Server, ordersv1.OrdersClient) {
	t.Helper()
	srv, err := New(version)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(ln) }()
	t.Cleanup(g.Stop)
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return srv, ordersv1.NewOrdersClient(cc)
}

func TestEveryCallKind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v1, c1 := start(t, V1)
	_, c2 := start(t, V2)

	var trailer metadata.MD
	o1, err := c1.GetOrder(metadata.AppendToOutgoingContext(ctx, "x-shadow-request", "1"), &ordersv1.GetOrderRequest{Id: "A-1"}, grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	o2, err := c2.GetOrder(ctx, &ordersv1.GetOrderRequest{Id: "A-1"})
	if err != nil {
		t.Fatal(err)
	}
	if o1.GetStatus() == o2.GetStatus() || o1.GetAmountCents() != o2.GetAmountCents() || o1.GetShipping().GetStreet() != o2.GetShipping().GetStreet() {
		t.Errorf("v1 %v and v2 %v must differ in status only", o1, o2)
	}
	if got := trailer.Get("x-orders-version"); len(got) != 1 || got[0] != V1 {
		t.Errorf("trailer x-orders-version = %v", got)
	}
	if _, err := c1.GetOrder(ctx, &ordersv1.GetOrderRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty id: %v", err)
	}

	ls, err := c1.ListOrders(ctx, &ordersv1.ListOrdersRequest{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := ls.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("ListOrders sent %d, want 3", n)
	}

	up, err := c1.UploadOrders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []int64{5, 7} {
		if err := up.Send(&ordersv1.Order{AmountCents: a}); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := up.CloseAndRecv()
	if err != nil || sum.GetCount() != 2 || sum.GetTotalCents() != 12 {
		t.Errorf("UploadOrders = %v, %v", sum, err)
	}

	tr, err := c1.Track(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := int32(1); i <= 3; i++ {
		if err := tr.Send(&ordersv1.TrackNote{OrderId: "A-1", Seq: i}); err != nil {
			t.Fatal(err)
		}
		ack, err := tr.Recv()
		if err != nil || ack.GetSeq() != i {
			t.Fatalf("ack %d = %v, %v", i, ack, err)
		}
	}
	if err := tr.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Track end: %v", err)
	}
	if v1.Calls("GetOrder") != 2 || v1.Calls("Track") != 1 || v1.ShadowCalls() != 1 {
		t.Errorf("calls GetOrder=%d Track=%d shadow=%d", v1.Calls("GetOrder"), v1.Calls("Track"), v1.ShadowCalls())
	}
}

func TestUnknownVersion(t *testing.T) {
	if _, err := New("v3"); err == nil {
		t.Fatal("no error")
	}
}
