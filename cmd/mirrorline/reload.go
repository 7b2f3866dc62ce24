package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/telemetry"
)

// reloadTarget is one running component whose settings a reload changes.
type reloadTarget struct {
	// keys are the dotted -c file keys it reloads (e.g. proxy.sample).
	keys []string
	// prepare checks the new configuration and returns what puts it in force;
	// nothing is applied unless every target of the process prepared.
	prepare func(cfg *config.File, flagSet func(string) bool, log hclog.Logger) (apply func(), err error)
}

// reloader re-reads the -c file on SIGHUP and whenever its content changes
// (polled, so an editor's rename-replace and a Kubernetes ConfigMap's symlink
// swap are seen too), checks the whole file and puts its reloadable keys in
// force in every registered component at once. A file that does not load or
// check keeps the configuration in force. The zero value is ready to use.
type reloader struct {
	mu      sync.Mutex
	targets []reloadTarget
	// flags are the running command's: a flag given on the command line
	// keeps overriding the file.
	flags *pflag.FlagSet
}

// add registers a component to reload.
func (r *reloader) add(t reloadTarget) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.targets = append(r.targets, t)
}

// reloadPollInterval is how often the -c file is checked for changes.
const reloadPollInterval = time.Second

// reloadMetrics are the mirrorline_config_* metrics of a process.
type reloadMetrics struct {
	reloads, errors prometheus.Counter
	success, last   prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	m := &reloadMetrics{
		reloads: telemetry.Counter("mirrorline_config_reloads_total", "Reloads of the -c file put in force (SIGHUP or the file changed)."),
		errors:  telemetry.Counter("mirrorline_config_reload_errors_total", "Reloads of the -c file refused (unreadable or invalid file); the configuration in force was kept."),
		success: telemetry.Gauge("mirrorline_config_last_reload_success", "1 when the last reload of the -c file (or the start) succeeded, 0 when it was refused."),
		last:    telemetry.Gauge("mirrorline_config_last_reload_success_timestamp_seconds", "Unix time of the last configuration put in force (start or reload)."),
	}
	m.success.Set(1)
	m.last.SetToCurrentTime()
	telemetry.Register(reg, m.reloads, m.errors, m.success, m.last)
	return m
}

// configWatch is one process's watch of its -c file.
type configWatch struct {
	r        *reloader
	path     string
	flagSet  func(string) bool
	log      hclog.Logger
	metrics  *reloadMetrics
	interval time.Duration
	// hup receives SIGHUP from the watch's creation on, so a signal sent
	// once the command serves never takes the default action (exit).
	hup chan os.Signal
	// seen identifies the file content last reloaded (or failed to read).
	seen [sha256.Size]byte
	// applied are the file's keys as last put in force, to tell which
	// changed keys a reload leaves for a restart.
	applied map[string]any
}

// newConfigWatch returns the watch of the -c file, its metrics registered on
// reg, the file as it is now taken as the configuration in force; its run is
// the stage reloading the file into the registered components until ctx
// ends. Flags given on the command line (a.reload.flags) keep overriding the
// file. Without -c, SIGHUP is only logged (a stray one must not stop a proxy
// in front of production).
func (a *app) newConfigWatch(reg prometheus.Registerer) *configWatch {
	flags := a.reload.flags
	w := &configWatch{
		r: &a.reload, path: a.cfgPath, log: a.log.Named("config"), metrics: newReloadMetrics(reg), interval: reloadPollInterval,
		flagSet: func(name string) bool { return flags != nil && flags.Changed(name) },
		hup:     make(chan os.Signal, 1),
	}
	signal.Notify(w.hup, syscall.SIGHUP)
	if w.path != "" {
		if b, err := os.ReadFile(w.path); err == nil {
			w.seen = sha256.Sum256(b)
			w.applied, _ = fileKeys(b)
		}
	}
	return w
}

// run reloads on SIGHUP and on changes of the file until ctx ends.
func (w *configWatch) run(ctx context.Context) error {
	defer signal.Stop(w.hup)
	var tick <-chan time.Time
	if w.path != "" {
		t := time.NewTicker(w.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.hup:
			if w.path == "" {
				w.log.Warn("SIGHUP: no -c file to reload; ignored")
				continue
			}
			w.log.Info("SIGHUP: reloading", "file", w.path)
			w.reload()
		case <-tick:
			if w.changed() {
				w.log.Info("file changed: reloading", "file", w.path)
				w.reload()
			}
		}
	}
}

