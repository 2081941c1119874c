package store

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"
)

// A backup is a tar stream (POSIX/PAX, uncompressed) with these entries, in
// this order:
//
//	pryvsync-backup.json     header: {"format": "pryvsync-backup", "version": 1,
//	                         "created": RFC 3339 time, "epoch": the store's epoch}
//	badger/00000001 …        the Badger backup (DB.Backup's length-prefixed
//	                         protobuf KV lists) cut into chunks of at most 4 MiB;
//	                         concatenated in name order they are the Badger stream
//	files/<user>/<digest>    one entry per attachment content referenced at the
//	                         snapshot (digest: lower-case hex SHA-256 of the content)
//	pryvsync-backup-end.json trailer: {"badgerBytes", "badgerVersion", "files",
//	                         "missingFiles"}; a stream without it is truncated
//
// The key-value part is one Badger snapshot (a single stream goroutine, so a
// single read timestamp): it holds every write committed before the snapshot
// and none after. The attachment set is exactly the contents referenced in
// that snapshot (u/<user>/ref/<digest>/<event> keys).
const (
	backupFormat      = "pryvsync-backup"
	backupVersion     = 1
	backupHeaderName  = "pryvsync-backup.json"
	backupTrailerName = "pryvsync-backup-end.json"
	backupChunkBytes  = 4 << 20
)

// ErrNotEmpty is returned by Restore when the target directory holds anything.
var ErrNotEmpty = errors.New("store: restore needs an empty data directory")

// ErrBadBackup wraps every reason a backup stream cannot be restored.
var ErrBadBackup = errors.New("store: not a usable pryvsync backup")

type backupHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	Created string `json:"created"`
	Epoch   string `json:"epoch"`
}

type backupTrailer struct {
	BadgerBytes   int64    `json:"badgerBytes"`
	BadgerVersion uint64   `json:"badgerVersion"`
	Files         int      `json:"files"`
	MissingFiles  []string `json:"missingFiles,omitempty"`
}

// Backup writes a consistent backup of the whole store to w (format above).
// It reads a snapshot and never goes through the committer, so writes go on
// while it runs. It may run while the server serves.
func (s *Store) Backup(w io.Writer) error {
	tw := tar.NewWriter(w)
	now := s.opts.Now()
	hdr, _ := json.Marshal(backupHeader{Format: backupFormat, Version: backupVersion, Created: now.UTC().Format(time.RFC3339), Epoch: s.Epoch()})
	if err := writeTarFile(tw, backupHeaderName, hdr, now); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}

	// Pin the attachment files present now with hard links, so content
	// referenced by the snapshot stays readable even if its event is
	// deleted (and the content removed) while the backup runs.
	pins, err := s.pinFiles()
	if err != nil {
		s.log.Warn("backup: could not pin attachment files; copying them live", "error", err)
	}
	if pins != "" {
		defer os.RemoveAll(pins)
	}

	cw := &chunkWriter{tw: tw, now: now}
	refs := &refCollector{refs: map[string]bool{}}
	stream := s.db.NewStream()
	stream.NumGo = 1 // one producer: one read timestamp for the whole stream
	stream.LogPrefix = "pryvsync.Backup"
	maxVersion, err := stream.Backup(io.MultiWriter(cw, refs), 0)
	if err == nil {
		err = cw.flush()
	}
	if err == nil {
		err = refs.err
	}
	if err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}

	tr := backupTrailer{BadgerBytes: cw.total, BadgerVersion: maxVersion}
	for _, ref := range refs.sorted() {
		user, digest, _ := strings.Cut(ref, "/")
		path := s.FilePath(user, digest)
		if pins != "" {
			if p := filepath.Join(pins, user, digest); fileExists(p) {
				path = p
			}
		}
		ok, err := copyFileEntry(tw, "files/"+user+"/"+digest, path, now)
		if err != nil {
			return fmt.Errorf("store: backup %s: %w", ref, err)
		}
		if !ok {
			s.log.Warn("backup: attachment content referenced but missing", "user", user, "digest", digest)
			tr.MissingFiles = append(tr.MissingFiles, ref)
			continue
		}
		tr.Files++
	}
	end, _ := json.Marshal(tr)
	if err := writeTarFile(tw, backupTrailerName, end, now); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	s.log.Info("backup written", "badger_bytes", cw.total, "files", tr.Files, "missing_files", len(tr.MissingFiles))
	return nil
}

