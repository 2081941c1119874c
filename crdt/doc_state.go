package crdt

import (
	"bytes"
	"maps"
	"sort"
)

// Field is one versioned value. Val holds canonical JSON; nil means the field
// is absent (for clientData and attachments: the key was removed).
type Field struct {
	V   Version `msgpack:"v" json:"v"`
	Val []byte  `msgpack:"x,omitempty" json:"x,omitempty"`
}

// Elem is the versioned presence of one element of a set (a tag).
type Elem struct {
	V       Version `msgpack:"v" json:"v"`
	Present bool    `msgpack:"p" json:"p"`
}

// Doc is the mergeable state of one item (channel, folder or event), or a
// delta of it: a Doc holding only the fields a change sets.
type Doc struct {
	Fields  map[string]Field `msgpack:"f,omitempty" json:"f,omitempty"`
	Tags    map[string]Elem  `msgpack:"g,omitempty" json:"g,omitempty"`
	Data    map[string]Field `msgpack:"d,omitempty" json:"d,omitempty"`
	Files   map[string]Field `msgpack:"a,omitempty" json:"a,omitempty"`
	Deleted Version          `msgpack:"del,omitempty" json:"del,omitempty"`
}

// IsDeleted reports whether d carries a tombstone.
func (d Doc) IsDeleted() bool { return !d.Deleted.IsZero() }

// IsEmpty reports whether d sets nothing at all.
func (d Doc) IsEmpty() bool {
	return len(d.Fields) == 0 && len(d.Tags) == 0 && len(d.Data) == 0 && len(d.Files) == 0 && !d.IsDeleted()
}

// Clone returns a deep copy of d (values are shared: they are never mutated).
func (d Doc) Clone() Doc { return d.CloneRoom(0) }

// CloneRoom is Clone with room for extra more scalar fields, so that adding
// them does not grow the copy's map (a hint: a map past one group of 8 is
// copied whole, with the room its table has).
func (d Doc) CloneRoom(extra int) Doc {
	out := Doc{Deleted: d.Deleted}
	switch {
	case len(d.Fields) > 8:
		// Past a single group the map is a table with room to spare
		// (it holds 7/8 of its slots): copying it whole is faster.
		out.Fields = maps.Clone(d.Fields)
	case d.Fields != nil || extra > 0:
		out.Fields = make(map[string]Field, len(d.Fields)+extra)
		for k, f := range d.Fields {
			out.Fields[k] = f
		}
	}
	if d.Tags != nil {
		out.Tags = make(map[string]Elem, len(d.Tags))
		for k, e := range d.Tags {
			out.Tags[k] = e
		}
	}
	out.Data = cloneFields(d.Data)
	out.Files = cloneFields(d.Files)
	return out
}

// newerField reports whether a beats b. Equal versions with different values
// (which distinct writers never produce) are ordered by bytes, so merge stays
// deterministic even on corrupt input.
func newerField(a, b Field) bool {
	if c := a.V.Compare(b.V); c != 0 {
		return c > 0
	}
	return bytes.Compare(a.Val, b.Val) > 0
}

func newerElem(a, b Elem) bool {
	if c := a.V.Compare(b.V); c != 0 {
		return c > 0
	}
	return a.Present && !b.Present
}

// Merge returns the join of a and b. It does not modify either.
func Merge(a, b Doc) Doc {
	out, _ := apply(a, b, false)
	return out
}

// Lost lists what a delta wanted to set but lost to newer values already in
// the current state. Field names for scalar fields, "tags:<tag>" and
// "clientData:<key>" for elements, sorted.
type Lost []string

// Apply merges delta into cur and reports which of delta's entries lost to
// newer ones in cur (a conflict the writer must be told of). A tombstone in
// cur makes the whole delta lost, except a tombstone in delta.
func Apply(cur, delta Doc) (Doc, Lost) {
	return apply(cur, delta, true)
}

// Adopt returns what Apply(Doc{}, delta) returns for a delta without a
// tombstone (a new item's first state), without copying: the result shares
// delta's maps, so the caller must own delta and not change it afterwards.
func Adopt(delta Doc) Doc {
	if delta.IsDeleted() {
		d, _ := Apply(Doc{}, delta)
		return d
	}
	if len(delta.Fields) == 0 {
		delta.Fields = nil
	}
	if len(delta.Tags) == 0 {
		delta.Tags = nil
	}
	if len(delta.Data) == 0 {
		delta.Data = nil
	}
	if len(delta.Files) == 0 {
		delta.Files = nil
	}
	return delta
}

