package crdt_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
)

// Each rapid case draws a small batch of Docs and checks a law on every pair
// or triple of it (or on many permutations), so the default 100 cases per
// property amount to thousands of checks; each test logs how many it ran.

func TestMergeIsCommutative(t *testing.T) {
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		docs := rapid.SliceOfN(genDoc(), 2, 8).Draw(t, "docs")
		for _, a := range docs {
			for _, b := range docs {
				n++
				if ab, ba := crdt.Merge(a, b), crdt.Merge(b, a); !crdt.Equal(ab, ba) {
					t.Fatalf("Merge(a, b) != Merge(b, a)\na=%s\nb=%s\nab=%s\nba=%s", show(a), show(b), show(ab), show(ba))
				}
			}
		}
	})
	t.Logf("%d pairs checked", n)
}

func TestMergeIsAssociative(t *testing.T) {
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		docs := rapid.SliceOfN(genDoc(), 3, 6).Draw(t, "docs")
		for _, a := range docs {
			for _, b := range docs {
				for _, c := range docs {
					n++
					left := crdt.Merge(crdt.Merge(a, b), c)
					right := crdt.Merge(a, crdt.Merge(b, c))
					if !crdt.Equal(left, right) {
						t.Fatalf("(a+b)+c != a+(b+c)\na=%s\nb=%s\nc=%s\nleft=%s\nright=%s", show(a), show(b), show(c), show(left), show(right))
					}
				}
			}
		}
	})
	t.Logf("%d triples checked", n)
}

// A generated Doc may be a tombstone that still carries fields, which no
// merge produces; idempotence is stated on merged states, and merging a Doc
// with itself must equal merging it with nothing.
func TestMergeIsIdempotent(t *testing.T) {
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		docs := rapid.SliceOfN(genDoc(), 2, 5).Draw(t, "docs")
		for _, a := range docs {
			n++
			if got, want := crdt.Merge(a, a), crdt.Merge(a, crdt.Doc{}); !crdt.Equal(got, want) {
				t.Fatalf("Merge(a, a) != Merge(a, {})\na=%s\ngot=%s\nwant=%s", show(a), show(got), show(want))
			}
			for _, b := range docs {
				n++
				x := crdt.Merge(a, b)
				if got := crdt.Merge(x, x); !crdt.Equal(got, x) {
					t.Fatalf("Merge(x, x) != x\nx=%s\ngot=%s", show(x), show(got))
				}
				if got := crdt.Merge(x, b); !crdt.Equal(got, x) {
					t.Fatalf("merging b again into x = a+b changed it\na=%s\nb=%s\nx=%s\ngot=%s", show(a), show(b), show(x), show(got))
				}
			}
		}
	})
	t.Logf("%d docs checked", n)
}

func TestMergeDoesNotModifyItsInputs(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genDoc().Draw(t, "a"), genDoc().Draw(t, "b")
		a0, b0 := a.Clone(), b.Clone()
		crdt.Merge(a, b)
		crdt.Apply(a, b)
		if !crdt.Equal(a, a0) || !crdt.Equal(b, b0) {
			t.Fatalf("inputs changed: a=%s (was %s), b=%s (was %s)", show(a), show(a0), show(b), show(b0))
		}
	})
}

// TestMergeOfAnyPermutationOfDeltasConverges folds a multiset of deltas, with
// duplicates, from an empty Doc in many orders and groupings.
func TestMergeOfAnyPermutationOfDeltasConverges(t *testing.T) {
	const perms = 50
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		deltas := rapid.SliceOfN(genDoc(), 1, 8).Draw(t, "deltas")
		picks := rapid.SliceOfN(rapid.IntRange(0, len(deltas)-1), 1, 12).Draw(t, "duplicates")
		multiset := slices.Clone(deltas)
		for _, i := range picks {
			multiset = append(multiset, deltas[i])
		}
		want := fold(multiset)
		for i := 0; i < perms; i++ {
			n++
			order := rapid.Permutation(multiset).Draw(t, "order")
			if got := fold(order); !crdt.Equal(got, want) {
				t.Fatalf("order %d converged elsewhere\ngot=%s\nwant=%s", i, show(got), show(want))
			}
			if got := foldTree(order); !crdt.Equal(got, want) {
				t.Fatalf("tree fold of order %d converged elsewhere\ngot=%s\nwant=%s", i, show(got), show(want))
			}
		}
	})
	t.Logf("%d orders checked", n)
}

func fold(deltas []crdt.Doc) crdt.Doc {
	var d crdt.Doc
	for _, x := range deltas {
		d = crdt.Merge(d, x)
	}
	return d
}

// foldTree merges the two halves separately, as two replicas would.
func foldTree(deltas []crdt.Doc) crdt.Doc {
	if len(deltas) < 2 {
		return fold(deltas)
	}
	return crdt.Merge(foldTree(deltas[:len(deltas)/2]), foldTree(deltas[len(deltas)/2:]))
}

