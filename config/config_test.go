package config

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/ebpf"
	"github.com/mirrorline/mirrorline/collector/vpc"
	"github.com/mirrorline/mirrorline/replayer"
)

// The corpus: every *.good.yaml (and the shipped example) loads and
// validates; every *.bad.yaml gives exactly the one-line error of its
// "# want: " first line, after "config FILE: " when loading refuses it.
// Errors name the YAML path, never a Go type.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no config corpus: %v", err)
	}
	files = append(files, "../examples/demo.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg := Default()
			err := Load(f, &cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if !strings.HasSuffix(f, ".bad.yaml") {
				if err != nil {
					t.Fatalf("good config refused: %v", err)
				}
				return
			}
			want := wantLine(t, f)
			if err == nil {
				t.Fatalf("bad config accepted; want %q", want)
			}
			if got := err.Error(); got != want && got != "config "+f+": "+want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
			for _, leak := range []string{"main.", "config.", "type ", "redactor.", "!!", "\n"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q names a Go type or YAML tag or spans lines (%q)", err, leak)
				}
			}
		})
	}
}

// wantLine reads the "# want: " first line of a bad config.
func wantLine(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan()
	want, ok := strings.CutPrefix(sc.Text(), "# want: ")
	if !ok {
		t.Fatalf("%s: first line is not '# want: ERROR'", path)
	}
	return want
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The defaults validate, and every knob shared by several sections starts
// from the one constant of the package owning it.
func TestDefaults(t *testing.T) {
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	for name, got := range map[string]int64{
		"proxy.body_limit":  d.Proxy.BodyLimit,
		"sink.body_limit":   d.Sink.BodyLimit,
		"vpc.body_limit":    d.VPC.BodyLimit,
		"ebpf.body_limit":   d.EBPF.BodyLimit,
		"import.body_limit": d.Import.BodyLimit,
	} {
		if got != collector.DefaultBodyLimit {
			t.Errorf("%s = %d, want collector.DefaultBodyLimit %d", name, got, collector.DefaultBodyLimit)
		}
	}
	for name, got := range map[string]int{"proxy": d.Proxy.QueueRecords, "sink": d.Sink.QueueRecords, "vpc": d.VPC.QueueRecords, "ebpf": d.EBPF.QueueRecords} {
		if got != collector.DefaultQueueRecords {
			t.Errorf("%s.queue_records = %d, want %d", name, got, collector.DefaultQueueRecords)
		}
	}
	if d.VPC.PollInterval != vpc.DefaultPollInterval || d.EBPF.PollInterval != ebpf.DefaultPollInterval {
		t.Errorf("poll intervals vpc %v, ebpf %v", d.VPC.PollInterval, d.EBPF.PollInterval)
	}
	if d.Replay.Concurrency != replayer.DefaultConcurrency || d.Replay.Timeout != replayer.DefaultTimeout || d.Replay.BodyLimit != replayer.DefaultResponseBodyLimit {
		t.Errorf("replay defaults %+v", d.Replay)
	}
	if d.Set("replay") || d.Set("metrics_addr") {
		t.Error("defaults claim keys set by a file")
	}
}

// A poll interval of 0 written in the file is kept, as the flag's would be:
// vpc reads as soon as datagrams are queued, ebpf refuses it (ebpf-poll-zero.bad.yaml).
// Left out, each takes its default.
func TestPollIntervalZeroAsWritten(t *testing.T) {
	cfg := Default()
	if err := Load(writeFile(t, "vpc:\n  poll_interval: 0s\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.VPC.PollInterval != 0 || cfg.EBPF.PollInterval != ebpf.DefaultPollInterval {
		t.Errorf("poll intervals vpc %v, ebpf %v; want 0 as written, and the default", cfg.VPC.PollInterval, cfg.EBPF.PollInterval)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("vpc poll_interval 0: %v", err)
	}
}

// Set tells which keys the file wrote, whatever their values; a section is
// set when the file has it, and a reload's File knows only its own keys.
func TestSet(t *testing.T) {
	path := writeFile(t, "metrics_addr: \"\"\nreplay:\n  max_rate: 100/s\n  concurrency:\nproxy:\n  routes:\n    - path_prefix: /a\n")
	cfg := Default()
	if err := Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"metrics_addr", true},
		{"replay", true},
		{"replay.max_rate", true},
		{"replay.concurrency", true}, // set, empty: keeps the default
		{"replay.timeout", false},
		{"proxy.routes", true},
		{"proxy.routes.path_prefix", false}, // inside a list: a value
		{"service", false},
		{"max_rate", false},
	} {
		if got := cfg.Set(tc.key); got != tc.want {
			t.Errorf("Set(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
	if cfg.Replay.Concurrency != replayer.DefaultConcurrency {
		t.Errorf("empty replay.concurrency = %d, want the default", cfg.Replay.Concurrency)
	}
}

// Zero values of the packet collectors and the import mean their defaults,
// as those sections document; lists replace the default lists.
func TestLoadOverDefaults(t *testing.T) {
	path := writeFile(t, "vpc:\n  body_limit: 0\n  listen: \"\"\n  ports: [80]\ncompare:\n  headers: [X-A]\nproxy:\n  max_conns: 500\n  read_header_timeout: 5s\n")
	cfg := Default()
	if err := Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.VPC.BodyLimit != collector.DefaultBodyLimit || cfg.VPC.Listen != DefaultVPCListen {
		t.Errorf("vpc zero values kept: body_limit %d, listen %q", cfg.VPC.BodyLimit, cfg.VPC.Listen)
	}
	if strings.Join(cfg.Compare.Headers, ",") != "X-A" {
		t.Errorf("compare.headers = %v, want [X-A] (replacing the default)", cfg.Compare.Headers)
	}
	if cfg.Proxy.MaxConns != 500 || cfg.Proxy.ReadHeaderTimeout != 5*time.Second {
		t.Errorf("proxy limits %+v", cfg.Proxy.Limits)
	}
}

// Validate reports every bad section at once, one line each.
func TestValidateJoinsSections(t *testing.T) {
	cfg := Default()
	cfg.Replay.Timeout = 0
	cfg.Redact.Batch = -1
	cfg.Proxy.Sample = 2
	cfg.Kafka.Compression = "brotli"
	cfg.Kafka.Linger = -time.Millisecond
	err := cfg.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		`kafka-compression: "brotli" is not one of none, snappy, lz4, zstd, gzip (compression, --kafka-compression)`,
		"kafka-linger: -1ms is not between 0 and 1s (linger, --kafka-linger)",
		"sample: 2 is not a fraction from 0 to 1 (proxy.sample, --sample)",
		"batch: must be positive, got -1 (redact.batch, --batch)",
		"timeout: must be positive, got 0s (replay.timeout, --timeout)",
	}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", lines, want)
	}
}

// Flags bind to the schema's fields: their defaults are the file's values,
// and a flag given overrides them.
func TestBindFlags(t *testing.T) {
	path := writeFile(t, "proxy:\n  sample: 0.5\n  body_timeout: 7s\nsink:\n  sample: 0.25\nreplay:\n  timeout: 3s\n")
	cfg := Default()
	if err := Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		bind  func(*pflag.FlagSet)
		args  []string
		flag  string
		def   string
		check func() bool
	}{
		{"proxy default from file", cfg.Proxy.BindFlags, nil, "sample", "0.5", func() bool { return cfg.Proxy.Sample == 0.5 }},
		{"proxy limit default from file", cfg.Proxy.BindFlags, nil, "body-timeout", "7s", func() bool { return cfg.Proxy.BodyTimeout == 7*time.Second }},
		{"proxy limit zero shows the default", cfg.Proxy.BindFlags, nil, "idle-timeout", collector.DefaultLimits().IdleTimeout.String(), func() bool { return cfg.Proxy.IdleTimeout == collector.DefaultLimits().IdleTimeout }},
		{"proxy flag overrides", cfg.Proxy.BindFlags, []string{"--sample", "0.1"}, "sample", "0.5", func() bool { return cfg.Proxy.Sample == 0.1 }},
		{"sink optional sample from file", cfg.Sink.BindFlags, nil, "sample", "0.25", func() bool { return cfg.Sink.SampleOrDefault() == 0.25 }},
		{"sink sample flag", cfg.Sink.BindFlags, []string{"--sample", "0"}, "sample", "0.25", func() bool { return cfg.Sink.Sample != nil && *cfg.Sink.Sample == 0 }},
		{"replay timeout", cfg.Replay.BindFlags, []string{"--timeout", "9s"}, "timeout", "3s", func() bool { return cfg.Replay.Timeout == 9*time.Second }},
		{"vpc tcp capture", cfg.VPC.BindFlags, []string{"--max-streams", "7"}, "max-streams", "100000", func() bool { return cfg.VPC.MaxStreams == 7 }},
		{"topics", cfg.Topics.BindFlags, nil, "partitions", "6", func() bool { return cfg.Topics.Partitions == 6 }},
		{"proxy max-conns stays 0 (derived at use)", cfg.Proxy.BindFlags, nil, "max-conns", "0", func() bool { return cfg.Proxy.MaxConns == 0 }},
		{"kafka tls nested", cfg.BindFlags, []string{"--kafka-tls-ca", "ca.pem"}, "kafka-tls-ca", "", func() bool { return cfg.Kafka.TLS.CAFile == "ca.pem" }},
		{"kafka sasl nested", cfg.BindFlags, []string{"--kafka-sasl-user", "u"}, "kafka-sasl-user", "", func() bool { return cfg.Kafka.SASL.Username == "u" }},
		{"compare secondary nested", cfg.Compare.BindFlags, []string{"--secondary-topic", "t"}, "secondary-topic", "", func() bool { return cfg.Compare.Secondary.Topic == "t" }},
		{"compare alert default", cfg.Compare.BindFlags, nil, "alert-window", "10m0s", func() bool { return cfg.Compare.Alert.Window == 10*time.Minute }},
		{"compare ignore-path repeatable, commas kept", cfg.Compare.BindFlags, []string{"--ignore-path", "a,b", "--ignore-path", "c"}, "ignore-path", "[]", func() bool { return slices.Equal(cfg.Compare.Ignore.JSONPaths, []string{"a,b", "c"}) }},
		{"compare shadow-job is --job", cfg.Compare.BindFlags, []string{"--shadow-job", "w1"}, "job", "live", func() bool { return cfg.Compare.ShadowJob == "w1" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := pflag.NewFlagSet(tc.name, pflag.ContinueOnError)
			tc.bind(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if got := fs.Lookup(tc.flag).DefValue; got != tc.def {
				t.Errorf("--%s default %q, want %q", tc.flag, got, tc.def)
			}
			if !tc.check() {
				t.Errorf("--%s not bound to its field", tc.flag)
			}
		})
	}
}

// A --rules style file is checked against another schema the same way.
func TestCheckFile(t *testing.T) {
	type rules struct {
		Action string `yaml:"action"`
	}
	path := writeFile(t, "actoin: drop\n")
	err := CheckFile("rules", path, rules{})
	if want := "rules " + path + ": line 1: actoin: unknown key; did you mean action?"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if err := CheckFile("rules", filepath.Join(t.TempDir(), "none.yaml"), rules{}); err == nil || !strings.HasPrefix(err.Error(), "rules: ") {
		t.Fatalf("missing file: %v", err)
	}
}

// The client limits of the proxy and the sink are read from the file; a
// misspelt limit is refused.
func TestLoadCollectorLimits(t *testing.T) {
	path := writeFile(t, `
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
`)
	var cfg File
	if err := Load(path, &cfg); err != nil {
		t.Fatal(err)
	}
	want := collector.Limits{MaxConns: 500, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 20 * time.Second, MaxHeaderBytes: 16384, BodyTimeout: 7 * time.Second, MinBodyRate: 4096}
	if cfg.Proxy.Limits != want {
		t.Fatalf("proxy limits %+v, want %+v", cfg.Proxy.Limits, want)
	}
	if got := cfg.Sink.Limits; got.MaxConns != 100 || got.BodyTimeout != 3*time.Second {
		t.Fatalf("sink limits %+v", got)
	}
	if err := Load(writeFile(t, "proxy:\n  max_con: 5\n"), &cfg); err == nil {
		t.Fatal("misspelt key accepted")
	}
}
