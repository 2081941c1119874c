package crdt_test

import (
	"math"
	"testing"

	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
)

func TestVersionCompareOrdersByTimeThenCounterThenNode(t *testing.T) {
	for _, tc := range []struct {
		name string
		v, o crdt.Version
		want int
	}{
		{"time beats counter and node", crdt.Version{Time: 2, Node: "a"}, crdt.Version{Time: 1, Counter: 9, Node: "z"}, 1},
		{"older time loses", crdt.Version{Time: 1, Counter: 9, Node: "z"}, crdt.Version{Time: 2, Node: "a"}, -1},
		{"counter beats node", crdt.Version{Time: 1, Counter: 2, Node: "a"}, crdt.Version{Time: 1, Counter: 1, Node: "z"}, 1},
		{"lower counter loses", crdt.Version{Time: 1, Counter: 1, Node: "z"}, crdt.Version{Time: 1, Counter: 2, Node: "a"}, -1},
		{"counter compared unsigned", crdt.Version{Time: 1, Counter: math.MaxUint32}, crdt.Version{Time: 1, Counter: 1}, 1},
		{"node breaks the tie", crdt.Version{Time: 1, Counter: 1, Node: "b"}, crdt.Version{Time: 1, Counter: 1, Node: "a"}, 1},
		{"lower node loses", crdt.Version{Time: 1, Counter: 1, Node: "a"}, crdt.Version{Time: 1, Counter: 1, Node: "b"}, -1},
		{"equal", crdt.Version{Time: 1, Counter: 1, Node: "a"}, crdt.Version{Time: 1, Counter: 1, Node: "a"}, 0},
		{"zero is older than time zero with a node", crdt.Version{}, crdt.Version{Node: "a"}, -1},
		{"zero is older than a negative time", crdt.Version{}, crdt.Version{Time: -1, Node: "a"}, -1},
		{"negative time is newer than zero", crdt.Version{Time: -1, Node: "a"}, crdt.Version{}, 1},
		{"negative times order among themselves", crdt.Version{Time: -2, Node: "a"}, crdt.Version{Time: -1, Node: "a"}, -1},
	} {
		if got := tc.v.Compare(tc.o); got != tc.want {
			t.Fatalf("%s: %v.Compare(%v): got %d, want %d", tc.name, tc.v, tc.o, got, tc.want)
		}
		if got, want := tc.v.Less(tc.o), tc.want < 0; got != want {
			t.Fatalf("%s: %v.Less(%v): got %t, want %t", tc.name, tc.v, tc.o, got, want)
		}
	}
}

func TestVersionStringShowsTimeCounterAndNode(t *testing.T) {
	if got, want := (crdt.Version{Time: 12, Counter: 3, Node: "r1"}).String(), "12.3@r1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// anyVersion draws from genVersion's alphabet plus the zero Version and
// versions with an empty node or a saturated counter.
func anyVersion() *rapid.Generator[crdt.Version] {
	return rapid.OneOf(
		genVersion(),
		rapid.Just(crdt.Version{}),
		rapid.Custom(func(t *rapid.T) crdt.Version {
			return crdt.Version{
				Time:    rapid.SampledFrom(times).Draw(t, "time"),
				Counter: rapid.SampledFrom([]uint32{0, math.MaxUint32}).Draw(t, "counter"),
				Node:    rapid.SampledFrom([]string{"", "r1"}).Draw(t, "node"),
			}
		}),
	)
}

func TestVersionCompareIsATotalOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := anyVersion().Draw(t, "a"), anyVersion().Draw(t, "b"), anyVersion().Draw(t, "c")
		if got, want := a.Compare(b), -b.Compare(a); got != want {
			t.Fatalf("%v.Compare(%v) = %d but reverse gives %d", a, b, got, -want)
		}
		if got, want := a.Compare(b) == 0, a == b; got != want {
			t.Fatalf("%v.Compare(%v) == 0: got %t, want %t", a, b, got, want)
		}
		if a.Compare(b) <= 0 && b.Compare(c) <= 0 && a.Compare(c) > 0 {
			t.Fatalf("not transitive: %v <= %v <= %v but %v > %v", a, b, c, a, c)
		}
		m := crdt.Max(a, b)
		if (m != a && m != b) || m.Less(a) || m.Less(b) {
			t.Fatalf("Max(%v, %v) = %v", a, b, m)
		}
	})
}

func TestZeroVersionIsOlderThanEveryOther(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := genVersion().Draw(t, "v")
		if !(crdt.Version{}).Less(v) {
			t.Fatalf("zero Version not older than %v", v)
		}
		if got, want := crdt.Max(crdt.Version{}, v), v; got != want {
			t.Fatalf("Max(zero, %v): got %v, want %v", v, got, want)
		}
	})
}
