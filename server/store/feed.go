package store

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/internal/mp"
	"github.com/pryvsync/pryvsync/model"
)

// FeedEntry is one entry of a channel feed.
type FeedEntry struct {
	Seq     uint64
	Channel string
	Kind    model.Kind
	ID      string
	// Exit marks an item that left this channel at Seq.
	Exit bool
	// Raw is the item's record as the entry carries it (nil for exits and
	// for entries written before entries carried records); read it with
	// Tx.FeedRecord.
	Raw []byte

	// From the entry's header ("<k>+" form, summary true): the document's
	// bytes within Raw and what Summary reports of it.
	summary, deleted, hasCreated bool
	docStart, docEnd             int
}

// FeedRecord returns the record of a feed entry that is not an exit: the
// one the entry carries, else the item's stored record.
func (t *Tx) FeedRecord(e FeedEntry) (*Record, bool, error) {
	if e.Raw == nil {
		return t.Item(e.Kind, e.ID)
	}
	var r Record
	if err := decodeRecord(e.Raw, &r); err != nil {
		return nil, false, fmt.Errorf("feed entry %d: %w", e.Seq, err)
	}
	return &r, true, nil
}

// ChannelIDs lists every channel id the user ever had (tombstoned ones
// included), for reading every feed.
func (t *Tx) ChannelIDs() ([]string, error) {
	var ids []string
	prefix := keyItemPrefix(t.user, model.KindChannel)
	err := t.scan(prefix, true, func(k string, _ []byte) (bool, error) {
		ids = append(ids, k[len(prefix):])
		return true, nil
	})
	return ids, err
}

type feedIter struct {
	it      *badger.Iterator
	channel string
	prefix  []byte
}

type feedHeap []*feedIter

func (h feedHeap) Len() int { return len(h) }
func (h feedHeap) Less(i, j int) bool {
	a := h[i].it.Item().Key()[len(h[i].prefix):]
	b := h[j].it.Item().Key()[len(h[j].prefix):]
	if c := bytes.Compare(a, b); c != 0 {
		return c < 0
	}
	return h[i].channel < h[j].channel
}
func (h feedHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *feedHeap) Push(x any)   { *h = append(*h, x.(*feedIter)) }
func (h *feedHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ReadFeed merges the feeds of channels by sequence and calls fn for each
// entry after seq `after`, in ascending sequence order, until fn returns
// false. It must run in a read-only transaction (View).
func (t *Tx) ReadFeed(channels []string, after uint64, fn func(e FeedEntry) (bool, error)) error {
	if !t.readOnly {
		panic("store: ReadFeed needs a read-only transaction")
	}
	h := make(feedHeap, 0, len(channels))
	defer func() {
		for _, fi := range h {
			fi.it.Close()
		}
	}()
	for _, ch := range channels {
		prefix := []byte(keyFeedPrefix(t.user, ch))
		opts := badger.DefaultIteratorOptions
		opts.Prefix = prefix
		// Values are in the LSM tree, never the value log: prefetching
		// would start a goroutine per entry to copy a value that
		// parseFeedValue copies anyway.
		opts.PrefetchValues = false
		it := t.txn.NewIterator(opts)
		it.Seek(append(append([]byte{}, prefix...), be64(after+1)...))
		if !it.Valid() {
			it.Close()
			continue
		}
		h = append(h, &feedIter{it: it, channel: ch, prefix: prefix})
	}
	heap.Init(&h)
	for h.Len() > 0 {
		fi := h[0]
		item := fi.it.Item()
		k := item.Key()
		if len(k) != len(fi.prefix)+8 {
			fi.it.Next()
			if fi.it.Valid() {
				heap.Fix(&h, 0)
			} else {
				fi.it.Close()
				heap.Pop(&h)
			}
			continue
		}
		e := FeedEntry{Seq: binary.BigEndian.Uint64(k[len(fi.prefix):]), Channel: fi.channel}
		err := item.Value(func(v []byte) error { return parseFeedValue(v, &e) })
		if err != nil {
			return err
		}
		more, err := fn(e)
		if err != nil || !more {
			return err
		}
		fi.it.Next()
		if fi.it.Valid() {
			heap.Fix(&h, 0)
		} else {
			fi.it.Close()
			heap.Pop(&h)
		}
	}
	return nil
}

// feedRecordBytes returns the record a feed entry's value carries (ok false
// when it carries none or is malformed), without copying.
func feedRecordBytes(v []byte) (rec []byte, ok bool) {
	var e FeedEntry
	_, rec, err := parseFeedBytes(v, &e)
	return rec, err == nil && rec != nil
}

// parseFeedValue reads a feed entry's value (see feedRef and feedValueOf;
// also the older "<k>=" form), copying what it keeps.
func parseFeedValue(v []byte, e *FeedEntry) error {
	id, rec, err := parseFeedBytes(v, e)
	e.ID = string(id)
	if rec != nil {
		e.Raw = bytes.Clone(rec)
	}
	return err
}

// parseFeedBytes reads a feed entry's value into e, except its id and its
// record, which it returns aliasing v (rec nil for a bare reference or an
// exit).
func parseFeedBytes(v []byte, e *FeedEntry) (id, rec []byte, err error) {
	if len(v) < 3 {
		return nil, nil, ErrCorrupt
	}
	e.Kind = kindOf(string(v[:1]))
	uvarint := func(b []byte) (int, []byte, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return 0, nil, false
		}
		return int(n), b[w:], true
	}
	switch v[1] {
	case ':', '!':
		e.Exit = v[1] == '!'
		return v[2:], nil, nil
	case '=':
		n, rest, ok := uvarint(v[2:])
		if !ok || n == 0 {
			return nil, nil, ErrCorrupt
		}
		return rest[:n], rest[n:], nil
	case '+':
		flags := v[2]
		n, rest, ok := uvarint(v[3:])
		if !ok || n == 0 || flags&^(feedDeleted|feedHasCreated) != 0 {
			return nil, nil, ErrCorrupt
		}
		id = rest[:n]
		start, rest, ok1 := uvarint(rest[n:])
		length, rest, ok2 := uvarint(rest)
		if !ok1 || !ok2 || start > len(rest) || length > len(rest)-start || length == 0 {
			return nil, nil, ErrCorrupt
		}
		e.summary = true
		e.deleted, e.hasCreated = flags&feedDeleted != 0, flags&feedHasCreated != 0
		e.docStart, e.docEnd = start, start+length
		return id, rest, nil
	}
	return nil, nil, ErrCorrupt
}

