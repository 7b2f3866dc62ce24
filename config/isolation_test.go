package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
)

// Trace context is on unless the file or --trace-context=false turns it
// off; --egress and --egress-allow set their keys.
func TestProxyIsolationKeys(t *testing.T) {
	d := Default()
	if !d.Proxy.TraceContext || d.Proxy.Egress {
		t.Fatalf("defaults: trace_context %v egress %v, want true, false", d.Proxy.TraceContext, d.Proxy.Egress)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("proxy:\n  listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	if err := Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.Proxy.TraceContext {
		t.Fatal("a file without proxy.trace_context turned it off")
	}
	fs := pflag.NewFlagSet("proxy", pflag.ContinueOnError)
	cfg.Proxy.BindFlags(fs)
	if err := fs.Parse([]string{"--trace-context=false", "--egress", "--egress-allow", "a.test:80", "--egress-allow", "b.test"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Proxy.TraceContext || !cfg.Proxy.Egress || len(cfg.Proxy.EgressAllow) != 2 || cfg.Proxy.EgressAllow[1] != "b.test" {
		t.Fatalf("after flags: %+v", cfg.Proxy)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("an egress forward proxy with an allowlist: %v", err)
	}
}
