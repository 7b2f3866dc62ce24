package sink

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/collectortest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

func TestStripShadowSuffix(t *testing.T) {
	for in, want := range map[string]string{
		"payments-shadow":            "payments",
		"payments-shadow:8080":       "payments:8080",
		"payments:8080-shadow":       "payments:8080",
		"payments.shop.svc-shadow":   "payments.shop.svc",
		"payments":                   "payments",
		"shadow.example.com":         "shadow.example.com",
		"[::1]-shadow":               "[::1]",
		"my-shadow-service.internal": "my-shadow-service.internal",
	} {
		if got := StripShadowSuffix(in); got != want {
			t.Errorf("StripShadowSuffix(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSinkPublishesMirroredCopies(t *testing.T) {
	addrs := kafkatest.Embedded(t, "pay", 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	m := collector.NewMetrics(prometheus.NewRegistry())
	s, err := New(collector.NewEmitter(cl, "pay", m, nil), WithKeyHeader("X-Forwarded-For"), WithStripHeaders("X-Original-Uri"), WithBodyLimit(4))
	if err != nil {
		t.Fatal(err)
	}
	srvAddr := collectortest.Serve(t, s.Serve)

	req, _ := http.NewRequest("PUT", "http://"+srvAddr+"/orders/9?x=%2F", strings.NewReader("hello world"))
	req.Host = "payments.shop-shadow:8080"
	req.Header.Set("X-Forwarded-For", "203.0.113.9, 10.0.0.1")
	req.Header.Set("X-Original-Uri", "/orders/9")
	req.Header.Set("X-Keep", "k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sink answered %d", resp.StatusCode)
	}
	ex := kafkatest.ReadExchanges(t, addrs, broker.Topic(broker.Raw, "pay"), 1, 10*time.Second)[0]
	r := ex.Request
	if ex.Source != mlv1.Source_SOURCE_SINK || ex.ConnectionId != "key-203.0.113.9" || ex.Response != nil {
		t.Fatalf("envelope: %+v", ex)
	}
	if r.Method != "PUT" || r.Url != "/orders/9?x=%2F" || r.Host != "payments.shop:8080" || string(r.Body) != "hell" || !r.BodyTruncated || r.BodySize != 11 {
		t.Fatalf("request: %+v", r)
	}
	for _, h := range r.Headers {
		if h.Name == "X-Original-Uri" {
			t.Fatalf("stripped header kept: %v", r.Headers)
		}
	}
}
