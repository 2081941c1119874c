package store

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	// Log, if set, makes the store a node of a cluster: group commits go
	// through this replicated log first (see logged.go).
	Log Log
	// Blobs, if set, replicates attachment content between the nodes of
	// a cluster (see files.go).
	Blobs Blobs
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
	// Exact says that Events (Folders) lists the scope facts of every
	// event (folder) the commit changed in Channel, as they were before
	// and after each change: a token is told only if it can see one of
	// them. Otherwise (a write made below the rules, too many items) every
	// token that sees the channel is told.
	Exact  bool               `msgpack:",omitempty"`
	Events []model.EventFacts `msgpack:",omitempty"`
	// Folders, in an exact folder notice, lists the folders the commit
	// changed in Channel, each with its parents before and after.
	Folders []NoticeFolder `msgpack:",omitempty"`
	// Gone lists the folders the commit removed in Channel, with their
	// parents before, exact or not: events removed with their folder are
	// judged where the folder was.
	Gone []NoticeFolder `msgpack:",omitempty"`
}

// NoticeFolder is a changed folder in an exact notice: its id and its
// parent before and after the change ("" for the channel's top).
type NoticeFolder struct {
	ID      string
	Parents []string
}

// maxNoticeEvents bounds the facts one notice carries; past it the notice
// tells every token that sees the channel.
const maxNoticeEvents = 64

// Store is the Badger-backed server store.
type Store struct {
	db       *badger.DB
	opts     Options
	filesDir string
	epoch    string
	log      hclog.Logger

	// Write requests wait for the committer in two FIFO lanes: prio
	// (Update: HTTP writes, small) and bulk (Submit: sync pushes, up to
	// a thousand changes each). The committer takes a queued priority
	// request first, so a small write does not wait behind every queued
	// push; see committer.take for how the bulk lane is not starved.
	prio    chan *request
	bulk    chan *request
	done    chan struct{}
	stopped chan struct{}

	mu    sync.Mutex
	heads map[string]uint64 // committed head seq per user (cache)
	close sync.Once

	logs *logState // cluster mode (Options.Log), else nil
}

type request struct {
	user  string
	fn    func(*Tx) error
	reply chan error
	bulk  bool // queued in the bulk lane (Submit), else the priority lane
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
	// Memtables and level 0 sized for sustained ingest: with 32 MiB × 3
	// memtables and Badger's level-0 defaults (5 tables, stalling at 15),
	// writes stalled on flushes and level-0 compactions. Measured with W6
	// at 600 000 changes (docs/PERFORMANCE.md): 16.4k changes/s before,
	// 21.7k–24.9k after; larger memtables alone 19.1k, the level-0 limits
	// alone 16.7k. Memtables are up to 4 × 64 MiB of memory (Badger's
	// default is 5 × 64 MiB).
	//
	// Values stay in the LSM tree (Badger's default threshold of 1 MiB is
	// above any record). Records in the value log made W6 28 % faster, but
	// with the value-log GC that Compact runs, deleted keys came back after
	// a reopen (Badger v4.9.6, reproduced outside this code): an updated
	// item's old feed entry would return with its old state.
	bo = bo.WithLogger(badgerLogger{opts.Logger.Named("badger")}).
		WithDetectConflicts(false).
		WithMemTableSize(64 << 20).WithNumMemtables(4).
		WithNumLevelZeroTables(8).WithNumLevelZeroTablesStall(20).
		WithNumCompactors(2).WithNumGoroutines(2).
		WithValueLogFileSize(256 << 20).WithIndexCacheSize(64 << 20).
		WithMetricsEnabled(false)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	s := &Store{
		db: db, opts: opts, filesDir: filesDir, log: opts.Logger,
		prio: make(chan *request, 1024), bulk: make(chan *request, 1024), done: make(chan struct{}), stopped: make(chan struct{}),
		heads: map[string]uint64{},
	}
	// The format first: a store in a newer one is not written to at all.
	if err := s.checkFormat(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadEpoch(); err != nil {
		db.Close()
		return nil, err
	}
	if opts.Log != nil {
		if err := s.openLog(); err != nil {
			db.Close()
			return nil, err
		}
	}
	go s.commitLoop()
	if s.logs != nil {
		if err := s.awaitLog(context.Background()); err != nil {
			s.Close()
			return nil, err
		}
	}
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

// ErrFormat is returned by Open for a store written by a newer version in
// a layout this one cannot read.
var ErrFormat = errors.New("store: written in a newer format")

// storeFormat is the layout this code writes, recorded under keyFormat:
// 2 since records live in their feed entries (item references, "<k>+"
// entries; docs/OPERATIONS.md, Upgrades). A store without the key was
// written before (format 1), which this code reads; Open records 2, since
// from then on it writes format 2.
const storeFormat = 2

func (s *Store) checkFormat() error {
	return s.db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(keyFormat))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			var n int
			if err := it.Value(func(v []byte) error {
				var perr error
				n, perr = strconv.Atoi(string(v))
				return perr
			}); err != nil {
				return fmt.Errorf("%w: format %v", ErrCorrupt, err)
			}
			if n > storeFormat {
				return fmt.Errorf("%w: format %d, this version reads up to %d", ErrFormat, n, storeFormat)
			}
			if n == storeFormat {
				return nil
			}
		}
		return txn.Set([]byte(keyFormat), []byte(strconv.Itoa(storeFormat)))
	})
}

