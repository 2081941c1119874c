package replica

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// fakeServer speaks the server side of the protocol with a scripted handler.
func fakeServer(t *testing.T, handle func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message))) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "tok" || r.URL.Path != "/alice/sync" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{syncproto.Subprotocol}})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(syncproto.MaxFrameBytes)
		ctx := r.Context()
		read := func() *syncproto.Message {
			_, data, err := c.Read(ctx)
			if err != nil {
				return nil
			}
			m, err := syncproto.Decode(data)
			if err != nil {
				t.Errorf("decode: %v", err)
				return nil
			}
			return m
		}
		send := func(m *syncproto.Message) {
			frame, err := syncproto.Encode(m)
			if err == nil {
				_ = c.Write(ctx, websocket.MessageBinary, frame)
			}
		}
		handle(ctx, c, read, send)
	}))
	t.Cleanup(srv.Close)
	return srv
}

var key = []byte("0123456789abcdef")

func welcomeMsg() *syncproto.Message {
	return &syncproto.Message{T: syncproto.TypeWelcome, Welcome: &syncproto.Welcome{
		ServerTime: time.Now().UnixMilli(), Epoch: "e1", AccessID: "acc", AccessType: model.AccessPersonal, PermVersion: 1, Key: key,
	}}
}

func serverDoc(fields map[string]string) crdt.Doc {
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "server"}
	d := crdt.Doc{Fields: map[string]crdt.Field{}}
	for k, val := range fields {
		d.Fields[k] = crdt.Field{V: v, Val: []byte(val)}
	}
	model.Stamp(&d, v, float64(v.Time)/1000, "other", true)
	return d
}

