package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"
)

// A Store with Options.Log set is one node of a cluster: every group commit
// goes through the replicated Log before it reaches Badger, and Badger holds
// a cache materialised from the log.
//
//   - Each user has a change log in Log. A group commit appends one entry
//     per user it wrote for: the user's writes (every key its requests set
//     or deleted, global keys such as tokens included) and what the hub
//     needs to hear of them. The append is conditional on the last entry
//     the node has applied for that user, so two nodes can never both
//     commit for one user from the same state: the loser catches up from
//     the log and runs its requests again.
//   - Entries of other nodes are applied in log order (Follow), through the
//     committer goroutine, between group commits, and reported to OnCommit
//     like local commits, so sessions on any node follow any node's writes.
//   - Sequence numbers, heads, epochs and high-water marks are inside the
//     entries, so they are the same on every node and a replica can resume
//     on any of them.
//   - Keys under meta/log/ are the node's own bookkeeping (how far it has
//     applied each user's log and the whole log) and are never appended.

// Log is a replicated, ordered log of per-user entries. Entry sequences are
// positions in the whole log: increasing, shared by all users.
type Log interface {
	// Append adds data to user's log if the last entry there is prev (0:
	// none) and returns its sequence; ErrLogConflict when it is not. id
	// identifies the append: an append retried with the same id after an
	// unknown outcome is not stored twice.
	Append(ctx context.Context, user string, prev uint64, id string, data []byte) (uint64, error)
	// Read returns user's entries after sequence after, in order.
	Read(ctx context.Context, user string, after uint64) ([]LogEntry, error)
	// Follow calls fn with every entry from sequence from on (all users,
	// in log order) until ctx ends; it returns ctx's error.
	Follow(ctx context.Context, from uint64, fn func(LogEntry)) error
	// Epoch returns the cluster's epoch, setting it to proposal when the
	// cluster has none yet.
	Epoch(ctx context.Context, proposal string) (string, error)
	// MaxEntry is the largest entry Append takes, in bytes: group commits
	// are cut to fit.
	MaxEntry() int
	// Last is the sequence of the last entry of any user (0: none).
	Last(ctx context.Context) (uint64, error)
}

// LogEntry is one entry of a user's log.
type LogEntry struct {
	User string
	Seq  uint64
	Data []byte
}

// ErrLogConflict is returned by Log.Append when the user's log has an entry
// after the one the append expected.
var ErrLogConflict = errors.New("store: the log has moved on")

// ErrLogUnavailable wraps the error of an append that could not be made.
var ErrLogUnavailable = errors.New("store: the cluster log is unavailable")

const (
	keyLogUser = "meta/log/u/"  // + user: sequence of the last entry applied for the user
	keyLogPos  = "meta/log/pos" // the follower's position: the last entry it handled
	// logAppendTimeout bounds one group commit's appends, retries included.
	logAppendTimeout = 15 * time.Second
	// logRetries bounds how often requests that lost a race for a user's
	// log run again before they fail.
	logRetries = 50
	// logBackoff is the unit of the random pause before requests that lost
	// a race run again: two nodes writing for one user take turns instead
	// of racing in step.
	logBackoff = 200 * time.Microsecond
)

// logRecord is an entry's content.
type logRecord struct {
	Prev    uint64     `msgpack:"p"`
	Writes  []logWrite `msgpack:"w"`
	Commits []Commit   `msgpack:"c,omitempty"`
}

type logWrite struct {
	Key string `msgpack:"k"`
	Val []byte `msgpack:"v,omitempty"`
	Del bool   `msgpack:"d,omitempty"`
}

// logState is what a clustered Store knows of the log.
type logState struct {
	log     Log
	node    string // this node's id, for append ids
	appends uint64 // appends made, for append ids
	mu      sync.Mutex
	applied map[string]uint64 // last entry applied per user
	pos     uint64            // last entry the follower handled
	entries chan logItem
	cancel  context.CancelFunc
	follow  sync.WaitGroup
}

// logItem is an entry to apply, or (done set) a barrier to signal once
// everything sent before it is applied. follower says the entry comes from
// Follow, in log order.
type logItem struct {
	e        LogEntry
	follower bool
	done     chan struct{}
}

