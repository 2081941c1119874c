package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// ErrCorrupt wraps a stored value that does not decode.
var ErrCorrupt = errors.New("store: corrupt stored value")

// Tx is one write request's (or one reader's) view of the store. Reads see
// the request's own writes first, then the shared transaction. Writes go to
// a private overlay applied only when the request succeeds.
type Tx struct {
	s        *Store
	txn      *badger.Txn
	user     string
	readOnly bool

	overlay   map[string][]byte // nil value = delete
	head      uint64            // this request's head seq, 0 = unchanged
	headCache map[string]uint64
	notices   []Notice
	accesses  []string
}

// User is the account the request writes for.
func (t *Tx) User() string { return t.user }

// Now is the store clock in Unix seconds.
func (t *Tx) Now() float64 { return float64(t.s.opts.Now().UnixMicro()) / 1e6 }

// Store returns the store the transaction belongs to.
func (t *Tx) Store() *Store { return t.s }

func (t *Tx) size() int64 {
	var n int64
	for k, v := range t.overlay {
		n += int64(len(k) + len(v) + 16)
	}
	return n
}

func (t *Tx) apply() error {
	keys := make([]string, 0, len(t.overlay))
	for k := range t.overlay {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := t.overlay[k]
		var err error
		if v == nil {
			err = t.txn.Delete([]byte(k))
		} else {
			err = t.txn.Set([]byte(k), v)
		}
		if err != nil {
			return fmt.Errorf("store: apply %q: %w", k, err)
		}
	}
	return nil
}

// get returns the value at key (nil, false when absent).
func (t *Tx) get(key string) ([]byte, bool, error) {
	if v, ok := t.overlay[key]; ok {
		return v, v != nil, nil
	}
	item, err := t.txn.Get([]byte(key))
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
	t.overlay[key] = v
}

func (t *Tx) del(key string) {
	if t.readOnly {
		panic("store: write in a read-only transaction")
	}
	t.overlay[key] = nil
}

// scan calls fn for every key under prefix, in key order, with the
// request's overlay merged in. Keys are collected first so fn may read.
func (t *Tx) scan(prefix string, keysOnly bool, fn func(key string, val []byte) (bool, error)) error {
	type kv struct {
		k string
		v []byte
	}
	var list []kv
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = !keysOnly
	it := t.txn.NewIterator(opts)
	for it.Rewind(); it.Valid(); it.Next() {
		k := string(it.Item().Key())
		if _, shadowed := t.overlay[k]; shadowed {
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
	for k, v := range t.overlay {
		if v != nil && strings.HasPrefix(k, prefix) {
			list = append(list, kv{k, v})
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
	if err := syncproto.Validate(raw, syncproto.DefaultMaxDepth); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if err := msgpack.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

func encode(v any) []byte {
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
	if h, ok := t.headCache[t.user]; ok {
		return h, nil
	}
	if !t.readOnly {
		t.s.mu.Lock()
		h, ok := t.s.heads[t.user]
		t.s.mu.Unlock()
		if ok {
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
	return binary.BigEndian.Uint64(raw), nil
}

// nextSeq assigns the next sequence number of the user's change log.
func (t *Tx) nextSeq() (uint64, error) {
	h, err := t.Head()
	if err != nil {
		return 0, err
	}
	h++
	t.head = h
	t.set(keyUser(t.user)+"seq", be64(h))
	return h, nil
}

// Notify records that items of kind changed in channel, for notifications.
func (t *Tx) Notify(kind model.Kind, channel string) {
	for _, n := range t.notices {
		if n.Kind == kind && n.Channel == channel {
			return
		}
	}
	t.notices = append(t.notices, Notice{Kind: kind, Channel: channel})
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