// TestMergeKeepsTheNewestVersionOfEachEntry pins what the join is: the laws
// above would also hold for one that always kept the oldest entry.
func TestMergeKeepsTheNewestVersionOfEachEntry(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genDoc().Draw(t, "a"), genDoc().Draw(t, "b")
		got := crdt.Merge(a, b)
		if a.IsDeleted() || b.IsDeleted() {
			return // TestTombstoneBeatsEveryFieldVersion
		}
		checkNewestFields(t, "field", got.Fields, a.Fields, b.Fields)
		checkNewestFields(t, "clientData", got.Data, a.Data, b.Data)
		checkNewestFields(t, "attachment", got.Files, a.Files, b.Files)
		if got, want := len(got.Tags), len(union(a.Tags, b.Tags)); got != want {
			t.Fatalf("merged tags: got %d, want %d", got, want)
		}
		for k, e := range got.Tags {
			ea, oka := a.Tags[k]
			eb, okb := b.Tags[k]
			want := ea
			if !oka || (okb && ea.V.Less(eb.V)) {
				want = eb
			}
			if e.V != want.V || (e != ea && e != eb) {
				t.Fatalf("tag %q: got %+v, want version %v from a=%+v b=%+v", k, e, want.V, ea, eb)
			}
		}
	})
}

func checkNewestFields(t *rapid.T, what string, got, a, b map[string]crdt.Field) {
	t.Helper()
	if g, w := len(got), len(union(a, b)); g != w {
		t.Fatalf("merged %s entries: got %d, want %d", what, g, w)
	}
	for k, f := range got {
		fa, oka := a[k]
		fb, okb := b[k]
		want := fa
		if !oka || (okb && fa.V.Less(fb.V)) {
			want = fb
		}
		same := func(x crdt.Field) bool { return x.V == f.V && bytes.Equal(x.Val, f.Val) }
		if f.V != want.V || !(oka && same(fa) || okb && same(fb)) {
			t.Fatalf("%s %q: got %s@%v, want version %v from a=%s@%v b=%s@%v", what, k, f.Val, f.V, want.V, fa.Val, fa.V, fb.Val, fb.V)
		}
	}
}

func union[V any](a, b map[string]V) map[string]bool {
	u := make(map[string]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

func TestTombstoneBeatsEveryFieldVersion(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := genDoc().Draw(t, "a"), genDoc().Draw(t, "b")
		got := crdt.Merge(a, b)
		if got, want := got.IsDeleted(), a.IsDeleted() || b.IsDeleted(); got != want {
			t.Fatalf("merged IsDeleted: got %t, want %t\na=%s\nb=%s", got, want, show(a), show(b))
		}
		if !got.IsDeleted() {
			return
		}
		if len(got.Fields) != 0 || len(got.Tags) != 0 || len(got.Data) != 0 || len(got.Files) != 0 {
			t.Fatalf("merged tombstone carries entries: %s\na=%s\nb=%s", show(got), show(a), show(b))
		}
		for _, d := range []crdt.Doc{a, b} {
			if d.IsDeleted() && got.Deleted.Less(d.Deleted) {
				t.Fatalf("merged tombstone %v older than input tombstone %v", got.Deleted, d.Deleted)
			}
		}
		if got.Deleted != a.Deleted && got.Deleted != b.Deleted {
			t.Fatalf("merged tombstone %v is neither input's (%v, %v)", got.Deleted, a.Deleted, b.Deleted)
		}
	})
}

func TestApplyResultEqualsMerge(t *testing.T) {
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		docs := rapid.SliceOfN(genDoc(), 2, 8).Draw(t, "docs")
		for _, cur := range docs {
			for _, delta := range docs {
				n++
				got, _ := crdt.Apply(cur, delta)
				if want := crdt.Merge(cur, delta); !crdt.Equal(got, want) {
					t.Fatalf("Apply != Merge\ncur=%s\ndelta=%s\napply=%s\nmerge=%s", show(cur), show(delta), show(got), show(want))
				}
			}
		}
	})
	t.Logf("%d pairs checked", n)
}

// TestApplyReportsExactlyTheEntriesThatLost checks both ways: every entry
// reported lost had a newer (or equal-but-different, winning) entry in cur or
// met cur's tombstone, and every entry not reported made it into the result.
func TestApplyReportsExactlyTheEntriesThatLost(t *testing.T) {
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		docs := rapid.SliceOfN(genDoc(), 2, 8).Draw(t, "docs")
		for _, cur := range docs {
			for _, delta := range docs {
				n++
				checkLost(t, cur, delta)
			}
		}
	})
	t.Logf("%d pairs checked", n)
}

