package replica_test

import (
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// Usernames are case-insensitive (SPEC §1.7). Re-initialising a replica with
// a new token for the same account, spelling the username with another case,
// must not destroy the offline writes not yet pushed.
func TestConfigureUsernameInAnotherCaseKeepsPendingWrites(t *testing.T) {
	e := newE2E(t)
	r := e.open(e.personal)
	if _, err := r.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, r)
	mine, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"offline"}`))
	if err != nil {
		t.Fatal(err)
	}
	tok2 := e.token(&model.Access{Type: model.AccessApp, Name: "app2", DeviceName: "d",
		Permissions: []model.Permission{{ChannelID: "diary", Level: "manage"}}})
	// Same server, same account (the server answers "ALICE01" as alice01).
	if err := r.Configure(e.url, strings.ToUpper(e2eUser), tok2); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetEvent(mine); err != nil {
		t.Fatalf("the pending offline write was destroyed by re-init with the same account: %v", err)
	}
	if st, _ := r.Status(); st.Pending != 1 {
		t.Fatalf("pending after re-init: %+v, want 1", st)
	}
}

// SPEC §4.1.3: a refused write is kept, with its content, in the rejections
// list "that the application reads and clears". Switching the replica to a
// new token of the same account must not silently clear that list.
func TestConfigureWithAnotherTokenKeepsUnreadRejections(t *testing.T) {
	e := newE2E(t)
	owner := e.open(e.personal)
	if _, err := owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, owner)
	r := e.open(e.token(&model.Access{Type: model.AccessShared, Name: "ro", Permissions: []model.Permission{{ChannelID: "diary", Level: "read"}}}))
	if _, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"my refused note"}`)); err != nil {
		t.Fatal(err)
	}
	if res := mustSync(t, r); res.Rejected != 1 {
		t.Fatalf("round: %+v, want one rejection", res)
	}
	rw := e.token(&model.Access{Type: model.AccessShared, Name: "rw", Permissions: []model.Permission{{ChannelID: "diary", Level: "contribute"}}})
	if err := r.Configure(e.url, e2eUser, rw); err != nil {
		t.Fatal(err)
	}
	if rej, _ := r.Rejections(); len(rej) != 1 {
		t.Fatalf("rejections after switching token: %d, want the 1 unread refused write (its content is now lost)", len(rej))
	}
}
