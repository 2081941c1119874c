package crdt

import (
	"fmt"
	"testing"
)

// benchDoc is an event-sized document: ten scalar fields and three tags, as
// the server stores it.
func benchDoc(node string, t int64) Doc {
	v := Version{Time: t, Node: node}
	d := Doc{Fields: map[string]Field{}, Tags: map[string]Elem{}}
	for i, name := range []string{"channelId", "folderId", "time", "type", "value", "created", "createdBy", "modified", "modifiedBy", "description"} {
		d.Fields[name] = Field{V: v, Val: []byte(fmt.Sprintf(`"value %d of about twenty bytes"`, i))}
	}
	for _, tag := range []string{"run", "mood", "work"} {
		d.Tags[tag] = Elem{V: v, Present: true}
	}
	return d
}

// BenchmarkMerge joins a stored event with a two-field update (the
// replica's apply and overlay path).
func BenchmarkMerge(b *testing.B) {
	cur := benchDoc("server", 1_700_000_000_000)
	v := Version{Time: 1_700_000_000_500, Node: "replica"}
	delta := Doc{Fields: map[string]Field{"value": {V: v, Val: []byte(`"new"`)}, "modified": {V: v, Val: []byte(`1700000000.5`)}},
		Tags: map[string]Elem{"walk": {V: v, Present: true}}}
	b.ReportAllocs()
	for b.Loop() {
		_ = Merge(cur, delta)
	}
}

// BenchmarkApplyWithLost applies a concurrent update that partly loses (the
// server's conflict path).
func BenchmarkApplyWithLost(b *testing.B) {
	cur := benchDoc("server", 1_700_000_001_000)
	v := Version{Time: 1_700_000_000_500, Node: "replica"}
	delta := Doc{Fields: map[string]Field{"value": {V: v, Val: []byte(`"old"`)}, "extra": {V: v, Val: []byte(`1`)}}}
	b.ReportAllocs()
	for b.Loop() {
		_, lost := Apply(cur, delta)
		if len(lost) != 1 {
			b.Fatalf("lost %v", lost)
		}
	}
}

// BenchmarkMergeNewItem merges an item into an empty base (initial sync).
func BenchmarkMergeNewItem(b *testing.B) {
	d := benchDoc("server", 1_700_000_000_000)
	b.ReportAllocs()
	for b.Loop() {
		_ = Merge(Doc{}, d)
	}
}

// BenchmarkCloneRoom: the copy ApplyChange makes of a pushed event's delta
// (9 fields) before stamping it.
func BenchmarkCloneRoom(b *testing.B) {
	d := Doc{Fields: map[string]Field{}}
	for _, k := range []string{"channelId", "folderId", "time", "type", "value", "created", "createdBy", "modified", "modifiedBy"} {
		d.Fields[k] = Field{V: Version{Time: 1, Node: "n"}, Val: []byte(`"x"`)}
	}
	b.ReportAllocs()
	for b.Loop() {
		out := d.CloneRoom(4)
		out.Fields["modified"] = Field{V: Version{Time: 2}}
		out.Fields["modifiedBy"] = Field{V: Version{Time: 2}}
	}
}
