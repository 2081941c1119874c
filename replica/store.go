package replica

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

const (
	keySettings  = "s/settings"
	keyReplica   = "s/replica"
	keyClock     = "s/clock"
	keyCursor    = "s/cursor"
	keyPerms     = "s/perms"
	keyRSeq      = "s/rseq"
	keyLastSync  = "s/lastsync"
	prefixBase   = "b/"
	prefixBlind  = "x/"
	prefixOutbox = "o/"
	prefixRej    = "r/"
)

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

func blindKey(b []byte) []byte { return append([]byte(prefixBlind), b...) }

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

func putBase(txn *badger.Txn, key []byte, kind, id string, d crdt.Doc) error {
	raw, err := msgpack.Marshal(&d)
	if err != nil {
		return err
	}
	if err := txn.Set(baseKey(kind, id), raw); err != nil {
		return err
	}
	if len(key) > 0 {
		return txn.Set(blindKey(syncproto.BlindID(key, kind, id)), []byte(kind+"/"+id))
	}
	return nil
}

func deleteBase(txn *badger.Txn, key []byte, kind, id string) error {
	if err := txn.Delete(baseKey(kind, id)); err != nil {
		return err
	}
	if len(key) > 0 {
		return txn.Delete(blindKey(syncproto.BlindID(key, kind, id)))
	}
	return nil
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

func putEntry(txn *badger.Txn, e *entry) error {
	raw, err := msgpack.Marshal(e)
	if err != nil {
		return err
	}
	return txn.Set(outboxKey(e.RSeq), raw)
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
