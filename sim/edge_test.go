package sim

// Edge cases of SPEC §4 and research/sync-anchors.md §7, one test each.
// Two of the list live elsewhere: a server restored from a backup
// (new epoch) while replicas hold newer data, and an offline period longer
// than the tombstone horizon.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/syncproto"
)

// A device whose clock runs an hour ahead and that has never synced writes
// offline. The server keeps the write but re-stamps its versions at its own
// clock (SPEC §4.3), so a later write from a correct clock still wins, and
// once the device has seen the server's time its own writes are sane.
func TestEdgeClockSkewBeyondTheAllowance(t *testing.T) {
	e := newEdge(t)
	e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
	ahead := func() time.Time { return time.Now().Add(time.Hour) }
	a, _ := e.replica(e.personal("ahead"), ahead)
	b, _ := e.replica(e.personal("right"), nil)

	id := eid()
	_, err := a.CreateEvent(noteBody(id, ch1, nil, "from-a"))
	mustOK(t, "offline create on the skewed device", err)
	mustSync(t, a)
	limit := time.Now().Add(crdt.DefaultSkew).UnixMilli()
	d, ok := e.serverDoc(model.KindEvent, id)
	if !ok || string(d.Get("value")) != `"from-a"` {
		t.Fatalf("the skewed device's write was not kept: %v %s", ok, d.Get("value"))
	}
	if v := d.MaxVersion(); v.Time > limit {
		t.Fatalf("a version %v more than the skew allowance ahead was stored (limit %d)", v, limit)
	}

	mustSync(t, b)
	mustOK(t, "update on the right clock", b.UpdateEvent(id, replica.EventUpdate{Body: Obj(map[string]any{"value": "from-b"})}))
	mustSync(t, b)
	mustSync(t, a)
	for name, r := range map[string]*replica.Replica{"skewed": a, "right": b} {
		if ev, err := r.GetEvent(id); err != nil || string(ev.Value) != `"from-b"` {
			t.Fatalf("%s replica: %v %v, want the later write from-b", name, ev, err)
		}
	}
	if rj, _ := b.Rejections(); len(rj) != 0 {
		t.Fatalf("the later write from the right clock lost: %+v", rj)
	}

	// After its welcome the skewed device stamps near server time: its next
	// write, made before b's, loses to b's.
	mustOK(t, "skewed write after welcome", a.UpdateEvent(id, replica.EventUpdate{Body: Obj(map[string]any{"value": "a2"})}))
	// Each clock follows the server from its last welcome, behind it by the
	// welcome's delivery time: leave a margin wider than that.
	time.Sleep(time.Second)
	mustOK(t, "right write", b.UpdateEvent(id, replica.EventUpdate{Body: Obj(map[string]any{"value": "b2"})}))
	mustSync(t, b)
	mustSync(t, a)
	mustSync(t, b)
	for name, r := range map[string]*replica.Replica{"skewed": a, "right": b} {
		if ev, err := r.GetEvent(id); err != nil || string(ev.Value) != `"b2"` {
			t.Fatalf("%s replica: %v %v, want b2 (the later write)", name, ev, err)
		}
	}
	if rj, _ := a.Rejections(); len(rj) != 1 || rj[0].Kind != "conflict" {
		t.Fatalf("the skewed device should hold one conflict for a2, got %+v", rj)
	}
	d, _ = e.serverDoc(model.KindEvent, id)
	if v := d.MaxVersion(); v.Time > time.Now().Add(crdt.DefaultSkew).UnixMilli() {
		t.Fatalf("a version ahead of the server was stored: %v", v)
	}
}