// changed reports whether the file's content (or its readability) differs
// from what was last reloaded.
func (w *configWatch) changed() bool {
	b, err := os.ReadFile(w.path)
	if err != nil {
		b = []byte("unreadable: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return sum != w.seen
}

// reload reads and checks the whole file and puts its reloadable keys in
// force, or keeps the configuration in force and says why.
func (w *configWatch) reload() {
	if err := w.tryReload(); err != nil {
		w.metrics.errors.Inc()
		w.metrics.success.Set(0)
		w.log.Error("reload refused: configuration in force kept", "file", w.path, "error", oneLine(err))
		return
	}
	w.metrics.reloads.Inc()
	w.metrics.success.Set(1)
	w.metrics.last.SetToCurrentTime()
}

func (w *configWatch) tryReload() error {
	b, err := os.ReadFile(w.path)
	if err != nil {
		w.seen = sha256.Sum256([]byte("unreadable: " + err.Error()))
		return fmt.Errorf("read config: %w", err)
	}
	w.seen = sha256.Sum256(b)
	// Decoded as at start (unknown keys are an error). Read again: should the
	// file change meanwhile, the next poll sees it and reloads once more.
	cfg := config.Default()
	if err := config.Load(w.path, &cfg); err != nil {
		return err
	}
	keys, err := fileKeys(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", w.path, err)
	}
	w.r.mu.Lock()
	targets := slices.Clone(w.r.targets)
	w.r.mu.Unlock()
	var applies []func()
	var reloadable []string
	for _, t := range targets {
		apply, err := t.prepare(&cfg, w.flagSet, w.log)
		if err != nil {
			return err
		}
		applies = append(applies, apply)
		reloadable = append(reloadable, t.keys...)
	}
	if restart := changedKeys(w.applied, keys, reloadable); len(restart) > 0 {
		w.log.Warn("changed keys are not reloaded: they keep their values until a restart", "keys", strings.Join(restart, ","))
	}
	for _, apply := range applies {
		apply()
	}
	w.applied = keys
	if len(reloadable) == 0 {
		w.log.Info("configuration checked: this command reloads no key", "file", w.path)
		return nil
	}
	w.log.Info("configuration reloaded", "file", w.path, "reloaded_keys", strings.Join(reloadable, ","))
	return nil
}

// fileKeys flattens a YAML document into its dotted keys (maps are walked,
// lists and scalars are values).
func fileKeys(b []byte) (map[string]any, error) {
	var doc map[string]any
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := map[string]any{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			out[prefix+k] = v
		}
	}
	walk("", doc)
	return out, nil
}

// changedKeys lists the keys whose values differ between old and new and
// that are not reloadable (a key is reloadable when it or one of its parents
// is listed).
func changedKeys(old, new map[string]any, reloadable []string) []string {
	var out []string
	consider := func(k string) {
		if reflect.DeepEqual(old[k], new[k]) || slices.Contains(out, k) {
			return
		}
		for _, r := range reloadable {
			if k == r || strings.HasPrefix(k, r+".") {
				return
			}
		}
		out = append(out, k)
	}
	for k := range old {
		consider(k)
	}
	for k := range new {
		consider(k)
	}
	sort.Strings(out)
	return out
}

// policyReload is the reload of an HTTP collector's policy: the sample,
// routes and body_limit of section, as policy reads them from a
// configuration (a flag given on the command line keeps its value), put in
// force by reload.
func (a *app) policyReload(section string, reload func(*collector.Policy), policy func(*config.File) (sample float64, routes []collector.Route, bodyLimit int64)) reloadTarget {
	prepare := func(nc *config.File, flagSet func(string) bool, log hclog.Logger) (func(), error) {
		sample, routes, bodyLimit := policy(nc)
		curSample, _, curBodyLimit := policy(&a.cfg)
		sample = flagOverFile(flagSet, log, section+".sample", "sample", sample, curSample)
		bodyLimit = flagOverFile(flagSet, log, section+".body_limit", "body-limit", bodyLimit, curBodyLimit)
		pol, err := collector.NewPolicy(sample, routes, bodyLimit)
		if err != nil {
			return nil, fmt.Errorf("%s.%w", section, err)
		}
		return func() {
			reload(pol)
			log.Info(section+" policy in force", "sample", sample, "routes", len(routes), "body_limit", bodyLimit)
		}, nil
	}
	return reloadTarget{keys: []string{section + ".sample", section + ".routes", section + ".body_limit"}, prepare: prepare}
}

// flagOverFile is the value of a reloadable key: cli, the value in force,
// when its flag was given on the command line (logged when the file says
// otherwise), else the file's.
func flagOverFile[T comparable](flagSet func(string) bool, log hclog.Logger, key, flag string, file, cli T) T {
	if !flagSet(flag) {
		return file
	}
	if file != cli {
		log.Warn(key+": --"+flag+" on the command line overrides the file", "value", cli)
	}
	return cli
}

// oneLine keeps an error on one log line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
