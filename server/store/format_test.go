package store

import (
	"errors"
	"strconv"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Open records the store's layout version, and refuses a store written in
// a newer one rather than misread it.
func TestOpenChecksTheFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(keyFormat))
		if err == nil {
			v, _ := it.ValueCopy(nil)
			got = string(v)
		}
		return err
	})
	if got != strconv.Itoa(storeFormat) {
		t.Fatalf("format %q recorded, want %d", got, storeFormat)
	}
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyFormat), []byte("99")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(Options{Dir: dir}); !errors.Is(err, ErrFormat) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("opening a format 99 store: %v, want ErrFormat", err)
	}
	// A store without the key (written before it) opens and gets it.
	s, err = Open(Options{Dir: dir + "/old"})
	if err != nil {
		t.Fatal(err)
	}
	s.db.Update(func(txn *badger.Txn) error { return txn.Delete([]byte(keyFormat)) })
	s.Close()
	if s, err = Open(Options{Dir: dir + "/old"}); err != nil {
		t.Fatalf("opening a store from before the format key: %v", err)
	}
	s.Close()
}
