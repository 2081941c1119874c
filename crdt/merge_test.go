package crdt_test

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
)

func ver(time int64, node string) crdt.Version { return crdt.Version{Time: time, Node: node} }

func field(time int64, node, val string) crdt.Field {
	f := crdt.Field{V: ver(time, node)}
	if val != "" {
		f.Val = []byte(val)
	}
	return f
}

func TestMergeKeepsConcurrentEditsOfDifferentFields(t *testing.T) {
	a := crdt.Doc{Fields: map[string]crdt.Field{"name": field(2, "r1", `"A"`)}}
	b := crdt.Doc{Fields: map[string]crdt.Field{"description": field(2, "r2", `"B"`)}}
	got := crdt.Merge(a, b)
	if got, want := string(got.Get("name")), `"A"`; got != want {
		t.Fatalf("name: got %s, want %s", got, want)
	}
	if got, want := string(got.Get("description")), `"B"`; got != want {
		t.Fatalf("description: got %s, want %s", got, want)
	}
}

func TestMergeKeepsTheHigherVersionOfAFieldEditedConcurrently(t *testing.T) {
	a := crdt.Doc{Fields: map[string]crdt.Field{"name": field(5, "r1", `"A"`)}}
	b := crdt.Doc{Fields: map[string]crdt.Field{"name": field(5, "r2", `"B"`)}}
	for _, got := range []crdt.Doc{crdt.Merge(a, b), crdt.Merge(b, a)} {
		if got, want := string(got.Get("name")), `"B"`; got != want {
			t.Fatalf("name: got %s, want %s (r2 > r1 at the same time)", got, want)
		}
	}
}

func TestTagsMergePerElement(t *testing.T) {
	base := crdt.Doc{Tags: map[string]crdt.Elem{
		"x": {V: ver(1, "srv"), Present: false},
		"y": {V: ver(1, "srv"), Present: true},
		"z": {V: ver(1, "srv"), Present: true},
	}}
	addX := crdt.Doc{Tags: map[string]crdt.Elem{"x": {V: ver(2, "r1"), Present: true}}}
	removeY := crdt.Doc{Tags: map[string]crdt.Elem{"y": {V: ver(3, "r2"), Present: false}}}
	got := crdt.Merge(crdt.Merge(base, addX), removeY)
	if got, want := got.TagList(), []string{"x", "z"}; !slices.Equal(got, want) {
		t.Fatalf("TagList: got %q, want %q", got, want)
	}
}

func TestRemovingAClientDataKeyIsVersioned(t *testing.T) {
	cur := crdt.Doc{Data: map[string]crdt.Field{
		"k": field(1, "r1", `1`),
		"l": field(1, "r1", `2`),
	}}
	remove := crdt.Doc{Data: map[string]crdt.Field{"k": field(3, "r2", "")}}
	staleWrite := crdt.Doc{Data: map[string]crdt.Field{"k": field(2, "r1", `9`)}}
	got := crdt.Merge(crdt.Merge(cur, remove), staleWrite)
	if got, want := got.DataMap(), map[string][]byte{"l": []byte(`2`)}; !maps.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("DataMap: got %q, want %q", got, want)
	}
}

func TestApplyReportsTheFieldsThatLostToNewerOnes(t *testing.T) {
	cur := crdt.Doc{
		Fields: map[string]crdt.Field{"name": field(5, "srv", `"server"`)},
		Tags:   map[string]crdt.Elem{"a": {V: ver(5, "srv"), Present: true}},
	}
	delta := crdt.Doc{
		Fields: map[string]crdt.Field{"name": field(3, "r1", `"mine"`), "description": field(3, "r1", `"d"`)},
		Tags:   map[string]crdt.Elem{"a": {V: ver(3, "r1"), Present: false}},
	}
	got, lost := crdt.Apply(cur, delta)
	if want := []string{"name", "tags:a"}; !slices.Equal(lost, want) {
		t.Fatalf("lost: got %q, want %q", lost, want)
	}
	if got, want := string(got.Get("name")), `"server"`; got != want {
		t.Fatalf("name: got %s, want %s", got, want)
	}
	if got, want := string(got.Get("description")), `"d"`; got != want {
		t.Fatalf("description: got %s, want %s", got, want)
	}
}

func TestApplyReportsNothingWhenTheDeltaIsAlreadyThere(t *testing.T) {
	cur := crdt.Doc{Fields: map[string]crdt.Field{"name": field(5, "r1", `"x"`)}}
	if _, lost := crdt.Apply(cur, cur); len(lost) != 0 {
		t.Fatalf("lost on a replay: got %q, want none", lost)
	}
}

