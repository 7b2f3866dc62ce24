package grpcwire

import (
	"os"
	"path/filepath"
	"testing"
)

const ordersSet = "../test/demo/orders/ordersv1/orders.pb"

func TestLoadSchemasMethod(t *testing.T) {
	s, err := LoadSchemas(ordersSet, ordersSet)
	if err != nil {
		t.Fatal(err)
	}
	in, out, ok := s.Method("/mirrorline.demo.orders.v1.Orders/GetOrder")
	if !ok || in.Name() != "GetOrderRequest" || out.Name() != "Order" {
		t.Fatalf("GetOrder: %v %v %v", in, out, ok)
	}
	if out.Fields().ByName("customer_email").Number() != 2 {
		t.Errorf("Order.customer_email is not field 2")
	}
	for _, p := range []string{"/mirrorline.demo.orders.v1.Orders/Nope", "/mirrorline.demo.orders.v1.Order/GetOrder", "/x", ""} {
		if _, _, ok := s.Method(p); ok {
			t.Errorf("Method(%q) found", p)
		}
	}
	var none *Schema
	if _, _, ok := none.Method("/mirrorline.demo.orders.v1.Orders/GetOrder"); ok {
		t.Errorf("nil schema found a method")
	}
}

func TestLoadSchemasErrors(t *testing.T) {
	if s, err := LoadSchemas(); s != nil || err != nil {
		t.Errorf("no paths: %v %v", s, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.pb")
	if err := os.WriteFile(bad, []byte{0xff, 0xff}, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{bad, filepath.Join(t.TempDir(), "missing.pb")} {
		if _, err := LoadSchemas(p); err == nil {
			t.Errorf("LoadSchemas(%s): no error", p)
		}
	}
}
