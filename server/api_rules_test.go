package server_test

import (
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// Recording into a trashed channel is refused whether the event is new or
// moved there, as for a trashed folder (SPEC §3.5: trashed target).
func TestMovingAnEventIntoATrashedChannelIsRefused(t *testing.T) {
	f := newActFixture(t)
	diary := f.channel("Diary")
	bin := f.channel("Bin")
	f.folder(diary, "old", "Old", "")
	f.must(200, "DELETE", "/"+diary+"/folders/old", nil)
	f.must(200, "DELETE", "/channels/"+bin, nil)
	eid := f.event(diary, map[string]any{})
	st, v := f.call("PUT", "/"+diary+"/events/"+eid, map[string]any{"folderId": "old"})
	f.wantErr("move into a trashed folder", st, v, 400, "invalid-operation")
	st, v = f.call("PUT", "/"+diary+"/events/"+eid, map[string]any{"channelId": bin})
	f.wantErr("move into a trashed channel", st, v, 400, "invalid-operation")
	// An event already in a channel trashed since stays editable.
	diary2 := f.channel("Later")
	moved := f.event(diary2, map[string]any{})
	f.must(200, "DELETE", "/channels/"+diary2, nil)
	f.must(200, "PUT", "/"+diary2+"/events/"+moved, map[string]any{"description": "still editable"})
}

// data.trashed names what is trashed: "channel" or "folder"
// (research/pryv-api.md §3.4).
func TestTrashedErrorSaysChannelOrFolder(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "old", "Old", "")
	f.must(200, "DELETE", "/"+cid+"/folders/old", nil)
	st, v := f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType, "folderId": "old"})
	f.wantErr("trashed folder", st, v, 400, "invalid-operation")
	if d, _ := v.(map[string]any)["data"].(map[string]any); d["trashed"] != "folder" {
		t.Errorf("folder: data.trashed = %v, want \"folder\"", d["trashed"])
	}
	f.must(200, "DELETE", "/channels/"+cid, nil)
	st, v = f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType})
	f.wantErr("trashed channel", st, v, 400, "invalid-operation")
	if d, _ := v.(map[string]any)["data"].(map[string]any); d["trashed"] != "channel" {
		t.Errorf("channel: data.trashed = %v, want \"channel\"", d["trashed"])
	}
}

// A channel created without an id takes the id its name gives only while
// that id is free: a removed channel keeps its id reserved, and a renamed
// one keeps its id, yet their names are free again.
func TestChannelCreatedWithoutIDNeverClashesOnTheIDItsNameGives(t *testing.T) {
	f := newActFixture(t)
	f.channel("Sport")
	f.must(200, "DELETE", "/channels/sport", nil)
	f.must(200, "DELETE", "/channels/sport", nil)
	st, v := f.call("POST", "/channels", map[string]any{"name": "Sport"})
	mustStatus(t, "re-creating a removed channel's name", st, v, 201)
	if id := v.(map[string]any)["id"]; id == "sport" || id == "" {
		t.Errorf("new channel's id: %v, want a fresh one", id)
	}
	f.channel("Music")
	f.must(200, "PUT", "/channels/music", map[string]any{"name": "Songs"})
	st, v = f.call("POST", "/channels", map[string]any{"name": "Music"})
	mustStatus(t, "creating a channel with a free name", st, v, 201)
	// A free id is still the one the name gives.
	st, v = f.call("POST", "/channels", map[string]any{"name": "Cinéma"})
	mustStatus(t, "a new name", st, v, 201)
	if id := v.(map[string]any)["id"]; id != "cinema" {
		t.Errorf("id of a channel named Cinéma: %v, want cinema", id)
	}
}

// Removing a folder with mergeEventsWithParent=true moves its events to its
// parent even when the parent is trashed: they stay in the trash there.
func TestRemovingAFolderMergesItsEventsIntoATrashedParent(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Proj")
	f.folder(cid, "p", "P", "")
	f.folder(cid, "f", "F", "p")
	eid := f.event(cid, map[string]any{"folderId": "f"})
	f.must(200, "DELETE", "/"+cid+"/folders/p", nil)
	f.must(200, "DELETE", "/"+cid+"/folders/f", nil)
	st, v := f.call("DELETE", "/"+cid+"/folders/f?mergeEventsWithParent=true", nil)
	mustStatus(t, "remove f merging its events into p", st, v, 200)
	ev := f.must(200, "GET", "/"+cid+"/events/"+eid, nil).(map[string]any)
	if ev["folderId"] != "p" {
		t.Fatalf("event folder after merge: %v, want p", ev["folderId"])
	}
	// Moving an event into the trashed folder otherwise stays refused.
	other := f.event(cid, map[string]any{})
	st, v = f.call("PUT", "/"+cid+"/events/"+other, map[string]any{"folderId": "p"})
	f.wantErr("move into a trashed folder", st, v, 400, "invalid-operation")
}

// A folder grant covers the folder's descendants, so an app access may
// share a subfolder of its grant (SPEC §2: shared accesses whose
// permissions are a subset of its own), and manages that share.
func TestAppTokenSharesASubfolderOfItsFolderGrant(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "work", "Work", "")
	f.folder(cid, "sub", "Sub", "work")
	work := "work"
	app := f.storeAccess(f.user, &model.Access{Type: model.AccessApp, Name: "tracker", Permissions: []model.Permission{
		{ChannelID: cid, Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: &work, Level: "manage"}}},
	}})
	// The app sees the subfolder.
	tree := f.list("/"+cid+"/folders", app)
	if len(tree) != 1 || tree[0]["id"] != "work" {
		t.Fatalf("app's folder tree: %v", tree)
	}
	perms := func(folder string) []any {
		return []any{map[string]any{"channelId": cid, "level": "read",
			"folderPermissions": []any{map[string]any{"folderId": folder, "level": "read"}}}}
	}
	f.must(201, "POST", "/accesses", map[string]any{"name": "share work", "permissions": perms("work")}, app)
	st, v := f.call("POST", "/accesses", map[string]any{"name": "share sub", "permissions": perms("sub")}, app)
	mustStatus(t, "app shares a subfolder of its grant", st, v, 201)
	// It sees and manages that share, and still may not share beyond.
	var names []string
	for _, a := range f.list("/accesses", app) {
		names = append(names, a["name"].(string))
	}
	if len(names) != 2 {
		t.Errorf("the app's accesses: %v, want both shares", names)
	}
	st, v = f.call("POST", "/accesses", map[string]any{"name": "share all", "permissions": []any{map[string]any{"channelId": cid, "level": "read"}}}, app)
	f.wantErr("app shares the whole channel", st, v, 403, "forbidden")
}