// An access that expires while its replica is connected: the server closes
// with 4401 at the expiry, the replica purges what it held, and nothing
// reaches it afterwards.
func TestEdgeTokenExpiringMidStream(t *testing.T) {
	e := newEdge(t)
	e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
	tok, err := e.w.CreateShared("short", []model.Permission{{ChannelID: ch1, Level: "read"}}, map[string]any{"expireAfter": 4})
	mustOK(t, "create access", err)
	expires := time.Now().Add(4 * time.Second)
	r, ep := e.replica(tok, nil)
	mustSync(t, r)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stop := make(chan struct{})
	writes := make(chan struct{})
	go func() {
		defer close(writes)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			e.w.Do("POST", "/"+ch1+"/events", e.w.Owner, map[string]any{"type": map[string]string{"class": "note", "format": "txt"}, "value": i})
		}
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		t.Fatalf("Run did not end within 20 s of an expiry 4 s away")
	}
	close(stop)
	<-writes
	if !errors.Is(err, replica.ErrAccessRevoked) {
		t.Fatalf("Run ended with %v, want ErrAccessRevoked", err)
	}
	if h := held(t, r); len(h) != 0 {
		t.Fatalf("the replica still holds %d items after its token expired", len(h))
	}
	closed := false
	for _, f := range ep.Take() {
		if f.Dir == S2C && f.Close == syncproto.CloseBadToken {
			closed = true
		}
		if f.Dir == S2C && f.Msg != nil && f.Msg.T == syncproto.TypeChanges && len(f.Msg.Changes.Items) > 0 &&
			f.At.After(expires.Add(2*time.Second)) {
			t.Fatalf("%d items reached the replica %v after its token expired", len(f.Msg.Changes.Items), f.At.Sub(expires))
		}
	}
	if !closed {
		t.Fatalf("the server never closed with %d (expired)", syncproto.CloseBadToken)
	}
	if st, _, _ := e.w.Do("GET", "/channels", tok, nil); st != http.StatusUnauthorized {
		t.Fatalf("HTTP with the expired token: %d, want 401", st)
	}
}

// An access revoked while its replica is offline with pending writes: the
// next round is refused, the replica purges everything held through the
// token (pending writes included: SPEC §4.1.5), and none of its writes
// reach the server. A new token then syncs from scratch.
func TestEdgeAccessRevokedWhileTheReplicaIsOffline(t *testing.T) {
	e := newEdge(t)
	e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
	first := eid()
	e.w.MustDo("POST", "/"+ch1+"/events", e.w.Owner, map[string]any{"id": first, "type": map[string]string{"class": "note", "format": "txt"}, "value": "v0"}, 201)
	perms := []model.Permission{{ChannelID: ch1, Level: "contribute"}}
	tok := e.shared("helper", perms...)
	r, _ := e.replica(tok, nil)
	mustSync(t, r)
	offline := eid()
	_, err := r.CreateEvent(noteBody(offline, ch1, nil, "offline"))
	mustOK(t, "offline create", err)
	mustOK(t, "offline update", r.UpdateEvent(first, replica.EventUpdate{Body: Obj(map[string]any{"value": "offline edit"})}))

	e.w.MustDo("DELETE", "/accesses/"+tok, e.w.Owner, nil, 200)
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	if _, err := r.Sync(ctx); !errors.Is(err, replica.ErrAccessRevoked) {
		t.Fatalf("sync after revocation: %v, want ErrAccessRevoked", err)
	}
	if h := held(t, r); len(h) != 0 {
		t.Fatalf("the replica still holds %v", h)
	}
	if st, _ := r.Status(); st.Pending != 0 || st.Cursor != nil {
		t.Fatalf("status after purge: %+v", st)
	}
	if _, ok := e.serverDoc(model.KindEvent, offline); ok {
		t.Fatalf("a write made through the revoked token reached the server")
	}
	if d, _ := e.serverDoc(model.KindEvent, first); string(d.Get("value")) != `"v0"` {
		t.Fatalf("an edit made through the revoked token reached the server: %s", d.Get("value"))
	}
	// A new token on the same directory starts from scratch.
	tok2 := e.shared("helper again", perms...)
	mustOK(t, "configure", r.Configure(e.w.URL, User, tok2))
	mustSync(t, r)
	e.checkConverged(r, Perms{List: perms}, tok2)
}

