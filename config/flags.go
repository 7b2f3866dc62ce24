package config

import (
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/comparator"
)

// The BindFlags methods bind a section's command-line flags to its fields:
// call them after Load, so a flag's default is the value of the defaults
// and the file, and a flag given overrides both. A field's flag is declared
// once, next to its YAML key, by the tags flag:"NAME" (flag:"NAME,array":
// a repeatable []string flag whose values may hold commas) and help:"TEXT".

// BindFlags binds the flags every command has: Kafka's connection, the
// static member id and logging.
func (f *File) BindFlags(fs *pflag.FlagSet) {
	k := &f.Kafka
	fs.StringSliceVar(&k.Brokers, "brokers", k.Brokers, "Kafka bootstrap brokers host:port,... (env MIRRORLINE_BROKERS)")
	fs.BoolVar(&k.TLS.Enabled, "kafka-tls", k.TLS.Enabled, "connect to Kafka with TLS")
	fs.StringVar(&k.TLS.CAFile, "kafka-tls-ca", k.TLS.CAFile, "PEM file of CAs to trust for Kafka")
	fs.StringVar(&k.TLS.CertFile, "kafka-tls-cert", k.TLS.CertFile, "client certificate PEM file for Kafka")
	fs.StringVar(&k.TLS.KeyFile, "kafka-tls-key", k.TLS.KeyFile, "client key PEM file for Kafka")
	fs.StringVar(&k.SASL.Mechanism, "kafka-sasl-mechanism", k.SASL.Mechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&k.SASL.Username, "kafka-sasl-user", k.SASL.Username, "SASL user name")
	fs.StringVar(&k.SASL.PasswordFile, "kafka-sasl-password-file", k.SASL.PasswordFile, "file holding the SASL password")
	fs.StringVar(&k.SASL.PasswordEnv, "kafka-sasl-password-env", k.SASL.PasswordEnv, "environment variable holding the SASL password")
	BindTagged(fs, f)
}

// BindFlags binds the flags of `topics create`.
func (t *Topics) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, t) }

// BindFlags binds the proxy's flags.
func (p *Proxy) BindFlags(fs *pflag.FlagSet) {
	BindTagged(fs, p)
	bindLimits(fs, &p.Limits)
}

// BindFlags binds the sink's flags; --sample leaves sink.sample nil (the
// default) unless given.
func (s *Sink) BindFlags(fs *pflag.FlagSet) {
	BindTagged(fs, s)
	fs.Var(&optionalFloat{p: &s.Sample, def: DefaultSample}, "sample", "fraction of copies published (0..1); the others are still answered 200")
	bindLimits(fs, &s.Limits)
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

// BindFlags binds the redactor's flags.
func (r *Redact) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, r) }

// BindFlags binds the replayer's flags of the replay section (the window
// job's own flags are the command's).
func (r *Replay) BindFlags(fs *pflag.FlagSet) { BindTagged(fs, r) }

// BindFlags binds the comparator's flags.
func (c *Compare) BindFlags(fs *pflag.FlagSet) {
	BindTagged(fs, c)
	fs.DurationVar(&c.JoinWindow, "join-window", c.JoinWindow, "how long to wait for the other side of an exchange before it is missing")
	fs.StringSliceVar(&c.Headers, "headers", c.Headers, "response headers to compare")
	fs.BoolVar(&c.Secondary.Enabled, "secondary", c.Secondary.Enabled, "learn noise from a secondary: shadow-topic records of replay job \""+comparator.DefaultSecondaryJob+"\" (see --secondary-job/-target/-topic)")
	fs.StringVar(&c.Secondary.Job, "secondary-job", c.Secondary.Job, "secondary = shadow-topic records of this replay job")
	fs.StringVar(&c.Secondary.Target, "secondary-target", c.Secondary.Target, "secondary = shadow-topic records replayed to a target URL starting with this")
	fs.StringVar(&c.Secondary.Topic, "secondary-topic", c.Secondary.Topic, "secondary = every record of this topic")
	fs.StringVar(&c.ShadowJob, "job", c.ShadowJob, "replay job to judge: "+comparator.LiveJob+" (default), or a window replay's --job (its own group, starting at the earliest record)")
	fs.StringVar(&c.ShadowJob, "shadow-job", c.ShadowJob, "same as --job")
	_ = fs.MarkHidden("shadow-job")
	fs.StringArrayVar(&c.Ignore.JSONPaths, "ignore-path", c.Ignore.JSONPaths, "JSON path never compared (\"created_at\", \"items.*.etag\", \"**.trace_id\"); repeatable")
	fs.StringArrayVar(&c.Ignore.Headers, "ignore-header", c.Ignore.Headers, "header never compared ('*' wildcards); repeatable")
	fs.BoolVar(&c.JSON.UnorderedArrays, "unordered-arrays", c.JSON.UnorderedArrays, "compare JSON arrays as multisets (order ignored)")
	fs.StringArrayVar(&c.Endpoints, "endpoint", c.Endpoints, "explicit endpoint template (\"/users/{id}\", \"GET /files/{path...}\"); repeatable")
	fs.IntVar(&c.Noise.MinSamples, "noise-min-samples", c.Noise.MinSamples, "exchanges of an endpoint needed before noise is learned (its decisions wait until then)")
	fs.Float64Var(&c.Alert.Rate, "alert-rate", c.Alert.Rate, "alert when an endpoint's difference rate over --alert-window reaches this")
	fs.IntVar(&c.Alert.MinSamples, "alert-min-samples", c.Alert.MinSamples, "exchanges an endpoint needs in the window before it can alert")
	fs.DurationVar(&c.Alert.Window, "alert-window", c.Alert.Window, "sliding window of the alert rate")
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
			if f.Anonymous && fv.Kind() == reflect.Struct {
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

// bindLimits binds the client limits of an HTTP collector (proxy, sink);
// zero values take collector.DefaultLimits.
func bindLimits(fs *pflag.FlagSet, l *collector.Limits) {
	d := collector.DefaultLimits()
	fs.IntVar(&l.MaxConns, "max-conns", l.MaxConns, "client connections held at most; at the cap a new one closes the oldest idle one, or gets 503 when all are busy (0: half the open-file limit after a reserve)")
	fs.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", orDefault(l.ReadHeaderTimeout, d.ReadHeaderTimeout), "time a client has to send a request head (also a new connection's first one)")
	fs.DurationVar(&l.IdleTimeout, "idle-timeout", orDefault(l.IdleTimeout, d.IdleTimeout), "close keep-alive connections idle this long")
	fs.IntVar(&l.MaxHeaderBytes, "max-header-bytes", orDefault(l.MaxHeaderBytes, d.MaxHeaderBytes), "largest request head accepted; longer ones are answered 431")
	fs.DurationVar(&l.BodyTimeout, "body-timeout", orDefault(l.BodyTimeout, d.BodyTimeout), "time a request body may take, plus one second per --min-body-rate bytes received; slower bodies are cut (408) and not published")
	fs.Int64Var(&l.MinBodyRate, "min-body-rate", orDefault(l.MinBodyRate, d.MinBodyRate), "bytes per second that extend --body-timeout")
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

// orDefault is v, or def when v is zero.
func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
