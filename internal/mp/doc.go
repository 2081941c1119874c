// Package mp writes and reads, by hand, the msgpack that pryvsync's hot
// paths use: stored records, CRDT documents and feed batches. It produces
// exactly what github.com/vmihailenco/msgpack/v5 produces with compact
// integers, and reads everything that package writes for the same types, so
// the two can be mixed freely on either side of the wire or the store.
//
// Invariants:
//   - A Reader never reads past its slice and never allocates more than the
//     input's size: a declared length longer than the bytes left is an error
//     (a map of n entries needs 2n bytes, an array of n elements n bytes).
//   - Skip follows at most 16 levels of nesting.
//   - Bytes returned by a Reader alias the input with their capacity
//     clipped, so an append never writes into the input.
//   - Intern's table is bounded (4096 slots of strings up to 48 bytes),
//     whatever the input.
package mp
