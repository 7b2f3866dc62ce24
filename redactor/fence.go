package redactor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// FencePredecessor ends whatever transaction a previous redactor with the
// same transactional id left open, before a new session starts consuming.
//
// Why: a redactor killed between committing its offsets to a transaction
// and ending it leaves those offsets pending. The new session asks for
// stable offsets (kgo.RequireStableFetchOffsets, needed for exactly once), so
// the broker answers UNSTABLE_OFFSET_COMMIT until that transaction ends; but
// the session would only initialise its producer id, which is what aborts the
// predecessor's transaction, once it has polled records: it would wait for
// the transaction timeout. Initialising the producer id here, with cl (any
// client of the cluster, without a transactional id of its own), aborts the
// leftover transaction at once. The session's own producer then takes the
// next epoch, as a restart always does.
//
// It retries while the coordinator is still aborting (CONCURRENT_TRANSACTIONS)
// or loading, until ctx ends.
func FencePredecessor(ctx context.Context, cl *kgo.Client, transactionalID string, txnTimeout time.Duration) error {
	backoff := 50 * time.Millisecond
	for {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = kmsg.StringPtr(transactionalID)
		req.TransactionTimeoutMillis = int32(txnTimeout / time.Millisecond)
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, kerr.ConcurrentTransactions) && !errors.Is(err, kerr.CoordinatorLoadInProgress) &&
			!errors.Is(err, kerr.NotCoordinator) && !errors.Is(err, kerr.CoordinatorNotAvailable):
			return fmt.Errorf("fence transactional id %s: %w", transactionalID, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fence transactional id %s: %w (last: %v)", transactionalID, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
