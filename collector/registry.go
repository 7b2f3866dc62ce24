package collector

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector is a capture collector as `mirrorline up` and the collector
// commands run it: built by its Factory, it captures and publishes until
// ctx ends.
type Collector interface {
	Run(ctx context.Context) error
}

// RunFunc is a Collector that is a function.
type RunFunc func(ctx context.Context) error

// Run runs f.
func (f RunFunc) Run(ctx context.Context) error { return f(ctx) }

// Factory builds a collector publishing through em, its metrics registered
// on reg. It checks its configuration and opens what it listens on, so
// errors come before anything runs.
type Factory func(em *Emitter, reg prometheus.Registerer) (Collector, error)

// Registry names the collectors a process can run, in the order they were
// registered. The zero value is empty and ready to use.
type Registry struct {
	names     []string
	factories map[string]Factory
}

// Register adds the collector name; registering a name twice panics (it is
// a wiring mistake).
func (r *Registry) Register(name string, f Factory) {
	if _, ok := r.factories[name]; ok {
		panic("collector: " + name + " registered twice")
	}
	if r.factories == nil {
		r.factories = map[string]Factory{}
	}
	r.names = append(r.names, name)
	r.factories[name] = f
}

// Names lists the registered collectors in registration order.
func (r *Registry) Names() []string { return append([]string(nil), r.names...) }

// Check reports the first name of names that is not registered or is
// listed twice, as an error naming the YAML key collectors.
func (r *Registry) Check(names []string) error {
	seen := map[string]bool{}
	for _, n := range names {
		if _, ok := r.factories[n]; !ok {
			return fmt.Errorf("collectors: %q is not one of %s", n, strings.Join(r.names, ", "))
		}
		if seen[n] {
			return fmt.Errorf("collectors: %q is listed twice", n)
		}
		seen[n] = true
	}
	return nil
}

// New builds the collector name publishing through em.
func (r *Registry) New(name string, em *Emitter, reg prometheus.Registerer) (Collector, error) {
	f, ok := r.factories[name]
	if !ok {
		return nil, fmt.Errorf("collectors: %q is not one of %s", name, strings.Join(r.names, ", "))
	}
	return f(em, reg)
}
