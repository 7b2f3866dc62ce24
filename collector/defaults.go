package collector

import "github.com/mirrorline/mirrorline/collector/httpstream"

// Defaults every collector shares.
const (
	// DefaultBodyLimit is how many body bytes are captured per request and
	// response; longer bodies are flagged truncated.
	DefaultBodyLimit = httpstream.DefaultBodyLimit
	// DefaultQueueRecords is how many records a collector buffers for Kafka
	// before new captures are dropped.
	DefaultQueueRecords = 10000
	// DefaultQueueBytes is how many bytes a collector buffers for Kafka
	// before new captures are dropped.
	DefaultQueueBytes = 64 << 20
)
