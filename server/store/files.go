package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pryvsync/pryvsync/model"
)

// Blobs is a replicated store of attachment content, shared by the nodes
// of a cluster (Options.Blobs): content a node keeps is put there before
// any change may reference it, and a node that lacks content it must serve
// or check fetches it. Names are "<user>/<digest>".
type Blobs interface {
	Put(ctx context.Context, name string, r io.Reader) error
	// Get writes the content to w; ErrBlobNotFound when there is none.
	Get(ctx context.Context, name string, w io.Writer) error
	Has(ctx context.Context, name string) (bool, error)
	Delete(ctx context.Context, name string) error
}

// ErrBlobNotFound is returned by Blobs.Get for content it does not hold.
var ErrBlobNotFound = errors.New("store: no such content")

// blobTimeout bounds one transfer to or from Blobs.
const blobTimeout = 5 * time.Minute

func blobName(user, digest string) string { return user + "/" + digest }

// putBlob copies kept content to Blobs (cluster mode).
func (s *Store) putBlob(user, digest string) error {
	if s.opts.Blobs == nil {
		return nil
	}
	f, err := os.Open(s.FilePath(user, digest))
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	defer cancel()
	if err := s.opts.Blobs.Put(ctx, blobName(user, digest), f); err != nil {
		return fmt.Errorf("store: replicate content: %w", err)
	}
	return nil
}

// fetchBlob brings content this node lacks from Blobs and reports whether
// it now holds it. The content is checked against its digest.
func (s *Store) fetchBlob(user, digest string) bool {
	if s.opts.Blobs == nil {
		return false
	}
	dir := filepath.Join(s.filesDir, user)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false
	}
	tmp, err := os.CreateTemp(dir, "fetch-*")
	if err != nil {
		return false
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	err = s.opts.Blobs.Get(ctx, blobName(user, digest), io.MultiWriter(tmp, h))
	cancel()
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if !errors.Is(err, ErrBlobNotFound) {
			s.log.Warn("fetching content", "error", err)
		}
		return false
	}
	if hex.EncodeToString(h.Sum(nil)) != digest {
		s.log.Error("replicated content does not match its digest", "digest", digest)
		return false
	}
	dst := s.FilePath(user, digest)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return false
	}
	return os.Rename(tmp.Name(), dst) == nil
}

// filesMu serialises keeping and removing content; pending counts uploads
// whose reference is not committed yet (see SaveFile and RemoveFile).
var (
	filesMu sync.Mutex
	pending = map[string]int{}
)

// ValidDigest reports whether d is a lower-case hex SHA-256.
func ValidDigest(d string) bool { return model.ValidDigest(d) }

// FilePath is where the user's content with this digest lives. Content is
// stored per user, so one account can never learn of another's files.
func (s *Store) FilePath(user, digest string) string {
	return filepath.Join(s.filesDir, user, digest[:2], digest)
}

// SaveFile streams r into the user's content store, at most limit bytes,
// and returns its digest and size. ErrTooLarge when over the limit.
func (s *Store) SaveFile(user string, r io.Reader, limit int64) (digest string, size int64, err error) {
	dir := filepath.Join(s.filesDir, user)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", 0, err
	}
	tmp, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return "", 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, limit+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	if n > limit {
		return "", 0, ErrTooLarge
	}
	digest = hex.EncodeToString(h.Sum(nil))
	dst := s.FilePath(user, digest)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", 0, err
	}
	filesMu.Lock()
	if _, err := os.Stat(dst); err != nil {
		if err := os.Rename(tmp.Name(), dst); err != nil {
			filesMu.Unlock()
			return "", 0, fmt.Errorf("store: keep upload: %w", err)
		}
	}
	// Until the caller has committed the reference (or given up), a
	// removal racing with this upload leaves the content alone.
	pending[user+"/"+digest]++
	filesMu.Unlock()
	if err := s.putBlob(user, digest); err != nil {
		s.ReleaseFile(user, digest)
		return "", 0, err
	}
	return digest, n, nil
}

// HasFile reports whether the user's content store holds digest.
func (s *Store) HasFile(user, digest string) bool {
	if !ValidDigest(digest) {
		return false
	}
	if _, err := os.Stat(s.FilePath(user, digest)); err == nil {
		return true
	}
	return s.fetchBlob(user, digest)
}

// OpenFile opens stored content.
func (s *Store) OpenFile(user, digest string) (*os.File, error) {
	if !ValidDigest(digest) {
		return nil, os.ErrNotExist
	}
	f, err := os.Open(s.FilePath(user, digest))
	if errors.Is(err, os.ErrNotExist) && s.fetchBlob(user, digest) {
		return os.Open(s.FilePath(user, digest))
	}
	return f, err
}

// ErrTooLarge is returned when content exceeds its limit.
var ErrTooLarge = fmt.Errorf("store: content too large")

// AddRef records that event references digest.
func (t *Tx) AddRef(digest, event string) { t.set(keyRef(t.user, digest, event), nil) }

