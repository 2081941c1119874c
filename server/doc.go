// Package server is the pryvsync server: the early Pryv HTTP API, the
// notifications socket and the sync endpoint, over the store of
// server/store.
//
// Invariants:
//   - Every write, from HTTP or a replica's push, goes through ApplyChange
//     inside the store's committer: one permission check (model.Scope) and
//     one set of invariants (SPEC §1) for both paths, checked against the
//     state left by the earlier changes of the same request.
//   - Nothing outside a token's scope leaves the server: lists, single
//     reads, attachments, notifications, sync items and error messages all
//     answer an out-of-scope item exactly like an unknown one; sync removals
//     are blinded with the access's key, and a folder never names a parent
//     the token cannot see (wireDoc).
//   - The committer never waits on a socket: the Hub only records and
//     signals; each session reads the feed itself from its cursor, with at
//     most MaxInFlight unacknowledged full (not caught-up) batches; a
//     caught-up batch is never held back and needs no ack.
//   - A session re-reads its access on every push and on every access
//     change in the feed: revocation closes with 4403, expiry with 4401,
//     new permissions are announced (scope) and the scope re-sent.
//   - Tokens, session ids, passwords and the admin key never reach logs:
//     paths are logged up to the channel, never the query.
package server
