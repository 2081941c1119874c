package server_test

import (
	"testing"
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
