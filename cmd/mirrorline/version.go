package main

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// versionText describes the binary from its build information: module
// version, VCS revision, time and modified flag (stamped by `go build` in a
// git checkout), and the Go version.
func versionText(bi *debug.BuildInfo, ok bool) string {
	version, goVersion := "unknown", runtime.Version()
	vcs := map[string]string{"vcs.revision": "unknown", "vcs.time": "unknown", "vcs.modified": "unknown"}
	if ok && bi != nil {
		version = cmp.Or(bi.Main.Version, version)
		goVersion = cmp.Or(bi.GoVersion, goVersion)
		for _, s := range bi.Settings {
			if _, known := vcs[s.Key]; known {
				vcs[s.Key] = s.Value
			}
		}
	}
	return fmt.Sprintf("mirrorline %s\n  revision: %s\n  time:     %s\n  modified: %s\n  go:       %s %s/%s\n",
		version, vcs["vcs.revision"], vcs["vcs.time"], vcs["vcs.modified"], goVersion, runtime.GOOS, runtime.GOARCH)
}

func buildVersion() string { return versionText(debug.ReadBuildInfo()) }

// setVersion makes `mirrorline --version` print the same as `mirrorline version`.
func setVersion(root *cobra.Command) {
	root.Version = buildVersion()
	root.SetVersionTemplate("{{.Version}}")
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS revision and time, and Go version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), buildVersion())
			return err
		},
	}
}

// groupsRefuseUnknown makes each command with subcommands (topics,
// compare) refuse an unknown one like the root does, with a suggestion;
// one that only groups subcommands prints its help when given none, instead
// of printing it for any argument and exiting 0.
func groupsRefuseUnknown(root *cobra.Command) {
	for _, c := range root.Commands() {
		groupsRefuseUnknown(c)
		if !c.HasSubCommands() {
			continue
		}
		c.Args = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return nil
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2 // as cobra does for the root
			}
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t") + "\n"
			}
			return errors.New(msg)
		}
		if !c.Runnable() {
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
}

// explainUnknownCommand turns cobra's multi-line unknown-command error into
// a one-line usage error (exit code 2) with cobra's suggestion and a hint:
// unknown command "prox" for "mirrorline"; did you mean proxy? run 'mirrorline --help'.
func explainUnknownCommand(err error) error {
	msg := err.Error()
	if !strings.HasPrefix(msg, "unknown command ") {
		return err
	}
	var ue usageError
	if errors.As(err, &ue) {
		return err
	}
	lines := strings.Split(msg, "\n")
	out := lines[0]
	var suggest []string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "\t") && strings.TrimSpace(l) != "" {
			suggest = append(suggest, strings.TrimSpace(l))
		}
	}
	sep := ";"
	if len(suggest) > 0 {
		out += "; did you mean " + strings.Join(suggest, " or ") + "?"
		sep = ""
	}
	root := "mirrorline"
	if _, rest, ok := strings.Cut(lines[0], " for \""); ok {
		root = strings.TrimSuffix(rest, "\"")
	}
	return usagef("%s%s run '%s --help'", out, sep, root)
}
