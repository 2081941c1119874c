package replica

import (
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestOpenIndexesTheOutboxOfAnOlderStore: a store written before the i/
// index (o/ entries only, no marker) is indexed by Open, so reads still see
// every pending change.
func TestOpenIndexesTheOutboxOfAnOlderStore(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	var ids []string
	for range 3 {
		id, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"v"}`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	// Make it look like an older store: no index keys, no marker.
	if err := r.deletePrefixes(prefixOutboxIndex); err != nil {
		t.Fatal(err)
	}
	if err := r.update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyOutboxIndexed)) }); err != nil {
		t.Fatal(err)
	}
	r.Close()

	r = open(t, dir)
	defer r.Close()
	for _, id := range ids {
		if _, err := r.GetEvent(id); err != nil {
			t.Fatalf("pending event %s not visible after reopening: %v", id, err)
		}
	}
	evs, err := r.ListEvents(Filter{})
	if err != nil || len(evs) != len(ids) {
		t.Fatalf("list: %d events (%v), want %d", len(evs), err, len(ids))
	}
	st, err := r.Status()
	if err != nil || st.Pending != len(ids) {
		t.Fatalf("status: %+v (%v), want %d pending", st, err, len(ids))
	}
}

// TestOutboxIndexFollowsEntries: the index has exactly one key per outbox
// entry, and deleting an entry deletes its key.
func TestOutboxIndexFollowsEntries(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	id, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"v"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateEvent(id, EventUpdate{Body: body(t, `{"value":"w"}`)}); err != nil {
		t.Fatal(err)
	}
	count := func(prefix string) int {
		n := 0
		_ = r.db.View(func(txn *badger.Txn) error {
			return eachPrefix(txn, prefix, func(string, []byte) (bool, error) { n++; return true, nil })
		})
		return n
	}
	if o, i := count(prefixOutbox), count(prefixOutboxIndex); o != 2 || i != 2 {
		t.Fatalf("%d entries, %d index keys; want 2 and 2", o, i)
	}
	var es []entry
	if err := r.db.View(func(txn *badger.Txn) (err error) { es, err = itemEntries(txn, "event", id); return err }); err != nil || len(es) != 2 {
		t.Fatalf("item entries: %d (%v), want 2", len(es), err)
	}
	if err := r.update(func(txn *badger.Txn) error { return deleteEntry(txn, es[0].Kind, es[0].ID, es[0].RSeq) }); err != nil {
		t.Fatal(err)
	}
	if o, i := count(prefixOutbox), count(prefixOutboxIndex); o != 1 || i != 1 {
		t.Fatalf("after a delete: %d entries, %d index keys; want 1 and 1", o, i)
	}
}
