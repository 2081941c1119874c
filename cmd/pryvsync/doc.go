// Command pryvsync is the pryvsync server (one node, or a node of a cluster
// over NATS JetStream), its replica command line, its backup and restore
// tools, its load generator and an in-process NATS cluster for trying
// cluster mode, in one binary.
//
// main only parses the command line into the packages' configs and maps
// errors to exit codes: 0 success, 1 failure (one line on stderr), 2 bad
// usage. Flags may also come from PRYVSYNC_<FLAG> environment variables.
package main
