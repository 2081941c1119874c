package replica_test

import (
	"testing"
)

// An event deleted on the server while a replica's initial download runs,
// after the replica received it, leaves the replica (SPEC §4.1.1: once
// synced, a replica holds exactly the server's state in its scope).
func TestEventDeletedDuringTheInitialDownloadLeavesTheReplica(t *testing.T) {
	e := newE2E(t)
	owner := e.open(e.personal)
	if _, err := owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, owner)
	e.seedEvents("diary", 20_000)

	r := e.open(e.personal)
	changes := r.Subscribe()
	deleted := make(chan string, 1)
	go func() {
		for c := range changes {
			if c.Kind != "event" {
				continue
			}
			// The first event applied: delete it on the server (trash, then delete).
			for i := 0; i < 2; i++ {
				if st, b := httpDo(t, "DELETE", e.url+"/"+e2eUser+"/diary/events/"+c.ID, e.personal); st != 200 {
					t.Errorf("delete: %d %s", st, b)
				}
			}
			deleted <- c.ID
			return
		}
	}()
	mustSync(t, r)
	victim := <-deleted
	mustSync(t, r) // a second round, in case the deletion came after the first
	if st, _ := httpDo(t, "GET", e.url+"/"+e2eUser+"/diary/events/"+victim, e.personal); st != 404 {
		t.Fatalf("server: GET deleted event: %d, want 404", st)
	}
	if ev, err := r.GetEvent(victim); err == nil {
		t.Fatalf("the replica still holds event %s (value %s), deleted on the server during its initial download", victim, ev.Value)
	}
}
