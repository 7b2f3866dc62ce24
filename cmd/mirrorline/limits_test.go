package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/config"
)

// The client limits of the proxy and the sink are read from the config file.
func TestConfigCollectorLimits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	yaml := `
proxy:
  max_conns: 500
  read_header_timeout: 5s
  idle_timeout: 20s
  max_header_bytes: 16384
  body_timeout: 7s
  min_body_rate: 4096
sink:
  max_conns: 100
  body_timeout: 3s
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg config.File
	if err := loadConfigFile(path, &cfg); err != nil {
		t.Fatal(err)
	}
	want := collector.Limits{MaxConns: 500, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 20 * time.Second, MaxHeaderBytes: 16384, BodyTimeout: 7 * time.Second, MinBodyRate: 4096}
	if cfg.Proxy.Limits != want {
		t.Fatalf("proxy limits %+v, want %+v", cfg.Proxy.Limits, want)
	}
	if got := cfg.Sink.Limits; got.MaxConns != 100 || got.BodyTimeout != 3*time.Second {
		t.Fatalf("sink limits %+v", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("proxy:\n  max_con: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := loadConfigFile(bad, &cfg); err == nil {
		t.Fatal("misspelt key accepted")
	}
}