// NewEpoch gives the store a fresh epoch (after a restore), so replicas
// holding cursors of the old one are told to reset.
func (s *Store) NewEpoch() error {
	if s.logs != nil {
		return errors.New("store: a cluster node's epoch is the cluster's")
	}
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
		s.closeLog()
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
//
// Update's requests go to the priority lane: the committer runs them in
// the order they were queued, before requests queued with Submit, even
// ones queued earlier (except that after about prioBurst of them in a row,
// a waiting Submit request goes first: see take).
func (s *Store) Update(ctx context.Context, user string, fn func(*Tx) error) error {
	wait, err := s.submit(ctx, false, user, fn)
	if err != nil {
		return err
	}
	return wait()
}

// Submit queues fn as Update does, in the bulk lane, and returns once it is
// queued: requests submitted one after the other with Submit run in that
// order, so a caller can queue its next request while an earlier one is
// being written. wait returns what Update would have. It is meant for big
// requests (sync pushes): an Update queued later may run before a queued
// Submit request, so a caller must not rely on the order between the two.
func (s *Store) Submit(ctx context.Context, user string, fn func(*Tx) error) (wait func() error, err error) {
	return s.submit(ctx, true, user, fn)
}

// submit queues fn in the bulk lane or the priority lane.
func (s *Store) submit(ctx context.Context, bulk bool, user string, fn func(*Tx) error) (wait func() error, err error) {
	r := &request{user: user, fn: fn, reply: make(chan error, 1), bulk: bulk}
	lane := s.prio
	if bulk {
		lane = s.bulk
	}
	select {
	case lane <- r:
	case <-s.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return func() error {
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
	}, nil
}

// View runs fn over a consistent read-only snapshot.
func (s *Store) View(user string, fn func(*Tx) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		return fn(&Tx{s: s, txn: txn, user: user, readOnly: true})
	})
}

func (s *Store) commitLoop() {
	defer close(s.stopped)
	c := newCommitter(s)
	defer c.close()
	var logged chan logItem
	if s.logs != nil {
		logged = s.logs.entries
	}
	for {
		var landed chan struct{}
		if c.flight != nil {
			landed = c.flight.done
		}
		bulk, held := s.bulk, chan struct{}(nil)
		if c.held != nil {
			// The bulk lane's head is held: do not wait, and do not
			// receive the request behind it.
			bulk, held = nil, closedChan
		}
		select {
		case it := <-logged:
			// Between group commits: a clustered store has no flight.
			c.applyLogItem(it)
		case r := <-s.prio:
			c.group(r)
		case r := <-bulk:
			c.group(r)
		case <-held:
			c.group(nil)
		case <-landed:
			c.land()
			// Idle: do not pin old versions in Badger with a snapshot.
			c.snap.Discard()
			c.snap = nil
		case <-s.done:
			// Drain what is queued so no caller waits forever.
			for {
				r := c.take()
				if r == nil {
					c.commit()
					return
				}
				if len(c.reqs) == 0 {
					c.begin()
				}
				c.run(r)
			}
		}
	}
}

// group runs a group commit, starting with the request a select received
// from a lane (nil: the held one).
func (c *committer) group(r *request) {
	c.begin()
	c.run(c.pick(r))
	c.fill()
}

