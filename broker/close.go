package broker

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// closeFlushTimeout bounds how long CloseFlushed waits for buffered records.
const closeFlushTimeout = 5 * time.Second

// CloseFlushed flushes what cl buffered, waiting at most 5 s (a Kafka that
// is gone must not hold a stopping process), and closes cl.
func CloseFlushed(cl *kgo.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), closeFlushTimeout)
	defer cancel()
	_ = cl.Flush(ctx)
	cl.Close()
}