// DropRef removes event's reference to digest and reports whether any
// reference remains (when none does, the caller may delete the content after
// commit).
func (t *Tx) DropRef(digest, event string) (bool, error) {
	t.del(keyRef(t.user, digest, event))
	left := false
	err := t.scan(keyUser(t.user)+"ref/"+digest+"/", true, func(string, []byte) (bool, error) {
		left = true
		return false, nil
	})
	return left, err
}

// Refs calls fn with each event that references digest ("" for an upload
// not yet committed to an event), until fn returns false.
func (t *Tx) Refs(digest string, fn func(event string) (bool, error)) error {
	prefix := keyUser(t.user) + "ref/" + digest + "/"
	return t.scan(prefix, true, func(k string, _ []byte) (bool, error) {
		return fn(strings.TrimPrefix(k, prefix))
	})
}

// ReleaseFile ends the protection SaveFile gave to an upload, once the
// request that made it has committed its reference or failed.
func (s *Store) ReleaseFile(user, digest string) {
	filesMu.Lock()
	k := user + "/" + digest
	if pending[k]--; pending[k] <= 0 {
		delete(pending, k)
	}
	filesMu.Unlock()
	s.EnsureReplicated(user, digest)
}

// EnsureReplicated puts referenced content back into the cluster's blob
// store from this node's copy when the replicated copy is missing: another
// node may have removed it while a reference to it was being committed here
// (holds are per process, and that node could not see the reference yet).
// Single-node stores have nothing to do.
func (s *Store) EnsureReplicated(user, digest string) {
	if s.opts.Blobs == nil || !ValidDigest(digest) || !s.referenced(user, digest) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
	has, err := s.opts.Blobs.Has(ctx, blobName(user, digest))
	cancel()
	if err == nil && !has {
		if err := s.putBlob(user, digest); err != nil {
			s.log.Warn("replicating content again", "error", err)
		}
	}
}

// RemoveFile deletes content that no event references any more. It checks
// the references again at removal time, and leaves content that an upload
// in flight is about to reference.
func (s *Store) RemoveFile(user, digest string) {
	if !ValidDigest(digest) {
		return
	}
	if s.logs != nil {
		// A cluster node decides on the log as it stands: a reference
		// another node committed counts.
		ctx, cancel := context.WithTimeout(context.Background(), logAppendTimeout)
		err := s.CatchUp(ctx, user)
		cancel()
		if err != nil {
			s.log.Warn("content left in place: the cluster log is unavailable", "error", err)
			return
		}
	}
	filesMu.Lock()
	defer filesMu.Unlock()
	if pending[user+"/"+digest] > 0 {
		return
	}
	if !s.referenced(user, digest) {
		os.Remove(s.FilePath(user, digest))
		if s.opts.Blobs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), blobTimeout)
			if err := s.opts.Blobs.Delete(ctx, blobName(user, digest)); err != nil && !errors.Is(err, ErrBlobNotFound) {
				s.log.Warn("deleting replicated content", "error", err)
			}
			cancel()
		}
	}
}

// referenced reports whether an event of user references digest.
func (s *Store) referenced(user, digest string) bool {
	found := false
	_ = s.View(user, func(tx *Tx) error {
		return tx.scan(keyUser(user)+"ref/"+digest+"/", true, func(string, []byte) (bool, error) {
			found = true
			return false, nil
		})
	})
	return found
}

// Upload streams content into the user's content store chunk by chunk,
// hashing as it goes; nothing is kept in memory.
type Upload struct {
	s    *Store
	user string
	f    *os.File
	h    hash.Hash
	n    int64
}

// NewUpload starts an upload for user.
func (s *Store) NewUpload(user string) (*Upload, error) {
	dir := filepath.Join(s.filesDir, user)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, err
	}
	return &Upload{s: s, user: user, f: f, h: sha256.New()}, nil
}

// Size is how many bytes were written so far.
func (u *Upload) Size() int64 { return u.n }

// Write appends a chunk.
func (u *Upload) Write(p []byte) (int, error) {
	n, err := u.f.Write(p)
	u.h.Write(p[:n])
	u.n += int64(n)
	return n, err
}

// Abort discards the upload.
func (u *Upload) Abort() {
	u.f.Close()
	os.Remove(u.f.Name())
}

// Commit keeps the content if its digest is want; ErrDigestMismatch
// otherwise (and the content is discarded).
func (u *Upload) Commit(want string) error {
	defer os.Remove(u.f.Name())
	if err := u.f.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(u.h.Sum(nil)); got != want {
		return ErrDigestMismatch
	}
	dst := u.s.FilePath(u.user, want)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	filesMu.Lock()
	if _, err := os.Stat(dst); err != nil {
		if err := os.Rename(u.f.Name(), dst); err != nil {
			filesMu.Unlock()
			return err
		}
	}
	// Held as SaveFile holds an upload, until the caller releases it
	// (ReleaseFile): a removal meanwhile leaves the content alone.
	pending[u.user+"/"+want]++
	filesMu.Unlock()
	if err := u.s.putBlob(u.user, want); err != nil {
		u.s.ReleaseFile(u.user, want)
		return err
	}
	return nil
}

// ErrDigestMismatch says uploaded content does not hash to its digest.
var ErrDigestMismatch = fmt.Errorf("store: content does not match its digest")
