package broker

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config is how to reach Kafka. Secrets are read from files or environment
// variables, never taken from flags alone.
type Config struct {
	// Brokers are the seed brokers, host:port. Empty means "use the embedded broker"
	// for `mirrorline up` and is an error elsewhere.
	Brokers []string   `yaml:"brokers" flag:"brokers" help:"Kafka bootstrap brokers host:port,... (env MIRRORLINE_BROKERS)"`
	TLS     TLSConfig  `yaml:"tls" flag:",inline"`
	SASL    SASLConfig `yaml:"sasl" flag:",inline"`
	// ClientID is sent to the brokers; defaults to "mirrorline".
	ClientID string `yaml:"client_id"`
	// MaxMessageBytes is the largest record batch the producers send and the
	// max.message.bytes topics are created with; 0 means DefaultMaxMessageBytes.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// Compression is the codec of the record batches the producers send:
	// one of Compressions; empty means DefaultCompression.
	Compression string `yaml:"compression" flag:"kafka-compression" help:"compression of produced record batches: none, snappy, lz4, zstd or gzip"`
	// Linger is how long the collectors' producers wait to fill a record
	// batch before sending it; 0 means DefaultLinger.
	Linger time.Duration `yaml:"linger" flag:"kafka-linger" help:"how long the collectors wait to fill a record batch for Kafka (default 10ms)"`
}

// DefaultLinger is the collectors' producer linger when none is configured:
// measured against 5, 25 and 50 ms in docs/benchmarks.md.
const DefaultLinger = 10 * time.Millisecond

// CollectorLinger is Linger or DefaultLinger.
func (c Config) CollectorLinger() time.Duration { return cmp.Or(c.Linger, DefaultLinger) }

// DefaultCompression is the producers' batch codec when none is configured.
const DefaultCompression = "snappy"

// codecs are the batch codecs by name, in the order Compressions lists them.
var codecs = []struct {
	name  string
	codec kgo.CompressionCodec
}{
	{"none", kgo.NoCompression()},
	{"snappy", kgo.SnappyCompression()},
	{"lz4", kgo.Lz4Compression()},
	{"zstd", kgo.ZstdCompression()},
	{"gzip", kgo.GzipCompression()},
}

// Compressions are the batch codecs Config.Compression accepts.
var Compressions = func() []string {
	names := make([]string, len(codecs))
	for i, c := range codecs {
		names[i] = c.name
	}
	return names
}()

// codec returns the franz-go codec of Compression.
func (c Config) codec() (kgo.CompressionCodec, error) {
	name := cmp.Or(c.Compression, DefaultCompression)
	for _, k := range codecs {
		if k.name == name {
			return k.codec, nil
		}
	}
	return kgo.CompressionCodec{}, fmt.Errorf("compression: %q is not one of %s", c.Compression, strings.Join(Compressions, ", "))
}

// ProducerMaxBytes is the producers' record batch limit: MaxMessageBytes or
// DefaultMaxMessageBytes.
func (c Config) ProducerMaxBytes() int {
	return cmp.Or(c.MaxMessageBytes, DefaultMaxMessageBytes)
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled" flag:"kafka-tls" help:"connect to Kafka with TLS"`
	CAFile             string `yaml:"ca_file" flag:"kafka-tls-ca" help:"PEM file of CAs to trust for Kafka"`
	CertFile           string `yaml:"cert_file" flag:"kafka-tls-cert" help:"client certificate PEM file for Kafka"`
	KeyFile            string `yaml:"key_file" flag:"kafka-tls-key" help:"client key PEM file for Kafka"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig enables SASL authentication.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty disables SASL.
	Mechanism string `yaml:"mechanism" flag:"kafka-sasl-mechanism" help:"SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"`
	Username  string `yaml:"username" flag:"kafka-sasl-user" help:"SASL user name"`
	// PasswordFile or PasswordEnv name where the password is; one is required.
	PasswordFile string `yaml:"password_file" flag:"kafka-sasl-password-file" help:"file holding the SASL password"`
	PasswordEnv  string `yaml:"password_env" flag:"kafka-sasl-password-env" help:"environment variable holding the SASL password"`
}

// Opts turns the configuration into franz-go client options.
func (c Config) Opts() ([]kgo.Opt, error) {
	if len(c.Brokers) == 0 {
		return nil, errors.New("brokers: no Kafka brokers configured (use --brokers or MIRRORLINE_BROKERS)")
	}
	id := cmp.Or(c.ClientID, "mirrorline")
	if n := c.ProducerMaxBytes(); n < minMaxMessageBytes || n > maxMaxMessageBytes {
		return nil, fmt.Errorf("max_message_bytes: %d is not between %d and %d", c.MaxMessageBytes, minMaxMessageBytes, maxMaxMessageBytes)
	}
	codec, err := c.codec()
	if err != nil {
		return nil, err
	}
	// The codec first, falling back to none for a broker that does not
	// know it (zstd needs Kafka 2.1).
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(id), kgo.ProducerBatchCompression(codec, kgo.NoCompression())}
	if c.TLS.Enabled || c.TLS.CAFile != "" || c.TLS.CertFile != "" {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.SASL.Mechanism != "" {
		o, err := c.SASL.opt()
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	// One record budget: batches as large as the topic accepts (see Budget).
	opts = append(opts, kgo.ProducerBatchMaxBytesFn(batchLimit(opts, c.ProducerMaxBytes())))
	return opts, nil
}

func (t TLSConfig) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in by the operator
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file: no PEM certificates in %s", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("tls: cert_file and key_file must be given together")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (s SASLConfig) password() (string, error) {
	switch {
	case s.PasswordFile != "":
		b, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("sasl.password_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case s.PasswordEnv != "":
		v, ok := os.LookupEnv(s.PasswordEnv)
		if !ok {
			return "", fmt.Errorf("sasl.password_env: environment variable %s is not set", s.PasswordEnv)
		}
		return v, nil
	}
	return "", errors.New("sasl: password_file or password_env is required")
}

func (s SASLConfig) opt() (kgo.Opt, error) {
	if s.Username == "" {
		return nil, errors.New("sasl.username: required when sasl.mechanism is set")
	}
	pass, err := s.password()
	if err != nil {
		return nil, err
	}
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return kgo.SASL(plain.Auth{User: s.Username, Pass: pass}.AsMechanism()), nil
	case "SCRAM-SHA-256":
		return kgo.SASL(scram.Auth{User: s.Username, Pass: pass}.AsSha256Mechanism()), nil
	case "SCRAM-SHA-512":
		return kgo.SASL(scram.Auth{User: s.Username, Pass: pass}.AsSha512Mechanism()), nil
	}
	return nil, fmt.Errorf("sasl.mechanism: %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", s.Mechanism)
}

// NewClient creates a franz-go client for c with extra options appended.
func NewClient(c Config, extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := c.Opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return cl, nil
}
