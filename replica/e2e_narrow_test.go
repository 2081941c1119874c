package replica_test

import (
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// An access narrowed from a folder to its subfolder: the replica, like a
// fresh one of the same token and like HTTP, shows the subfolder without its
// now hidden parent.
func TestNarrowingToASubfolderHidesItsParentOnTheReplica(t *testing.T) {
	e := newE2E(t)
	owner := e.open(e.personal)
	if _, err := owner.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.CreateFolder(body(t, `{"id":"top","channelId":"diary","name":"Top"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := owner.CreateFolder(body(t, `{"id":"sub","channelId":"diary","name":"Sub","parentId":"top"}`)); err != nil {
		t.Fatal(err)
	}
	mustSync(t, owner)
	top := "top"
	a := &model.Access{Type: model.AccessShared, Name: "top", Permissions: []model.Permission{
		{ChannelID: "diary", Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: &top, Level: "read"}}}}}
	tok := e.token(a)
	r := e.open(tok)
	mustSync(t, r)
	parentOf := func(name string, fs []*model.Folder) any {
		for _, f := range fs {
			if f.ID == "sub" {
				if f.ParentID == nil {
					return nil
				}
				return *f.ParentID
			}
		}
		t.Fatalf("%s: folder sub missing", name)
		return nil
	}
	fs, _ := r.ListFolders("")
	if p := parentOf("before", fs); p != "top" {
		t.Fatalf("before narrowing: sub's parent %v, want top", p)
	}
	st, b := httpJSON(t, "PUT", e.url+"/"+e2eUser+"/accesses/"+a.Token, e.personal,
		`{"permissions":[{"channelId":"diary","level":"read","folderPermissions":[{"folderId":"sub","level":"read"}]}]}`)
	if st != 200 {
		t.Fatalf("narrow: %d %s", st, b)
	}
	mustSync(t, r)
	mustSync(t, r)
	fresh := e.open(tok)
	mustSync(t, fresh)
	ffs, _ := fresh.ListFolders("")
	if p := parentOf("fresh", ffs); p != nil {
		t.Fatalf("fresh replica: sub's parent %v, want none", p)
	}
	_, hb := httpDo(t, "GET", e.url+"/"+e2eUser+"/diary/folders", tok)
	fs, _ = r.ListFolders("")
	if p := parentOf("after", fs); p != nil {
		t.Fatalf("after narrowing to sub: the replica shows sub with parentId %v; a fresh replica of the same token "+
			"shows none, and so does HTTP (%s)", p, hb)
	}
}
