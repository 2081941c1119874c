// Package crashtest holds process-level crash tests (SPEC §4.1 and §6):
// the server or a replica is killed with SIGKILL at a random moment, then
// restarted on the same data, and the tests check that everything that was
// acknowledged is still there, nothing is duplicated, and sync completes.
//
// The tests re-execute the test binary as a child process (the
// TestHelper*Process functions, which do nothing unless their environment
// variables are set). Randomness is seeded; each test logs its seed, and
// PRYVSYNC_CRASH_SEED replays it. The package has no non-test code.
package crashtest
