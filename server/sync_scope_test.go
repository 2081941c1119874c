package server_test

import (
	"bytes"
	"testing"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// TestSyncSendsNothingOutsideTheScopeOnTheWire seeds two channels and two
// folders, syncs a token that reads one folder, and checks every frame that
// crosses the wire: items only from the scope, removals only blinded, and no
// out-of-scope id or name anywhere in the bytes.
func TestSyncSendsNothingOutsideTheScopeOnTheWire(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	post := func(path string, body map[string]any) string { return e.create(t, tok, "/alice01"+path, body) }
	post("/channels", map[string]any{"id": "chana", "name": "Secret-name-a"})
	post("/channels", map[string]any{"id": "chanb", "name": "Secret-name-b"})
	post("/chana/folders", map[string]any{"id": "fone", "name": "Visible folder"})
	post("/chana/folders", map[string]any{"id": "ftwo", "name": "Hidden-folder-name"})
	note := func(folder any, value string) map[string]any {
		return map[string]any{"type": map[string]string{"class": "note", "format": "txt"}, "value": value, "folderId": folder}
	}
	inScope := map[string]bool{"chana": true, "fone": true}
	var outIDs []string
	for i := 0; i < 3; i++ {
		inScope[post("/chana/events", note("fone", "visible"))] = true
		outIDs = append(outIDs, post("/chana/events", note("ftwo", "hidden-value-two")))
		outIDs = append(outIDs, post("/chana/events", note(nil, "hidden-value-nofolder")))
		outIDs = append(outIDs, post("/chanb/events", note(nil, "hidden-value-b")))
	}
	outIDs = append(outIDs, "chanb", "ftwo", "Secret-name-b", "Hidden-folder-name", "hidden-value")
	fone := "fone"
	a := &model.Access{Type: model.AccessShared, Name: "one folder", Permissions: []model.Permission{
		{ChannelID: "chana", Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: &fone, Level: "read"}}}}}
	shared := e.storeAccess("alice01", a)

	c, _, err := e.dialSync(t, "alice01", shared)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	var wire [][]byte
	recv := func() *syncproto.Message {
		t.Helper()
		_, b, err := c.conn.Read(c.ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		wire = append(wire, b)
		m, err := syncproto.Decode(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		return m
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "scoped"}})
	w := recv()
	if w.T != syncproto.TypeWelcome {
		t.Fatalf("first message: %s", w.T)
	}
	got := map[string]bool{}
	for {
		m := recv()
		if m.T != syncproto.TypeChanges {
			t.Fatalf("unexpected %s", m.T)
		}
		for _, it := range m.Changes.Items {
			if !inScope[it.ID] {
				t.Fatalf("item %s/%s outside the scope was sent", it.Kind, it.ID)
			}
			got[it.ID] = true
		}
		if len(m.Changes.Removals) > 0 {
			t.Fatalf("an initial sync sent %d removals", len(m.Changes.Removals))
		}
		c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
		if m.Changes.CaughtUp {
			break
		}
	}
	for id := range inScope {
		if !got[id] {
			t.Fatalf("in-scope item %s was not sent", id)
		}
	}
	// Now the owner moves one visible event out of the folder: the replica
	// gets a blinded removal, never the id.
	var moved string
	for id := range inScope {
		if model.IsCuid(id) {
			moved = id
			break
		}
	}
	st, v := e.doJSON("PUT", "/alice01/chana/events/"+moved, tok, map[string]any{"folderId": "ftwo"})
	mustStatus(t, "move", st, v, 200)
	m := recv()
	if m.T != syncproto.TypeChanges || len(m.Changes.Items) != 0 || len(m.Changes.Removals) != 1 {
		t.Fatalf("after the move: got %s with %+v, want one removal", m.T, m.Changes)
	}
	if want := syncproto.BlindID(w.Welcome.Key, "event", moved); !bytes.Equal(m.Changes.Removals[0], want) {
		t.Fatalf("removal is not the blinded id of the moved event")
	}
	for i, frame := range wire {
		for _, id := range outIDs {
			if bytes.Contains(frame, []byte(id)) {
				t.Fatalf("frame %d carries %q, which is outside the scope", i, id)
			}
		}
		if i == len(wire)-1 && bytes.Contains(frame, []byte(moved)) {
			t.Fatalf("the removal frame carries the moved event's id in clear")
		}
	}
}