// pinFiles hard-links every attachment file into a fresh directory inside
// the files directory (same file system) and returns it ("" when there is
// nothing to pin).
func (s *Store) pinFiles() (string, error) {
	if s.filesDir == "" {
		return "", nil
	}
	// A backup cut short by a crash leaves its pins behind: drop old ones
	// (a backup running now is younger than a day).
	if ents, err := os.ReadDir(s.filesDir); err == nil {
		for _, e := range ents {
			if info, err := e.Info(); err == nil && e.IsDir() && strings.HasPrefix(e.Name(), ".backup-pin-") && time.Since(info.ModTime()) > 24*time.Hour {
				os.RemoveAll(filepath.Join(s.filesDir, e.Name()))
			}
		}
	}
	dir, err := os.MkdirTemp(s.filesDir, ".backup-pin-")
	if err != nil {
		return "", err
	}
	err = filepath.WalkDir(s.filesDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if d.IsDir() {
			if p != s.filesDir && strings.HasPrefix(d.Name(), ".backup-pin-") {
				return filepath.SkipDir
			}
			return nil
		}
		if !ValidDigest(d.Name()) {
			return nil // uploads in progress and other temporary files
		}
		rel, err := filepath.Rel(s.filesDir, p)
		if err != nil {
			return err
		}
		user := strings.SplitN(filepath.ToSlash(rel), "/", 2)[0]
		if err := os.MkdirAll(filepath.Join(dir, user), 0o700); err != nil {
			return err
		}
		if err := os.Link(p, filepath.Join(dir, user, d.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func writeTarFile(tw *tar.Writer, name string, body []byte, mod time.Time) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), ModTime: mod, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(body)
	return err
}

// copyFileEntry copies the file at path into the archive; ok is false when
// the file does not exist.
func copyFileEntry(tw *tar.Writer, name, path string, mod time.Time) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: mod, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return false, err
	}
	if _, err := io.CopyN(tw, f, st.Size()); err != nil {
		return false, err
	}
	return true, nil
}

