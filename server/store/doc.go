// Package store is the server's embedded Badger store: items, per-channel
// feeds, indexes, accesses, users, sessions and attachments, with one
// committer goroutine that owns every write.
//
// Keys (user is the lower-case username; seq is 8 bytes big-endian):
//
//	usr/<user>                          user record (JSON)
//	ses/<session id>                    session (JSON)
//	tok/<token>                         <user>/<access id>
//	meta/epoch                          the store's epoch (new on restore)
//	meta/format                         the layout version this store is in (2: records in feed entries)
//	u/<user>/seq                        head sequence of the user's change log
//	u/<user>/i/<k>/<id>                 the item: a reference to the feed entry holding its record, or the record
//	u/<user>/f/<channel>/<seq>          feed entry: the item at that seq with its record, or an exit marker
//	u/<user>/x/<channel>/<k>/<id>       seq of the item's exit marker in that channel's feed
//	u/<user>/t/<channel>/<time>/<id>    event time index (time as order-preserving 8 bytes)
//	u/<user>/hw/<replica>               replica high-water mark (last applied replica seq)
//	u/<user>/r/<replica>/<rseq><n>      stored results of one push of n applied changes from rseq on, for replays (SYNC-NOTES §4)
//	u/<user>/a/<access id>              access (JSON)
//	u/<user>/b/<bookmark id>            bookmark (JSON)
//	u/<user>/p/<access id>              app profile (JSON)
//	u/<user>/ref/<digest>/<event id>    attachment reference
//
// <k> is c, f or e (channel, folder, event). A channel's own record is fed
// into its own feed; folders and events into their channel's.
//
// Invariants:
//   - Only the committer writes. Sequence numbers are per user, gap-free,
//     assigned in commit order inside the transaction that writes the change.
//   - Each item has exactly one entry in the feed of its current channel, at
//     its latest seq; the previous entry is deleted in the same transaction.
//     An item that leaves a channel leaves an exit marker in that channel's
//     feed (one per item and channel, replaced when it leaves again).
//   - Tombstoned items keep their record forever (an event id is never
//     reused); their feed entry stays until compaction past the horizon.
//   - A write request either commits whole or not at all: its writes go to
//     its group commit's write set with an undo log, and are rolled back
//     before the next request runs if it fails; only the write sets of
//     group commits reach Badger. A savepoint (Tx.Savepoint, RollbackTo)
//     undoes one part of a request the same way, the sequence numbers it
//     took included: a refused change of a push or of an HTTP batch.
//   - A notice of changed events can carry their scope facts before and
//     after the change (Notice.Exact, set by Tx.Touching before PutItem),
//     so that only the connections whose scope the change touches are told;
//     without them every connection that sees the channel is.
//   - Each record is written once: a feed entry that is not an exit
//     carries its item's record (crdt.Doc, feed seq, feed channel, in
//     msgpack), with a header that says whether the document is a
//     tombstone, whether it has the created field, and where it lies in the
//     record ("<k>+" + flags + uvarint id length + id + uvarint offset +
//     uvarint length + record; "<k>=" + uvarint id length + id + record in
//     older stores), so that a feed reader sends it without scanning it.
//     PutItem stores under the item's key only a reference to that entry
//     (0xc1, a byte msgpack never uses, then flags, seq, indexed time and
//     channel: what the next write needs to update the indexes). The item's
//     key holds the record itself only for a tombstone whose feed entry
//     compaction removed, and in stores written before records moved into
//     the feed, where feed entries of the older form ("<k>:<id>") are read
//     through the item's key. A reference whose entry is missing or holds
//     another record is ErrCorrupt.
//   - Item keys are never deleted. In single-node mode the committer keeps
//     per user a Bloom filter of the item keys Badger holds (idfilter.go),
//     so that a create skips the read that would find its id unused; the
//     filter never misses a key: built from a scan plus the flight's and the
//     open group commit's writes, then fed every group commit's item keys
//     as it is handed to Badger.
//   - A corrupt stored value makes reads return an error, never panic:
//     records are read by a bounds-checked hand decoder (decodeRecord over
//     internal/mp), every other msgpack value passes the syncproto
//     validation gate before decoding.
//
// Cluster mode (Options.Log, logged.go): the store is one node of a
// cluster and Badger a cache of the replicated log.
//   - A group commit appends each user's writes to the log, conditional on
//     the last entry this node applied for that user, before they reach
//     Badger; requests are answered only once both hold. A user whose log
//     moved on is caught up and its requests run again, refused ones too
//     (a refusal decided on a stale state is no answer).
//   - Other nodes' entries are applied in log order by the committer
//     goroutine between group commits and reported to OnCommit.
//   - Keys under meta/log/ are this node's bookkeeping, never appended.
//   - Open returns once the node has applied the log as it stood when it
//     opened; there is no flight (group commits are not pipelined).
//
// Group commits are pipelined: while one is being written and synced by
// Badger (the flight), the next one runs its requests against a snapshot
// taken before the flight plus the flight's and its own write sets, and is
// handed to Badger when the flight has landed. Requests are answered, heads
// published and OnCommit called only once their group commit is durable; a
// reader's snapshot waits for the flight (Badger's read timestamp), so no
// reader sees a write before it is durable. If a flight fails, the group
// commit built on it runs its requests again. When the disk rather than the
// CPU is the bottleneck, the committer lets the writers a flight answers
// come back before it sends the next group commit, so that each sync carries
// more changes.
//
// Performance: on the 2-core development machine, with SyncWrites on and 64
// concurrent writers, BenchmarkCommitterBatch100 (100 small event changes
// per request) measured a median of about 113k durable changes/s when the
// machine was otherwise quiet (85-100k/s while other jobs ran), and
// BenchmarkCommitter (one change per request, so one sync per group commit
// of at most 64 changes) about 60k/s. The whole process spends about 10 µs
// of CPU per change (14 µs with one change per request), over half of it in
// Badger: its single write goroutine (memtable and WAL) is the bottleneck,
// then memtable flushes and compaction. Measure with
//
//	go test -run '^$' -bench Committer -benchtime 2s -count 3 ./server/store/
//
// and compare runs taken at the same time: the cpu-µs/change metric varies
// far less with the machine's load than changes/s.
package store