// closedChan is a closed channel: receiving from it never waits.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// prioBurst bounds how many priority requests in a row the committer takes
// while a bulk request is queued: then it takes the bulk one. So the bulk
// lane is never starved: the request at its head waits for at most
// prioBurst+1 priority requests (besides the group commit in flight; the
// one more when a group commit ends just as the count is reached and the
// next one starts with a priority request a select received).
// Priority requests are small and a push is often a hundred times bigger,
// so this delays them little.
const prioBurst = 32

// take returns the next queued request without waiting, or nil: the
// priority lane's first, unless prioBurst priority requests were taken in
// a row while a bulk request waited, then the bulk lane's first. Within a
// lane, requests come in the order they were queued.
func (c *committer) take() *request {
	if c.streak >= prioBurst {
		if r := c.takeBulk(); r != nil {
			return r
		}
	}
	select {
	case r := <-c.s.prio:
		c.tookPrio()
		return r
	default:
	}
	return c.takeBulk()
}

// tookPrio counts a priority request taken while a bulk one waits.
func (c *committer) tookPrio() {
	if c.held != nil || len(c.s.bulk) > 0 {
		c.streak++
	} else {
		c.streak = 0
	}
}

// takeBulk returns the bulk lane's first request without waiting, or nil.
func (c *committer) takeBulk() *request {
	r := c.held
	if r != nil {
		c.held = nil
	} else {
		select {
		case r = <-c.s.bulk:
		default:
			return nil
		}
	}
	c.streak = 0
	return r
}

// pick returns the request to run after a select that waited on both
// lanes received r (nil: commitLoop's case for c.held). A select picks at
// random among channels that are ready, so a bulk request it received is
// held as the bulk lane's head (it is still first there: no select
// receives from the bulk lane while one is held) and take decides between
// it and a priority request that may be queued too.
func (c *committer) pick(r *request) *request {
	if r != nil && !r.bulk {
		c.tookPrio()
		return r
	}
	if r != nil {
		c.held = r
	}
	return c.take()
}

// committer is the commit goroutine's state. Group commits are pipelined:
// while one is being written and synced by Badger (the flight), the next
// one runs its requests against a snapshot taken before the flight plus the
// flight's writes, and is sent as soon as the flight has landed. Only the
// committer goroutine touches a committer; a flight's callback touches only
// the flight and the Store's own locked state.
type committer struct {
	s        *Store
	maxCount int   // estimated entries one group commit may hold
	maxSize  int64 // estimated bytes

	snap *badger.Txn // read snapshot under the flight and the open group commit

	// The open group commit.
	writes  map[string][]byte // nil value = delete
	count   int
	size    int64
	reqs    []*request
	results []error
	ok      int // requests that succeeded
	commits []Commit
	heads   map[string]uint64
	stored  []string          // result keys PutResult wrote into writes, for PruneResults (some maybe rolled back since)
	owner   map[string]string // cluster mode: the user whose request wrote each key of writes

	// The lanes (see take): held is the bulk lane's first request, when a
	// select that waited on both lanes received it while a priority
	// request may have been queued too (see pick); streak counts the
	// priority requests taken in a row while a bulk one waited.
	held   *request
	streak int

	flight *flight           // the group commit being written, or nil
	cheads map[string]uint64 // head per user including the flight's writes
	undo   []undoEntry       // reused by each request's undo log
	spare  map[string][]byte // a landed flight's write set, cleared for reuse
	hint   int               // size of the last write set, to presize the next

	filters     map[string]*idFilter // per user, the item keys Badger holds (idfilter.go)
	filterBytes int
}

// flight is a group commit handed to Badger; done closes once it is durable
// (or failed) and its requests have been answered.
type flight struct {
	writes map[string][]byte
	stored []string // result keys PutResult wrote into writes
	reqs   []*request
	sent   time.Time
	done   chan struct{}
	err    error
}

func newCommitter(s *Store) *committer {
	c := &committer{
		s:        s,
		maxCount: int(s.db.MaxBatchCount()) / 2,
		maxSize:  s.db.MaxBatchSize() / 2,
		cheads:   map[string]uint64{},
		hint:     64,
	}
	if s.logs != nil {
		// A group commit's writes for one user are one log entry: keep the
		// whole group within an entry, with room for the encoding.
		c.maxSize = min(c.maxSize, int64(s.logs.log.MaxEntry())*3/4)
	}
	c.reset()
	return c
}

