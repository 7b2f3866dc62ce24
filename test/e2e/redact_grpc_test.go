package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	orders "github.com/mirrorline/mirrorline/test/demo/orders/app"
	"github.com/mirrorline/mirrorline/test/demo/orders/ordersv1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// `mirrorline redact` reads gRPC messages with the schema of its grpc
// settings, from a descriptor set file or from a real grpc-go server's
// reflection: a json_fields rule naming a protobuf field (shipping.street,
// which no detector recognises) scrubs it, and the detectors scrub the
// email. Without a schema the detectors still scrub the email, and the
// field-name rule cannot apply (documented).
func TestRedactGRPCSchemaSources(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	srv, err := orders.New(orders.V1)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	srv.Register(g)
	reflection.Register(g)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = g.Serve(ln) }()
	t.Cleanup(func() { g.Stop(); <-served })

	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte("json_fields:\n  shipping.street: mask\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	order := &ordersv1.Order{Id: "o-9", CustomerEmail: "tess@example.com", Status: "new",
		Shipping: &ordersv1.Address{Street: "12 Rue Haute", City: "Lyon"}}
	for _, tc := range []struct {
		name, street string
		args         []string
	}{
		{"descriptor set", "****", []string{"--descriptor-set", "../demo/orders/ordersv1/orders.pb"}},
		{"reflection", "****", []string{"--grpc-reflection", ln.Addr().String()}},
		{"no schema", "12 Rue Haute", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := kafkatest.Service(t, 1)
			data, err := proto.Marshal(order)
			if err != nil {
				t.Fatal(err)
			}
			ex := &mlv1.Exchange{Id: "grpc-1", Service: svc, Protocol: mlv1.Protocol_PROTOCOL_GRPC, CaptureTimeNs: time.Now().UnixNano(),
				Request: &mlv1.Request{Method: "POST", Url: "/mirrorline.demo.orders.v1.Orders/GetOrder",
					Headers: []*mlv1.Header{{Name: "content-type", Value: "application/grpc"}}},
				Response: &mlv1.Response{Status: 200, Headers: []*mlv1.Header{{Name: "content-type", Value: "application/grpc"}},
					Messages: []*mlv1.Message{{Data: data, Size: int64(len(data))}}, BodySize: int64(len(data) + 5),
					Trailers: []*mlv1.Header{{Name: "grpc-status", Value: "0"}, {Name: "grpc-message", Value: "for tess@example.com"}}},
			}
			v, err := proto.Marshal(ex)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := kafkatest.Client(t).ProduceSync(ctx, &kgo.Record{Topic: broker.Topic(broker.Raw, svc), Value: v}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"redact", "--service", svc, "--rules", rules, "--metrics-addr", ""}, tc.args...)
			startML(t, []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}, args...)
			clean := kafkatest.ReadExchanges(t, brokers, broker.Topic(broker.Clean, svc), 1, 90*time.Second, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			got := clean[0]
			var o ordersv1.Order
			if err := proto.Unmarshal(got.Response.Messages[0].Data, &o); err != nil {
				t.Fatalf("clean message does not parse: %v", err)
			}
			if o.Shipping.GetStreet() != tc.street || o.CustomerEmail != "****" || o.Id != "o-9" || o.Shipping.GetCity() != "Lyon" {
				t.Errorf("clean order = %v", &o)
			}
			for _, h := range got.Response.Trailers {
				if strings.Contains(h.Value, "@example.") {
					t.Errorf("trailer %s keeps an email", h.Name)
				}
			}
		})
	}
}
