package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/model"
)

// CompactStats says what one Compact run did.
type CompactStats struct {
	Users       int           // users whose floor was raised
	Tombstones  int           // feed entries of deleted items removed
	ExitMarkers int           // exit markers removed (feed entry and index key)
	VlogRewrite int           // value-log files rewritten by the GC
	Duration    time.Duration // wall time of the run
}

// compactChunk bounds how many removals one committer request carries, so a
// compaction never holds the committer for long: writers queue behind at
// most one chunk.
const compactChunk = 256

type compactTomb struct {
	kind    model.Kind
	id      string
	seq     uint64
	channel string
}

type compactExit struct {
	channel string
	kind    model.Kind
	id      string
	seq     uint64
}

// Compact drops, for every user, what the tombstone horizon lets go (SPEC
// §4.3): the feed entries of items deleted before now−horizon, and exit
// markers written before it. It then raises the user's floor to the highest
// sequence removed, so a replica whose cursor is older gets reset=horizon
// (a cursor at or above the floor has seen every removed entry).
//
// Deleted items keep their record, which holds nothing but the tombstone and
// the channel (crdt.Apply drops every field of a deleted item), so the id
// stays reserved: creating it again is item-id-already-exists. A compacted
// record has Seq 0 (it owns no feed entry any more).
//
// Age comes from versions: a tombstone's own version time, and for an exit
// marker the newest version time of its item (every change is stamped with
// the server clock, so it is never older than the exit). The scan reads a
// snapshot; removals go through the committer in chunks of compactChunk,
// each checked again against the current state. Then the Badger value log
// is garbage-collected until nothing is left to rewrite.
func (s *Store) Compact(ctx context.Context, now time.Time, horizon time.Duration) (CompactStats, error) {
	start := time.Now()
	var st CompactStats
	cutoff := now.Add(-horizon).UnixMilli()
	users, err := s.users()
	if err != nil {
		return st, err
	}
	for _, u := range users {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		tombs, exits, err := s.compactCandidates(u, cutoff)
		if err != nil {
			return st, fmt.Errorf("store: compact %s: %w", u, err)
		}
		raised := false
		for len(tombs) > 0 || len(exits) > 0 {
			nt := min(len(tombs), compactChunk)
			ne := min(len(exits), compactChunk-nt)
			var removedT, removedE int
			var floor uint64
			err := s.Update(ctx, u, func(tx *Tx) error {
				removedT, removedE, floor = 0, 0, 0
				for _, c := range tombs[:nt] {
					r, ok, err := tx.Item(c.kind, c.id)
					if err != nil {
						return err
					}
					if !ok || !r.Doc.IsDeleted() || r.Seq != c.seq || r.Channel != c.channel {
						continue // changed since the scan
					}
					tx.del(keyFeed(u, c.channel, c.seq))
					r.Seq = 0
					tx.set(keyItem(u, c.kind, c.id), encode(r))
					floor = max(floor, c.seq)
					removedT++
				}
				for _, c := range exits[:ne] {
					xk := keyExit(u, c.channel, c.kind, c.id)
					raw, ok, err := tx.get(xk)
					if err != nil {
						return err
					}
					if !ok || len(raw) != 8 || beUint(raw) != c.seq {
						continue
					}
					tx.del(keyFeed(u, c.channel, c.seq))
					tx.del(xk)
					floor = max(floor, c.seq)
					removedE++
				}
				if floor == 0 {
					return nil
				}
				raw, ok, err := tx.get(keyFloor(u))
				if err != nil {
					return err
				}
				if ok && len(raw) == 8 && beUint(raw) >= floor {
					return nil
				}
				tx.set(keyFloor(u), be64(floor))
				return nil
			})
			if err != nil {
				return st, fmt.Errorf("store: compact %s: %w", u, err)
			}
			st.Tombstones += removedT
			st.ExitMarkers += removedE
			raised = raised || floor > 0
			tombs, exits = tombs[nt:], exits[ne:]
		}
		if raised {
			st.Users++
		}
	}
	n, err := s.GCValueLog(ctx)
	st.VlogRewrite = n
	st.Duration = time.Since(start)
	if err != nil {
		return st, err
	}
	if st.Tombstones+st.ExitMarkers > 0 || n > 0 {
		s.log.Info("compaction", "users", st.Users, "tombstones", st.Tombstones, "exit_markers", st.ExitMarkers,
			"vlog_rewrites", n, "duration", st.Duration)
	}
	return st, nil
}

