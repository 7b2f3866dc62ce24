package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/test/testcert"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceOne connects with cfg and produces one record to a seeded topic.
func produceOne(t *testing.T, cfg Config) error {
	t.Helper()
	cl, err := NewClient(cfg, kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Authentication and TLS failures surface on the first request.
	if err := cl.Ping(ctx); err != nil {
		return err
	}
	return cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("v")}).FirstErr()
}

func TestSASLAgainstBroker(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(mech, "mirror", "s3cret"), kfake.SeedTopics(1, "t"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			dir := t.TempDir()
			pw := filepath.Join(dir, "pw")
			if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			good := Config{Brokers: c.ListenAddrs(), SASL: SASLConfig{Mechanism: strings.ToLower(mech), Username: "mirror", PasswordFile: pw}}
			if err := produceOne(t, good); err != nil {
				t.Fatalf("password from file: %v", err)
			}
			t.Setenv("ML_TEST_KAFKA_PW", "s3cret")
			fromEnv := Config{Brokers: c.ListenAddrs(), SASL: SASLConfig{Mechanism: mech, Username: "mirror", PasswordEnv: "ML_TEST_KAFKA_PW"}}
			if err := produceOne(t, fromEnv); err != nil {
				t.Fatalf("password from env: %v", err)
			}
			t.Setenv("ML_TEST_KAFKA_PW", "wrong")
			if err := produceOne(t, fromEnv); err == nil {
				t.Fatal("a wrong password was accepted")
			}
		})
	}
}

func TestTLSAgainstBroker(t *testing.T) {
	cert := testcert.New(t)
	caFile := cert.CertFile
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.TLS(cert.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := produceOne(t, Config{Brokers: c.ListenAddrs(), TLS: TLSConfig{Enabled: true, CAFile: caFile}}); err != nil {
		t.Fatalf("TLS with the broker's CA: %v", err)
	}
	if err := produceOne(t, Config{Brokers: c.ListenAddrs(), TLS: TLSConfig{Enabled: true}}); err == nil {
		t.Fatal("TLS without trusting the broker's CA succeeded")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "x")
	_ = os.WriteFile(notPEM, []byte("nope"), 0o600)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "brokers: no Kafka brokers"},
		{Config{Brokers: []string{"b:9092"}, SASL: SASLConfig{Mechanism: "GSSAPI", Username: "u", PasswordEnv: "HOME"}}, `sasl.mechanism: "GSSAPI"`},
		{Config{Brokers: []string{"b:9092"}, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u"}}, "password_file or password_env is required"},
		{Config{Brokers: []string{"b:9092"}, SASL: SASLConfig{Mechanism: "PLAIN", PasswordEnv: "HOME"}}, "sasl.username: required"},
		{Config{Brokers: []string{"b:9092"}, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordEnv: "ML_SURELY_UNSET_VAR"}}, "ML_SURELY_UNSET_VAR is not set"},
		{Config{Brokers: []string{"b:9092"}, SASL: SASLConfig{Mechanism: "PLAIN", Username: "u", PasswordFile: filepath.Join(dir, "missing")}}, "sasl.password_file"},
		{Config{Brokers: []string{"b:9092"}, TLS: TLSConfig{CAFile: notPEM}}, "no PEM certificates"},
		{Config{Brokers: []string{"b:9092"}, TLS: TLSConfig{Enabled: true, CertFile: "c.pem"}}, "cert_file and key_file must be given together"},
	} {
		_, err := tc.cfg.Opts()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
