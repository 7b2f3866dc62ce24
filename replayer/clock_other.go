//go:build !linux

package replayer

import "time"

// fineSleep: no precise sleep here; Go's timers wait the whole way.
const fineSleep = false

func sleepFine(time.Time) {}
