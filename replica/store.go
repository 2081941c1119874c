package replica

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/internal/mp"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

const (
	keySettings = "s/settings"
	keyReplica  = "s/replica"
	keyClock    = "s/clock"
	keyCursor   = "s/cursor"
	keyPerms    = "s/perms"
	keyRSeq     = "s/rseq"
	keyLastSync = "s/lastsync"
	// keyPushed holds the highest rseq ever pushed (8 bytes BE), written
	// before the push is sent: hello announces it as MaxRSeq.
	keyPushed    = "s/pushed"
	prefixBase   = "b/"
	prefixBlind  = "x/" // removal-id index of earlier versions, dropped at the welcome
	prefixOutbox = "o/"
	prefixRej    = "r/"
	// prefixOutboxIndex indexes the outbox by item: i/<kind>/<id>/<rseq BE>
	// (empty value) for every o/ entry, written and deleted with it, so a
	// local write reads the pending changes of its own item only.
	prefixOutboxIndex = "i/"
	// keyOutboxIndexed marks a store whose every o/ entry has its i/ key
	// (stores written before the index are indexed once by Open).
	keyOutboxIndexed = "s/oindexed"
)

// badgerOptions are the replica's Badger settings, chosen for a small
// resident set (docs/PERFORMANCE.md): values over 256 bytes (base documents,
// outbox entries) live in the value log, so the LSM tree, its memtables and
// the table builders of flushes and compactions hold keys and pointers only;
// no compression, hence no block cache; no conflict detection, since r.mu
// serialises every write.
//
// The value log is never garbage-collected. With Badger's value-log GC on,
// base items deleted when a scope narrowed came back after the replica was
// reopened: a read-only replica narrowed to one channel held the other
// channel's items again (simulator seed 713 of 120 ops, under load: 6
// failures in 20 runs with GC, none in 20 without). So a replica's value log
// keeps the bytes of changed and deleted documents until its directory is
// created again; the LSM tree is compacted as usual.
func badgerOptions(dir string) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(nil).
		WithValueThreshold(256).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(8 << 20).
		WithDetectConflicts(false).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithValueLogFileSize(64 << 20).
		WithSyncWrites(false)
}

// Settings are what init records.
type Settings struct {
	Server   string `json:"server"`
	Username string `json:"username"`
	Token    string `json:"token"`
}

type permState struct {
	AccessID    string             `json:"accessId"`
	AccessType  string             `json:"accessType"`
	Permissions []model.Permission `json:"permissions"`
	PermVersion int64              `json:"permVersion"`
	Key         []byte             `json:"key"`
	// Unconfirmed says the replica has not yet received the whole scope of
	// PermVersion: the server re-sends what new permissions include from the
	// start of the feed, and until a caught-up batch ends that re-send, hello
	// must keep announcing HelloVersion (the version whose scope the replica
	// does hold), or an interrupted re-send would never be resumed.
	Unconfirmed  bool  `json:"unconfirmed,omitempty"`
	HelloVersion int64 `json:"helloVersion,omitempty"`
}

// announced is the permissions version hello sends.
func (p *permState) announced() int64 {
	if p.Unconfirmed {
		return p.HelloVersion
	}
	return p.PermVersion
}

type clockState struct {
	Last   crdt.Version `msgpack:"l"`
	Offset int64        `msgpack:"o"`
}

// entry is one local change: pending in the outbox, or acknowledged and kept
// as overlay until the cursor reaches Seq.
type entry struct {
	RSeq   uint64   `msgpack:"r"`
	Kind   string   `msgpack:"k"`
	ID     string   `msgpack:"i"`
	Create bool     `msgpack:"c,omitempty"`
	Delta  crdt.Doc `msgpack:"d"`
	Acked  bool     `msgpack:"a,omitempty"`
	Seq    uint64   `msgpack:"s,omitempty"`
	Epoch  string   `msgpack:"e,omitempty"`
	// Repush marks a change made from server state after a restore: a
	// refusal or a conflict on it is expected and not reported.
	Repush bool `msgpack:"p,omitempty"`
}

func baseKey(kind, id string) []byte { return []byte(prefixBase + kind + "/" + id) }

func splitItemKey(k string) (kind, id string) {
	kind, id, _ = strings.Cut(k, "/")
	return kind, id
}

func outboxKey(rseq uint64) []byte {
	k := make([]byte, len(prefixOutbox)+8)
	copy(k, prefixOutbox)
	binary.BigEndian.PutUint64(k[len(prefixOutbox):], rseq)
	return k
}

