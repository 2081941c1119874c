package replica_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

// diskE2E is a server over an on-disk store behind one stable URL, so the
// store can be swapped (stop, restore, start) under live replicas.
type diskE2E struct {
	t        *testing.T
	cur      atomic.Pointer[server.Server]
	url      string
	personal string
}

func newDiskE2E(t *testing.T, dir string) *diskE2E {
	t.Helper()
	e := &diskE2E{t: t}
	srv := e.start(dir)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.cur.Load().ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		e.cur.Load().Close()
	})
	e.url = ts.URL
	err := srv.Store().Update(context.Background(), e2eUser, func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord(e2eUser), &model.User{Username: e2eUser, Email: "a@example.com", Language: "en"})
	})
	if err != nil {
		t.Fatalf("create user: %v", err)
	}
	e.personal, err = server.CreateAccessForTest(srv, e2eUser, &model.Access{Type: model.AccessPersonal, Name: "personal"})
	if err != nil {
		t.Fatalf("create access: %v", err)
	}
	return e
}

func (e *diskE2E) start(dir string) *server.Server {
	e.t.Helper()
	cfg := server.DefaultConfig()
	cfg.PasswordCost = 4
	srv, err := server.Open(cfg, dir)
	if err != nil {
		e.t.Fatalf("open server on %s: %v", dir, err)
	}
	e.cur.Store(srv)
	return srv
}

func (e *diskE2E) srv() *server.Server { return e.cur.Load() }

// restart stops the server, restores backup into a new directory and
// starts the server there behind the same URL.
func (e *diskE2E) restart(backup *bytes.Buffer) *server.Server {
	e.t.Helper()
	if err := e.srv().Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	dir := filepath.Join(e.t.TempDir(), "restored")
	if err := store.Restore(dir, backup); err != nil {
		e.t.Fatalf("restore: %v", err)
	}
	return e.start(dir)
}

func (e *diskE2E) open() *replica.Replica {
	e.t.Helper()
	r, err := replica.Open(e.t.TempDir(), replica.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		e.t.Fatalf("open replica: %v", err)
	}
	e.t.Cleanup(func() { r.Close() })
	if err := r.Configure(e.url, e2eUser, e.personal); err != nil {
		e.t.Fatalf("configure: %v", err)
	}
	return r
}

// serverEvent reads an event over HTTP: its value, and whether it is live
// (found and neither trashed nor deleted).
func (e *diskE2E) serverEvent(id string) (value string, live bool) {
	e.t.Helper()
	st, b := httpDo(e.t, "GET", e.url+"/"+e2eUser+"/diary/events/"+id, e.personal)
	if st != 200 {
		return "", false
	}
	var ev struct {
		Value   json.RawMessage `json:"value"`
		Trashed bool            `json:"trashed"`
	}
	if err := json.Unmarshal([]byte(b), &ev); err != nil {
		e.t.Fatalf("event %s: %v", id, err)
	}
	return string(ev.Value), !ev.Trashed
}

// TestRestoreUnderLiveReplicasLosesNothingAcknowledged restores an old
// backup under replicas that went on syncing after it (SPEC §6): the restored
// store has a new epoch, the replicas reset, push again what it lost, and
// then everything acknowledged after the backup is on the server and on
// every replica, without spurious rejections.
func TestRestoreUnderLiveReplicasLosesNothingAcknowledged(t *testing.T) {
	dir1 := filepath.Join(t.TempDir(), "before")
	e := newDiskE2E(t, dir1)
	a, b := e.open(), e.open()

	// Before the backup.
	if _, err := a.CreateChannel(body(t, `{"id":"diary","name":"Diary"}`)); err != nil {
		t.Fatal(err)
	}
	kept, err := a.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"v1"}`))
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := a.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"doomed"}`))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	mustSync(t, b)
	oldEpoch := e.srv().Store().Epoch()
	var backup bytes.Buffer
	if err := e.srv().Store().Backup(&backup); err != nil {
		t.Fatalf("backup: %v", err)
	}

	// After the backup: acknowledged writes by both replicas, each pulled
	// by both (so they sit in the replicas' base, no longer in an outbox).
	fromA, err := a.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"from a"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.UpdateEvent(kept, replica.EventUpdate{Body: body(t, `{"value":"v2"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteEvent(doomed); err != nil { // trash
		t.Fatal(err)
	}
	mustSync(t, a)
	fromB, err := b.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"from b"}`))
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, b)
	mustSync(t, a)
	for id, want := range map[string]string{fromA: `"from a"`, fromB: `"from b"`, kept: `"v2"`} {
		if v, live := e.serverEvent(id); !live || v != want {
			t.Fatalf("before the restore, server event %s = %s (live %v), want %s", id, v, live, want)
		}
	}
	for name, r := range map[string]*replica.Replica{"a": a, "b": b} {
		if st, err := r.Status(); err != nil || st.Pending != 0 {
			t.Fatalf("%s before the restore: status %+v, %v; want nothing pending", name, st, err)
		}
	}

	// Stop the server, restore the old backup into a new directory, start
	// there behind the same URL.
	srv2 := e.restart(&backup)
	if srv2.Store().Epoch() == oldEpoch {
		t.Fatal("the restored store kept the old epoch")
	}
	if _, live := e.serverEvent(fromA); live {
		t.Fatal("the restored store already holds a write made after the backup: the test proves nothing")
	}

	// The replicas sync: reset=epoch, re-push, download again.
	for range 2 {
		mustSync(t, a)
		mustSync(t, b)
	}
	for name, r := range map[string]*replica.Replica{"a": a, "b": b} {
		st, err := r.Status()
		if err != nil || st.Cursor == nil || st.Cursor.Epoch != srv2.Store().Epoch() {
			t.Fatalf("%s: status %+v, %v; want a cursor of the new epoch", name, st, err)
		}
		if st.Pending != 0 {
			t.Fatalf("%s: %d changes still pending", name, st.Pending)
		}
		if rej, err := r.Rejections(); err != nil || len(rej) != 0 {
			t.Fatalf("%s: rejections %+v, %v; a restore must not produce any", name, rej, err)
		}
	}
	for id, want := range map[string]string{fromA: `"from a"`, fromB: `"from b"`, kept: `"v2"`} {
		if v, live := e.serverEvent(id); !live || v != want {
			t.Errorf("after the restore and a sync, server event %s = %s (live %v), want %s: an acknowledged write was lost", id, v, live, want)
		}
		for name, r := range map[string]*replica.Replica{"a": a, "b": b} {
			ev, err := r.GetEvent(id)
			if err != nil || string(ev.Value) != want {
				t.Errorf("%s: event %s = %+v, %v; want value %s", name, id, ev, err, want)
			}
		}
	}
	if _, live := e.serverEvent(doomed); live {
		t.Errorf("event %s trashed after the backup is live again on the server", doomed)
	}
	for name, r := range map[string]*replica.Replica{"a": a, "b": b} {
		if ev, err := r.GetEvent(doomed); err == nil && !ev.Trashed {
			t.Errorf("%s: event %s trashed after the backup is live again", name, doomed)
		}
	}
}
