package crdt

import (
	"fmt"
	"strings"
)

// Version is a hybrid logical clock reading: physical milliseconds, a counter
// for events within the same millisecond, and the id of the node (replica or
// server) that produced it. The zero Version is older than every other.
type Version struct {
	Time    int64  `msgpack:"t" json:"t"`
	Counter uint32 `msgpack:"c" json:"c"`
	Node    string `msgpack:"n" json:"n"`
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	// A negative Time (corrupt input) must not sort below the zero Version:
	// Max would then drop a tombstone stamped with it.
	if (v.Time < 0 || o.Time < 0) && v.IsZero() != o.IsZero() {
		if v.IsZero() {
			return -1
		}
		return 1
	}
	switch {
	case v.Time < o.Time:
		return -1
	case v.Time > o.Time:
		return 1
	case v.Counter < o.Counter:
		return -1
	case v.Counter > o.Counter:
		return 1
	}
	return strings.Compare(v.Node, o.Node)
}

// Less reports whether v is strictly older than o.
func (v Version) Less(o Version) bool { return v.Compare(o) < 0 }

// IsZero reports whether v is the zero Version.
func (v Version) IsZero() bool { return v.Time == 0 && v.Counter == 0 && v.Node == "" }

// Max returns the newer of v and o.
func Max(v, o Version) Version {
	if v.Less(o) {
		return o
	}
	return v
}

func (v Version) String() string { return fmt.Sprintf("%d.%d@%s", v.Time, v.Counter, v.Node) }