func getRaw(txn *badger.Txn, key string) ([]byte, bool, error) {
	it, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := it.ValueCopy(nil)
	return v, err == nil, err
}

func getJSON(txn *badger.Txn, key string, v any) (bool, error) {
	raw, ok, err := getRaw(txn, key)
	if err != nil || !ok {
		return false, err
	}
	return true, json.Unmarshal(raw, v)
}

func setJSON(txn *badger.Txn, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return txn.Set([]byte(key), raw)
}

func getBase(txn *badger.Txn, kind, id string) (crdt.Doc, bool, error) {
	var d crdt.Doc
	it, err := txn.Get(baseKey(kind, id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	err = it.Value(func(v []byte) error { return msgpack.Unmarshal(v, &d) })
	return d, err == nil, err
}

func putBase(txn *badger.Txn, ix *blindIndex, kind, id string, d crdt.Doc) error {
	return putBaseBytes(txn, ix, kind, id, crdt.AppendDoc(nil, &d))
}

// putServerItem stores the server's state of an item (raw is its
// encoding, deleted whether it is a tombstone) merged into base. When base
// does not hold the item and raw is not a tombstone, raw is stored as it
// is and never decoded; otherwise doc decodes it for the merge. When the
// merge leaves the server's state as it is, the usual case since it
// includes every earlier one, raw is stored without encoding it again.
// absent says base is known not to hold the item (it is then not read).
func putServerItem(txn *badger.Txn, ix *blindIndex, kind, id string, raw []byte, deleted bool, doc func() (crdt.Doc, error), absent bool) error {
	var cur crdt.Doc
	var found bool
	if !absent {
		var err error
		if cur, found, err = getBase(txn, kind, id); err != nil {
			return err
		}
	}
	if found || deleted {
		d, err := doc()
		if err != nil {
			return err
		}
		if m := crdt.Merge(cur, d); !crdt.Equal(m, d) {
			return putBase(txn, ix, kind, id, m)
		}
	}
	return putBaseBytes(txn, ix, kind, id, raw)
}

// putBaseBytes stores an encoded base document and its x/ index entry.
// baseSet is what a session knows of base when base was empty as the
// session began: the items it has written since, as 64-bit hashes. Any
// other item is absent from base. A hash collision only makes an absent
// item look present (it is then read), never the reverse.
type baseSet struct {
	seed maphash.Seed
	seen map[uint64]struct{}
}

func newBaseSet() *baseSet {
	return &baseSet{seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}
}

func (b *baseSet) hash(kind, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(b.seed)
	h.WriteString(kind)
	h.WriteByte('/')
	h.WriteString(id)
	return h.Sum64()
}

// absent reports whether base surely lacks the item (false for a nil set).
func (b *baseSet) absent(kind, id string) bool {
	if b == nil {
		return false
	}
	_, ok := b.seen[b.hash(kind, id)]
	return !ok
}

// add notes that base may now hold the item.
func (b *baseSet) add(kind, id string) {
	if b != nil {
		b.seen[b.hash(kind, id)] = struct{}{}
	}
}

// baseEmpty reports whether base holds no item at all.
func baseEmpty(txn *badger.Txn) bool {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefixBase)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	it.Rewind()
	return !it.Valid()
}

func putBaseBytes(txn *badger.Txn, ix *blindIndex, kind, id string, raw []byte) error {
	if err := txn.Set(baseKey(kind, id), raw); err != nil {
		return err
	}
	ix.add(kind, id)
	return nil
}

func deleteBase(txn *badger.Txn, kind, id string) error {
	return txn.Delete(baseKey(kind, id))
}

// blindIndex maps the removal ids of one access key (syncproto.BlindID) to
// the items base holds, in memory. A session builds it from base on the
// first removal it receives and adds every item it writes to base from
// then on, so it lists at least what base holds. An entry for an item no
// longer in base is harmless: a removal naming it deletes nothing, and its
// blind id can name no other item.
type blindIndex struct {
	key []byte
	ids map[string]string // blind id → "kind/id"; nil until built
}

func (ix *blindIndex) add(kind, id string) {
	if ix != nil && ix.ids != nil {
		ix.ids[string(syncproto.BlindID(ix.key, kind, id))] = kind + "/" + id
	}
}

// lookup returns the item a removal id names, building the index from
// base (as txn sees it) the first time.
func (ix *blindIndex) lookup(txn *badger.Txn, blind []byte) (kind, id string, ok bool, err error) {
	if ix.ids == nil {
		ids := map[string]string{}
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefixBase)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		for it.Rewind(); it.Valid(); it.Next() {
			item := strings.TrimPrefix(string(it.Item().Key()), prefixBase)
			k, i := splitItemKey(item)
			ids[string(syncproto.BlindID(ix.key, k, i))] = item
		}
		it.Close()
		ix.ids = ids
	}
	item, ok := ix.ids[string(blind)]
	if !ok {
		return "", "", false, nil
	}
	kind, id = splitItemKey(item)
	return kind, id, true, nil
}

