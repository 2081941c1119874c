package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/pryvsync/pryvsync/model"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store: closed")

// Options configure a Store.
type Options struct {
	// Dir is the data directory; empty means in memory (tests).
	Dir string
	// SyncWrites makes every commit durable against power loss. Default true
	// for on-disk stores.
	SyncWrites bool
	// MaxBatch bounds how many write requests one group commit takes. Default 256.
	MaxBatch int
	// Logger receives store logs. Default: a null logger.
	Logger hclog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// OnCommit, if set, is called by the committer after each commit with
	// what changed. It must not block (the hub only records and signals).
	OnCommit func([]Commit)
}

// Commit describes one committed write request, for the hub.
type Commit struct {
	User    string
	Head    uint64
	Notices []Notice
	// AccessesChanged lists access ids whose permissions changed or that
	// were deleted by this commit.
	AccessesChanged []string
}

// Notice says that items of a kind changed in a channel ("" for channels).
type Notice struct {
	Kind    model.Kind
	Channel string
}

// Store is the Badger-backed server store.
type Store struct {
	db       *badger.DB
	opts     Options
	filesDir string
	epoch    string
	log      hclog.Logger

	reqs    chan *request
	done    chan struct{}
	stopped chan struct{}

	mu    sync.Mutex
	heads map[string]uint64 // committed head seq per user (cache)
	close sync.Once
}

type request struct {
	user  string
	fn    func(*Tx) error
	reply chan error
}

// Open opens (creating if needed) the store.
func Open(opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	var bo badger.Options
	filesDir := ""
	if opts.Dir == "" {
		bo = badger.DefaultOptions("").WithInMemory(true)
		d, err := os.MkdirTemp("", "pryvsync-files-")
		if err != nil {
			return nil, err
		}
		filesDir = d
	} else {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", opts.Dir, err)
		}
		bo = badger.DefaultOptions(filepath.Join(opts.Dir, "db")).WithSyncWrites(opts.SyncWrites)
		filesDir = filepath.Join(opts.Dir, "files")
		if err := os.MkdirAll(filesDir, 0o700); err != nil {
			return nil, err
		}
	}
	bo = bo.WithLogger(badgerLogger{opts.Logger.Named("badger")}).
		WithDetectConflicts(false).
		WithMemTableSize(32 << 20).WithNumMemtables(3).
		WithNumCompactors(2).WithNumGoroutines(2).
		WithValueLogFileSize(256 << 20).WithIndexCacheSize(64 << 20).
		WithMetricsEnabled(false)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	s := &Store{
		db: db, opts: opts, filesDir: filesDir, log: opts.Logger,
		reqs: make(chan *request, 1024), done: make(chan struct{}), stopped: make(chan struct{}),
		heads: map[string]uint64{},
	}
	if err := s.loadEpoch(); err != nil {
		db.Close()
		return nil, err
	}
	go s.commitLoop()
	return s, nil
}

func (s *Store) loadEpoch() error {
	return s.db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(keyEpoch))
		if err == nil {
			return it.Value(func(v []byte) error { s.epoch = string(v); return nil })
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		s.epoch = hex.EncodeToString(model.NewSecret()[:8])
		return txn.Set([]byte(keyEpoch), []byte(s.epoch))
	})
}

// NewEpoch gives the store a fresh epoch (after a restore), so replicas
// holding cursors of the old one are told to reset.
func (s *Store) NewEpoch() error {
	e := hex.EncodeToString(model.NewSecret()[:8])
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyEpoch), []byte(e)) }); err != nil {
		return err
	}
	s.epoch = e
	return nil
}

// Epoch identifies this store's history; it changes on restore.
func (s *Store) Epoch() string { return s.epoch }

// DB exposes the Badger handle to backup and compaction in this package's
// callers that need it (operations tooling).
func (s *Store) DB() *badger.DB { return s.db }

// FilesDir is where attachment content lives.
func (s *Store) FilesDir() string { return s.filesDir }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.opts.Now() }

// Close stops the committer after the queued writes and closes Badger.
func (s *Store) Close() error {
	var err error
	s.close.Do(func() {
		close(s.done)
		<-s.stopped
		err = s.db.Close()
		if s.opts.Dir == "" {
			os.RemoveAll(s.filesDir)
		}
	})
	return err
}

// Update runs fn in the committer, inside a transaction shared with other
// requests of the same group commit, for user's data. fn sees the state
// including every earlier request; its writes land only if it returns nil.
// Update returns after the commit is durable (or failed).
func (s *Store) Update(ctx context.Context, user string, fn func(*Tx) error) error {
	r := &request{user: user, fn: fn, reply: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-s.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.reply:
		return err
	case <-s.stopped:
		select {
		case err := <-r.reply:
			return err
		default:
			return ErrClosed
		}
	}
}

