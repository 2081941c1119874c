package replica_test

import (
	"testing"
	"time"
)

// Two folders created offline with one name under one parent: the later
// one by version is renamed "<name> (2)" (SPEC §4.3), even when it reached
// the server first.
func TestFolderClashRenamesTheLaterCreationByVersion(t *testing.T) {
	e := newE2E(t)
	a, b := e.open(e.personal), e.open(e.personal)
	if _, err := a.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, b)
	// Offline on both: b creates first (lower version), a later.
	early, err := b.CreateFolder(body(t, `{"id":"early","channelId":"diary","name":"Inbox"}`))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	late, err := a.CreateFolder(body(t, `{"id":"late","channelId":"diary","name":"Inbox"}`))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, a) // the later creation reaches the server first
	mustSync(t, b)
	mustSync(t, a)
	names := map[string]string{}
	fs, _ := a.ListFolders("diary")
	for _, f := range fs {
		names[f.ID] = f.Name
	}
	if names[early] != "Inbox" || names[late] != "Inbox (2)" {
		t.Fatalf("got %s=%q (created first) and %s=%q (created later); want the later one (by version) renamed \"Inbox (2)\"",
			early, names[early], late, names[late])
	}
}
