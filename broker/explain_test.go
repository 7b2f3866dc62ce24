package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/test/testproc"
)

func TestExplainUnreachable(t *testing.T) {
	addr := testproc.FreeAddr(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestRetries(0), kgo.DialTimeout(2*time.Second), kgo.RetryTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	adm := kadm.NewClient(cl)
	_, listErr := adm.ListGroups(ctx)
	_, metaErr := adm.ListTopics(ctx)
	for name, raw := range map[string]error{
		"list groups (shard errors)": listErr,
		"list topics":                metaErr,
		"wrapped":                    fmt.Errorf("create topic mirror.raw.s: %w", metaErr),
	} {
		t.Run(name, func(t *testing.T) {
			if raw == nil {
				t.Fatal("no error from a closed port")
			}
			got := Explain(raw, []string{addr})
			want := "cannot reach Kafka at " + addr + ": connection refused"
			if got.Error() != want {
				t.Fatalf("Explain(%q) = %q, want %q", raw, got, want)
			}
			var ue *UnreachableError
			if !errors.As(got, &ue) || !errors.Is(got, raw) {
				t.Fatalf("Explain result does not unwrap to the client's error")
			}
		})
	}
}

func TestExplainKeepsOtherErrors(t *testing.T) {
	for _, err := range []error{
		errors.New("create topic mirror.raw.s: TOPIC_AUTHORIZATION_FAILED"),
		&net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")},
	} {
		if got := Explain(err, []string{"127.0.0.1:9092"}); got != err {
			t.Errorf("Explain(%q) = %q, want the error unchanged", err, got)
		}
	}
	if Explain(nil, nil) != nil {
		t.Error("Explain(nil) != nil")
	}
}

func TestExplainNoSuchHost(t *testing.T) {
	err := fmt.Errorf("unable to dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "kafka.invalid", IsNotFound: true}})
	got := Explain(err, []string{"kafka.invalid:9092"})
	if want := "cannot reach Kafka at kafka.invalid:9092: no such host"; got.Error() != want || strings.Contains(got.Error(), "dial tcp") {
		t.Fatalf("got %q, want %q", got, want)
	}
}
