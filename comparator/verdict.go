package comparator

import (
	"fmt"
	"strings"
)

// Significant lists the endpoints of rep that differ significantly or have
// a tail latency regression, in the report's order.
func Significant(rep *Report) []string {
	var sig []string
	for _, e := range rep.Endpoints {
		if e.Significant || e.Latency.TailRegression {
			sig = append(sig, e.Endpoint)
		}
	}
	return sig
}

// FailOnSignificant is the verdict of `compare report --fail-on-significant`:
// an error naming the endpoints that differ significantly or have a tail
// latency regression, or nil when none does.
func FailOnSignificant(rep *Report) error {
	if sig := Significant(rep); len(sig) > 0 {
		return fmt.Errorf("significant differences or tail regressions at %s", strings.Join(sig, ", "))
	}
	return nil
}
