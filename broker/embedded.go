package broker

import (
	"fmt"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Embedded is an in-process Kafka-protocol broker (franz-go kfake) for
// single-machine use and fast tests. It speaks the Kafka protocol on loopback,
// so every stage talks to it exactly as to a real cluster.
type Embedded struct {
	cluster *kfake.Cluster
}

// EmbeddedOpt configures StartEmbedded.
type EmbeddedOpt func(*embeddedCfg)

type embeddedCfg struct {
	addr    string
	dataDir string
}

// EmbeddedAddr makes the broker listen on addr (host:port); default 127.0.0.1 on a free port.
func EmbeddedAddr(addr string) EmbeddedOpt { return func(c *embeddedCfg) { c.addr = addr } }

// EmbeddedDataDir persists the broker's data in dir so it survives restarts.
func EmbeddedDataDir(dir string) EmbeddedOpt { return func(c *embeddedCfg) { c.dataDir = dir } }

// StartEmbedded starts an embedded single-broker cluster.
func StartEmbedded(opts ...EmbeddedOpt) (*Embedded, error) {
	cfg := embeddedCfg{addr: "127.0.0.1:0"}
	for _, o := range opts {
		o(&cfg)
	}
	host, portS, err := net.SplitHostPort(cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker address %q: %w", cfg.addr, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil {
		return nil, fmt.Errorf("embedded broker address %q: bad port: %w", cfg.addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.ClusterID("mirrorline-embedded"),
	}
	if cfg.dataDir != "" {
		kopts = append(kopts, kfake.DataDir(cfg.dataDir))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("start embedded broker on %s: %w", cfg.addr, err)
	}
	return &Embedded{cluster: c}, nil
}

// Addrs returns the bootstrap addresses of the embedded broker.
func (e *Embedded) Addrs() []string { return e.cluster.ListenAddrs() }

// Close stops the broker.
func (e *Embedded) Close() { e.cluster.Close() }
