package replica

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/syncproto"
)

func syncCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// An access widened while the replica was away: the welcome carries the new
// permissions version and the server re-sends the scope. Until a caught-up
// batch ends that re-send, hello keeps announcing the old version, so a
// re-send interrupted right after the welcome is started again.
func TestHelloKeepsTheOldPermVersionUntilTheRescanIsCaughtUp(t *testing.T) {
	var conn atomic.Int32
	hellos := make(chan int64, 8)
	srv := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		h := read()
		if h == nil || h.T != syncproto.TypeHello {
			return
		}
		hellos <- h.Hello.PermVersion
		w := welcomeMsg()
		n := conn.Add(1)
		if n > 1 {
			w.Welcome.PermVersion = 2
			w.Welcome.Rescan = h.Hello.PermVersion != 2
		}
		send(w)
		if n == 2 {
			c.CloseNow() // cut right after the welcome
			return
		}
		send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "e1", Seq: 5}, CaughtUp: true}})
		for read() != nil {
		}
	})
	r := open(t, t.TempDir())
	defer r.Close()
	if err := r.Configure(srv.URL, "alice", "tok"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(syncCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(syncCtx(t)); err == nil {
		t.Fatal("the round survived the cut")
	}
	if _, err := r.Sync(syncCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(syncCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := []int64{0, 1, 1, 2}
	for i, w := range want {
		if got := <-hellos; got != w {
			t.Errorf("hello %d announced permVersion %d, want %d", i+1, got, w)
		}
	}
}

// A rejection whose Current was read at a head the replica's cursor has
// already reached leaves base alone; one read past the cursor is merged in.
func TestARejectionReadBeforeTheCursorLeavesBaseAlone(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	s := &sessionState{r: r, res: &RoundResult{}, epoch: "e1", key: key, cursor: syncproto.Cursor{Epoch: "e1", Seq: 10}}
	newer := serverDoc(map[string]string{"channelId": `"diary"`, "type": `{"class":"n","format":"t"}`, "time": "5", "value": `"new"`})
	older := newer
	older.Fields = map[string]crdt.Field{}
	for k, f := range newer.Fields {
		older.Fields[k] = f
	}
	older.Fields["value"] = crdt.Field{V: crdt.Version{Time: 1, Node: "server"}, Val: []byte(`"old"`)}
	id := "c" + "bbbbbbbbbbbbbbbbbbbbbbbb"
	put := func(rseq uint64) {
		t.Helper()
		if err := r.update(func(txn *badger.Txn) error {
			return putEntry(txn, &entry{RSeq: rseq, Kind: "event", ID: id, Delta: crdt.Doc{}})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.update(func(txn *badger.Txn) error { return putBase(txn, nil, "event", id, newer) }); err != nil {
		t.Fatal(err)
	}
	put(1)
	rej := func(rseq, seq uint64, cur *syncproto.Item) {
		t.Helper()
		s.inflight = 1
		if err := s.pushResult(&syncproto.PushResult{Results: []syncproto.Result{{RSeq: rseq, Status: syncproto.StatusRejected, Seq: seq, Current: cur}}}); err != nil {
			t.Fatal(err)
		}
	}
	rej(1, 10, &syncproto.Item{Kind: "event", ID: id, Doc: older})
	if e, err := r.GetEvent(id); err != nil || string(e.Value) != `"new"` {
		t.Fatalf("after a rejection read at the cursor: %+v, %v", e, err)
	}
	put(2)
	rej(2, 9, nil) // item gone at head 9: the cursor (10) is past it
	if _, err := r.GetEvent(id); err != nil {
		t.Fatalf("a rejection read before the cursor deleted the item: %v", err)
	}
	put(3)
	rej(3, 11, nil) // gone at head 11, past the cursor: delete
	if _, err := r.GetEvent(id); err == nil {
		t.Fatalf("a rejection read past the cursor saying the item is gone left it")
	}
	if st, _ := r.Status(); st.Pending != 0 || st.Rejections != 3 {
		t.Fatalf("status %+v", st)
	}
}

// Welcome.Renew: the replica takes a new id, keeps its pending changes and
// pushes them under it on a new connection; hello announces the highest
// rseq pushed.
func TestRenewTakesANewIDAndPushesUnderIt(t *testing.T) {
	var conn atomic.Int32
	type hello struct {
		id  string
		max uint64
	}
	hellos := make(chan hello, 8)
	srv := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		h := read()
		if h == nil || h.T != syncproto.TypeHello {
			return
		}
		hellos <- hello{h.Hello.Replica, h.Hello.MaxRSeq}
		w := welcomeMsg()
		if conn.Add(1) == 1 {
			w.Welcome.Renew = true
			send(w)
			read()
			return
		}
		send(w)
		p := read()
		if p == nil || p.T != syncproto.TypePush {
			t.Errorf("push: %+v", p)
			return
		}
		var res []syncproto.Result
		for _, ch := range p.Push.Changes {
			res = append(res, syncproto.Result{RSeq: ch.RSeq, Status: syncproto.StatusOK, Seq: 3})
		}
		send(&syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: res}})
		send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "e1", Seq: 3}, CaughtUp: true}})
		for read() != nil {
		}
	})
	dir := t.TempDir()
	r := open(t, dir)
	if err := r.Configure(srv.URL, "alice", "tok"); err != nil {
		t.Fatal(err)
	}
	old := r.ID()
	if _, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"n","format":"t"},"time":1}`)); err != nil {
		t.Fatal(err)
	}
	res, err := r.Sync(syncCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Pushed != 1 {
		t.Fatalf("round %+v", res)
	}
	h1, h2 := <-hellos, <-hellos
	if h1.id != old || h1.max != 1 || h2.id == old || h2.id != r.ID() {
		t.Fatalf("hellos %+v %+v (old id %s, now %s)", h1, h2, old, r.ID())
	}
	if st, _ := r.Status(); st.Pending != 0 || st.ReplicaID != r.ID() {
		t.Fatalf("status %+v", st)
	}
	now := r.ID()
	r.Close()
	r = open(t, dir)
	defer r.Close()
	if r.ID() != now {
		t.Fatalf("the new id %s was not kept: %s", now, r.ID())
	}
}

// Configure with another token drops what the old one brought but keeps the
// pending changes; another user drops those too.
func TestConfigureWithAnotherTokenDropsItsState(t *testing.T) {
	other := "c" + "aaaaaaaaaaaaaaaaaaaaaaaa"
	srv := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		read()
		send(welcomeMsg())
		send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Items:  []syncproto.Item{{Kind: "event", ID: other, Doc: serverDoc(map[string]string{"channelId": `"diary"`, "type": `{"class":"n","format":"t"}`, "time": "5"})}},
			Cursor: syncproto.Cursor{Epoch: "e1", Seq: 4}, CaughtUp: true,
		}})
		for read() != nil {
		}
	})
	r := open(t, t.TempDir())
	defer r.Close()
	if err := r.Configure(srv.URL, "alice", "tok"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(syncCtx(t)); err != nil {
		t.Fatal(err)
	}
	mine, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"n","format":"t"},"time":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Configure(srv.URL, "alice", "tok"); err != nil { // the same: nothing dropped
		t.Fatal(err)
	}
	if _, err := r.GetEvent(other); err != nil {
		t.Fatalf("configuring the same token dropped items: %v", err)
	}
	if err := r.Configure(srv.URL, "alice", "tok2"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetEvent(other); err == nil {
		t.Fatalf("an item received through the old token is still held")
	}
	if _, err := r.GetEvent(mine); err != nil {
		t.Fatalf("the pending write was dropped: %v", err)
	}
	st, _ := r.Status()
	if st.Cursor != nil || st.Pending != 1 {
		t.Fatalf("status after another token: %+v", st)
	}
	if err := r.Configure(srv.URL, "bob", "tok3"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.Status(); st.Pending != 0 || st.Username != "bob" {
		t.Fatalf("status after another user: %+v", st)
	}
}
