package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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

// A backup of a store in a newer format is refused by Restore, which
// leaves the directory empty, rather than restored into a store that no
// Open of this version accepts.
func TestRestoreRefusesANewerFormat(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyFormat), []byte("3")) }); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	if err := Restore(dir, &buf); !errors.Is(err, ErrFormat) {
		t.Fatalf("restoring a format 3 backup: %v, want ErrFormat", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the refused restore left %d entries", len(ents))
	}
}
