package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/pryvsync/pryvsync/server/store"
)

// runBackup serves `pryvsync backup --data DIR --out FILE`: an offline backup
// of a stopped server's store. A running server holds the store's lock; it
// is backed up online with GET /system/backup instead.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("backup", stderr)
	data := fs.String("data", "./pryvsync-data", "data directory of a stopped server")
	out := fs.String("out", "", "backup file to write (- for standard output)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return usageError{"usage: pryvsync backup --data DIR --out FILE"}
	}
	if _, err := os.Stat(filepath.Join(*data, "db")); err != nil {
		return fmt.Errorf("no pryvsync store in %s", *data)
	}
	st, err := store.Open(store.Options{Dir: *data, SyncWrites: true})
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return fmt.Errorf("%s is in use (is the server running?): back up a running server online instead: "+
				"curl -fsS -H 'Authorization: <admin key>' -o FILE http://HOST/system/backup", *data)
		}
		return err
	}
	defer st.Close()

	var w io.Writer = stdout
	var tmp *os.File
	if *out != "-" {
		// Write beside the target and rename at the end: a failed or
		// interrupted backup never leaves a file that looks whole.
		tmp, err = os.CreateTemp(filepath.Dir(*out), ".pryvsync-backup-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		defer tmp.Close()
		w = tmp
	}
	p := newProgress(stderr, "backup", 0)
	err = st.Backup(ctxWriter{ctx, p.writer(w)})
	p.done()
	if err != nil {
		return err
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), *out); err != nil {
			return err
		}
	}
	p.printf("backup: %s written to %s in %s\n", bytesText(p.n()), *out, p.elapsed())
	return nil
}

// runRestore serves `pryvsync restore --data DIR --in FILE`.
func runRestore(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("restore", stderr)
	data := fs.String("data", "./pryvsync-data", "data directory to create (must be empty or absent)")
	in := fs.String("in", "", "backup file to read (- for standard input)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *in == "" || fs.NArg() > 0 {
		return usageError{"usage: pryvsync restore --data DIR --in FILE"}
	}
	r, total := stdin, int64(0)
	if *in != "-" {
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			total = fi.Size()
		}
		r = f
	}
	p := newProgress(stderr, "restore", total)
	err := store.Restore(*data, ctxReader{ctx, p.reader(r)})
	p.done()
	if errors.Is(err, store.ErrNotEmpty) {
		return fmt.Errorf("%s is not empty: restore needs an empty or absent data directory (move the old one aside first)", *data)
	}
	if err != nil {
		return err
	}
	p.printf("restore: %s read into %s in %s; the store has a new epoch, so replicas reset, push again what it lacks and download again\n",
		bytesText(p.n()), *data, p.elapsed())
	return nil
}

// ctxWriter and ctxReader stop a long copy when ctx ends (Ctrl-C).
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// progress shows a byte count (and a percentage when the total is known)
// on a terminal, at most five times a second; it says nothing when its
// output is not a terminal.
type progress struct {
	out   io.Writer // nil: quiet
	what  string
	total int64
	start time.Time

	mu    sync.Mutex
	count int64
	last  time.Time
	shown bool
}

func newProgress(stderr io.Writer, what string, total int64) *progress {
	p := &progress{what: what, total: total, start: time.Now()}
	if isTerminal(stderr) {
		p.out = stderr
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) add(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count += int64(n)
	if p.out == nil || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.shown = true
	if p.total > 0 {
		fmt.Fprintf(p.out, "\r%s: %s of %s (%d%%)   ", p.what, bytesText(p.count), bytesText(p.total), p.count*100/p.total)
		return
	}
	fmt.Fprintf(p.out, "\r%s: %s   ", p.what, bytesText(p.count))
}

// done ends the progress line.
func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.out, "\r\033[K")
	}
}

func (p *progress) printf(format string, a ...any) {
	if p.out != nil {
		fmt.Fprintf(p.out, format, a...)
	}
}

func (p *progress) n() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

func (p *progress) elapsed() time.Duration { return time.Since(p.start).Round(time.Millisecond) }

func (p *progress) writer(w io.Writer) io.Writer { return progressWriter{p, w} }
func (p *progress) reader(r io.Reader) io.Reader { return progressReader{p, r} }

type progressWriter struct {
	p *progress
	w io.Writer
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.add(n)
	return n, err
}

type progressReader struct {
	p *progress
	r io.Reader
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	return n, err
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