func checkLost(t *rapid.T, cur, delta crdt.Doc) {
	t.Helper()
	got, lost := crdt.Apply(cur, delta)
	if !slices.IsSorted(lost) {
		t.Fatalf("lost not sorted: %q", lost)
	}
	if i := len(slices.Compact(slices.Clone(lost))); i != len(lost) {
		t.Fatalf("lost has duplicates: %q", lost)
	}
	reported := make(map[string]bool, len(lost))
	for _, k := range lost {
		reported[k] = true
	}
	ctx := func() string { return "\ncur=" + show(cur) + "\ndelta=" + show(delta) + "\ngot=" + show(got) }

	// entry describes one entry of delta: its name in Lost, whether cur holds
	// one newer or equal-but-different, and whether the result holds delta's.
	type entry struct {
		name           string
		curNewer, kept bool
	}
	var entries []entry
	fields := func(prefix string, d, c, r map[string]crdt.Field) {
		for k, f := range d {
			cf, ok := c[k]
			rf, rok := r[k]
			entries = append(entries, entry{
				name:     prefix + k,
				curNewer: ok && (f.V.Less(cf.V) || f.V == cf.V && !bytes.Equal(f.Val, cf.Val)),
				kept:     rok && rf.V == f.V && bytes.Equal(rf.Val, f.Val),
			})
		}
	}
	fields("", delta.Fields, cur.Fields, got.Fields)
	fields("clientData:", delta.Data, cur.Data, got.Data)
	fields("attachments:", delta.Files, cur.Files, got.Files)
	for k, e := range delta.Tags {
		ce, ok := cur.Tags[k]
		re, rok := got.Tags[k]
		entries = append(entries, entry{
			name:     "tags:" + k,
			curNewer: ok && (e.V.Less(ce.V) || e.V == ce.V && e != ce),
			kept:     rok && re == e,
		})
	}

	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.name] = true
		switch {
		case cur.IsDeleted():
			if !reported[e.name] {
				t.Fatalf("%s not reported lost although cur is a tombstone%s", e.name, ctx())
			}
		case delta.IsDeleted():
			if reported[e.name] {
				t.Fatalf("%s reported lost although delta's own tombstone removed it%s", e.name, ctx())
			}
		case reported[e.name]:
			if !e.curNewer || e.kept {
				t.Fatalf("%s reported lost but cur held nothing newer or it was kept%s", e.name, ctx())
			}
		case !e.kept:
			t.Fatalf("%s lost without being reported%s", e.name, ctx())
		}
	}
	for _, k := range lost {
		if !names[k] {
			t.Fatalf("lost names %q, which delta does not set%s", k, ctx())
		}
	}
}

// FuzzMerge checks the merge laws on Docs decoded from the fuzzer's bytes.
// Under plain go test it runs the seed corpus only.
func FuzzMerge(f *testing.F) {
	// rapid reads the input as its random stream; short inputs run out and
	// are skipped, so the seeds are long pseudo-random streams.
	r := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		seed := make([]byte, 4096)
		for i := range seed {
			seed[i] = byte(r.Uint32())
		}
		f.Add(seed)
	}
	f.Fuzz(rapid.MakeFuzz(func(t *rapid.T) {
		a, b, c := genDoc().Draw(t, "a"), genDoc().Draw(t, "b"), genDoc().Draw(t, "c")
		if !crdt.Equal(crdt.Merge(a, b), crdt.Merge(b, a)) {
			t.Fatalf("not commutative\na=%s\nb=%s", show(a), show(b))
		}
		if !crdt.Equal(crdt.Merge(crdt.Merge(a, b), c), crdt.Merge(a, crdt.Merge(b, c))) {
			t.Fatalf("not associative\na=%s\nb=%s\nc=%s", show(a), show(b), show(c))
		}
		if x := crdt.Merge(a, b); !crdt.Equal(crdt.Merge(x, x), x) {
			t.Fatalf("not idempotent\nx=%s", show(x))
		}
		checkLost(t, a, b)
	}))
}

// Adopt is the copy-free form of applying a delta to nothing.
func TestAdoptIsApplyToNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		d := genDoc().Draw(t, "delta")
		if rapid.Bool().Draw(t, "emptyMaps") {
			// Empty, non-nil maps: Apply leaves them out.
			if d.Fields == nil {
				d.Fields = map[string]crdt.Field{}
			}
			if d.Tags == nil {
				d.Tags = map[string]crdt.Elem{}
			}
		}
		want, lost := crdt.Apply(crdt.Doc{}, d)
		if len(lost) != 0 {
			t.Fatalf("applying to nothing lost %v", lost)
		}
		if got := crdt.Adopt(d.Clone()); !reflect.DeepEqual(got, want) {
			t.Fatalf("Adopt(d) != Apply({}, d)\nd=%s\nadopt=%s\napply=%s", show(d), show(got), show(want))
		}
	})
}