// HighWater returns the replica's last applied replica sequence.
func (t *Tx) HighWater(replica string) (uint64, error) {
	raw, ok, err := t.get(KeyHighWater(t.user, replica))
	if err != nil || !ok || len(raw) != 8 {
		return 0, err
	}
	return beUint(raw), nil
}

// SetHighWater records the replica's high-water mark, in the same
// transaction as the change it covers.
func (t *Tx) SetHighWater(replica string, rseq uint64) {
	t.set(KeyHighWater(t.user, replica), be64(rseq))
}

// PutResults stores the results of the changes one push applied, for
// replays: rseqs in increasing order, results[i] the encoded result of
// rseqs[i]. One key holds them all.
func (t *Tx) PutResults(replica string, rseqs []uint64, results [][]byte) {
	if len(rseqs) == 0 {
		return
	}
	n := 0
	for _, r := range results {
		n += len(r) + 16
	}
	v := make([]byte, 0, n+8)
	v = mp.AppendArrayLen(v, 2*len(rseqs))
	for i, rs := range rseqs {
		v = mp.AppendUint(v, rs)
		v = mp.AppendBin(v, results[i])
	}
	k := KeyResults(t.user, replica, rseqs[0], len(rseqs))
	t.set(k, v)
	if t.c != nil {
		t.c.stored = append(t.c.stored, k)
	}
}

// Result loads the stored result of a replica's change.
func (t *Tx) Result(replica string, rseq uint64) ([]byte, bool, error) {
	prefix := KeyResultPrefix(t.user, replica)
	keys, err := t.resultKeys(prefix)
	if err != nil {
		return nil, false, err
	}
	// The group that may hold rseq is the last one starting at or before it.
	var at string
	for _, k := range keys {
		if len(k) == len(prefix)+resultsSuffix && beUint([]byte(k[len(prefix):len(prefix)+8])) <= rseq {
			at = k
		}
	}
	if at == "" {
		return nil, false, nil
	}
	v, ok, err := t.get(at)
	if err != nil || !ok {
		return nil, false, err
	}
	r := mp.NewReader(v)
	n, err := r.ArrayLen()
	if err != nil {
		return nil, false, fmt.Errorf("%w: stored results %q: %v", ErrCorrupt, at, err)
	}
	for range n / 2 {
		rs, err := r.Uint()
		if err != nil {
			return nil, false, fmt.Errorf("%w: stored results %q: %v", ErrCorrupt, at, err)
		}
		res, err := r.Bytes()
		if err != nil {
			return nil, false, fmt.Errorf("%w: stored results %q: %v", ErrCorrupt, at, err)
		}
		if rs == rseq {
			return res, true, nil
		}
	}
	return nil, false, nil
}

