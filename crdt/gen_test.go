package crdt_test

import (
	"fmt"
	"sort"
	"strings"

	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
)

// The generators draw from small alphabets so that the same field, tag, key,
// node and time recur across Docs: collisions, equal versions and even equal
// versions with different values (corrupt input) happen often.
var (
	fieldNames = []string{"name", "parentId", "trashed"}
	tagNames   = []string{"a", "b", "c"}
	dataKeys   = []string{"k", "l"}
	fileKeys   = []string{"f1", "f2"}
	nodes      = []string{"r1", "r2", "srv"}
	// -1 is corrupt input (a wire message or a device clock before 1970): the
	// zero Version must still be older than it.
	times    = []int64{-1, 0, 1, 2, 3}
	counters = []uint32{0, 1, 2}
	values   = [][]byte{nil, []byte(`1`), []byte(`"x"`), []byte(`{"a":1}`)}
)

// genVersion draws a non-zero Version (Node is never empty).
func genVersion() *rapid.Generator[crdt.Version] {
	return rapid.Custom(func(t *rapid.T) crdt.Version {
		return crdt.Version{
			Time:    rapid.SampledFrom(times).Draw(t, "time"),
			Counter: rapid.SampledFrom(counters).Draw(t, "counter"),
			Node:    rapid.SampledFrom(nodes).Draw(t, "node"),
		}
	})
}

func genField() *rapid.Generator[crdt.Field] {
	return rapid.Custom(func(t *rapid.T) crdt.Field {
		return crdt.Field{
			V:   genVersion().Draw(t, "v"),
			Val: rapid.SampledFrom(values).Draw(t, "val"),
		}
	})
}

func genElem() *rapid.Generator[crdt.Elem] {
	return rapid.Custom(func(t *rapid.T) crdt.Elem {
		return crdt.Elem{
			V:       genVersion().Draw(t, "v"),
			Present: rapid.Bool().Draw(t, "present"),
		}
	})
}

// genDoc draws a Doc or delta; about one in four carries a tombstone, and a
// generated tombstoned Doc may still carry fields (a delta that sets fields
// and deletes, or corrupt input).
func genDoc() *rapid.Generator[crdt.Doc] {
	return rapid.Custom(func(t *rapid.T) crdt.Doc {
		d := crdt.Doc{
			Fields: rapid.MapOfN(rapid.SampledFrom(fieldNames), genField(), -1, len(fieldNames)).Draw(t, "fields"),
			Tags:   rapid.MapOfN(rapid.SampledFrom(tagNames), genElem(), -1, len(tagNames)).Draw(t, "tags"),
			Data:   rapid.MapOfN(rapid.SampledFrom(dataKeys), genField(), -1, len(dataKeys)).Draw(t, "data"),
			Files:  rapid.MapOfN(rapid.SampledFrom(fileKeys), genField(), -1, len(fileKeys)).Draw(t, "files"),
		}
		if rapid.IntRange(0, 3).Draw(t, "tombstone") == 0 {
			d.Deleted = genVersion().Draw(t, "deleted")
		}
		return d
	})
}

// show renders d deterministically, values as text, for failure messages.
func show(d crdt.Doc) string {
	var b strings.Builder
	b.WriteString("{")
	if d.IsDeleted() {
		fmt.Fprintf(&b, "del=%v ", d.Deleted)
	}
	fields := func(label string, m map[string]crdt.Field) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "%s[", label)
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ")
			}
			f := m[k]
			if f.Val == nil {
				fmt.Fprintf(&b, "%s=<nil>@%v", k, f.V)
			} else {
				fmt.Fprintf(&b, "%s=%s@%v", k, f.Val, f.V)
			}
		}
		b.WriteString("] ")
	}
	fields("f", d.Fields)
	fields("d", d.Data)
	fields("a", d.Files)
	keys := make([]string, 0, len(d.Tags))
	for k := range d.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("g[")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%t@%v", k, d.Tags[k].Present, d.Tags[k].V)
	}
	b.WriteString("]}")
	return b.String()
}
