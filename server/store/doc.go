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
//	u/<user>/seq                        head sequence of the user's change log
//	u/<user>/i/<k>/<id>                 item record: crdt.Doc, feed seq, feed channel (msgpack)
//	u/<user>/f/<channel>/<seq>          feed entry: the item at that seq, or an exit marker
//	u/<user>/x/<channel>/<k>/<id>       seq of the item's exit marker in that channel's feed
//	u/<user>/t/<channel>/<time>/<id>    event time index (time as order-preserving 8 bytes)
//	u/<user>/hw/<replica>               replica high-water mark (last applied replica seq)
//	u/<user>/r/<replica>/<rseq>         stored push result, for replays (SYNC-NOTES §4)
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
//   - A write request either commits whole or not at all: its writes go to a
//     private overlay and reach the Badger transaction only if it succeeds.
//   - A corrupt stored value makes reads return an error, never panic: every
//     msgpack value passes the syncproto validation gate before decoding.
package store