// A replica directory wiped and created again with the same token gets a
// new replica id, downloads its scope again, keeps every acknowledged write
// of the old directory, and pushes new writes normally.
func TestEdgeReplicaWipedAndRecreatedWithTheSameToken(t *testing.T) {
	e := newEdge(t)
	e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
	tok := e.personal("device")
	dir := e.dir()
	r, _ := e.replicaIn(dir, tok, nil)
	acked := eid()
	_, err := r.CreateEvent(noteBody(acked, ch1, nil, "acked"))
	mustOK(t, "create", err)
	mustSync(t, r)
	oldID := r.ID()
	mustOK(t, "close", e.w.CloseReplica(r))
	mustOK(t, "wipe", RemoveDir(dir))

	r2, _ := e.replicaIn(dir, tok, nil)
	if r2.ID() == oldID {
		t.Fatalf("a wiped directory kept its replica id %s", oldID)
	}
	mustSync(t, r2)
	if ev, err := r2.GetEvent(acked); err != nil || string(ev.Value) != `"acked"` {
		t.Fatalf("the acknowledged write did not come back: %v %v", ev, err)
	}
	again := eid()
	_, err = r2.CreateEvent(noteBody(again, ch1, nil, "after wipe"))
	mustOK(t, "create after wipe", err)
	if res := mustSync(t, r2); res.Pushed != 1 || res.Rejected != 0 {
		t.Fatalf("push after wipe: %+v", res)
	}
	if d, ok := e.serverDoc(model.KindEvent, again); !ok || string(d.Get("value")) != `"after wipe"` {
		t.Fatalf("the write made after the wipe is not on the server")
	}
	e.checkConverged(r2, Perms{Personal: true}, tok)
}

// Concurrent delete and update of one event: the deletion wins whatever the
// order, and an update that reaches the server after it is listed on its
// replica as rejected, with its content; a trash and an update both survive.
func TestEdgeConcurrentDeleteAndUpdate(t *testing.T) {
	for _, order := range []string{"delete first", "update first"} {
		t.Run(order, func(t *testing.T) {
			e := newEdge(t)
			e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
			a, _ := e.replica(e.personal("a"), nil)
			b, _ := e.replica(e.personal("b"), nil)
			id := eid()
			_, err := a.CreateEvent(noteBody(id, ch1, nil, "v0"))
			mustOK(t, "create", err)
			mustSync(t, a)
			mustSync(t, b)
			mustOK(t, "update", a.UpdateEvent(id, replica.EventUpdate{Body: Obj(map[string]any{"value": "edited"})}))
			mustOK(t, "trash", b.DeleteEvent(id))
			mustOK(t, "delete", b.DeleteEvent(id))
			if order == "delete first" {
				mustSync(t, b)
				mustSync(t, a)
			} else {
				mustSync(t, a)
				mustSync(t, b)
			}
			mustSync(t, a)
			mustSync(t, b)
			if d, _ := e.serverDoc(model.KindEvent, id); !d.IsDeleted() {
				t.Fatalf("the event is not deleted on the server: %s", docString(d))
			}
			for name, r := range map[string]*replica.Replica{"a": a, "b": b} {
				if hasEvent(r, id) {
					t.Fatalf("%s still shows the deleted event", name)
				}
				if st, _ := r.Status(); st.Pending != 0 {
					t.Fatalf("%s: %d pending", name, st.Pending)
				}
			}
			rj, _ := a.Rejections()
			if order == "delete first" {
				if len(rj) != 1 || rj[0].ItemID != id || rj[0].Kind != "rejected" || !strings.Contains(string(rj[0].Change), "edited") {
					t.Fatalf("the update that lost to the deletion is not listed with its content: %+v", rj)
				}
			} else if len(rj) != 0 {
				t.Fatalf("the update applied before the deletion was listed: %+v", rj)
			}
		})
	}
	t.Run("trash and update", func(t *testing.T) {
		e := newEdge(t)
		e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
		a, _ := e.replica(e.personal("a"), nil)
		b, _ := e.replica(e.personal("b"), nil)
		id := eid()
		_, err := a.CreateEvent(noteBody(id, ch1, nil, "v0"))
		mustOK(t, "create", err)
		mustSync(t, a)
		mustSync(t, b)
		mustOK(t, "update", a.UpdateEvent(id, replica.EventUpdate{Body: Obj(map[string]any{"value": "edited"})}))
		mustOK(t, "trash", b.DeleteEvent(id))
		mustSync(t, b)
		mustSync(t, a)
		mustSync(t, b)
		for name, r := range map[string]*replica.Replica{"a": a, "b": b} {
			ev, err := r.GetEvent(id)
			if err != nil || !ev.Trashed || string(ev.Value) != `"edited"` {
				t.Fatalf("%s: %+v %v, want trashed with the edited value", name, ev, err)
			}
		}
	})
}