// openLog loads the node's log bookkeeping, takes the cluster's epoch and
// starts following the log.
func (s *Store) openLog() error {
	ls := &logState{log: s.opts.Log, node: newNodeID(), applied: map[string]uint64{}, entries: make(chan logItem, 256)}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(keyLogUser)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			ls.applied[strings.TrimPrefix(k, keyLogUser)] = beUint(v)
		}
		if item, err := txn.Get([]byte(keyLogPos)); err == nil {
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			ls.pos = beUint(v)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), logAppendTimeout)
	epoch, err := ls.log.Epoch(ctx, s.epoch)
	cancel()
	if err != nil {
		return fmt.Errorf("store: cluster epoch: %w", err)
	}
	if epoch != s.epoch {
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyEpoch), []byte(epoch)) }); err != nil {
			return err
		}
		s.epoch = epoch
	}
	s.logs = ls
	fctx, fcancel := context.WithCancel(context.Background())
	ls.cancel = fcancel
	ls.follow.Add(1)
	go func() {
		defer ls.follow.Done()
		for fctx.Err() == nil {
			ls.mu.Lock()
			from := ls.pos + 1
			ls.mu.Unlock()
			err := ls.log.Follow(fctx, from, func(e LogEntry) {
				select {
				case ls.entries <- logItem{e: e, follower: true}:
				case <-fctx.Done():
				}
			})
			if fctx.Err() == nil {
				s.log.Warn("following the cluster log", "error", err)
				select {
				case <-time.After(time.Second):
				case <-fctx.Done():
				}
			}
		}
	}()
	return nil
}

// awaitLog returns once the follower has handled every entry the log held
// when it was called: a node opened on an existing cluster serves only once
// its cache is as current as the log (a new node rebuilds it here).
func (s *Store) awaitLog(ctx context.Context) error {
	ls := s.logs
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	last, err := ls.log.Last(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLogUnavailable, err)
	}
	logged := time.Now()
	for {
		ls.mu.Lock()
		pos := ls.pos
		ls.mu.Unlock()
		if pos >= last {
			return nil
		}
		if time.Since(logged) > 10*time.Second {
			s.log.Info("catching up with the cluster log", "at", pos, "of", last)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// closeLog stops following the log (before the committer stops).
func (s *Store) closeLog() {
	if s.logs != nil {
		s.logs.cancel()
		s.logs.follow.Wait()
	}
}

// CatchUp applies what the log holds for user that this node has not
// applied yet, and returns once it is applied. Without a log it does
// nothing.
func (s *Store) CatchUp(ctx context.Context, user string) error {
	ls := s.logs
	if ls == nil {
		return nil
	}
	ls.mu.Lock()
	after := ls.applied[user]
	ls.mu.Unlock()
	entries, err := ls.log.Read(ctx, user, after)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLogUnavailable, err)
	}
	send := func(it logItem) error {
		select {
		case ls.entries <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		}
	}
	for _, e := range entries {
		if err := send(logItem{e: e}); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	if err := send(logItem{done: done}); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopped:
		return ErrClosed
	}
}

// applyLogItem applies an entry of the log (committer goroutine, no group
// commit open).
func (c *committer) applyLogItem(it logItem) {
	if it.done != nil {
		close(it.done)
		return
	}
	// An entry that cannot be applied is tried again a few times: the
	// follower moves on after it (a later entry of the user, a conflict or
	// a session's catch-up brings it back, since it is after what the
	// node applied for the user).
	for try := 0; ; try++ {
		err := c.applyEntry(it.e, it.follower)
		if err == nil {
			return
		}
		if try == 3 {
			c.s.log.Error("applying a cluster log entry", "user", it.e.User, "seq", it.e.Seq, "error", err)
			return
		}
		select {
		case <-time.After(50 * time.Millisecond << try):
		case <-c.s.done:
			return
		}
	}
}