// PruneResults keeps the newest pushes' stored results of a replica that
// hold at least keep results, and drops the older ones (and any stored one
// result per key, as an earlier version did).
func (t *Tx) PruneResults(replica string, keep int) error {
	prefix := KeyResultPrefix(t.user, replica)
	keys, err := t.resultKeys(prefix)
	if err != nil {
		return err
	}
	newer := 0
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		switch len(k) - len(prefix) {
		case resultsSuffix:
			if newer >= keep {
				t.del(k)
			}
			newer += int(binary.BigEndian.Uint32([]byte(k[len(prefix)+8:])))
		case 8:
			t.del(k)
		}
	}
	return nil
}

// resultKeys lists the stored result keys under prefix in key order, as
// scan would, without going through every key of the committer's write
// sets (a whole group commit's): the only result keys those hold are the
// ones PutResult noted (writes and deletions of a key noted or in the
// snapshot), so the snapshot's keys and the noted ones suffice.
func (t *Tx) resultKeys(prefix string) ([]string, error) {
	var keys []string
	c := t.c
	if c == nil {
		err := t.scan(prefix, true, func(k string, _ []byte) (bool, error) {
			keys = append(keys, k)
			return true, nil
		})
		return keys, err
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false
	it := t.txn.NewIterator(opts)
	for it.Rewind(); it.Valid(); it.Next() {
		k := string(it.Item().Key())
		if _, found := t.layered(k); !found {
			keys = append(keys, k)
		}
	}
	it.Close()
	noted := [][]string{c.stored}
	if c.flight != nil {
		noted = append(noted, c.flight.stored)
	}
	for _, ks := range noted {
		for _, k := range ks {
			if strings.HasPrefix(k, prefix) {
				if v, _ := t.layered(k); v != nil {
					keys = append(keys, k)
				}
			}
		}
	}
	sort.Strings(keys)
	return slices.Compact(keys), nil
}
func keyFloor(user string) string { return keyUser(user) + "floor" }

// Floor is the sequence below which the user's tombstones were compacted: a
// replica whose cursor is older must reset (SPEC §4.3).
func (s *Store) Floor(user string) uint64 {
	var f uint64
	_ = s.View(user, func(tx *Tx) error {
		raw, ok, err := tx.get(keyFloor(user))
		if err == nil && ok && len(raw) == 8 {
			f = beUint(raw)
		}
		return err
	})
	return f
}

// Summary returns the encoded document inside the record the entry
// carries (nil when it carries none), whether it is a tombstone and whether
// it has the created field, without decoding it: from the entry's header
// when the entry has one, else by scanning the document (ScanDoc). The
// header's offsets are checked against the record, but the document's
// bytes are not: a stored value corrupted on disk goes out as it is, and
// the replica's validation gate refuses it.
func (e FeedEntry) Summary() (doc []byte, deleted, created bool, err error) {
	if e.Raw == nil {
		return nil, false, false, nil
	}
	if e.summary {
		return e.Raw[e.docStart:e.docEnd:e.docEnd], e.deleted, e.hasCreated, nil
	}
	doc, info, err := e.ScanDoc(model.FieldCreated)
	return doc, info.Deleted, info.HasField, err
}

// ScanDoc returns the encoded document inside the record the entry
// carries (nil when it carries none) and what crdt.ScanDoc learns of it,
// in one pass and without decoding it.
func (e FeedEntry) ScanDoc(field string) (doc []byte, info crdt.DocInfo, err error) {
	if e.Raw == nil {
		return nil, info, nil
	}
	r := mp.NewReader(e.Raw)
	err = r.Map(func(k []byte) (err error) {
		if string(k) != "d" {
			return r.Skip()
		}
		start := r.Offset()
		if info, err = crdt.ScanDoc(r, field); err == nil {
			doc = e.Raw[start:r.Offset():r.Offset()]
		}
		return err
	})
	if err == nil && doc == nil {
		err = errors.New("no document")
	}
	if err != nil {
		return nil, info, fmt.Errorf("%w: feed entry %d: %v", ErrCorrupt, e.Seq, err)
	}
	return doc, info, nil
}
