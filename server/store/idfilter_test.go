package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
)

// openMem opens an in-memory store closed at the end of the test.
func openMem(t *testing.T) *Store {
	t.Helper()
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// putEvents stores events of channel a with the given ids, in one request.
func putEvents(t *testing.T, s *Store, user string, ids ...string) {
	t.Helper()
	d := crdt.Doc{Fields: map[string]crdt.Field{"channelId": {V: crdt.Version{Time: 1, Node: "t"}, Val: []byte(`"a"`)}}}
	if err := s.Update(context.Background(), user, func(tx *Tx) error {
		for _, id := range ids {
			if _, err := tx.PutItem(model.KindEvent, id, d); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A filter never misses a key it was given, grows in layers past its
// size, and answers "maybe" for few keys it was not given.
func TestIDFilterHasNoFalseNegatives(t *testing.T) {
	f := newIDFilter(100)
	const n = 50_000
	for i := range n {
		f.add(fmt.Sprintf("u/a/i/e/c%08d", i))
	}
	if len(f.layers) < 2 {
		t.Fatalf("%d layers after %d keys into a filter built for 100", len(f.layers), n)
	}
	for i := range n {
		if k := fmt.Sprintf("u/a/i/e/c%08d", i); !f.mayHave(k) {
			t.Fatalf("%s added, not found", k)
		}
	}
	fp := 0
	for i := range n {
		if f.mayHave(fmt.Sprintf("u/a/i/e/x%08d", i)) {
			fp++
		}
	}
	// Each layer is under 1 % when full; a few layers together stay low.
	if rate := float64(fp) / n; rate > 0.03 {
		t.Fatalf("false positive rate %.4f", rate)
	}
}

func TestItemUser(t *testing.T) {
	for key, want := range map[string]string{
		"u/alice/i/e/c1":  "alice",
		"u/bob/i/c/diary": "bob",
		"u/alice/f/c/xx":  "",
		"u/alice":         "",
		"usr/alice":       "",
		"u/alice/seq":     "",
	} {
		got, ok := itemUser(key)
		if ok != (want != "") || got != want {
			t.Errorf("itemUser(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}

// A filter built while a group commit is in flight and another is open
// holds their item keys as well as Badger's, and only the user's.
func TestItemFilterBuildCoversEveryLayer(t *testing.T) {
	s := openMem(t)
	for _, u := range []string{"u", "v"} {
		putEvents(t, s, u, "stored")
	}
	c := newCommitter(s) // not the running one: its filters start empty
	c.begin()
	defer c.snap.Discard()
	c.flight = &flight{writes: map[string][]byte{keyItem("u", model.KindEvent, "flying"): {1}, keyItem("v", model.KindEvent, "other"): {1}}}
	c.writes[keyItem("u", model.KindEvent, "open")] = []byte{1}
	c.writes[keyItem("u", model.KindEvent, "deleted")] = nil
	f := c.itemFilter("u")
	for _, id := range []string{"stored", "flying", "open"} {
		if !f.mayHave(keyItem("u", model.KindEvent, id)) {
			t.Errorf("the filter misses %s", id)
		}
	}
	if f.layers[0].keys != 3 {
		t.Errorf("%d keys in the filter, want 3 (u's stored, flying and open)", f.layers[0].keys)
	}
	// A group commit handed to Badger adds its item keys.
	c.noteItemKeys(map[string][]byte{keyItem("u", model.KindFolder, "new"): {1}, keyFeed("u", "a", 9): {1}})
	if !f.mayHave(keyItem("u", model.KindFolder, "new")) || f.layers[0].keys != 4 {
		t.Errorf("noteItemKeys: %d keys", f.layers[0].keys)
	}
}

// With the filters, a create still finds every id in use: ids written
// before a reopen, in earlier group commits, and in the same request.
func TestItemFilterNeverHidesAnItem(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	d := crdt.Doc{Fields: map[string]crdt.Field{"channelId": {V: crdt.Version{Time: 1, Node: "t"}, Val: []byte(`"a"`)}}}
	exists := func(s *Store, id string) bool {
		t.Helper()
		var ok bool
		if err := s.Update(ctx, "u", func(tx *Tx) error {
			var err error
			_, ok, err = tx.Item(model.KindEvent, id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		putEvents(t, s, "u", fmt.Sprintf("e%d", i))
	}
	s.Close()
	if s, err = Open(Options{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 300 {
		if !exists(s, fmt.Sprintf("e%d", i)) {
			t.Fatalf("e%d, written before the reopen, is not found", i)
		}
	}
	// Concurrent writers: each id is seen by the requests after it.
	errs := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := range 200 {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := s.Update(ctx, "u", func(tx *Tx) error {
					if _, ok, err := tx.Item(model.KindEvent, id); err != nil || ok {
						return fmt.Errorf("new id %s: found %v, %v", id, ok, err)
					}
					if _, err := tx.PutItem(model.KindEvent, id, d); err != nil {
						return err
					}
					_, ok, err := tx.Item(model.KindEvent, id)
					if err == nil && !ok {
						err = fmt.Errorf("%s not found in its own request", id)
					}
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				if i > 0 && !exists(s, fmt.Sprintf("w%d-%d", w, i-1)) {
					errs <- fmt.Errorf("w%d-%d not found", w, i-1)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if exists(s, "never") {
		t.Fatal("an id never written is found")
	}
}

// A user whose filter would be too large gets none, remembered (no scan on
// each read); past the budget, the filters are dropped and rebuilt.
func TestItemFilterBudget(t *testing.T) {
	s := openMem(t)
	ids := make([]string, 3000)
	for i := range ids {
		ids[i] = fmt.Sprintf("e%d", i)
	}
	putEvents(t, s, "big", ids...)
	defer func(b int) { filterBudget = b }(filterBudget)
	c := newCommitter(s)
	c.begin()
	defer c.snap.Discard()
	small := newIDFilter(0).size()
	filterBudget = 4*small + 10 // "big" (3000 keys) is over a quarter, a new user is not; 4 fit
	if f := c.itemFilter("big"); f != nil {
		t.Fatalf("a %d-byte filter under a budget of %d", f.size(), filterBudget)
	}
	if f, ok := c.filters["big"]; !ok || f != nil {
		t.Fatal("no filter for big is not remembered")
	}
	for i := range 5 {
		if c.itemFilter(fmt.Sprintf("u%d", i)) == nil {
			t.Fatalf("no filter for a new user u%d", i)
		}
	}
	if c.filterBytes > filterBudget {
		t.Fatalf("filters take %d bytes, budget %d", c.filterBytes, filterBudget)
	}
	// u0..u4 do not all fit: u4's filter dropped the others.
	if _, ok := c.filters["u0"]; ok {
		t.Fatal("the filters were not dropped past the budget")
	}
	// Growing past the budget drops them all.
	keys := map[string][]byte{}
	for i := range 200 {
		keys[keyItem("u4", model.KindEvent, fmt.Sprintf("n%d", i))] = []byte{1}
	}
	c.noteItemKeys(keys)
	if len(c.filters) != 0 || c.filterBytes != 0 {
		t.Fatalf("%d filters, %d bytes after growing past the budget", len(c.filters), c.filterBytes)
	}
}
