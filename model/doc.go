// Package model holds pryvsync's activity-data rules: item kinds and their
// fields, validation, ids and slugs, accesses and permissions, and Scope, the
// compiled predicate of an access. HTTP handlers, the sync endpoint and the
// replica all validate and check scope through this package, so one rule has
// one implementation.
//
// Invariants:
//   - An item (channel, folder, event) is a crdt.Doc; its scalar fields are
//     stored under the JSON names of SPEC §1 as canonical JSON values, tags in
//     Doc.Tags, clientData in Doc.Data, attachments in Doc.Files.
//   - A Patch is validated before it becomes a delta: nothing invalid reaches
//     a Doc.
//   - Scope answers only from the access's permissions and the folder tree
//     passed in; it never reads storage. Levels are ordered
//     None < Read < Contribute < Manage; the highest covering entry wins.
package model