func (c *committer) reset() {
	if c.spare != nil {
		c.writes, c.spare = c.spare, nil
	} else {
		c.writes = make(map[string][]byte, c.hint)
	}
	c.count, c.size, c.ok = 0, 0, 0
	c.reqs, c.results, c.commits, c.stored = nil, nil, nil, nil
	c.heads = map[string]uint64{}
	if c.s.logs != nil {
		c.owner = map[string]string{}
	}
}

// begin starts a group commit: with nothing in flight, it reads a fresh
// snapshot (which also picks up writes made outside the committer).
func (c *committer) begin() {
	if c.flight != nil {
		return
	}
	if c.snap != nil {
		c.snap.Discard()
	}
	c.snap = c.s.db.NewTransaction(false)
}

// fill adds queued requests to the open group commit (in take's order:
// priority lane first), and sends it when the lanes are empty and nothing
// is in flight, or when the flight lands: requests that arrive while a
// commit is being synced join the next one.
//
// When the committer spent much of the flight waiting for work, the disk,
// not the CPU, is the bottleneck: then the writers the flight answers are
// given a moment to come back before the next group commit is sent, so that
// each sync carries as many changes as possible.
func (c *committer) fill() {
	var waited time.Duration
	for len(c.reqs) < c.s.opts.MaxBatch {
		if r := c.take(); r != nil {
			c.run(r)
			continue
		}
		if c.flight == nil {
			break
		}
		t0 := time.Now()
		var r *request
		select {
		case r = <-c.s.prio:
		case r = <-c.s.bulk:
		case <-c.flight.done:
		}
		if r != nil {
			waited += time.Since(t0)
			c.run(c.pick(r))
			continue
		}
		waited += time.Since(t0)
		if flew := time.Since(c.flight.sent); waited > flew/4 {
			c.linger(len(c.flight.reqs), flew)
		}
		break
	}
	c.commit()
}

// Bounds of linger: how long the queue must stay empty before the committer
// stops waiting, and how long it may wait at most.
const (
	lingerQuietMin = 30 * time.Microsecond
	lingerQuietMax = 250 * time.Microsecond
	lingerMax      = 2 * time.Millisecond
)

// linger runs the requests of up to n writers that come back, waiting at
// most half the flight's duration and stopping early when the queue stays
// quiet for an eighth of it.
func (c *committer) linger(n int, flew time.Duration) {
	quiet := min(max(flew/8, lingerQuietMin), lingerQuietMax)
	deadline := time.Now().Add(min(flew/2, lingerMax))
	t := time.NewTimer(quiet)
	defer t.Stop()
	for got := 0; got < n && len(c.reqs) < c.s.opts.MaxBatch; got++ {
		if r := c.take(); r != nil {
			c.run(r)
		} else {
			select {
			case r := <-c.s.prio:
				c.run(c.pick(r))
			case r := <-c.s.bulk:
				c.run(c.pick(r))
			case <-t.C:
				return
			}
		}
		wait := min(quiet, time.Until(deadline))
		if wait <= 0 {
			return
		}
		t.Reset(wait)
	}
}

// maxUndoReuse bounds the undo log kept for the next request.
const maxUndoReuse = 4096

// run runs one request into the open group commit. A request that would
// make the group commit too big for one Badger transaction is moved to the
// next one: what came before is committed first.
func (c *committer) run(r *request) {
	tx := &Tx{s: c.s, txn: c.snap, user: r.user, c: c, undo: c.undo[:0]}
	err := c.s.run(tx, r.fn)
	if err != nil {
		tx.rollback()
	}
	if cap(tx.undo) <= maxUndoReuse {
		c.undo = tx.undo[:0]
	}
	if err == nil && c.ok > 0 && (c.count+tx.n > c.maxCount || c.size+tx.bytes > c.maxSize) {
		mine := tx.extract()
		if c.commit() {
			// The flight under this request failed: its reads are void.
			c.run(r)
			return
		}
		if c.s.logs != nil {
			// The group commit may have caught a user up from the log
			// and run its requests again: this request's reads are void
			// too. It runs again, first in a new group commit.
			c.begin()
			c.run(r)
			return
		}
		c.begin()
		results := keyUser(r.user) + "r/" // where PutResult writes
		for k, v := range mine {
			c.writes[k] = v
			if strings.HasPrefix(k, results) {
				c.stored = append(c.stored, k)
			}
			if c.owner != nil {
				c.owner[k] = r.user
			}
		}
	} else if err == nil && c.owner != nil {
		for _, u := range tx.undo {
			c.owner[u.key] = r.user
		}
	}
	if err == nil {
		c.count += tx.n
		c.size += tx.bytes
		c.ok++
		if tx.head > 0 {
			c.heads[r.user] = tx.head
		}
		if len(tx.notices) > 0 || len(tx.accesses) > 0 {
			c.commits = append(c.commits, Commit{User: r.user, Head: tx.head, Notices: tx.notices, AccessesChanged: tx.accesses})
		}
	}
	c.reqs = append(c.reqs, r)
	c.results = append(c.results, err)
}

