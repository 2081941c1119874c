package crdt_test

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
)

// stamper returns a stamp func that issues server versions 1000.0@srv,
// 1001.0@srv, … and counts its calls.
func stamper() (func() crdt.Version, *int) {
	n := 0
	return func() crdt.Version {
		n++
		return crdt.Version{Time: 999 + int64(n), Node: "srv"}
	}, &n
}

func TestRestampReplacesOnlyVersionsNewerThanTheLimit(t *testing.T) {
	const limit = 100
	ok := crdt.Version{Time: limit, Counter: 5, Node: "dev"}
	ahead := crdt.Version{Time: limit + 1, Node: "dev"}
	d := crdt.Doc{
		Fields: map[string]crdt.Field{
			"name":    {V: ok, Val: []byte(`"kept"`)},
			"trashed": {V: ahead, Val: []byte(`true`)},
		},
		Tags: map[string]crdt.Elem{
			"a": {V: ok, Present: true},
			"b": {V: ahead, Present: true},
		},
		Data:  map[string]crdt.Field{"k": {V: ahead, Val: nil}},
		Files: map[string]crdt.Field{"f": {V: ok, Val: []byte(`{"size":1}`)}},
	}
	before := d.Clone()
	stamp, calls := stamper()

	got, changed := d.Restamp(limit, stamp)
	if !changed {
		t.Fatalf("Restamp reported nothing changed")
	}
	if got, want := *calls, 3; got != want {
		t.Fatalf("stamp calls: got %d, want %d", got, want)
	}
	if got, want := got.Fields["name"], (crdt.Field{V: ok, Val: []byte(`"kept"`)}); got.V != want.V || !bytes.Equal(got.Val, want.Val) {
		t.Fatalf("field within the limit: got %s@%v, want %s@%v", got.Val, got.V, want.Val, want.V)
	}
	if f := got.Fields["trashed"]; f.V.Node != "srv" || string(f.Val) != "true" {
		t.Fatalf("field ahead of the limit: got %s@%v, want true@<server version>", f.Val, f.V)
	}
	if got, want := got.Tags["a"], (crdt.Elem{V: ok, Present: true}); got != want {
		t.Fatalf("tag within the limit: got %+v, want %+v", got, want)
	}
	if e := got.Tags["b"]; e.V.Node != "srv" || !e.Present {
		t.Fatalf("tag ahead of the limit: got %+v, want present at a server version", e)
	}
	if f, has := got.Data["k"]; !has || f.V.Node != "srv" || f.Val != nil {
		t.Fatalf("removed clientData key ahead of the limit: got %s@%v (present %t), want a removal at a server version", f.Val, f.V, has)
	}
	if got, want := got.Files["f"].V, ok; got != want {
		t.Fatalf("attachment within the limit: got %v, want %v", got, want)
	}
	if !crdt.Equal(d, before) {
		t.Fatalf("Restamp modified its receiver: %s, was %s", show(d), show(before))
	}
}

func TestRestampReplacesATombstoneFromAClockAhead(t *testing.T) {
	d := crdt.Doc{Deleted: crdt.Version{Time: 500, Node: "dev"}}
	stamp, _ := stamper()
	got, changed := d.Restamp(100, stamp)
	if got, want := changed, true; got != want {
		t.Fatalf("changed: got %t, want %t", got, want)
	}
	if got, want := got.Deleted, (crdt.Version{Time: 1000, Node: "srv"}); got != want {
		t.Fatalf("tombstone: got %v, want %v", got, want)
	}
}

func TestRestampLeavesADocWithinTheLimitAlone(t *testing.T) {
	d := crdt.Doc{
		Fields: map[string]crdt.Field{"name": {V: crdt.Version{Time: 100, Counter: 9, Node: "dev"}, Val: []byte(`"x"`)}},
		Tags:   map[string]crdt.Elem{"a": {V: crdt.Version{Time: 50, Node: "dev"}, Present: true}},
	}
	stamp, calls := stamper()
	got, changed := d.Restamp(100, stamp)
	if changed || *calls != 0 {
		t.Fatalf("Restamp within the limit: changed %t after %d stamp calls", changed, *calls)
	}
	if !crdt.Equal(got, d) {
		t.Fatalf("got %s, want %s", show(got), show(d))
	}
}

// TestRestampProperty: on any Doc, every version beyond the limit, and only
// those, is replaced by a fresh stamp; keys and values stay as they were.
func TestRestampProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := genDoc().Draw(t, "doc")
		// The limit is the server's time plus the skew: never negative.
		limit := rapid.Int64Range(0, 4).Draw(t, "limit")
		before := d.Clone()
		stamp, calls := stamper()
		got, changed := d.Restamp(limit, stamp)

		tooNew := 0
		used := map[crdt.Version]bool{}
		check := func(what string, orig, now crdt.Version) {
			if orig.Time <= limit {
				if now != orig {
					t.Fatalf("%s: version %v within the limit %d became %v", what, orig, limit, now)
				}
				return
			}
			tooNew++
			if now.Node != "srv" || used[now] {
				t.Fatalf("%s: version %v beyond the limit %d became %v, want a fresh stamp", what, orig, limit, now)
			}
			used[now] = true
		}
		checkFields := func(what string, orig, now map[string]crdt.Field) {
			if len(now) != len(orig) {
				t.Fatalf("%s: got %d entries, want %d", what, len(now), len(orig))
			}
			for k, f := range orig {
				g, ok := now[k]
				if !ok || !bytes.Equal(g.Val, f.Val) {
					t.Fatalf("%s %q: got %s (present %t), want %s", what, k, g.Val, ok, f.Val)
				}
				check(what+" "+k, f.V, g.V)
			}
		}
		checkFields("field", d.Fields, got.Fields)
		checkFields("clientData", d.Data, got.Data)
		checkFields("attachment", d.Files, got.Files)
		if len(got.Tags) != len(d.Tags) {
			t.Fatalf("tags: got %d, want %d", len(got.Tags), len(d.Tags))
		}
		for k, e := range d.Tags {
			g, ok := got.Tags[k]
			if !ok || g.Present != e.Present {
				t.Fatalf("tag %q: got %+v (present %t), want %+v", k, g, ok, e)
			}
			check("tag "+k, e.V, g.V)
		}
		if d.IsDeleted() {
			check("tombstone", d.Deleted, got.Deleted)
		} else if got.IsDeleted() {
			t.Fatalf("Restamp added a tombstone %v", got.Deleted)
		}

		if got, want := *calls, tooNew; got != want {
			t.Fatalf("stamp calls: got %d, want %d", got, want)
		}
		if got, want := changed, tooNew > 0; got != want {
			t.Fatalf("changed: got %t, want %t", got, want)
		}
		if !crdt.Equal(d, before) {
			t.Fatalf("Restamp modified its receiver: %s, was %s", show(d), show(before))
		}
	})
}
