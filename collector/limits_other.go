//go:build !unix

package collector

// openFileLimit returns 0: unknown on this system.
func openFileLimit() int64 { return 0 }
