package config

import "time"

// Defaults of knobs no stage package owns (the others are constants of the
// package that owns the knob, e.g. collector.DefaultBodyLimit).
const (
	// DefaultLogLevel is the log level of every command.
	DefaultLogLevel = "info"
	// DefaultEmbeddedAddr is where the embedded broker of `up` listens.
	DefaultEmbeddedAddr = "127.0.0.1:19092"
	// DefaultPartitions is the partitions per topic topics are created with.
	DefaultPartitions int32 = 6
	// DefaultReplication is the replication factor of created topics (-1:
	// the broker's default).
	DefaultReplication int16 = -1
	// DefaultProxyListen is the proxy's listen address.
	DefaultProxyListen = ":8080"
	// DefaultSinkListen is the sink's listen address.
	DefaultSinkListen = ":9080"
	// DefaultVPCListen is the UDP address receiving VXLAN (port 4789).
	DefaultVPCListen = ":4789"
	// DefaultVPCReadBuffer is the UDP receive buffer of the vpc collector.
	DefaultVPCReadBuffer = 8 << 20
	// DefaultSample is the fraction of requests a collector publishes.
	DefaultSample = 1.0
	// DefaultLagInterval is how often consumer lag is read (`up`, `lag
	// --serve`).
	DefaultLagInterval = 15 * time.Second
	// DefaultPrime is how much of mirror.diff.S a starting comparator
	// relearns noise from.
	DefaultPrime = "1h"
)