func TestApplyOnATombstoneLosesTheWholeDelta(t *testing.T) {
	cur := crdt.Doc{Deleted: ver(1, "srv")}
	delta := crdt.Doc{
		Fields: map[string]crdt.Field{"name": field(9, "r1", `"x"`)},
		Tags:   map[string]crdt.Elem{"a": {V: ver(9, "r1"), Present: true}},
		Data:   map[string]crdt.Field{"k": field(9, "r1", `1`)},
		Files:  map[string]crdt.Field{"f": field(9, "r1", `{}`)},
	}
	got, lost := crdt.Apply(cur, delta)
	if want := []string{"attachments:f", "clientData:k", "name", "tags:a"}; !slices.Equal(lost, want) {
		t.Fatalf("lost: got %q, want %q", lost, want)
	}
	if !crdt.Equal(got, cur) {
		t.Fatalf("state: got %s, want %s", show(got), show(cur))
	}
}

func TestApplyOfATombstoneReportsNothingLost(t *testing.T) {
	cur := crdt.Doc{Fields: map[string]crdt.Field{"name": field(5, "srv", `"x"`)}}
	delta := crdt.Doc{Deleted: ver(1, "r1")}
	got, lost := crdt.Apply(cur, delta)
	if len(lost) != 0 {
		t.Fatalf("lost: got %q, want none", lost)
	}
	if got, want := got, delta; !crdt.Equal(got, want) {
		t.Fatalf("state: got %s, want %s", show(got), show(want))
	}
}

func TestTombstoneBeatsFieldVersionsNewerThanItself(t *testing.T) {
	tomb := crdt.Doc{Deleted: ver(1, "r1")}
	later := crdt.Doc{
		Fields: map[string]crdt.Field{"trashed": field(100, "r2", `false`)},
		Tags:   map[string]crdt.Elem{"a": {V: ver(100, "r2"), Present: true}},
	}
	for _, got := range []crdt.Doc{crdt.Merge(tomb, later), crdt.Merge(later, tomb)} {
		if !crdt.Equal(got, tomb) {
			t.Fatalf("got %s, want %s", show(got), show(tomb))
		}
	}
}

// A tombstone stamped with a negative time (corrupt input) is still a
// tombstone: merging it with a Doc that has none must not drop it.
func TestTombstoneWithANegativeTimeSurvivesMerge(t *testing.T) {
	tomb := crdt.Doc{Deleted: ver(-1, "r1")}
	live := crdt.Doc{Fields: map[string]crdt.Field{"name": field(5, "r2", `"x"`)}}
	for _, got := range []crdt.Doc{crdt.Merge(tomb, live), crdt.Merge(live, tomb), crdt.Merge(tomb, crdt.Doc{})} {
		if !crdt.Equal(got, tomb) {
			t.Fatalf("got %s, want %s", show(got), show(tomb))
		}
	}
}

func TestMaxVersionFindsTheNewestVersionAnywhere(t *testing.T) {
	d := crdt.Doc{
		Fields: map[string]crdt.Field{"name": field(1, "r1", `1`)},
		Tags:   map[string]crdt.Elem{"a": {V: ver(2, "r1")}},
		Data:   map[string]crdt.Field{"k": field(3, "r1", `1`)},
		Files:  map[string]crdt.Field{"f": field(4, "r1", `{}`)},
	}
	if got, want := d.MaxVersion(), ver(4, "r1"); got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
	d.Deleted = ver(5, "r1")
	if got, want := d.MaxVersion(), ver(5, "r1"); got != want {
		t.Fatalf("with a tombstone: got %v, want %v", got, want)
	}
}

func TestCloneSharesNoMaps(t *testing.T) {
	d := crdt.Doc{
		Fields: map[string]crdt.Field{"name": field(1, "r1", `1`)},
		Tags:   map[string]crdt.Elem{"a": {V: ver(1, "r1"), Present: true}},
		Data:   map[string]crdt.Field{"k": field(1, "r1", `1`)},
		Files:  map[string]crdt.Field{"f": field(1, "r1", `{}`)},
	}
	c := d.Clone()
	c.Fields["other"] = field(2, "r1", `2`)
	c.Tags["b"] = crdt.Elem{}
	c.Data["l"] = field(2, "r1", `2`)
	c.Files["g"] = field(2, "r1", `{}`)
	if len(d.Fields) != 1 || len(d.Tags) != 1 || len(d.Data) != 1 || len(d.Files) != 1 {
		t.Fatalf("changing the clone changed the original: %s", show(d))
	}
}

func TestIsEmpty(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    crdt.Doc
		want bool
	}{
		{"zero", crdt.Doc{}, true},
		{"empty maps", crdt.Doc{Fields: map[string]crdt.Field{}, Tags: map[string]crdt.Elem{}}, true},
		{"field", crdt.Doc{Fields: map[string]crdt.Field{"name": field(1, "r1", "")}}, false},
		{"tag", crdt.Doc{Tags: map[string]crdt.Elem{"a": {}}}, false},
		{"clientData", crdt.Doc{Data: map[string]crdt.Field{"k": {}}}, false},
		{"attachment", crdt.Doc{Files: map[string]crdt.Field{"f": {}}}, false},
		{"tombstone", crdt.Doc{Deleted: ver(1, "r1")}, false},
	} {
		if got := tc.d.IsEmpty(); got != tc.want {
			t.Fatalf("%s: IsEmpty got %t, want %t", tc.name, got, tc.want)
		}
	}
}
