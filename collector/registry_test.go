package collector

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRegistry(t *testing.T) {
	var r Registry
	built := map[string]int{}
	for _, name := range []string{"proxy", "sink", "vpc"} {
		r.Register(name, func(*Emitter, prometheus.Registerer) (Collector, error) {
			built[name]++
			return RunFunc(func(context.Context) error { return errors.New(name + " ran") }), nil
		})
	}
	if got := strings.Join(r.Names(), ","); got != "proxy,sink,vpc" {
		t.Fatalf("names %q, want registration order", got)
	}
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"vpc", "proxy"}, ""},
		{[]string{"proxy", "tcpdump"}, `collectors: "tcpdump" is not one of proxy, sink, vpc`},
		{[]string{"sink", "sink"}, `collectors: "sink" is listed twice`},
	} {
		err := r.Check(tc.names)
		if got := errString(err); got != tc.want {
			t.Errorf("Check(%v) = %q, want %q", tc.names, got, tc.want)
		}
	}
	c, err := r.New("sink", nil, nil)
	if err != nil || built["sink"] != 1 {
		t.Fatalf("New(sink): %v, built %v", err, built)
	}
	if err := c.Run(context.Background()); errString(err) != "sink ran" {
		t.Fatalf("the sink's factory built another collector: %v", err)
	}
	if _, err := r.New("ebpf", nil, nil); errString(err) != `collectors: "ebpf" is not one of proxy, sink, vpc` {
		t.Fatalf("New(ebpf): %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a name registered twice did not panic")
		}
	}()
	r.Register("vpc", nil)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
