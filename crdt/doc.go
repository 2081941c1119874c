// Package crdt is the pure merge logic of pryvsync: hybrid logical clock
// versions, versioned fields, per-element versioned sets and maps, and
// tombstones, and their msgpack encoding (codec.go, written by hand over
// internal/mp). It does no I/O and imports nothing else of the project.
//
// Invariants:
//   - A Version is ordered by (Time, Counter, Node); two distinct writers never
//     produce equal versions because Node differs, so every comparison has one
//     winner and Merge never has to break a tie by value.
//   - Merge is commutative, associative and idempotent: any permutation of any
//     set of Docs, with duplicates, merges to one state.
//   - A tombstone (Doc.Deleted non-zero) beats every field version and can
//     never be undone: a merged Doc with a tombstone carries no fields.
//   - Field values are opaque canonical JSON bytes; nil means "absent".
//   - AppendDoc writes what msgpack's reflection writes for a Doc (compact
//     integers, the same keys and omitempty rules), and ReadDoc reads
//     whatever that writes; a Doc read aliases its input's bytes.
package crdt