// eachPrefix calls fn for every key under prefix (values copied).
func eachPrefix(txn *badger.Txn, prefix string, fn func(k string, v []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		more, err := fn(string(item.Key()), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func loadEntries(txn *badger.Txn) ([]entry, error) {
	var out []entry
	err := eachPrefix(txn, prefixOutbox, func(_ string, v []byte) (bool, error) {
		var e entry
		if err := msgpack.Unmarshal(v, &e); err != nil {
			return false, err
		}
		out = append(out, e)
		return true, nil
	})
	return out, err
}

func outboxIndexKey(kind, id string, rseq uint64) []byte {
	k := make([]byte, 0, len(prefixOutboxIndex)+len(kind)+len(id)+10)
	k = append(append(append(append(k, prefixOutboxIndex...), kind...), '/'), id...)
	return binary.BigEndian.AppendUint64(append(k, '/'), rseq)
}

// putEntry stores an outbox entry and its index key.
func putEntry(txn *badger.Txn, e *entry) error {
	raw, err := msgpack.Marshal(e)
	if err != nil {
		return err
	}
	if err := txn.Set(outboxKey(e.RSeq), raw); err != nil {
		return err
	}
	return txn.Set(outboxIndexKey(e.Kind, e.ID, e.RSeq), nil)
}

// putStoredEntry rewrites an outbox entry read by readEntry (its index key
// exists already).
func putStoredEntry(txn *badger.Txn, e *storedEntry) error {
	raw, err := msgpack.Marshal(e)
	if err != nil {
		return err
	}
	return txn.Set(outboxKey(e.RSeq), raw)
}

// deleteEntry deletes an outbox entry and its index key.
func deleteEntry(txn *badger.Txn, kind, id string, rseq uint64) error {
	if err := txn.Delete(outboxKey(rseq)); err != nil {
		return err
	}
	return txn.Delete(outboxIndexKey(kind, id, rseq))
}

// itemEntries returns the outbox entries of one item, in rseq order.
func itemEntries(txn *badger.Txn, kind model.Kind, id string) ([]entry, error) {
	return indexedEntries(txn, prefixOutboxIndex+string(kind)+"/"+id+"/")
}

// kindEntries returns the outbox entries of every item of kind.
func kindEntries(txn *badger.Txn, kind model.Kind) ([]entry, error) {
	return indexedEntries(txn, prefixOutboxIndex+string(kind)+"/")
}

func indexedEntries(txn *badger.Txn, prefix string) ([]entry, error) {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	var out []entry
	for it.Rewind(); it.Valid(); it.Next() {
		k := it.Item().Key()
		if len(k) < len(prefix)+8 {
			continue
		}
		raw, ok, err := getRaw(txn, string(outboxKey(binary.BigEndian.Uint64(k[len(k)-8:]))))
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var e entry
		if err := msgpack.Unmarshal(raw, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// storedEntry is an outbox entry with its delta left encoded: the push
// path reads, sends and acknowledges entries without decoding the changes
// (entry and storedEntry must keep the same msgpack keys).
type storedEntry struct {
	RSeq   uint64             `msgpack:"r"`
	Kind   string             `msgpack:"k"`
	ID     string             `msgpack:"i"`
	Create bool               `msgpack:"c,omitempty"`
	Delta  msgpack.RawMessage `msgpack:"d"`
	Acked  bool               `msgpack:"a,omitempty"`
	Seq    uint64             `msgpack:"s,omitempty"`
	Epoch  string             `msgpack:"e,omitempty"`
	Repush bool               `msgpack:"p,omitempty"`
}

// readEntry reads an encoded entry in one pass; Delta is a slice of raw.
func readEntry(raw []byte) (storedEntry, error) {
	var e storedEntry
	r := mp.NewReader(raw)
	err := r.Map(func(k []byte) (err error) {
		switch string(k) {
		case "r":
			e.RSeq, err = r.Uint()
		case "k":
			e.Kind, err = r.Name()
		case "i":
			e.ID, err = r.String()
		case "c":
			e.Create, err = r.Bool()
		case "d":
			start := r.Offset()
			if err = r.Skip(); err == nil {
				e.Delta = raw[start:r.Offset():r.Offset()]
			}
		case "a":
			e.Acked, err = r.Bool()
		case "s":
			e.Seq, err = r.Uint()
		case "e":
			e.Epoch, err = r.Name()
		case "p":
			e.Repush, err = r.Bool()
		default:
			err = r.Skip()
		}
		return err
	})
	if err != nil {
		return e, fmt.Errorf("replica: outbox entry: %w", err)
	}
	return e, nil
}

// loadStoredEntry reads the outbox entry rseq (ok false when there is none)
// and returns it with its encoding, which its Delta slices.
func loadStoredEntry(txn *badger.Txn, rseq uint64) (e storedEntry, raw []byte, ok bool, err error) {
	raw, ok, err = getRaw(txn, string(outboxKey(rseq)))
	if err != nil || !ok {
		return e, nil, ok, err
	}
	e, err = readEntry(raw)
	return e, raw, err == nil, err
}

// entryHead is an outbox entry without its delta: enough to count, order
// and trim the outbox without decoding every change.
type entryHead struct {
	RSeq  uint64
	Kind  string
	ID    string
	Acked bool
	Seq   uint64
	Epoch string
}

func headOf(raw []byte) (entryHead, error) {
	e, err := readEntry(raw)
	return entryHead{RSeq: e.RSeq, Kind: e.Kind, ID: e.ID, Acked: e.Acked, Seq: e.Seq, Epoch: e.Epoch}, err
}

// eachEntry calls fn with the encoded value (valid during the call only) of
// every outbox entry from rseq from on, in rseq order, until fn returns
// false.
func eachEntry(txn *badger.Txn, from uint64, fn func(raw []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefixOutbox)
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(outboxKey(from)); it.Valid(); it.Next() {
		more := false
		err := it.Item().Value(func(raw []byte) (err error) {
			more, err = fn(raw)
			return err
		})
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// countPending counts the outbox entries not yet acknowledged.
func countPending(txn *badger.Txn) (int, error) {
	n := 0
	err := eachEntry(txn, 0, func(raw []byte) (bool, error) {
		h, err := headOf(raw)
		if err == nil && !h.Acked {
			n++
		}
		return err == nil, err
	})
	return n, err
}

// ensureOutboxIndex writes the i/ key of every o/ entry of a store written
// before the index existed, then marks the store indexed.
func ensureOutboxIndex(db *badger.DB) error {
	var done bool
	if err := db.View(func(txn *badger.Txn) error {
		_, ok, err := getRaw(txn, keyOutboxIndexed)
		done = ok
		return err
	}); err != nil || done {
		return err
	}
	for from := uint64(0); ; {
		var heads []entryHead
		if err := db.View(func(txn *badger.Txn) error {
			return eachEntry(txn, from, func(raw []byte) (bool, error) {
				h, err := headOf(raw)
				heads = append(heads, h)
				return len(heads) < 1000, err
			})
		}); err != nil {
			return err
		}
		err := db.Update(func(txn *badger.Txn) error {
			for _, h := range heads {
				if err := txn.Set(outboxIndexKey(h.Kind, h.ID, h.RSeq), nil); err != nil {
					return err
				}
			}
			if len(heads) < 1000 {
				return txn.Set([]byte(keyOutboxIndexed), []byte{1})
			}
			return nil
		})
		if err != nil || len(heads) < 1000 {
			return err
		}
		from = heads[len(heads)-1].RSeq + 1
	}
}

// deletePrefixes deletes every key under the prefixes, in bounded
// transactions.
func (r *Replica) deletePrefixes(prefixes ...string) error {
	for _, p := range prefixes {
		for {
			var keys [][]byte
			err := r.db.View(func(txn *badger.Txn) error {
				opts := badger.DefaultIteratorOptions
				opts.Prefix = []byte(p)
				opts.PrefetchValues = false
				it := txn.NewIterator(opts)
				defer it.Close()
				for it.Rewind(); it.Valid() && len(keys) < 1000; it.Next() {
					keys = append(keys, it.Item().KeyCopy(nil))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if len(keys) == 0 {
				break
			}
			if err := r.db.Update(func(txn *badger.Txn) error {
				for _, k := range keys {
					if err := txn.Delete(k); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}