// chunkWriter cuts the Badger stream into tar entries of bounded size, so
// neither side needs to know the total size in advance nor hold it in memory.
type chunkWriter struct {
	tw    *tar.Writer
	now   time.Time
	buf   bytes.Buffer
	n     int
	total int64
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := min(len(p), backupChunkBytes-c.buf.Len())
		c.buf.Write(p[:k])
		p, written = p[k:], written+k
		if c.buf.Len() == backupChunkBytes {
			if err := c.flush(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

func (c *chunkWriter) flush() error {
	if c.buf.Len() == 0 {
		return nil
	}
	c.n++
	c.total += int64(c.buf.Len())
	err := writeTarFile(c.tw, fmt.Sprintf("badger/%08d", c.n), c.buf.Bytes(), c.now)
	c.buf.Reset()
	return err
}

// refCollector parses the Badger backup stream as it is written and records
// the attachment references it holds ("<user>/<digest>"), so the backup
// carries exactly the content its snapshot needs.
type refCollector struct {
	buf     []byte
	lastKey []byte
	refs    map[string]bool
	err     error
}

// bitDelete is Badger's deletion marker in KV.Meta (badger value.go).
const bitDelete = 1 << 0

func (r *refCollector) Write(p []byte) (int, error) {
	if r.err != nil {
		return len(p), nil
	}
	r.buf = append(r.buf, p...)
	for len(r.buf) >= 8 {
		sz := binary.LittleEndian.Uint64(r.buf[:8])
		if uint64(len(r.buf)-8) < sz {
			break
		}
		var list pb.KVList
		if err := proto.Unmarshal(r.buf[8:8+sz], &list); err != nil {
			r.err = fmt.Errorf("parse own backup stream: %w", err)
			return len(p), nil
		}
		for _, kv := range list.Kv {
			// Versions of one key come newest first: only the first counts.
			if bytes.Equal(kv.Key, r.lastKey) {
				continue
			}
			r.lastKey = append(r.lastKey[:0], kv.Key...)
			if len(kv.Meta) > 0 && kv.Meta[0]&bitDelete != 0 {
				continue
			}
			if user, digest, ok := parseRefKey(string(kv.Key)); ok {
				r.refs[user+"/"+digest] = true
			}
		}
		r.buf = r.buf[8+sz:]
	}
	if len(r.buf) == 0 {
		r.buf = nil // do not keep a large backing array alive
	}
	return len(p), nil
}

func (r *refCollector) sorted() []string {
	out := make([]string, 0, len(r.refs))
	for k := range r.refs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// parseRefKey splits u/<user>/ref/<digest>/<event>.
func parseRefKey(k string) (user, digest string, ok bool) {
	rest, found := strings.CutPrefix(k, "u/")
	if !found {
		return "", "", false
	}
	user, rest, found = strings.Cut(rest, "/")
	if !found {
		return "", "", false
	}
	rest, found = strings.CutPrefix(rest, "ref/")
	if !found {
		return "", "", false
	}
	digest, _, found = strings.Cut(rest, "/")
	if !found || !ValidDigest(digest) || !backupUserRE.MatchString(user) {
		return "", "", false
	}
	return user, digest, true
}

// backupUserRE admits stored user names (lower-case usernames) and nothing
// that could climb out of the files directory.
var backupUserRE = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// RestoreOptions adjust Restore.
type RestoreOptions struct {
	// Options are used to open the restored store (Dir is set by Restore).
	Options Options
}

// Restore rebuilds a store in dir, which must be empty or absent, from a
// backup stream made by Backup, then gives it a new epoch (SPEC §4.2: the
// replicas' cursors belong to the old history, so they reset, push again what
// the restored store lacks, and download again). On failure, whatever
// Restore created in dir is removed.
func Restore(dir string, r io.Reader) error {
	return RestoreWith(dir, r, RestoreOptions{})
}

// RestoreWith is Restore with options.
func RestoreWith(dir string, r io.Reader, ro RestoreOptions) (err error) {
	if dir == "" {
		return errors.New("store: restore needs a data directory")
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("store: restore: %w", err)
	case len(entries) > 0:
		return fmt.Errorf("%w: %s holds %d entries", ErrNotEmpty, dir, len(entries))
	}
	defer func() {
		if err != nil {
			// Leave dir empty again so the restore can be retried.
			if ents, rerr := os.ReadDir(dir); rerr == nil {
				for _, e := range ents {
					os.RemoveAll(filepath.Join(dir, e.Name()))
				}
			}
		}
	}()
	opts := ro.Options
	opts.Dir = dir
	opts.SyncWrites = false // made durable by Close below
	s, err := Open(opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("store: restore: close: %w", cerr)
		}
	}()
	if err := s.restoreFrom(r); err != nil {
		return err
	}
	// The backup carries its store's meta/format: a newer layout than
	// this version reads is refused here, not at the next Open.
	if err := s.checkFormat(); err != nil {
		return err
	}
	if err := s.NewEpoch(); err != nil {
		return fmt.Errorf("store: restore: new epoch: %w", err)
	}
	s.log.Info("store restored", "dir", dir, "epoch", s.Epoch())
	return nil
}

func (s *Store) restoreFrom(r io.Reader) error {
	tr := tar.NewReader(r)
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadBackup, fmt.Sprintf(format, a...))
	}
	h, err := tr.Next()
	if err != nil {
		return bad("no header entry (%v)", err)
	}
	if h.Name != backupHeaderName || h.Size > 1<<16 {
		return bad("first entry is %q, want %s", h.Name, backupHeaderName)
	}
	var hdr backupHeader
	if raw, err := io.ReadAll(tr); err != nil || json.Unmarshal(raw, &hdr) != nil {
		return bad("unreadable header")
	}
	if hdr.Format != backupFormat || hdr.Version != backupVersion {
		return bad("format %q version %d, want %s version %d", hdr.Format, hdr.Version, backupFormat, backupVersion)
	}

	// Badger chunks feed one Load through a pipe.
	var (
		pw       *io.PipeWriter
		loadErr  chan error
		chunks   int
		lastName string
		trailer  *backupTrailer
		files    int
		total    int64
	)
	endLoad := func() error {
		if pw == nil {
			return nil
		}
		pw.Close()
		err := <-loadErr
		pw = nil
		if err != nil {
			return fmt.Errorf("store: restore: load: %w", err)
		}
		return nil
	}
	defer func() {
		if pw != nil {
			pw.CloseWithError(errors.New("restore aborted"))
			<-loadErr
		}
	}()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return bad("broken archive: %v", err)
		}
		if trailer != nil {
			return bad("entry %q after the trailer", h.Name)
		}
		switch {
		case strings.HasPrefix(h.Name, "badger/"):
			if files > 0 || h.Name <= lastName {
				return bad("badger chunk %q out of order", h.Name)
			}
			lastName = h.Name
			if pw == nil {
				var pr *io.PipeReader
				pr, pw = io.Pipe()
				loadErr = make(chan error, 1)
				go func() {
					err := s.db.Load(pr, 256)
					pr.CloseWithError(err) // unblock the writer if Load stops early
					loadErr <- err
				}()
			}
			n, err := io.Copy(pw, tr)
			total += n
			if err != nil {
				return bad("badger chunk %q: %v", h.Name, err)
			}
			chunks++
		case strings.HasPrefix(h.Name, "files/"):
			if err := endLoad(); err != nil {
				return err
			}
			user, digest, ok := strings.Cut(strings.TrimPrefix(h.Name, "files/"), "/")
			if !ok || !backupUserRE.MatchString(user) || !ValidDigest(digest) {
				return bad("bad file entry %q", h.Name)
			}
			if err := s.restoreFile(user, digest, tr); err != nil {
				return err
			}
			files++
		case h.Name == backupTrailerName:
			if err := endLoad(); err != nil {
				return err
			}
			var t backupTrailer
			if raw, err := io.ReadAll(io.LimitReader(tr, 1<<24)); err != nil || json.Unmarshal(raw, &t) != nil {
				return bad("unreadable trailer")
			}
			trailer = &t
		default:
			return bad("unexpected entry %q", h.Name)
		}
	}
	if err := endLoad(); err != nil {
		return err
	}
	if trailer == nil {
		return bad("the archive ends before its trailer: truncated")
	}
	if trailer.BadgerBytes != total || trailer.Files != files {
		return bad("trailer says %d badger bytes and %d files, archive holds %d and %d", trailer.BadgerBytes, trailer.Files, total, files)
	}
	if len(trailer.MissingFiles) > 0 {
		s.log.Warn("backup lacked attachment contents that were deleted while it ran", "count", len(trailer.MissingFiles))
	}
	return nil
}

// restoreFile writes one attachment content, checking its digest.
func (s *Store) restoreFile(user, digest string, r io.Reader) error {
	dst := s.FilePath(user, digest)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "restore-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		tmp.Close()
		return fmt.Errorf("%w: file %s/%s: %v", ErrBadBackup, user, digest, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%w: file %s/%s has digest %s", ErrBadBackup, user, digest, got)
	}
	return os.Rename(tmp.Name(), dst)
}