func TestSyncRoundPushRejectPullRemove(t *testing.T) {
	other := "c" + "aaaaaaaaaaaaaaaaaaaaaaaa"
	srv := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		h := read()
		if h == nil || h.T != syncproto.TypeHello || h.Hello.Pending != 2 {
			t.Errorf("hello: %+v", h)
			return
		}
		send(welcomeMsg())
		p := read()
		if p == nil || p.T != syncproto.TypePush || len(p.Push.Changes) != 2 {
			t.Errorf("push: %+v", p)
			return
		}
		ch := p.Push.Changes
		send(&syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: []syncproto.Result{
			{RSeq: ch[0].RSeq, Status: syncproto.StatusOK, Seq: 7},
			{RSeq: ch[1].RSeq, Status: syncproto.StatusRejected, Error: &model.Error{ID: model.ErrUnknownChannel, Message: "unknown channel"}},
		}}})
		send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Items: []syncproto.Item{
				{Kind: "event", ID: ch[0].ID, Doc: crdt.Merge(crdt.Doc{}, ch[0].Delta)},
				{Kind: "event", ID: other, Doc: serverDoc(map[string]string{"channelId": `"diary"`, "type": `{"class":"n","format":"t"}`, "time": "5"})},
			},
			Cursor: syncproto.Cursor{Epoch: "e1", Seq: 8}, CaughtUp: true,
		}})
		// The round is complete: the client closes. A caught-up batch's
		// needs no ack (syncproto.NeedsAck), so none comes first.
		if m := read(); m != nil {
			t.Errorf("after the last batch of the round the replica sent %+v, want the close", m)
		}
	})
	r := open(t, t.TempDir())
	defer r.Close()
	if err := r.Configure(srv.URL, "alice", "tok"); err != nil {
		t.Fatal(err)
	}
	ok, _ := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"n","format":"t"},"time":1}`))
	bad, _ := r.CreateEvent(body(t, `{"channelId":"nope","type":{"class":"n","format":"t"},"time":2}`))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := r.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected != 1 || res.Pushed != 1 {
		t.Fatalf("round %+v", res)
	}
	if _, err := r.GetEvent(bad); errID(err) != model.ErrUnknownEvent {
		t.Fatalf("rejected create not rolled back: %v", err)
	}
	for _, id := range []string{ok, other} {
		if _, err := r.GetEvent(id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	st, _ := r.Status()
	if st.Pending != 0 || st.Rejections != 1 || st.Cursor == nil || st.Cursor.Seq != 8 || st.LastSync == nil {
		t.Fatalf("status %+v", st)
	}
	rj, _ := r.Rejections()
	if rj[0].ItemID != bad || rj[0].Kind != "rejected" || rj[0].Error.ID != model.ErrUnknownChannel {
		t.Fatalf("rejection %+v", rj[0])
	}

	// Second round: a blinded removal deletes the other event; then 4403 purges.
	srv2 := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		if h := read(); h == nil || h.Hello.Cursor == nil || h.Hello.Cursor.Seq != 8 {
			t.Errorf("hello cursor: %+v", h)
			return
		}
		send(welcomeMsg())
		send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Removals: [][]byte{syncproto.BlindID(key, "event", other)},
			Cursor:   syncproto.Cursor{Epoch: "e1", Seq: 9}, CaughtUp: true,
		}})
		read()
		read()
	})
	_ = r.Configure(srv2.URL, "alice", "tok")
	if _, err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetEvent(other); errID(err) != model.ErrUnknownEvent {
		t.Fatalf("removal not applied: %v", err)
	}
	srv3 := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		read()
		c.Close(syncproto.CloseRevoked, "revoked")
	})
	_ = r.Configure(srv3.URL, "alice", "tok")
	if _, err := r.Sync(ctx); !errors.Is(err, ErrAccessRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	if l, _ := r.ListEvents(Filter{State: "all"}); len(l) != 0 {
		t.Fatalf("not purged: %d events", len(l))
	}
	if st, _ := r.Status(); st.Rejections != 0 || st.Cursor != nil {
		t.Fatalf("not purged: %+v", st)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	srv := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		read()
		send(welcomeMsg())
		send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "e1", Seq: 1}, CaughtUp: true}})
		for read() != nil {
		}
	})
	r, stop := runLive(t, srv)
	deadline := time.Now().Add(5 * time.Second)
	for !r.connected.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !r.connected.Load() {
		t.Fatal("never connected")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// runLive runs a replica configured for srv live (Run) until stop, which
// returns what Run returned.
func runLive(t *testing.T, srv *httptest.Server) (r *Replica, stop func() error) {
	r = open(t, t.TempDir())
	t.Cleanup(func() { r.Close() })
	_ = r.Configure(srv.URL, "alice", "tok")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return r, func() error { cancel(); return <-done }
}

// A change the server acknowledged is held in memory until the changes
// batch that brings it back deletes its outbox entry. When the connection
// is cut in between, the entry is recorded as acknowledged: it is not
// pending any more and is not pushed again, and it stays in the local view
// until a later batch reaches its seq.
func TestAnAcknowledgementCutBeforeTheEchoIsKept(t *testing.T) {
	var pushed []syncproto.Change
	srv := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		if h := read(); h == nil || h.T != syncproto.TypeHello || h.Hello.Pending != 1 {
			t.Errorf("hello: %+v", h)
			return
		}
		send(welcomeMsg())
		p := read()
		if p == nil || p.T != syncproto.TypePush || len(p.Push.Changes) != 1 {
			t.Errorf("push: %+v", p)
			return
		}
		pushed = p.Push.Changes
		send(&syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: []syncproto.Result{
			{RSeq: pushed[0].RSeq, Status: syncproto.StatusOK, Seq: 7},
		}}})
		time.Sleep(50 * time.Millisecond) // the replica takes the result
		c.CloseNow()                      // cut before the echo
	})
	r := open(t, t.TempDir())
	defer r.Close()
	if err := r.Configure(srv.URL, "alice", "tok"); err != nil {
		t.Fatal(err)
	}
	id, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"n","format":"t"},"time":1}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Sync(syncCtx(t))
	if err == nil {
		t.Fatal("the round survived the cut")
	}
	if res.Pushed != 1 {
		t.Fatalf("round %+v", res)
	}
	if st, _ := r.Status(); st.Pending != 0 {
		t.Fatalf("the acknowledged change is still pending: %+v", st)
	}
	var es []entry
	if err := r.db.View(func(txn *badger.Txn) (err error) { es, err = loadEntries(txn); return err }); err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || !es[0].Acked || es[0].Seq != 7 || es[0].Epoch != "e1" {
		t.Fatalf("outbox after the cut: %+v", es)
	}
	if _, err := r.GetEvent(id); err != nil {
		t.Fatalf("the acknowledged event left the local view before its echo: %v", err)
	}

	srv2 := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		if h := read(); h == nil || h.Hello.Pending != 0 {
			t.Errorf("hello: %+v", h)
			return
		}
		send(welcomeMsg())
		send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Items:  []syncproto.Item{{Kind: "event", ID: id, Doc: crdt.Merge(crdt.Doc{}, pushed[0].Delta)}},
			Cursor: syncproto.Cursor{Epoch: "e1", Seq: 7}, CaughtUp: true,
		}})
		// Nothing is pushed again: the round ends (a caught-up batch needs
		// no ack, syncproto.NeedsAck).
		if m := read(); m != nil {
			t.Errorf("after the echo the replica sent %+v, want the close (no push)", m)
		}
	})
	if err := r.Configure(srv2.URL, "alice", "tok"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Sync(syncCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := r.db.View(func(txn *badger.Txn) (err error) { es, err = loadEntries(txn); return err }); err != nil {
		t.Fatal(err)
	}
	if len(es) != 0 {
		t.Fatalf("outbox after the echo: %+v", es)
	}
	if _, err := r.GetEvent(id); err != nil {
		t.Fatalf("the event after its echo: %v", err)
	}
}

// A live replica acknowledges each full batch at once, with its cursor, and
// sends nothing for a caught-up one.
func TestOnlyFullBatchesAreAcknowledged(t *testing.T) {
	got := make(chan []uint64, 1)
	srv := fakeServer(t, func(ctx context.Context, c *websocket.Conn, read func() *syncproto.Message, send func(*syncproto.Message)) {
		read()
		send(welcomeMsg())
		for seq, caughtUp := range []bool{true, true, false, true, false, false, true, true} {
			send(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "e1", Seq: uint64(seq + 1)}, CaughtUp: caughtUp}})
		}
		var acks []uint64
		for len(acks) < 4 {
			m := read()
			if m == nil {
				break
			}
			if m.T == syncproto.TypeAck {
				acks = append(acks, m.Ack.Cursor.Seq)
			}
		}
		got <- acks
		for read() != nil {
		}
	})
	r, stop := runLive(t, srv)
	deadline := time.After(2 * time.Second)
	applied := func() uint64 {
		if st, _ := r.Status(); st.Cursor != nil {
			return st.Cursor.Seq
		}
		return 0
	}
	for applied() < 8 {
		select {
		case <-deadline:
			t.Fatal("the replica never applied the last batch")
		case <-time.After(5 * time.Millisecond):
		}
	}
	_ = stop()
	if acks := <-got; !slices.Equal(acks, []uint64{3, 5, 6}) {
		t.Errorf("acks %v, want [3 5 6]", acks)
	}
}