// GCValueLog runs Badger's value-log GC (discard ratio 0.5) until it has
// nothing left to rewrite, and returns how many files it rewrote. In-memory
// stores have no value log.
func (s *Store) GCValueLog(ctx context.Context) (int, error) {
	if s.opts.Dir == "" {
		return 0, nil
	}
	n := 0
	for ctx.Err() == nil {
		err := s.db.RunValueLogGC(0.5)
		switch {
		case err == nil:
			n++
			continue
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		default:
			return n, fmt.Errorf("store: value-log GC: %w", err)
		}
	}
	return n, ctx.Err()
}

// users lists every account (keys usr/<user>).
func (s *Store) users() ([]string, error) {
	var out []string
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte("usr/")
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, strings.TrimPrefix(string(it.Item().Key()), "usr/"))
		}
		return nil
	})
	return out, err
}

// compactCandidates scans a snapshot of user's items and exit markers for
// what is older than cutoff (Unix ms). It iterates Badger directly, one
// record at a time, so memory holds only the candidates.
func (s *Store) compactCandidates(user string, cutoff int64) ([]compactTomb, []compactExit, error) {
	var (
		tombs []compactTomb
		exits []compactExit
	)
	each := func(txn *badger.Txn, prefix string, fn func(rest string, v []byte) error) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		opts.PrefetchValues = false // values are inline in the LSM tree
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			rest := string(item.Key()[len(prefix):])
			if err := item.Value(func(v []byte) error { return fn(rest, v) }); err != nil {
				return err
			}
		}
		return nil
	}
	err := s.db.View(func(txn *badger.Txn) error {
		tx := &Tx{s: s, txn: txn, user: user, readOnly: true}
		for _, kind := range []model.Kind{model.KindChannel, model.KindFolder, model.KindEvent} {
			err := each(txn, keyItemPrefix(user, kind), func(id string, v []byte) error {
				if m, isRef, err := parseItemRef(v); isRef && err == nil && (!m.deleted || m.seq == 0) {
					return nil // not a tombstone in a feed: no need to read its record
				}
				var r Record
				if err := tx.decodeItem(v, &r); err != nil {
					return fmt.Errorf("item %s/%s: %w", kind, id, err)
				}
				if r.Doc.IsDeleted() && r.Seq != 0 && r.Doc.Deleted.Time <= cutoff {
					tombs = append(tombs, compactTomb{kind: kind, id: id, seq: r.Seq, channel: r.Channel})
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return each(txn, keyUser(user)+"x/", func(rest string, v []byte) error {
			// <channel>/<k>/<id>: ids never hold '/'.
			i := strings.LastIndexByte(rest, '/')
			if i < 0 || len(v) != 8 {
				return nil
			}
			j := strings.LastIndexByte(rest[:i], '/')
			if j < 0 {
				return nil
			}
			channel, kind, id := rest[:j], kindOf(rest[j+1:i]), rest[i+1:]
			seq := beUint(v)
			r, ok, err := tx.Item(kind, id)
			if err != nil {
				return err
			}
			if ok && r.Doc.MaxVersion().Time > cutoff {
				return nil // changed within the horizon: the exit may be recent
			}
			exits = append(exits, compactExit{channel: channel, kind: kind, id: id, seq: seq})
			return nil
		})
	})
	return tombs, exits, err
}

// DiskUsage measures Badger on disk: its LSM tables and its value log (with
// the memtable logs), in bytes allocated (Badger preallocates sparse log
// files, whose apparent size says little). An in-memory store reports zeros.
func (s *Store) DiskUsage() (lsm, vlog int64, err error) {
	if s.opts.Dir == "" {
		return 0, 0, nil
	}
	ents, err := os.ReadDir(filepath.Join(s.opts.Dir, "db"))
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			continue // removed by a compaction meanwhile
		}
		switch filepath.Ext(e.Name()) {
		case ".sst":
			lsm += allocated(info)
		case ".vlog", ".mem":
			vlog += allocated(info)
		}
	}
	return lsm, vlog, nil
}

// FilesUsage measures attachment content on disk, in bytes allocated. It
// walks the whole content directory.
func (s *Store) FilesUsage() (int64, error) {
	var n int64
	err := filepath.WalkDir(s.filesDir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += allocated(info)
			}
		}
		return nil
	})
	return n, err
}

// allocated is the space a file takes on disk: its allocated blocks where the
// platform reports them (Unix: Stat_t.Blocks, 512-byte units), else its size.
func allocated(info fs.FileInfo) int64 {
	if v := reflect.ValueOf(info.Sys()); v.Kind() == reflect.Pointer && !v.IsNil() {
		if b := v.Elem().FieldByName("Blocks"); b.IsValid() && b.CanInt() {
			return b.Int() * 512
		}
	}
	return info.Size()
}