// View runs fn over a consistent read-only snapshot.
func (s *Store) View(user string, fn func(*Tx) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		return fn(&Tx{s: s, txn: txn, user: user, readOnly: true})
	})
}

func (s *Store) commitLoop() {
	defer close(s.stopped)
	for {
		var batch []*request
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-s.done:
			// Drain what is queued so no caller waits forever.
			for {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
				default:
					if len(batch) > 0 {
						s.commitBatch(batch)
					}
					return
				}
			}
		}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commitBatch(batch)
	}
}

// commitBatch runs each request against one Badger transaction (splitting
// into several when it would grow too big), commits, then answers.
func (s *Store) commitBatch(batch []*request) {
	var (
		txn      = s.db.NewTransaction(true)
		pending  []*request
		results  = make([]error, 0, len(batch))
		commits  []Commit
		heads    = map[string]uint64{}
		count    int
		size     int64
		maxCount = int(s.db.MaxBatchCount()) / 2
		maxSize  = s.db.MaxBatchSize() / 2
	)
	flush := func() {
		err := txn.Commit()
		txn.Discard()
		for i := range pending {
			if err != nil && results[len(results)-len(pending)+i] == nil {
				results[len(results)-len(pending)+i] = fmt.Errorf("store: commit: %w", err)
			}
		}
		if err == nil {
			s.mu.Lock()
			for u, h := range heads {
				s.heads[u] = h
			}
			s.mu.Unlock()
		} else {
			commits = commits[:0]
			s.mu.Lock()
			for u := range heads {
				delete(s.heads, u) // reload from disk
			}
			s.mu.Unlock()
			s.log.Error("group commit failed", "error", err)
		}
		if s.opts.OnCommit != nil && len(commits) > 0 {
			s.opts.OnCommit(commits)
		}
		for i, r := range pending {
			r.reply <- results[len(results)-len(pending)+i]
		}
		pending, commits, heads = nil, nil, map[string]uint64{}
		count, size = 0, 0
		txn = s.db.NewTransaction(true)
	}
	for _, r := range batch {
		tx := &Tx{s: s, txn: txn, user: r.user, overlay: map[string][]byte{}, headCache: heads}
		err := s.run(tx, r.fn)
		if err == nil && (count+len(tx.overlay) > maxCount || size+tx.size() > maxSize) && len(pending) > 0 {
			// Commit what came before, then re-run this request on a fresh
			// transaction: its reads must see the committed state.
			flush()
			tx = &Tx{s: s, txn: txn, user: r.user, overlay: map[string][]byte{}, headCache: heads}
			err = s.run(tx, r.fn)
		}
		if err == nil {
			err = tx.apply()
			if err != nil && count == 0 {
				// A request too big for one Badger transaction fails alone
				// (the check above flushed its batch-mates first): drop its
				// partial writes instead of committing them.
				txn.Discard()
				txn = s.db.NewTransaction(true)
			}
		}
		if err == nil {
			count += len(tx.overlay)
			size += tx.size()
			if tx.head > 0 {
				heads[r.user] = tx.head
			}
			if len(tx.notices) > 0 || len(tx.accesses) > 0 {
				commits = append(commits, Commit{User: r.user, Head: tx.head, Notices: tx.notices, AccessesChanged: tx.accesses})
			}
		}
		results = append(results, err)
		pending = append(pending, r)
	}
	flush()
	txn.Discard()
}

// run calls fn, turning a panic into an error so one bad request cannot
// stop the committer.
func (s *Store) run(tx *Tx, fn func(*Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("write request panicked", "panic", p)
			err = fmt.Errorf("store: write request panicked: %v", p)
		}
	}()
	return fn(tx)
}

// Head returns the user's committed head sequence.
func (s *Store) Head(user string) (uint64, error) {
	s.mu.Lock()
	h, ok := s.heads[user]
	s.mu.Unlock()
	if ok {
		return h, nil
	}
	err := s.View(user, func(tx *Tx) error {
		var err error
		h, err = tx.Head()
		return err
	})
	return h, err
}

type badgerLogger struct{ l hclog.Logger }

func (b badgerLogger) Errorf(f string, a ...any)   { b.l.Error(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Warningf(f string, a ...any) { b.l.Warn(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Infof(f string, a ...any)    { b.l.Debug(fmt.Sprintf(f, a...)) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.l.Trace(fmt.Sprintf(f, a...)) }