// An event created offline in a folder that was trashed, or removed for
// good, meanwhile: the server refuses it (invalid-operation, unknown-folder),
// the replica lists the refusal with the event's content and no longer
// shows the event, and nothing of it reaches the server or other replicas.
func TestEdgeEventCreatedOfflineInAFolderDeletedMeanwhile(t *testing.T) {
	for _, c := range []struct{ name, query, want string }{
		{"trashed", "", model.ErrInvalidOperation},
		{"removed", "?mergeEventsWithParent=true", model.ErrUnknownFolder},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEdge(t)
			e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
			e.w.MustDo("POST", "/"+ch1+"/folders", e.w.Owner, map[string]any{"id": fo1, "name": "One"}, 201)
			a, _ := e.replica(e.personal("a"), nil)
			reader, _ := e.replica(e.shared("reader", model.Permission{ChannelID: "*", Level: "read"}), nil)
			mustSync(t, a)
			id := eid()
			_, err := a.CreateEvent(noteBody(id, ch1, fo1, "in a doomed folder"))
			mustOK(t, "offline create", err)
			e.w.MustDo("DELETE", "/"+ch1+"/folders/"+fo1, e.w.Owner, nil, 200)
			if c.query != "" {
				e.w.MustDo("DELETE", "/"+ch1+"/folders/"+fo1+c.query, e.w.Owner, nil, 200)
			}
			res := mustSync(t, a)
			if res.Rejected != 1 {
				t.Fatalf("round: %+v, want one rejection", res)
			}
			rj, _ := a.Rejections()
			if len(rj) != 1 || rj[0].ItemID != id || rj[0].Error.ID != c.want || !strings.Contains(string(rj[0].Change), "in a doomed folder") {
				t.Fatalf("rejections: %+v, want one %s for %s with its content", rj, c.want, id)
			}
			if hasEvent(a, id) {
				t.Fatalf("the refused event still shows on its replica")
			}
			if _, ok := e.serverDoc(model.KindEvent, id); ok {
				t.Fatalf("the refused event is on the server")
			}
			mustSync(t, reader)
			if hasEvent(reader, id) {
				t.Fatalf("the refused event reached another replica")
			}
			e.checkConverged(a, Perms{Personal: true}, e.w.Owner)
		})
	}
}

