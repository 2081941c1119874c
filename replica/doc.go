// Package replica is the offline-first local copy of a pryvsync account, as
// seen through one access token, and its sync client (SPEC §4, §5.1).
//
// # Storage
//
// One Badger directory, owned by one process (a second Open fails with a
// message naming the directory). Keys:
//
//	s/settings       JSON {server, username, token}
//	s/replica        the replica id (model.NewID at creation), stable forever
//	s/clock          msgpack {last version, offset to server time}
//	s/cursor         JSON syncproto.Cursor: every server change up to it is in base
//	s/perms          JSON: access id and type, permissions, permVersion, removal key
//	s/rseq           next replica sequence number (8 bytes big endian)
//	s/lastsync       last completed round (unix seconds, JSON)
//	b/<kind>/<id>    base: the server's state of an item (msgpack crdt.Doc)
//	x/<blind id>     index of earlier versions (now kept in memory), dropped at the welcome
//	o/<rseq BE>      a local change (msgpack entry): the outbox and the overlay
//	i/<kind>/<id>/<rseq BE>  empty: the outbox by item, one key per o/ entry
//	s/oindexed       marks a store whose every o/ entry has its i/ key
//	r/<id>           a rejection or conflict (JSON Rejection)
//
// # Invariants
//
//   - Outbox order: local changes get strictly increasing rseq in the same
//     transaction that stores them, and are pushed in rseq order.
//   - A local write is durable (committed) before the call returns, and reads
//     are base ⊔ every o/ entry of the item (crdt.Merge), so it shows at once.
//   - Overlay rule (SYNC-NOTES §3): an entry acknowledged at server sequence s
//     (ok, duplicate, conflict) stays in o/ marked acked until the applied
//     cursor reaches s in the same epoch, then it is dropped in the same
//     transaction that moves the cursor. A rejected entry is dropped at once,
//     and base is replaced by the server's current state (or deleted).
//   - A server batch (items, removals, cursor, overlay trimming) is applied in
//     one Badger transaction; the ack of a full (not caught-up) batch is sent
//     after it commits, and a caught-up batch gets none (syncproto.NeedsAck).
//   - A removal id resolves through the session's blindIndex: built from b/
//     under the welcome's key on the session's first removal, then given every
//     item the session writes to b/, so it lists at least what b/ holds.
//   - Every o/ entry has its i/ key, written and deleted in the same
//     transaction; local writes read only their item's (or kind's) entries.
//   - Acknowledged entries precede pending ones in rseq order (pushes go in
//     rseq order and a push is acknowledged whole), so trimming the overlay
//     stops at the first pending entry.
//   - Close code 4401/4403 (or HTTP 401 at upgrade) purges everything held
//     through the token (b/, x/, o/, r/, cursor, perms); settings, replica id
//     and clock stay.
package replica