func apply(a, b Doc, track bool) (Doc, Lost) {
	var lost Lost
	out := Doc{Deleted: Max(a.Deleted, b.Deleted)}
	if out.IsDeleted() {
		if track && a.IsDeleted() {
			for k := range b.Fields {
				lost = append(lost, k)
			}
			for k := range b.Tags {
				lost = append(lost, "tags:"+k)
			}
			for k := range b.Data {
				lost = append(lost, "clientData:"+k)
			}
			for k := range b.Files {
				lost = append(lost, "attachments:"+k)
			}
			sort.Strings(lost)
		}
		return out, lost
	}
	out.Fields = mergeFields(a.Fields, b.Fields, "", track, &lost)
	out.Data = mergeFields(a.Data, b.Data, "clientData:", track, &lost)
	out.Files = mergeFields(a.Files, b.Files, "attachments:", track, &lost)
	if len(a.Tags)+len(b.Tags) > 0 {
		out.Tags = make(map[string]Elem, len(a.Tags)+len(b.Tags))
		for k, e := range a.Tags {
			out.Tags[k] = e
		}
		for k, e := range b.Tags {
			cur, ok := out.Tags[k]
			if !ok || newerElem(e, cur) {
				out.Tags[k] = e
			} else if track && cur != e {
				lost = append(lost, "tags:"+k)
			}
		}
	}
	sort.Strings(lost)
	return out, lost
}

func mergeFields(a, b map[string]Field, prefix string, track bool, lost *Lost) map[string]Field {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := make(map[string]Field, len(a)+len(b))
	for k, f := range a {
		out[k] = f
	}
	for k, f := range b {
		cur, ok := out[k]
		if !ok || newerField(f, cur) {
			out[k] = f
		} else if track && (cur.V != f.V || !bytes.Equal(cur.Val, f.Val)) {
			*lost = append(*lost, prefix+k)
		}
	}
	return out
}

// Get returns the value of a scalar field (nil when absent).
func (d Doc) Get(name string) []byte { return d.Fields[name].Val }

// Has reports whether a scalar field is present with a value.
func (d Doc) Has(name string) bool { return d.Fields[name].Val != nil }

// TagList returns the present tags, sorted.
func (d Doc) TagList() []string {
	out := make([]string, 0, len(d.Tags))
	for k, e := range d.Tags {
		if e.Present {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// DataMap returns the present clientData entries.
func (d Doc) DataMap() map[string][]byte {
	out := make(map[string][]byte, len(d.Data))
	for k, f := range d.Data {
		if f.Val != nil {
			out[k] = f.Val
		}
	}
	return out
}

// MaxVersion returns the newest version anywhere in d.
func (d Doc) MaxVersion() Version {
	m := d.Deleted
	for _, f := range d.Fields {
		m = Max(m, f.V)
	}
	for _, f := range d.Data {
		m = Max(m, f.V)
	}
	for _, f := range d.Files {
		m = Max(m, f.V)
	}
	for _, e := range d.Tags {
		m = Max(m, e.V)
	}
	return m
}

// Restamp returns d with every version newer than limit replaced by stamp():
// the server's defence against a device clock that runs far ahead (SPEC §4.3).
// The values are kept. It reports whether anything was re-stamped.
func (d Doc) Restamp(limit int64, stamp func() Version) (Doc, bool) {
	if d.MaxVersion().Time <= limit {
		return d, false
	}
	out := d.Clone()
	fix := func(v Version) Version {
		if v.Time > limit {
			return stamp()
		}
		return v
	}
	if !out.Deleted.IsZero() {
		out.Deleted = fix(out.Deleted)
	}
	for k, f := range out.Fields {
		f.V = fix(f.V)
		out.Fields[k] = f
	}
	for k, f := range out.Data {
		f.V = fix(f.V)
		out.Data[k] = f
	}
	for k, f := range out.Files {
		f.V = fix(f.V)
		out.Files[k] = f
	}
	for k, e := range out.Tags {
		e.V = fix(e.V)
		out.Tags[k] = e
	}
	return out, true
}

// Equal reports whether a and b hold the same state.
func Equal(a, b Doc) bool {
	if a.Deleted != b.Deleted || len(a.Tags) != len(b.Tags) ||
		!equalFields(a.Fields, b.Fields) || !equalFields(a.Data, b.Data) || !equalFields(a.Files, b.Files) {
		return false
	}
	for k, e := range a.Tags {
		if g, ok := b.Tags[k]; !ok || g != e {
			return false
		}
	}
	return true
}

func equalFields(a, b map[string]Field) bool {
	if len(a) != len(b) {
		return false
	}
	for k, f := range a {
		g, ok := b[k]
		if !ok || g.V != f.V || !bytes.Equal(g.Val, f.Val) {
			return false
		}
	}
	return true
}

func cloneFields(m map[string]Field) map[string]Field {
	if m == nil {
		return nil
	}
	out := make(map[string]Field, len(m))
	for k, f := range m {
		out[k] = f
	}
	return out
}

// FileMap returns the present attachments, as raw JSON metadata by key.
func (d Doc) FileMap() map[string][]byte {
	out := make(map[string][]byte, len(d.Files))
	for k, f := range d.Files {
		if f.Val != nil {
			out[k] = f.Val
		}
	}
	return out
}
