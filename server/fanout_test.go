package server_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// TestOneWriteReachesEachLiveSessionInItsOwnScope connects several caught-up
// sessions of three accesses (the personal one, and two that read the same
// folder, each with its own blinding key), then writes events in and out of
// that folder: every session gets the batch of its own access, whichever
// session of the user read the feed first.
func TestOneWriteReachesEachLiveSessionInItsOwnScope(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	post := func(path string, body map[string]any) string { return e.create(t, tok, "/alice01"+path, body) }
	post("/channels", map[string]any{"id": "chana", "name": "A"})
	post("/chana/folders", map[string]any{"id": "fone", "name": "Shared"})
	post("/chana/folders", map[string]any{"id": "ftwo", "name": "Private"})
	note := func(folder string) map[string]any {
		return map[string]any{"type": map[string]string{"class": "note", "format": "txt"}, "value": "v", "folderId": folder}
	}
	post("/chana/events", note("fone"))
	scoped := func(name string) string {
		fone := "fone"
		return e.storeAccess("alice01", &model.Access{Type: model.AccessShared, Name: name, Permissions: []model.Permission{
			{ChannelID: "chana", Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: &fone, Level: "read"}}}}})
	}
	type session struct {
		c      *wsClient
		key    []byte
		scoped bool
	}
	var sessions []*session
	for i, a := range []struct {
		token  string
		scoped bool
		n      int
	}{{tok, false, 3}, {scoped("first"), true, 2}, {scoped("second"), true, 1}} {
		for j := 0; j < a.n; j++ {
			c, _, err := e.dialSync(t, "alice01", a.token)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: fmt.Sprintf("r%d-%d", i, j)}})
			w := c.recvType(syncproto.TypeWelcome)
			for {
				m := c.recvType(syncproto.TypeChanges)
				c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
				if m.Changes.CaughtUp {
					break
				}
			}
			sessions = append(sessions, &session{c: c, key: w.Welcome.Key, scoped: a.scoped})
		}
	}
	if bytes.Equal(sessions[3].key, sessions[5].key) {
		t.Fatal("two accesses share a blinding key")
	}
	for _, folder := range []string{"ftwo", "fone", "ftwo"} {
		id := post("/chana/events", note(folder))
		var seq uint64
		for i, s := range sessions {
			m := s.c.recvType(syncproto.TypeChanges)
			ch := m.Changes
			s.c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: ch.Cursor}})
			if i == 0 {
				seq = ch.Cursor.Seq
			}
			if got, want := ch.Cursor.Seq, seq; got != want || !ch.CaughtUp {
				t.Fatalf("session %d: cursor %d (caught up %v), want %d caught up", i, got, ch.CaughtUp, want)
			}
			if !s.scoped || folder == "fone" {
				if len(ch.Items) != 1 || ch.Items[0].ID != id || len(ch.Removals) != 0 {
					t.Fatalf("session %d, event in %s: got %d items %v and %d removals, want the event", i, folder, len(ch.Items), ch.Items, len(ch.Removals))
				}
				continue
			}
			if len(ch.Items) != 0 || len(ch.Removals) != 1 {
				t.Fatalf("session %d, event in %s: got %d items and %d removals, want one removal", i, folder, len(ch.Items), len(ch.Removals))
			}
			if want := syncproto.BlindID(s.key, "event", id); !bytes.Equal(ch.Removals[0], want) {
				t.Fatalf("session %d: the removal is not blinded with its own access's key", i)
			}
		}
	}
}
