package benchproc

import (
	"context"
	"fmt"
	"io"
	"os"
)

// Workdir creates the temporary directory of a run (children's logs,
// configs, the mirrorline binary). remove deletes it, or with keep leaves it
// and says where through logf.
func Workdir(prefix string, keep bool, logf func(format string, args ...any)) (dir string, remove func(), err error) {
	if dir, err = os.MkdirTemp("", prefix); err != nil {
		return "", nil, err
	}
	return dir, func() {
		if keep {
			logf("logs kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}, nil
}

// Finish ends a run of program prog (as "bench/load"): it writes the report
// text to w and, if md is set, to the file md, says on stderr why the run
// stopped if ctx ended, and returns the exit code (1 if the run stopped or
// failed, or md could not be written).
func Finish(ctx context.Context, w io.Writer, prog, text, md string, failed bool) int {
	fmt.Fprint(w, text)
	if md != "" {
		if err := os.WriteFile(md, []byte(text), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, prog+":", err)
			failed = true
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, prog+": stopped:", context.Cause(ctx))
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

// Cleanups is what a run must undo at its end (children to stop, topics to
// delete, its work directory), run in reverse order of registration.
type Cleanups struct {
	fs []func()
}

// Defer registers f to run at Cleanup.
func (c *Cleanups) Defer(f func()) { c.fs = append(c.fs, f) }

// Cleanup runs what was registered, last first, and forgets it.
func (c *Cleanups) Cleanup() {
	for i := len(c.fs) - 1; i >= 0; i-- {
		c.fs[i]()
	}
	c.fs = nil
}