// applyEntry writes an entry of user's log into Badger unless it is
// already applied; an entry that does not follow the last one applied for
// its user brings the entries in between first. follower says the entry
// comes in log order from Follow (it moves the follower's position).
func (c *committer) applyEntry(e LogEntry, follower bool) error {
	s, ls := c.s, c.s.logs
	ls.mu.Lock()
	last := ls.applied[e.User]
	ls.mu.Unlock()
	if e.Seq <= last {
		if follower {
			c.advancePos(e.Seq)
		}
		return nil
	}
	var rec logRecord
	if err := msgpack.Unmarshal(e.Data, &rec); err != nil {
		return fmt.Errorf("%w: log entry %d: %v", ErrCorrupt, e.Seq, err)
	}
	if rec.Prev != last {
		// Entries of this user between the last applied and this one
		// were not applied (this node joined, or an append raced ours):
		// read them from the log first.
		ctx, cancel := context.WithTimeout(context.Background(), logAppendTimeout)
		missing, err := ls.log.Read(ctx, e.User, last)
		cancel()
		if err != nil {
			return err
		}
		for _, m := range missing {
			if m.Seq >= e.Seq {
				break
			}
			if err := c.applyEntry(m, false); err != nil {
				return err
			}
		}
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	var head uint64
	seqKey := keyUser(e.User) + "seq"
	for _, w := range rec.Writes {
		var err error
		if w.Del {
			err = txn.Delete([]byte(w.Key))
		} else {
			if w.Key == seqKey && len(w.Val) == 8 {
				head = beUint(w.Val)
			}
			err = txn.Set([]byte(w.Key), nonNil(w.Val))
		}
		if err != nil {
			return err
		}
	}
	if err := txn.Set([]byte(keyLogUser+e.User), be64(e.Seq)); err != nil {
		return err
	}
	if follower {
		if err := txn.Set([]byte(keyLogPos), be64(e.Seq)); err != nil {
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	ls.mu.Lock()
	ls.applied[e.User] = e.Seq
	if follower && e.Seq > ls.pos {
		ls.pos = e.Seq
	}
	ls.mu.Unlock()
	if head > 0 {
		c.cheads[e.User] = head
		s.mu.Lock()
		s.heads[e.User] = head
		s.mu.Unlock()
	}
	if s.opts.OnCommit != nil && len(rec.Commits) > 0 {
		s.opts.OnCommit(rec.Commits)
	}
	return nil
}

// advancePos moves the follower's position past an entry that needed no
// write (this node's own, or one a catch-up applied); it is persisted with
// the next entry applied.
func (c *committer) advancePos(seq uint64) {
	ls := c.s.logs
	ls.mu.Lock()
	if seq > ls.pos {
		ls.pos = seq
	}
	ls.mu.Unlock()
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// commitLogged commits the open group commit through the log (cluster
// mode; there is never a flight): it appends each user's writes, writes
// those appended into Badger and answers their requests; a user whose log
// moved on is caught up and its requests run again in a new group commit.
func (c *committer) commitLogged() {
	for attempt := 0; len(c.reqs) > 0; attempt++ {
		lost := c.appendAndWrite(attempt)
		if len(lost) == 0 {
			return
		}
		time.Sleep(time.Duration(rand.Int64N(int64(attempt+1))) * logBackoff)
		for _, u := range lostUsers(lost) {
			if err := c.s.catchUpNow(c, u); err != nil {
				c.s.log.Error("catching up a user's log", "user", u, "error", err)
			}
		}
		c.begin()
		for _, r := range lost {
			c.run(r)
		}
	}
}

func lostUsers(reqs []*request) []string {
	var us []string
	for _, r := range reqs {
		if !slices.Contains(us, r.user) {
			us = append(us, r.user)
		}
	}
	return us
}

// catchUpNow applies, in the committer goroutine, the entries of user's log
// this node lacks.
func (s *Store) catchUpNow(c *committer, user string) error {
	ls := s.logs
	ls.mu.Lock()
	after := ls.applied[user]
	ls.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), logAppendTimeout)
	entries, err := ls.log.Read(ctx, user, after)
	cancel()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := c.applyEntry(e, false); err != nil {
			return err
		}
	}
	return nil
}

// appendAndWrite appends the open group commit's writes user by user,
// writes the appended ones into Badger, answers their requests (and fails
// those the log refused for good), and returns the requests of users whose
// log moved on, to run again; the group commit is reset.
func (c *committer) appendAndWrite(attempt int) (lost []*request) {
	s, ls := c.s, c.s.logs
	for u, h := range c.heads {
		k := keyUser(u) + "seq"
		c.writes[k] = be64(h)
		c.owner[k] = u
	}
	// Each user's writes and commits.
	type part struct {
		rec    logRecord
		data   []byte // rec encoded: the entry appended
		seq    uint64
		err    error
		prev   uint64
		failed bool // a request of the user failed
		stale  bool // the node had not applied the user's last entry
	}
	parts := map[string]*part{}
	for i, r := range c.reqs {
		if parts[r.user] == nil {
			parts[r.user] = &part{}
		}
		if c.results[i] != nil {
			parts[r.user].failed = true
		}
	}
	for k, v := range c.writes {
		u := c.owner[k]
		p := parts[u]
		if p == nil {
			// Only keys of this group's requests are in the write set.
			// (The key's first segment only: a token is a key.)
			kind, _, _ := strings.Cut(k, "/")
			s.log.Error("a write without its request's user", "key_kind", kind)
			continue
		}
		p.rec.Writes = append(p.rec.Writes, logWrite{Key: k, Val: v, Del: v == nil})
	}
	for _, cm := range c.commits {
		if p := parts[cm.User]; p != nil {
			p.rec.Commits = append(p.rec.Commits, cm)
		}
	}
	ls.mu.Lock()
	for u, p := range parts {
		p.prev = ls.applied[u]
		p.rec.Prev = p.prev
	}
	ls.appends++
	id := ls.node + "-" + strconv.FormatUint(ls.appends, 36)
	ls.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), logAppendTimeout)
	var wg sync.WaitGroup
	for u, p := range parts {
		if len(p.rec.Writes) == 0 {
			if !p.failed {
				continue
			}
			// Nothing to append, but a refusal is an answer too: it holds
			// only if this node had the user's latest entry when it
			// decided (an append would have checked that).
			wg.Add(1)
			go func() {
				defer wg.Done()
				newer, err := ls.log.Read(ctx, u, p.prev)
				p.stale, p.err = len(newer) > 0, err
			}()
			continue
		}
		slices.SortFunc(p.rec.Writes, func(a, b logWrite) int { return strings.Compare(a.Key, b.Key) })
		data, err := msgpack.Marshal(&p.rec)
		if err != nil {
			p.err = err
			continue
		}
		p.data = data
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.seq, p.err = ls.log.Append(ctx, u, p.prev, id+"-"+u, data)
		}()
	}
	wg.Wait()
	cancel()
	// An append that failed otherwise than on a conflict may have been
	// made all the same (its answer lost): the log says.
	for u, p := range parts {
		if p.err == nil || p.data == nil || errors.Is(p.err, ErrLogConflict) {
			continue
		}
		rctx, rcancel := context.WithTimeout(context.Background(), logAppendTimeout)
		entries, err := ls.log.Read(rctx, u, p.prev)
		rcancel()
		if err != nil {
			continue
		}
		for _, e := range entries {
			if bytes.Equal(e.Data, p.data) {
				p.seq, p.err = e.Seq, nil
				break
			}
		}
	}

	// Badger gets the writes of the users whose append was made.
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	var err error
	for k, v := range c.writes {
		p := parts[c.owner[k]]
		if p == nil || p.seq == 0 {
			continue
		}
		if v == nil {
			err = txn.Delete(bytesOf(k))
		} else {
			err = txn.Set(bytesOf(k), v)
		}
		if err != nil {
			break
		}
	}
	for u, p := range parts {
		if p.seq > 0 && err == nil {
			err = txn.Set([]byte(keyLogUser+u), be64(p.seq))
		}
	}
	if err == nil {
		err = txn.Commit()
	}
	recovered := map[string]bool{}
	if err != nil {
		// The log holds appends Badger did not take: they are this
		// node's writes all the same. Apply them from the log (which
		// also reports them to OnCommit); what cannot be applied fails.
		err = fmt.Errorf("store: commit: %w", err)
		clear(c.cheads)
		s.mu.Lock()
		clear(s.heads)
		s.mu.Unlock()
		for u, p := range parts {
			if p.seq > 0 && s.catchUpNow(c, u) == nil {
				recovered[u] = true
			}
		}
	}
	ls.mu.Lock()
	for u, p := range parts {
		if p.seq > 0 && err == nil {
			ls.applied[u] = p.seq
		}
	}
	ls.mu.Unlock()
	if err == nil {
		var commits []Commit
		s.mu.Lock()
		for u, h := range c.heads {
			if p := parts[u]; p != nil && p.seq > 0 {
				s.heads[u] = h
				c.cheads[u] = h
			}
		}
		s.mu.Unlock()
		for _, cm := range c.commits {
			if p := parts[cm.User]; p != nil && p.seq > 0 {
				commits = append(commits, cm)
			}
		}
		if s.opts.OnCommit != nil && len(commits) > 0 {
			s.opts.OnCommit(commits)
		}
	}
	for i, r := range c.reqs {
		res := c.results[i]
		p := parts[r.user]
		switch {
		case (p.stale || errors.Is(p.err, ErrLogConflict)) && attempt < logRetries:
			// The user's requests, failed ones too, read a state the log
			// had moved past: they run again once this node catches up.
			lost = append(lost, r)
			continue
		case res != nil && p.err == nil:
		case err != nil && !recovered[r.user]:
			res = err
		case err != nil:
		case p.seq > 0:
		case p.err != nil:
			res = fmt.Errorf("%w: %v", ErrLogUnavailable, p.err)
		}
		r.reply <- res
	}
	c.reset()
	return lost
}

// newNodeID names this process's appends.
func newNodeID() string {
	return strconv.FormatInt(time.Now().UnixNano(), 36)
}
