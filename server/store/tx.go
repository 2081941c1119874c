package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unsafe"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// ErrCorrupt wraps a stored value that does not decode.
var ErrCorrupt = errors.New("store: corrupt stored value")

// Tx is one write request's (or one reader's) view of the store. Reads see
// the request's own writes first, then the shared transaction. A write
// request writes straight into its group commit's write set and keeps an
// undo log, so a request that fails is rolled back before the next one runs:
// its writes reach Badger only if it succeeds.
type Tx struct {
	s        *Store
	txn      *badger.Txn // read snapshot (under the committer's layers)
	user     string
	readOnly bool

	c           *committer           // write requests: the committer whose write set they join
	undo        []undoEntry          // the request's writes, to roll back
	n           int                  // writes made (an upper bound on the keys they touch)
	bytes       int64                // estimated size of those writes
	meta        map[string]metaEntry // records this request decoded or wrote
	peeked      map[string]peekEntry // records decoded by Peek
	head        uint64               // this request's head seq, 0 = unchanged
	notices     []Notice
	touch       []model.EventFacts // for the next PutItem (Touching)
	touchFolder *NoticeFolder      // for the next PutItem (TouchingFolder)
	// noticeUndo records, once a savepoint was taken, each notice changed
	// in place (its state before), so RollbackTo restores it.
	noticeUndo []noticeMark
	savepoints bool
	accesses   []string
}

// peekEntry is a record Peek decoded, and the bytes it came from.
type peekEntry struct {
	raw []byte
	r   *Record
}

type undoEntry struct {
	key string
	old []byte
	had bool
}

// User is the account the request writes for.
func (t *Tx) User() string { return t.user }

// Now is the store clock in Unix seconds.
func (t *Tx) Now() float64 { return float64(t.s.opts.Now().UnixMicro()) / 1e6 }

// Store returns the store the transaction belongs to.
func (t *Tx) Store() *Store { return t.s }

// rollback undoes the request's writes.
func (t *Tx) rollback() {
	t.RollbackTo(Savepoint{})
}

// Savepoint marks a point in a write request, to undo what follows it
// with RollbackTo while keeping what came before.
type Savepoint struct {
	undo, notices, marks, accesses int
	head                           uint64
}

// noticeMark is a notice's state before a change made in place.
type noticeMark struct {
	i       int
	exact   bool
	events  []model.EventFacts
	folders []NoticeFolder
	gone    []NoticeFolder
}

// Savepoint marks the request's current state.
func (t *Tx) Savepoint() Savepoint {
	t.savepoints = true
	return Savepoint{undo: len(t.undo), notices: len(t.notices), marks: len(t.noticeUndo), accesses: len(t.accesses), head: t.head}
}

// markNotice records notice i's state before a change in place.
func (t *Tx) markNotice(i int) {
	if t.savepoints {
		n := &t.notices[i]
		t.noticeUndo = append(t.noticeUndo, noticeMark{i: i, exact: n.Exact, events: n.Events, folders: n.Folders, gone: n.Gone})
	}
}

// RollbackTo undoes the writes made since sp: one change of several in a
// request (a push, an HTTP batch) that is refused after it wrote, while the
// others stay. The sequence numbers it took are given back (they stay
// gap-free). The request's caches check the bytes they were read from, so
// they stay valid.
func (t *Tx) RollbackTo(sp Savepoint) {
	w := t.c.writes
	for i := len(t.undo) - 1; i >= sp.undo; i-- {
		u := t.undo[i]
		if u.had {
			w[u.key] = u.old
		} else {
			delete(w, u.key)
		}
	}
	t.undo = t.undo[:sp.undo]
	for k := len(t.noticeUndo) - 1; k >= sp.marks; k-- {
		if m := t.noticeUndo[k]; m.i < sp.notices {
			n := &t.notices[m.i]
			n.Exact, n.Events, n.Folders, n.Gone = m.exact, m.events, m.folders, m.gone
		}
	}
	t.noticeUndo = t.noticeUndo[:sp.marks]
	t.notices = t.notices[:sp.notices]
	t.accesses = t.accesses[:sp.accesses]
	t.head = sp.head
	t.touch, t.touchFolder = nil, nil
}

// extract returns the request's writes and rolls them back.
func (t *Tx) extract() map[string][]byte {
	mine := make(map[string][]byte, len(t.undo))
	for _, u := range t.undo {
		mine[u.key] = t.c.writes[u.key]
	}
	t.rollback()
	return mine
}

// bytesOf views a string's bytes without copying. Badger only reads keys
// (it copies them into its own entries), so the bytes are never written.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// get returns the value at key (nil, false when absent): from the request's
// group commit, then the one being written, then the snapshot.
func (t *Tx) get(key string) ([]byte, bool, error) {
	if v, found := t.layered(key); found {
		return v, v != nil, nil
	}
	return t.snapGet(key)
}

