package main

import (
	"context"
	"errors"

	"github.com/mirrorline/mirrorline/replayer"
)

func runBurstKafka(ctx context.Context, srv *server, c burstCapture, conc int, brokers string) (fidelity, error) {
	_ = replayer.Item{}
	return fidelity{}, errors.New("not yet")
}
