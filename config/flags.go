package config

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/replayer/middleware"
	"github.com/mirrorline/mirrorline/replayer/route"
)

// The BindFlags methods bind a section's command-line flags to its fields:
// call them after Load, so a flag's default is the value of the defaults
// and the file, and a flag given overrides both. A field's flag is declared
// once, next to its YAML key, by the tags flag:"NAME" (flag:"NAME,array":
// a repeatable []string flag whose values may hold commas) and help:"TEXT";
// flag:",inline" binds the flags of a nested struct's fields.

// BindFlags binds the flags every command has: Kafka's connection, the
// static member id and logging.
func (f *File) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, f) }

// BindFlags binds the flags of `topics create`.
func (t *Topics) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, t) }

// BindFlags binds the proxy's flags.
func (p *Proxy) BindFlags(fs *pflag.FlagSet) {
	showLimitDefaults(&p.Limits)
	BindTagged(fs, p)
}

// BindFlags binds the sink's flags; --sample leaves sink.sample nil (the
// default) unless given.
func (s *Sink) BindFlags(fs *pflag.FlagSet) {
	showLimitDefaults(&s.Limits)
	BindTagged(fs, s)
	fs.Var(&optionalFloat{p: &s.Sample, def: DefaultSample}, "sample", "fraction of copies published (0..1); the others are still answered 200")
}

// BindFlags binds the vpc collector's flags but --port and --vni, which
// the command converts.
func (c *VPC) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, c) }

// BindFlags binds the ebpf collector's flags but --port, which the command
// converts.
func (c *EBPF) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, c) }

// BindFlags binds the import's flags but --port, which the command
// converts.
func (c *Import) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, c) }

// BindFlags binds the flags naming gRPC schemas (redact, compare).
func (g *GRPC) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, g) }

// BindFlags binds the redactor's flags.
func (r *Redact) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, r) }

// BindFlags binds the replayer's flags of the replay section (the window
// job's own flags are the command's): the tagged ones, the selection
// (--method, --path, --exclude-path, --header-match; each replaces its
// replay.select key when given) and --middleware.
func (r *Replay) BindFlags(fs *pflag.FlagSet) {
	BindTagged(fs, r)
	fs.StringSliceVar(&r.Select.Methods, "method", r.Select.Methods, "replay only these methods (repeatable or comma-separated, e.g. GET,HEAD)")
	fs.StringArrayVar(&r.Select.Paths, "path", r.Select.Paths, "replay only paths matching this glob: * within a segment, ** across (repeatable)")
	fs.StringArrayVar(&r.Select.ExcludePaths, "exclude-path", r.Select.ExcludePaths, "do not replay paths matching this glob (repeatable; wins over --path)")
	fs.Var(&headerMatch{m: &r.Select.Headers}, "header-match", "replay only requests with this header matching a glob: 'Name: glob' (repeatable: all must match)")
	fs.Var(&middlewareCommand{c: &r.Middleware}, "middleware", "pass every request through this program: 'PROGRAM ARG...' (split on spaces; see docs/replay.md)")
}

// headerMatch is the --header-match flag: 'Name: glob' entries, the first
// one given replacing replay.select.headers.
type headerMatch struct {
	m   *map[string]string
	set bool
}

func (h *headerMatch) String() string {
	if h.m == nil || len(*h.m) == 0 {
		return ""
	}
	var parts []string
	for k, v := range *h.m {
		parts = append(parts, k+": "+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func (h *headerMatch) Set(s string) error {
	name, glob, err := route.ParseHeaderMatch(s)
	if err != nil {
		return err
	}
	if !h.set {
		*h.m, h.set = map[string]string{}, true
	}
	(*h.m)[name] = glob
	return nil
}

func (h *headerMatch) Type() string { return "stringArray" }

// middlewareCommand is the --middleware flag: a command line split on
// spaces into replay.middleware.command (its other keys kept).
type middlewareCommand struct{ c **middleware.Config }

func (m *middlewareCommand) String() string {
	if m.c == nil || *m.c == nil {
		return ""
	}
	return strings.Join((*m.c).Command, " ")
}

func (m *middlewareCommand) Set(s string) error {
	cmd := strings.Fields(s)
	if len(cmd) == 0 {
		return errors.New("empty command")
	}
	if *m.c == nil {
		*m.c = &middleware.Config{}
	}
	(*m.c).Command = cmd
	return nil
}

func (m *middlewareCommand) Type() string { return "string" }

// BindFlags binds the stub's flags.
func (s *Stub) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, s) }

// BindFlags binds the comparator's flags; --shadow-job is a hidden alias
// of --job.
func (c *Compare) BindFlags(fs *pflag.FlagSet) {
	BindTagged(fs, c)
	fs.StringVar(&c.ShadowJob, "shadow-job", c.ShadowJob, "same as --job")
	_ = fs.MarkHidden("shadow-job")
}

// BindTagged binds a flag to every field of the struct v points to (and of
// its embedded structs) that has a flag tag, its default the field's value.
// The commands use it for their own flag structs too.
func BindTagged(fs *pflag.FlagSet, v any) { bindStruct(fs, reflect.ValueOf(v).Elem()) }

func bindStruct(fs *pflag.FlagSet, v reflect.Value) {
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		name, opt, _ := strings.Cut(f.Tag.Get("flag"), ",")
		if name == "" {
			if (f.Anonymous || opt == "inline") && fv.Kind() == reflect.Struct {
				bindStruct(fs, fv)
			}
			continue
		}
		help := f.Tag.Get("help")
		switch p := fv.Addr().Interface().(type) {
		case *string:
			fs.StringVar(p, name, *p, help)
		case *bool:
			fs.BoolVar(p, name, *p, help)
		case *int:
			fs.IntVar(p, name, *p, help)
		case *int16:
			fs.Int16Var(p, name, *p, help)
		case *int32:
			fs.Int32Var(p, name, *p, help)
		case *int64:
			fs.Int64Var(p, name, *p, help)
		case *float64:
			fs.Float64Var(p, name, *p, help)
		case *time.Duration:
			fs.DurationVar(p, name, *p, help)
		case *[]int:
			fs.IntSliceVar(p, name, *p, help)
		case *[]string:
			if opt == "array" {
				fs.StringArrayVar(p, name, *p, help)
			} else {
				fs.StringSliceVar(p, name, *p, help)
			}
		default:
			panic("config: no flag kind for field " + v.Type().Name() + "." + f.Name)
		}
	}
}

// showLimitDefaults gives zero client limits the values of
// collector.DefaultLimits, so their flags show them; MaxConns stays 0, as
// its default is derived from the open-file limit at use.
func showLimitDefaults(l *collector.Limits) {
	conns := l.MaxConns
	*l = l.WithDefaults()
	l.MaxConns = conns
}

// optionalFloat is a float flag over a *float64 field that stays nil (the
// default def) unless the flag is given.
type optionalFloat struct {
	p   **float64
	def float64
}

func (o *optionalFloat) String() string {
	if o.p == nil || *o.p == nil {
		return strconv.FormatFloat(o.def, 'g', -1, 64)
	}
	return strconv.FormatFloat(**o.p, 'g', -1, 64)
}

func (o *optionalFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*o.p = &v
	return nil
}

func (o *optionalFloat) Type() string { return "float64" }