// layered looks key up in the committer's write sets; found is false when
// neither holds it (a nil v with found true is a deletion).
func (t *Tx) layered(key string) (v []byte, found bool) {
	if c := t.c; c != nil {
		if v, ok := c.writes[key]; ok {
			return v, true
		}
		if f := c.flight; f != nil {
			if v, ok := f.writes[key]; ok {
				return v, true
			}
		}
	}
	return nil, false
}

// snapGet reads key from the snapshot.
func (t *Tx) snapGet(key string) ([]byte, bool, error) {
	item, err := t.txn.Get(bytesOf(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := item.ValueCopy(nil)
	return v, err == nil, err
}

func (t *Tx) set(key string, v []byte) {
	if t.readOnly {
		panic("store: write in a read-only transaction")
	}
	if v == nil {
		v = []byte{}
	}
	t.write(key, v)
}

func (t *Tx) del(key string) {
	if t.readOnly {
		panic("store: write in a read-only transaction")
	}
	t.write(key, nil)
}

func (t *Tx) write(key string, v []byte) {
	w := t.c.writes
	old, had := w[key]
	t.undo = append(t.undo, undoEntry{key, old, had})
	w[key] = v
	t.n++
	t.bytes += int64(len(key) + len(v) + 16)
}

// scan calls fn for every key under prefix, in key order, with the
// committer's layers merged in. Keys are collected first so fn may read.
func (t *Tx) scan(prefix string, keysOnly bool, fn func(key string, val []byte) (bool, error)) error {
	type kv struct {
		k string
		v []byte
	}
	var layers []map[string][]byte // newest first
	if c := t.c; c != nil {
		layers = append(layers, c.writes)
		if c.flight != nil {
			layers = append(layers, c.flight.writes)
		}
	}
	shadowed := func(k string, above int) bool {
		for _, l := range layers[:above] {
			if _, ok := l[k]; ok {
				return true
			}
		}
		return false
	}
	var list []kv
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false // values are inline and copied below
	it := t.txn.NewIterator(opts)
	for it.Rewind(); it.Valid(); it.Next() {
		k := string(it.Item().Key())
		if shadowed(k, len(layers)) {
			continue
		}
		var v []byte
		if !keysOnly {
			var err error
			if v, err = it.Item().ValueCopy(nil); err != nil {
				it.Close()
				return err
			}
		}
		list = append(list, kv{k, v})
	}
	it.Close()
	for i, l := range layers {
		for k, v := range l {
			if v != nil && strings.HasPrefix(k, prefix) && !shadowed(k, i) {
				list = append(list, kv{k, v})
			}
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].k < list[j].k })
	for _, e := range list {
		more, err := fn(e.k, e.v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// decode msgpack after the validation gate, so a corrupt value is an error.
func decode(raw []byte, v any) error {
	if r, ok := v.(*Record); ok {
		return decodeRecord(raw, r)
	}
	if err := syncproto.Validate(raw, syncproto.DefaultMaxDepth); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := msgpack.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

func encode(v any) []byte {
	if r, ok := v.(*Record); ok {
		return encodeRecord(r)
	}
	b, err := msgpack.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: encode %T: %v", v, err))
	}
	return b
}

// GetJSON loads a JSON record; ok is false when absent.
func (t *Tx) GetJSON(key string, v any) (bool, error) {
	raw, ok, err := t.get(key)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
	}
	return true, nil
}

// PutJSON stores a JSON record.
func (t *Tx) PutJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	t.set(key, b)
	return nil
}

// Delete removes a key.
func (t *Tx) Delete(key string) { t.del(key) }

// GetRaw and PutRaw store opaque bytes.
func (t *Tx) GetRaw(key string) ([]byte, bool, error) { return t.get(key) }

// PutRaw stores opaque bytes.
func (t *Tx) PutRaw(key string, v []byte) { t.set(key, v) }

// ScanJSON decodes every JSON record under prefix into a fresh value made
// by mk and passes it to fn.
func ScanJSON[T any](t *Tx, prefix string, fn func(key string, v *T) (bool, error)) error {
	return t.scan(prefix, false, func(k string, raw []byte) (bool, error) {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return false, fmt.Errorf("%w: %s: %v", ErrCorrupt, k, err)
		}
		return fn(k, v)
	})
}

// Head returns the user's head sequence as this request sees it.
func (t *Tx) Head() (uint64, error) {
	if t.head > 0 {
		return t.head, nil
	}
	c := t.c
	if c != nil {
		if h, ok := c.heads[t.user]; ok {
			return h, nil
		}
		if h, ok := c.cheads[t.user]; ok {
			return h, nil
		}
	}
	raw, ok, err := t.get(keyUser(t.user) + "seq")
	if err != nil || !ok {
		return 0, err
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("%w: head sequence", ErrCorrupt)
	}
	h := binary.BigEndian.Uint64(raw)
	if c != nil {
		c.cheads[t.user] = h
	}
	return h, nil
}

// nextSeq assigns the next sequence number of the user's change log.
func (t *Tx) nextSeq() (uint64, error) {
	h, err := t.Head()
	if err != nil {
		return 0, err
	}
	h++
	t.head = h // the key is written once per group commit (committer.commit)
	return h, nil
}

// Notify records that items of kind changed in channel, for notifications.
func (t *Tx) Notify(kind model.Kind, channel string) {
	for i := range t.notices {
		if n := &t.notices[i]; n.Kind == kind && n.Channel == channel {
			t.markNotice(i)
			n.Exact, n.Events, n.Folders = false, nil, nil
			return
		}
	}
	t.notices = append(t.notices, Notice{Kind: kind, Channel: channel})
}

// notifyExact records that an item changed in channel, with its scope facts
// (Notice.Exact): events' facts, or a folder.
func (t *Tx) notifyExact(kind model.Kind, channel string, facts []model.EventFacts, folder *NoticeFolder, removed bool) {
	for i := range t.notices {
		if n := &t.notices[i]; n.Kind == kind && n.Channel == channel {
			t.markNotice(i)
			if removed {
				n.Gone = append(n.Gone, *folder)
			}
			switch {
			case !n.Exact:
			case len(n.Events)+len(facts)+len(n.Folders) >= maxNoticeEvents:
				n.Exact, n.Events, n.Folders = false, nil, nil
			case folder != nil:
				n.Folders = append(n.Folders, *folder)
			default:
				n.Events = append(n.Events, facts...)
			}
			return
		}
	}
	n := Notice{Kind: kind, Channel: channel, Exact: true, Events: append([]model.EventFacts(nil), facts...)}
	if folder != nil {
		n.Folders = []NoticeFolder{*folder}
		if removed {
			n.Gone = []NoticeFolder{*folder}
		}
	}
	t.notices = append(t.notices, n)
}

// Touching gives the scope facts of the event the next PutItem writes, as
// they were before and are after the change, so its notice tells only the
// tokens that see one of them (Notice.Exact). Without it, PutItem's notice
// tells every token that sees the channel.
func (t *Tx) Touching(facts ...model.EventFacts) { t.touch, t.touchFolder = facts, nil }

// TouchingFolder is Touching for the folder the next PutItem writes: its
// parents before and after the change (only before for a removal).
func (t *Tx) TouchingFolder(id string, parents ...string) {
	t.touch, t.touchFolder = nil, &NoticeFolder{ID: id, Parents: parents}
}

// AccessChanged records that an access's permissions changed or that it was
// deleted, so live sessions re-check their scope. It consumes a sequence
// number so the change has a place in feed order.
func (t *Tx) AccessChanged(accessID string) error {
	if _, err := t.nextSeq(); err != nil {
		return err
	}
	t.accesses = append(t.accesses, accessID)
	return nil
}

func be64(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// ForUser returns a view of the same read-only transaction for another
// user's data (authentication reads before the user is known).
func (t *Tx) ForUser(user string) *Tx {
	if !t.readOnly {
		panic("store: ForUser needs a read-only transaction")
	}
	c := *t
	c.user = user
	return &c
}

// Peek loads an item's record for reading only, like Item: the caller must
// not modify the record it returns, which later Peeks may share. It is meant
// for records that many changes of one request consult (their channel, their
// folder): in a write request a record is decoded once while its stored
// bytes stay the same, in a read-only transaction once per transaction.
func (t *Tx) Peek(kind model.Kind, id string) (*Record, bool, error) {
	key := keyItem(t.user, kind, id)
	if t.readOnly {
		if e, hit := t.peeked[key]; hit {
			return e.r, e.r != nil, nil
		}
		r, ok, err := t.Item(kind, id)
		if err != nil {
			return nil, false, err
		}
		t.peek(key, peekEntry{r: r})
		return r, ok, nil
	}
	raw, ok, snap, err := t.itemRaw(key)
	if err != nil || !ok {
		if err == nil && snap {
			t.remember(key, metaEntry{snap: true})
		}
		return nil, false, err
	}
	if e, hit := t.peeked[key]; hit && sameBytes(e.raw, raw) {
		return e.r, true, nil
	}
	r := new(Record)
	if err := t.decodeItem(raw, r); err != nil {
		return nil, false, fmt.Errorf("item %s/%s: %w", kind, id, err)
	}
	// Remembering a snapshot read makes the next itemRaw return these very
	// bytes, so the next Peek recognises them.
	t.remember(key, metaEntry{raw: raw, m: metaOf(r), snap: snap})
	t.peek(key, peekEntry{raw: raw, r: r})
	return r, true, nil
}

func (t *Tx) peek(key string, e peekEntry) {
	if t.peeked == nil {
		t.peeked = map[string]peekEntry{}
	}
	t.peeked[key] = e
}

// sameBytes reports whether a and b are the same slice (not merely equal
// bytes): written values are never modified in place, so the same slice
// means the same value, and the check costs nothing.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
