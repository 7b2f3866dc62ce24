// Package app is the bundled gRPC demo service "orders": one method of each
// gRPC call kind (unary GetOrder, server-streaming ListOrders,
// client-streaming UploadOrders, bidirectional Track). Answers are
// deterministic functions of the request, so a primary and a shadow of the
// same version answer alike. Version v2 changes one field: Order.status.
package app

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
)

// Versions of the service.
const (
	V1 = "v1"
	V2 = "v2"
)

// Server implements ordersv1.OrdersServer and counts the calls it received.
type Server struct {
	ordersv1.UnimplementedOrdersServer
	version string

	mu     sync.Mutex
	calls  map[string]int
	shadow int
}

// New returns a server of version (V1 or V2).
func New(version string) (*Server, error) {
	if version != V1 && version != V2 {
		return nil, fmt.Errorf("orders: unknown version %q (v1 or v2)", version)
	}
	return &Server{version: version, calls: map[string]int{}}, nil
}

// Register adds the service to g.
func (s *Server) Register(g *grpc.Server) { ordersv1.RegisterOrdersServer(g, s) }

// Calls returns how many calls of method (its name, e.g. "GetOrder") were
// received.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// ShadowCalls returns how many calls carried X-Shadow-Request metadata.
func (s *Server) ShadowCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shadow
}

func (s *Server) count(ctx context.Context, method string) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	if len(md.Get("x-shadow-request")) > 0 {
		s.shadow++
	}
}

// order is the order with id: every field derives from the id.
func (s *Server) order(id string) *ordersv1.Order {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	n := h.Sum32()
	st := "shipped"
	if s.version == V2 {
		st = "dispatched"
	}
	return &ordersv1.Order{
		Id:          id,
		AmountCents: int64(n%100000) + 100,
		Currency:    "EUR",
		Status:      st,
		Shipping:    &ordersv1.Address{Street: fmt.Sprintf("%d Demo Street", n%200+1), City: "Lyon", Country: "FR"},
		Tags:        []string{"demo", fmt.Sprintf("bucket-%d", n%4)},
	}
}

// GetOrder answers one order; an empty id is INVALID_ARGUMENT.
func (s *Server) GetOrder(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	s.count(ctx, "GetOrder")
	if req.GetId() == "" {
		return nil, status.Error(codes.InvalidArgument, "order id is required")
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-orders-version", s.version))
	return s.order(req.GetId()), nil
}

// ListOrders streams limit orders (at most 100) of a customer.
func (s *Server) ListOrders(req *ordersv1.ListOrdersRequest, stream grpc.ServerStreamingServer[ordersv1.Order]) error {
	s.count(stream.Context(), "ListOrders")
	limit := min(max(int(req.GetLimit()), 0), 100)
	for i := range limit {
		if err := stream.Send(s.order(fmt.Sprintf("list-%d", i+1))); err != nil {
			return err
		}
	}
	return nil
}

// UploadOrders sums the orders it receives.
func (s *Server) UploadOrders(stream grpc.ClientStreamingServer[ordersv1.Order, ordersv1.UploadSummary]) error {
	s.count(stream.Context(), "UploadOrders")
	sum := &ordersv1.UploadSummary{}
	for {
		o, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(sum)
		}
		if err != nil {
			return err
		}
		sum.Count++
		sum.TotalCents += o.GetAmountCents()
	}
}

// Track answers each note with an acknowledgement, in order.
func (s *Server) Track(stream grpc.BidiStreamingServer[ordersv1.TrackNote, ordersv1.TrackAck]) error {
	s.count(stream.Context(), "Track")
	for {
		n, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&ordersv1.TrackAck{OrderId: n.GetOrderId(), Seq: n.GetSeq(), State: "noted"}); err != nil {
			return err
		}
	}
}
