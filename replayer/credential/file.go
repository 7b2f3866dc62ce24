package credential

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// CheckInterval is how often, at most, a credential, key or secret file is
// checked for a change (one stat per interval, whatever the request rate).
const CheckInterval = time.Second

// MaxFileSize bounds a credential, key or secret file; a larger one is an
// error (it is not a credential, and is not read).
const MaxFileSize = 1 << 20

// fileID identifies a version of a file: a Kubernetes secret is updated by
// swapping a symlink to a new directory, which os.Stat (following links)
// sees as a new inode even when the size and mtime are unchanged.
type fileID struct {
	mtime    time.Time
	size     int64
	dev, ino uint64
}

func idOf(fi os.FileInfo) fileID {
	id := fileID{mtime: fi.ModTime(), size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.dev, id.ino = uint64(st.Dev), uint64(st.Ino) //nolint:unconvert // widths differ by platform
	}
	return id
}

// loaded is what a watched file holds now: the parsed content, or the error
// that makes every use fail until the file is fixed.
type loaded struct {
	id  fileID
	val any
	err error
}

// watchedFile re-reads and parses a file when it changes, checking at most
// once per CheckInterval; it is safe for concurrent use and lock-free when
// no check is due.
type watchedFile struct {
	path  string
	what  string // the config key, for errors: "file", "key_file", ...
	parse func([]byte) (any, error)
	now   func() time.Time

	cur  atomic.Pointer[loaded]
	next atomic.Int64 // unix nanoseconds of the next check
	mu   sync.Mutex   // one check at a time
}

// newWatchedFile reads and parses path now; the error names what and path.
func newWatchedFile(what, path string, parse func([]byte) (any, error)) (*watchedFile, error) {
	w := &watchedFile{path: path, what: what, parse: parse, now: time.Now}
	if err := w.Check(); err != nil {
		return nil, err
	}
	return w, nil
}

// get returns the current content, checking the file first when a check is
// due.
func (w *watchedFile) get() (any, error) {
	if now := w.now(); now.UnixNano() >= w.next.Load() {
		w.mu.Lock()
		if now.UnixNano() >= w.next.Load() { // not done by another caller meanwhile
			w.check(now)
		}
		w.mu.Unlock()
	}
	l := w.cur.Load()
	return l.val, l.err
}

// Check stats the file now (whatever the interval) and re-reads it if it
// changed; it returns the error a use would return.
func (w *watchedFile) Check() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.check(w.now())
	return w.cur.Load().err
}

func (w *watchedFile) check(now time.Time) {
	w.next.Store(now.Add(CheckInterval).UnixNano())
	fi, err := os.Stat(w.path)
	if err != nil {
		w.cur.Store(&loaded{err: fmt.Errorf("%s %s: %w", w.what, w.path, unwrapPath(err))})
		return
	}
	if fi.Size() > MaxFileSize {
		w.cur.Store(&loaded{err: fmt.Errorf("%s %s: %d bytes, more than %d", w.what, w.path, fi.Size(), MaxFileSize)})
		return
	}
	id := idOf(fi)
	if old := w.cur.Load(); old != nil && old.err == nil && old.id == id {
		return
	}
	data, err := os.ReadFile(w.path)
	if err != nil {
		w.cur.Store(&loaded{err: fmt.Errorf("%s %s: %w", w.what, w.path, unwrapPath(err))})
		return
	}
	v, err := w.parse(data)
	clear(data)
	if err != nil {
		w.cur.Store(&loaded{err: fmt.Errorf("%s %s: %w", w.what, w.path, err)})
		return
	}
	w.cur.Store(&loaded{id: id, val: v})
}

// unwrapPath returns the cause of a *os.PathError (the path is named by the
// caller already).
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
}

// trimmedValue parses a credential file: its content trimmed of surrounding
// white space, not empty, without control characters.
func trimmedValue(data []byte) (any, error) {
	v := strings.TrimSpace(string(data))
	if err := checkValue(v); err != nil {
		return nil, err
	}
	return v, nil
}

// ErrEmpty is wrapped when a credential source is empty.
var ErrEmpty = errors.New("credential is empty")

// ErrInvalidValue is wrapped when a credential holds a character a header
// value cannot (a control character such as CR, LF or NUL).
var ErrInvalidValue = errors.New("credential holds a control character")

// checkValue validates a trimmed credential value; the error never holds it.
func checkValue(v string) error {
	if v == "" {
		return ErrEmpty
	}
	if !validFieldValue(v) {
		return ErrInvalidValue
	}
	return nil
}

// validFieldValue reports whether v has no control character (CR, LF, NUL,
// tab, DEL, ...).
func validFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
