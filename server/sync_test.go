package server_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
	// items records every item id received in changes batches, including
	// batches that recvType skipped while waiting for another message.
	items map[string]bool
}

func (e *testEnv) dialSync(t *testing.T, user, token string) (*wsClient, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	conn, resp, err := websocket.Dial(ctx, strings.Replace(e.url, "http", "ws", 1)+"/"+user+"/sync", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {token}}, Subprotocols: []string{syncproto.Subprotocol},
	})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(syncproto.MaxFrameBytes)
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: t, conn: conn, ctx: ctx, items: map[string]bool{}}, resp, nil
}

func (c *wsClient) send(m *syncproto.Message) {
	c.t.Helper()
	b, err := syncproto.Encode(m)
	if err != nil {
		c.t.Fatalf("encode: %v", err)
	}
	if err := c.conn.Write(c.ctx, websocket.MessageBinary, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *wsClient) recv() *syncproto.Message {
	c.t.Helper()
	_, b, err := c.conn.Read(c.ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	m, err := syncproto.Decode(b)
	if err != nil {
		c.t.Fatalf("decode: %v", err)
	}
	if m.T == syncproto.TypeChanges {
		for _, it := range m.Changes.Items {
			c.items[it.ID] = true
		}
	}
	return m
}

// recvType reads until a message of type typ arrives, acking changes batches.
func (c *wsClient) recvType(typ string) *syncproto.Message {
	c.t.Helper()
	for {
		m := c.recv()
		if m.T == syncproto.TypeChanges && typ != syncproto.TypeChanges {
			c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
		}
		if m.T == typ {
			return m
		}
	}
}

func field(v crdt.Version, val string) crdt.Field { return crdt.Field{V: v, Val: []byte(val)} }

func TestSyncPushThenPullRoundTrip(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r1"}})
	w := c.recv()
	if w.T != syncproto.TypeWelcome || w.Welcome.Epoch == "" {
		t.Fatalf("welcome: got %+v", w)
	}
	first := c.recvType(syncproto.TypeChanges)
	if !first.Changes.CaughtUp {
		t.Fatalf("first batch of an empty account should be caught up")
	}
	c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: first.Changes.Cursor}})
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "r1"}
	evID := model.NewID()
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "channel", ID: "diary", Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{"name": field(v, `"Diary"`)}}},
		{RSeq: 2, Kind: "event", ID: evID, Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": field(v, `"diary"`), "time": field(v, "1700000000"), "type": field(v, `{"class":"note","format":"txt"}`),
			"value": field(v, `"hello"`)}}},
	}}})
	res := c.recvType(syncproto.TypePushResult)
	for i, r := range res.PushResult.Results {
		if r.Status != syncproto.StatusOK {
			t.Fatalf("result %d: got %+v", i, r)
		}
	}
	for !c.items["diary"] || !c.items[evID] {
		m := c.recvType(syncproto.TypeChanges)
		c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
	}
	got := c.items
	if !got["diary"] || !got[evID] {
		t.Fatalf("pulled %v, want the channel and the event", got)
	}
	// A replay of the same push is acknowledged without being applied twice.
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 2, Kind: "event", ID: evID, Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{"value": field(v, `"again"`)}}},
	}}})
	res = c.recvType(syncproto.TypePushResult)
	if got := res.PushResult.Results[0].Status; got != syncproto.StatusOK {
		t.Fatalf("replay: got status %q, want the original ok", got)
	}
}

func TestSyncRefusesBadTokenAtUpgrade(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	_, resp, err := e.dialSync(t, "alice01", "nope")
	if err == nil {
		t.Fatalf("dial with a bad token succeeded")
	}
	if resp == nil || resp.StatusCode != 401 {
		t.Fatalf("status: got %v, want 401", resp)
	}
}

func TestSyncReadOnlyTokenWriteIsRejected(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": "Diary", "id": "diary"})
	mustStatus(t, "create", st, v, 201)
	ro := e.storeAccess("alice01", &model.Access{Type: model.AccessShared, Name: "ro", Permissions: []model.Permission{{ChannelID: "diary", Level: "read"}}})
	c, _, err := e.dialSync(t, "alice01", ro)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r2"}})
	c.recvType(syncproto.TypeWelcome)
	vv := crdt.Version{Time: time.Now().UnixMilli(), Node: "r2"}
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: model.NewID(), Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": field(vv, `"diary"`), "time": field(vv, "1700000000"), "type": field(vv, `{"class":"note","format":"txt"}`)}}},
	}}})
	res := c.recvType(syncproto.TypePushResult).PushResult.Results[0]
	if res.Status != syncproto.StatusRejected || res.Error == nil || res.Error.ID != "forbidden" {
		t.Fatalf("result: got %+v, want rejected forbidden", res)
	}
}