// land retires a flight that is done and reports whether it failed.
func (c *committer) land() bool {
	f := c.flight
	c.flight = nil
	clear(f.writes)
	c.spare = f.writes
	if f.err != nil {
		clear(c.cheads) // reload from what Badger holds
		return true
	}
	return false
}

// commit waits for the flight, then sends the open group commit to Badger
// without waiting for it. If the flight failed, the open group commit's
// requests read state that does not exist: they run again first. commit
// reports true when state that requests may have read (the flight's or the
// open group commit's writes) was not committed, so a request run on top of
// it must run again.
func (c *committer) commit() (rerun bool) {
	if c.s.logs != nil {
		c.commitLogged()
		return false
	}
	if c.flight != nil {
		<-c.flight.done
		if c.land() && len(c.reqs) > 0 {
			reqs := c.reqs
			c.reset()
			c.begin()
			for _, r := range reqs {
				c.run(r)
			}
			rerun = true
		}
	}
	if len(c.reqs) == 0 {
		return rerun
	}
	s := c.s
	for u, h := range c.heads {
		c.writes[keyUser(u)+"seq"] = be64(h)
	}
	c.noteItemKeys(c.writes)
	txn := s.db.NewTransaction(true)
	var err error
	for k, v := range c.writes {
		if v == nil {
			err = txn.Delete(bytesOf(k))
		} else {
			err = txn.Set(bytesOf(k), v)
		}
		if err != nil {
			// The key's first segment only: a token is a key.
			kind, _, _ := strings.Cut(k, "/")
			err = fmt.Errorf("store: apply a %s/ key: %w", kind, err)
			break
		}
	}
	reqs, results, commits, heads := c.reqs, c.results, c.commits, c.heads
	if err != nil {
		// Only a request too big for one Badger transaction gets here, and
		// it is alone (run moved it out of its batch-mates' way): it fails,
		// leaving nothing.
		txn.Discard()
		for i := range results {
			if results[i] == nil {
				results[i] = err
			}
		}
		c.reset()
		for i, r := range reqs {
			r.reply <- results[i]
		}
		return true
	}
	f := &flight{writes: c.writes, stored: c.stored, reqs: c.reqs, sent: time.Now(), done: make(chan struct{})}
	next := s.db.NewTransaction(false) // the snapshot under this flight
	landed := func(err error) {
		f.err = err
		s.mu.Lock()
		for u, h := range heads {
			if err == nil {
				s.heads[u] = h
			} else {
				delete(s.heads, u) // reload from disk
			}
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Error("group commit failed", "error", err)
			for i := range results {
				if results[i] == nil {
					results[i] = fmt.Errorf("store: commit: %w", err)
				}
			}
		} else if s.opts.OnCommit != nil && len(commits) > 0 {
			s.opts.OnCommit(commits)
		}
		for i, r := range reqs {
			r.reply <- results[i]
		}
		close(f.done)
	}
	var fault error
	if commitFault != nil {
		fault = commitFault()
	}
	if fault != nil {
		txn.Discard()
		go landed(fault)
	} else {
		txn.CommitWith(landed)
	}
	c.snap.Discard()
	c.snap = next
	for u, h := range heads {
		c.cheads[u] = h
	}
	c.flight = f
	c.hint = len(f.writes)
	c.reset()
	return rerun
}

// commitFault, set by tests, makes a group commit fail (before Badger sees
// it) when it returns an error.
var commitFault func() error

// close waits for the last flight and releases the snapshot.
func (c *committer) close() {
	if c.flight != nil {
		<-c.flight.done
		c.land()
	}
	if c.snap != nil {
		c.snap.Discard()
		c.snap = nil
	}
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
