// Package collectortest holds what the collectors' tests share: a
// collector.Producer that keeps every record it is handed, and a helper that
// serves a collector on a loopback listener for the length of a test.
package collectortest
