package main

import (
	"fmt"
	"strings"

	"github.com/mirrorline/mirrorline/config"
)

// setting is a required setting and every way to give it.
type setting struct {
	flag string // command-line flag
	key  string // YAML key in -c FILE
	env  string // environment variable, if one exists
	set  func(*config.File) bool
}

// settings are the settings commands require, by name.
var settings = map[string]setting{
	"service": {"--service", "service:", "MIRRORLINE_SERVICE", func(c *config.File) bool { return c.Service != "" }},
	"brokers": {"--brokers", "brokers:", "MIRRORLINE_BROKERS", func(c *config.File) bool { return len(c.Kafka.Brokers) > 0 }},
	"primary": {"--primary", "proxy.primary:", "", func(c *config.File) bool { return c.Proxy.Primary != "" }},
	"target":  {"--target", "replay.target:", "", func(c *config.File) bool { return c.Replay.Target != "" }},
	// A window replay needs a target unless it is a dry run.
	"window-target": {"--target", "replay.target:; or --dry-run", "", func(c *config.File) bool { return c.Replay.Target != "" }},
	"stub-listen":   {"--listen", "stub.listen:", "", func(c *config.File) bool { return c.Stub.Listen != "" }},
}

// requireSettings reports every one of names that is not set, at once, each
// with its flag, YAML key and environment variable:
// "missing settings: service (--service, service:, MIRRORLINE_SERVICE); ...".
func (a *app) requireSettings(names ...string) error {
	var missing []string
	for _, n := range names {
		s, ok := settings[n]
		if !ok {
			panic("requireSettings: unknown setting " + n)
		}
		if s.set(&a.cfg) {
			continue
		}
		ways := []string{s.flag, s.key}
		if s.env != "" {
			ways = append(ways, s.env)
		}
		missing = append(missing, fmt.Sprintf("%s (%s)", strings.TrimPrefix(strings.TrimPrefix(n, "window-"), "stub-"), strings.Join(ways, ", ")))
	}
	if len(missing) == 0 {
		return nil
	}
	word := "settings"
	if len(missing) == 1 {
		word = "setting"
	}
	return usagef("missing %s: %s", word, strings.Join(missing, "; "))
}
