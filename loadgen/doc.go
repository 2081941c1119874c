// Package loadgen drives the benchmark workloads W1–W7 of DESIGN.md §6
// against a pryvsync server on loopback: an external one, or one started in
// this process on a temporary on-disk store with SyncWrites on.
//
// Each workload is one function taking a Config and returning a Result: the
// figures of every run, their median and spread, and the target they are
// held to. The shapes are fixed: an event is a channel, one of 20 folders, a
// time, type note/txt, an ~80-character value and 0–3 of 10 tags (about 200
// bytes of JSON).
//
// Invariants:
//   - Every run of a workload starts from a fresh replica (and, where the
//     workload writes, a fresh user), so runs do not see each other's data.
//   - A workload that measures memory of one side runs that side in a child
//     process (Config.Exec) and reads its /proc status; without Exec it
//     falls back to in-process Go memory and says so in the result's notes.
//   - Seeding goes through the server's one write rule (server.ApplyChange)
//     directly in the store for an in-process server, through sync pushes
//     for an external one.
package loadgen