func TestReplayAfterALostPushResultAppliesOnceAndKeepsTheReason(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": "Diary", "id": "diary"})
	mustStatus(t, "create", st, v, 201)
	vv := crdt.Version{Time: time.Now().UnixMilli(), Node: "r1"}
	evID := model.NewID()
	push := &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: evID, Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": field(vv, `"diary"`), "time": field(vv, "1700000000"), "type": field(vv, `{"class":"note","format":"txt"}`)}}},
		{RSeq: 2, Kind: "event", ID: model.NewID(), Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": field(vv, `"nope"`), "time": field(vv, "1700000000"), "type": field(vv, `{"class":"note","format":"txt"}`)}}},
	}}}
	// First session: push, then drop the connection before reading the result.
	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r1"}})
	c.recvType(syncproto.TypeWelcome)
	c.send(push)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, b, _ := e.do("GET", "/alice01/diary/events/"+evID, tok, nil)
		if bytes.Contains(b, []byte(evID)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.conn.CloseNow()
	// Second session: the same push again.
	c2, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c2.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r1"}})
	c2.recvType(syncproto.TypeWelcome)
	c2.send(push)
	res := c2.recvType(syncproto.TypePushResult).PushResult.Results
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("replayed creation: got %+v, want its original ok", res[0])
	}
	if res[1].Status != syncproto.StatusRejected || res[1].Error == nil || res[1].Error.ID != "unknown-channel" {
		t.Fatalf("replayed rejection: got %+v, want the original unknown-channel rejection", res[1])
	}
	st, list := e.doJSON("GET", "/alice01/diary/events?limit=100", tok, nil)
	mustStatus(t, "list", st, list, 200)
	if got := len(list.([]any)); got != 1 {
		t.Fatalf("events on the server: %d, want 1 (applied once)", got)
	}
}

// TestReplayedPushResultCarriesNoItemTheAccessNoLongerSees: a rejection's
// result, stored for replays, carries the item as the access saw it then;
// replayed after the access was narrowed, it carries the item only as the
// access sees it now (here: not at all).
func TestReplayedPushResultCarriesNoItemTheAccessNoLongerSees(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	for _, f := range []string{"f1", "f2"} {
		st, v := e.doJSON("POST", "/alice01/diary/folders", personal, map[string]any{"id": f, "name": f})
		mustStatus(t, "create folder", st, v, 201)
	}
	st, v := e.doJSON("POST", "/alice01/diary/events", personal, map[string]any{
		"folderId": "f1", "type": map[string]any{"class": "note", "format": "txt"}, "value": "hidden soon"})
	mustStatus(t, "create event", st, v, 201)
	evID := v.(map[string]any)["id"].(string)
	share := accCreate(t, e, personal, map[string]any{"name": "reader", "permissions": []any{map[string]any{
		"channelId": "diary", "level": "read", "folderPermissions": []any{
			map[string]any{"folderId": "f1", "level": "read"}, map[string]any{"folderId": "f2", "level": "read"}}}}})

	vv := crdt.Version{Time: time.Now().UnixMilli(), Node: "r1"}
	push := &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: evID, Delta: crdt.Doc{Fields: map[string]crdt.Field{"value": field(vv, `"edited"`)}}}}}}
	session := func() *wsClient {
		c, _, err := e.dialSync(t, "alice01", share)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r1"}})
		c.recvType(syncproto.TypeWelcome)
		c.send(push)
		return c
	}
	c := session()
	first := c.recvType(syncproto.TypePushResult).PushResult.Results[0]
	if first.Status != syncproto.StatusRejected || first.Current == nil || first.Current.ID != evID {
		t.Fatalf("first answer: %+v, want a rejection carrying the event the access reads", first)
	}
	c.conn.CloseNow()

	st, v = e.doJSON("PUT", "/alice01/accesses/"+share, personal, map[string]any{"permissions": []any{map[string]any{
		"channelId": "diary", "level": "read", "folderPermissions": []any{map[string]any{"folderId": "f2", "level": "read"}}}}})
	mustStatus(t, "narrow the access", st, v, 200)

	again := session().recvType(syncproto.TypePushResult).PushResult.Results[0]
	if again.Status != syncproto.StatusRejected || again.Error == nil || again.Error.ID != first.Error.ID {
		t.Fatalf("replayed answer: %+v, want the original rejection", again)
	}
	if again.Current != nil {
		t.Fatalf("the replayed rejection carries %s/%s, which the narrowed access no longer sees", again.Current.Kind, again.Current.ID)
	}
}

// A client that acknowledges only full batches (syncproto.NeedsAck) gets
// every live change without acking any, and then a download of many full
// batches, acking each as it comes: the rule never leaves the server
// waiting for an ack the client will not send. (Acks were cumulative
// before the rule too, so this passes on a server that still counted
// caught-up batches; that server's list grew by one per live change.)
func TestAClientAckingOnlyFullBatchesKeepsUp(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	conn := mustDialSync(t, f.testEnv, f.user, f.tok)
	if err := writeFrame(conn, helloFrame(t, "r-"+model.NewID())); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, conn); m.T != syncproto.TypeWelcome {
		t.Fatalf("got %q, want welcome", m.T)
	}
	// next reads up to the next changes batch and acks it if it must.
	next := func() *syncproto.Changes {
		t.Helper()
		for {
			m := readMsg(t, conn)
			if m.T != syncproto.TypeChanges {
				continue
			}
			if syncproto.NeedsAck(m.Changes.CaughtUp) {
				if err := writeFrame(conn, frameOf(t, &syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})); err != nil {
					t.Fatal(err)
				}
			}
			return m.Changes
		}
	}
	for !next().CaughtUp {
	}
	for i := range 3 * syncproto.MaxInFlight {
		id := f.event(cid, map[string]any{"value": i})
		var got bool
		for !got {
			c := next()
			for _, it := range c.Items {
				got = got || it.ID == id
			}
		}
	}
	// While the client reads nothing, enough data to fill the socket
	// buffers: the session then falls behind, and reads full batches.
	const n = 80
	big := strings.Repeat("b", 200<<10)
	for range n {
		f.event(cid, map[string]any{"value": big})
	}
	full, items := 0, 0
	for items < n {
		c := next()
		if !c.CaughtUp {
			full++
		}
		items += len(c.Items)
	}
	if full < syncproto.MaxInFlight {
		t.Fatalf("the download came in %d full batches, want more than %d to exercise the in-flight limit", full, syncproto.MaxInFlight)
	}
}