// A grant and a write that depends on it in the same push (sync-anchors
// §7.12): a channel, a folder in it, a subfolder and an event in the
// subfolder, made offline and pushed at once, are all applied; so are a
// folder and an event made under a folder-restricted grant. A token whose
// permission names a folder that does not exist yet gets it, and its
// events, once another replica creates it.
func TestEdgeGrantAndDependentWriteInTheSamePush(t *testing.T) {
	e := newEdge(t)
	e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
	e.w.MustDo("POST", "/"+ch1+"/folders", e.w.Owner, map[string]any{"id": fo1, "name": "One"}, 201)
	owner, _ := e.replica(e.personal("owner device"), nil)
	mustSync(t, owner)
	future := "fo-future-z"
	watcherPerms := []model.Permission{{ChannelID: "ch-new-z", Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: &future, Level: "read"}}}}
	watcherTok := e.shared("watcher", watcherPerms...)
	watcher, _ := e.replica(watcherTok, nil)
	mustSync(t, watcher)
	if h := held(t, watcher); len(h) != 0 {
		t.Fatalf("a grant on missing items showed %v", h)
	}

	_, err := owner.CreateChannel(Obj(map[string]any{"id": "ch-new-z", "name": "New"}))
	mustOK(t, "channel", err)
	_, err = owner.CreateFolder(Obj(map[string]any{"id": future, "channelId": "ch-new-z", "name": "Future"}))
	mustOK(t, "folder", err)
	_, err = owner.CreateFolder(Obj(map[string]any{"id": "fo-sub-z", "channelId": "ch-new-z", "name": "Sub", "parentId": future}))
	mustOK(t, "subfolder", err)
	ev := eid()
	_, err = owner.CreateEvent(noteBody(ev, "ch-new-z", "fo-sub-z", "deep"))
	mustOK(t, "event", err)
	if res := mustSync(t, owner); res.Pushed != 4 || res.Rejected != 0 {
		t.Fatalf("one push of channel, folder, subfolder and event: %+v", res)
	}
	mustSync(t, watcher)
	e.checkConverged(watcher, Perms{List: watcherPerms}, watcherTok)
	if !hasEvent(watcher, ev) {
		t.Fatalf("the grant on a folder created later did not bring its event")
	}

	// Folder-restricted: manage on fo-1 allows a subfolder and an event in
	// it, in one push.
	fp := []model.Permission{{ChannelID: ch1, Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: sp(fo1), Level: "manage"}}}}
	ftok := e.shared("folder manager", fp...)
	f, _ := e.replica(ftok, nil)
	mustSync(t, f)
	_, err = f.CreateFolder(Obj(map[string]any{"id": "fo-kid-z", "channelId": ch1, "name": "Kid", "parentId": fo1}))
	mustOK(t, "subfolder under the grant", err)
	ev2 := eid()
	_, err = f.CreateEvent(noteBody(ev2, ch1, "fo-kid-z", "kid event"))
	mustOK(t, "event in it", err)
	if res := mustSync(t, f); res.Pushed != 2 || res.Rejected != 0 {
		t.Fatalf("subfolder and event in one push: %+v", res)
	}
	e.checkConverged(f, Perms{List: fp}, ftok)
}

// Two replicas move two folders under each other offline: the server
// applies the first and refuses the second (invalid-operation), so no cycle
// is ever stored, and both replicas converge.
func TestEdgeConcurrentFolderMovesCannotFormACycle(t *testing.T) {
	e := newEdge(t)
	e.w.MustDo("POST", "/channels", e.w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
	e.w.MustDo("POST", "/"+ch1+"/folders", e.w.Owner, map[string]any{"id": fo1, "name": "One"}, 201)
	e.w.MustDo("POST", "/"+ch1+"/folders", e.w.Owner, map[string]any{"id": fo2, "name": "Two"}, 201)
	a, _ := e.replica(e.personal("a"), nil)
	b, _ := e.replica(e.personal("b"), nil)
	mustSync(t, a)
	mustSync(t, b)
	mustOK(t, "a moves one under two", a.UpdateFolder(fo1, Obj(map[string]any{"parentId": fo2})))
	mustOK(t, "b moves two under one", b.UpdateFolder(fo2, Obj(map[string]any{"parentId": fo1})))
	mustSync(t, a)
	if res := mustSync(t, b); res.Rejected != 1 {
		t.Fatalf("the second move: %+v, want refused", res)
	}
	mustSync(t, a)
	rj, _ := b.Rejections()
	if len(rj) != 1 || rj[0].Error.ID != model.ErrInvalidOperation {
		t.Fatalf("b's rejections: %+v", rj)
	}
	p1, _ := e.serverDoc(model.KindFolder, fo1)
	p2, _ := e.serverDoc(model.KindFolder, fo2)
	if model.StringField(p1, "parentId") == fo2 && model.StringField(p2, "parentId") == fo1 {
		t.Fatalf("the server stored a cycle")
	}
	e.checkConverged(a, Perms{Personal: true}, e.w.Owner)
	e.checkConverged(b, Perms{Personal: true}, e.w.Owner)
}
