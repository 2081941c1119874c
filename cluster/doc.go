// Package cluster runs pryvsync nodes over a NATS JetStream cluster: Log
// is the store.Log that keeps every user's change log in one replicated
// stream, and NATS runs a cluster of NATS servers inside the process for
// tests, benchmarks and the demo.
//
// Invariants:
//   - A user's entries are the messages of subject pryvsync.u.<user>, in
//     stream order; an entry's sequence is its stream sequence, the same on
//     every node.
//   - Append publishes with the expected last sequence of the user's
//     subject, so two nodes never both append after the same entry; it
//     retries an unknown outcome with the same message id, which JetStream
//     deduplicates (within the stream's two-minute window), so an entry is
//     never stored twice.
//   - The first epoch published on pryvsync.epoch is the cluster's; nodes
//     that start later take it.
package cluster
