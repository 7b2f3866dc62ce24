package main

import (
	"fmt"
	"strings"
)

// usageError is a bad flag or configuration: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// usage marks err, if any, as a usage error.
func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// configPathFromArgs finds -c/--config in args before flag parsing, so the file
// can be loaded under the flags.
func configPathFromArgs(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return ""
		case a == "-c" || a == "--config":
			if i+1 < len(args) {
				return args[i+1]
			}
		case strings.HasPrefix(a, "-c="):
			return a[3:]
		case strings.HasPrefix(a, "--config="):
			return a[len("--config="):]
		}
	}
	return ""
}
