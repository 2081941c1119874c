package replica

import (
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/syncproto"
)

// TestBlindIndexResolvesBaseBeforeAndAfterItIsBuilt: a removal id resolves
// to an item written to base before the index was built (it is built from
// base) and to one written after (the write adds it), and an id of no item
// in base resolves to nothing.
func TestBlindIndexResolvesBaseBeforeAndAfterItIsBuilt(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := []byte("access-key")
	ix := &blindIndex{key: key}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Update(func(txn *badger.Txn) error { return putBaseBytes(txn, ix, "event", "before", []byte{0x80}) }))
	resolve := func(kind, id string) (string, bool) {
		t.Helper()
		var got string
		var ok bool
		must(db.Update(func(txn *badger.Txn) error {
			k, i, found, err := ix.lookup(txn, syncproto.BlindID(key, kind, id))
			got, ok = k+"/"+i, found
			return err
		}))
		return got, ok
	}
	if got, ok := resolve("event", "before"); !ok || got != "event/before" {
		t.Fatalf("item written before the build: %q %v", got, ok)
	}
	must(db.Update(func(txn *badger.Txn) error { return putBaseBytes(txn, ix, "folder", "after", []byte{0x80}) }))
	if got, ok := resolve("folder", "after"); !ok || got != "folder/after" {
		t.Fatalf("item written after the build: %q %v", got, ok)
	}
	if got, ok := resolve("event", "never"); ok {
		t.Fatalf("an id of no item resolved to %q", got)
	}
	// Another access key's id for the same item names nothing here.
	var ok bool
	must(db.Update(func(txn *badger.Txn) error {
		_, _, found, err := ix.lookup(txn, syncproto.BlindID([]byte("other"), "event", "before"))
		ok = found
		return err
	}))
	if ok {
		t.Fatal("a removal id of another key resolved")
	}
}
