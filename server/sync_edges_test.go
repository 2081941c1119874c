package server_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// seedEvents writes n events into channel through ApplyChange, in one
// store request.
func seedEvents(t *testing.T, e *testEnv, user, channel string, n int) {
	t.Helper()
	clock := crdt.NewClock("seed", nil, 0)
	actor := &server.Actor{AccessID: "seed", Type: model.AccessPersonal, Scope: model.Personal()}
	err := e.srv.Store().Update(context.Background(), user, func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			v := clock.MustNow()
			d := crdt.Doc{Fields: map[string]crdt.Field{
				"channelId": {V: v, Val: model.JSONString(channel)},
				"time":      {V: v, Val: model.JSONNumber(float64(1_700_000_000 + i))},
				"type":      {V: v, Val: []byte(`{"class":"note","format":"txt"}`)},
			}}
			if _, err := server.ApplyChange(tx, actor, server.Change{Kind: model.KindEvent, ID: model.NewID(), Delta: d, Create: true}, clock); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
}

// SPEC §4.1.1/§4.1.5: an item the replica already received in an earlier
// batch of its initial download, and that is deleted while the download is
// still running, must reach the replica as a removal. The session treats the
// whole initial download as "quiet" (no removals), so the tombstone's new
// feed entry, read later in the same download, is dropped silently and the
// replica keeps the deleted event for good.
// An item the initial download already sent, then deleted before the
// download ends, reaches the replica as a removal: its new feed entry lies
// past the head the download began at, where removals are sent.
func TestInitialDownloadSendsTheRemovalOfAnItemDeletedMidDownload(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	e.create(t, tok, "/alice01/channels", map[string]any{"id": "diary", "name": "Diary"})
	seedEvents(t, e, "alice01", "diary", 6000) // 7 full batches > 4 in flight

	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r-initial"}})
	w := c.recv()
	if w.T != syncproto.TypeWelcome {
		t.Fatalf("first message: %s", w.T)
	}
	first := c.recv()
	if first.T != syncproto.TypeChanges || first.Changes.CaughtUp {
		t.Fatalf("want a full first batch, got %s caughtUp=%v", first.T, first.Changes != nil && first.Changes.CaughtUp)
	}
	var victim string
	for _, it := range first.Changes.Items {
		if it.Kind == "event" {
			victim = it.ID
			break
		}
	}
	if victim == "" {
		t.Fatal("no event in the first batch")
	}
	// The owner deletes the event the replica now holds (trash, then delete).
	for i := 0; i < 2; i++ {
		st, v := e.doJSON("DELETE", "/alice01/diary/events/"+victim, tok, nil)
		mustStatus(t, "delete", st, v, 200)
	}
	want := syncproto.BlindID(w.Welcome.Key, "event", victim)
	removed := false
	m := first
	for !m.Changes.CaughtUp {
		c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
		m = c.recvType(syncproto.TypeChanges)
		for _, r := range m.Changes.Removals {
			if bytes.Equal(r, want) {
				removed = true
			}
		}
	}
	if !removed {
		t.Fatalf("event %s, sent in the first batch of the initial download and deleted before it ended, "+
			"never reached the replica as a removal: the replica keeps a deleted event", victim)
	}
}
