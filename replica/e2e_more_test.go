package replica_test

import (
	"context"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
)

func TestReadOnlyTokenWriteMadeBeforeKnowingTheScopeIsRejectedKeptAndRolledBack(t *testing.T) {
	e := newE2E(t)
	owner := e.open(e.personal)
	owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	mustSync(t, owner)
	// A replica that never synced does not know its scope: the write is
	// accepted locally, and the server decides.
	r := e.open(e.token(&model.Access{Type: model.AccessShared, Name: "ro", Permissions: []model.Permission{{ChannelID: "diary", Level: "read"}}}))
	id, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"mine"}`))
	if err != nil {
		t.Fatalf("local write before any sync: %v", err)
	}
	if _, err := r.GetEvent(id); err != nil {
		t.Fatalf("the local write is not visible at once: %v", err)
	}
	res := mustSync(t, r)
	if res.Rejected != 1 {
		t.Fatalf("round result: %+v, want one rejection", res)
	}
	rej, err := r.Rejections()
	if err != nil || len(rej) != 1 {
		t.Fatalf("rejections: %+v, %v; want one", rej, err)
	}
	if got := rej[0]; got.Kind != "rejected" || got.Error.ID != "forbidden" || got.ItemID != id || len(got.Change) == 0 {
		t.Fatalf("rejection: %+v, want a forbidden rejection of %s with its content", got, id)
	}
	if _, err := r.GetEvent(id); err == nil {
		t.Fatalf("the refused write was not rolled back")
	}
	if st, _ := r.Status(); st.Pending != 0 || st.Rejections != 1 {
		t.Fatalf("status: %+v, want nothing pending and one rejection", st)
	}
	if err := r.DiscardRejection(rej[0].ID); err != nil {
		t.Fatal(err)
	}
	if rej, _ := r.Rejections(); len(rej) != 0 {
		t.Fatalf("rejections after discard: %+v", rej)
	}
}

func TestStaleCursorIsResetAndPendingChangesArePushedFirst(t *testing.T) {
	e := newE2E(t)
	r := e.open(e.personal)
	r.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`))
	old, _ := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"old"}`))
	mustSync(t, r)
	// While the replica is offline: it records a change, and the server
	// deletes an event and compacts past the replica's cursor.
	mine, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"offline"}`))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if st, b := httpDo(t, "DELETE", e.url+"/"+e2eUser+"/diary/events/"+old, e.personal); st != 200 {
			t.Fatalf("delete: %d %s", st, b)
		}
	}
	if _, err := e.srv.Store().Compact(context.Background(), time.Now().Add(time.Hour), 0); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if e.srv.Store().Floor(e2eUser) == 0 {
		t.Fatalf("compaction did not raise the floor")
	}
	mustSync(t, r)
	if st, b := httpDo(t, "GET", e.url+"/"+e2eUser+"/diary/events/"+mine, e.personal); st != 200 {
		t.Fatalf("the pending change was lost in the reset: %d %s", st, b)
	}
	evs, err := r.ListEvents(replica.Filter{State: "all"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].ID != mine {
		t.Fatalf("after the reset the replica holds %d events, want only %s (the deleted one gone)", len(evs), mine)
	}
}
