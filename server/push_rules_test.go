package server_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// openSyncSession opens a sync session with tok, reads welcome and the first
// caught-up batch.
func openSyncSession(t *testing.T, f *actFixture, tok, replica string) *wsClient {
	t.Helper()
	c, _, err := f.dialSync(t, f.user, tok)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: replica}})
	if w := c.recv(); w.T != syncproto.TypeWelcome {
		t.Fatalf("want welcome, got %+v", w)
	}
	for {
		m := c.recvType(syncproto.TypeChanges)
		if m.Changes.CaughtUp {
			return c
		}
		c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
	}
}

func pushAndWait(c *wsClient, changes ...syncproto.Change) []syncproto.Result {
	c.t.Helper()
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: changes}})
	return c.recvType(syncproto.TypePushResult).PushResult.Results
}

// A pushed change's attachment metadata is checked as the server would
// write it: JSON {fileName, type, size, digest} under an addressable key.
// Not JSON, not an object, a key with a slash or no digest: rejected, and
// nothing stored.
func TestPushedAttachmentMetadataIsValidated(t *testing.T) {
	f := newActFixture(t)
	ch := f.channel("Diary")
	c := openSyncSession(t, f, f.tok, "r-push-1")
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "r-push-1"}
	base := func(id string) map[string]crdt.Field {
		return map[string]crdt.Field{
			"channelId": field(v, `"`+ch+`"`), "time": field(v, "1700000000"),
			"type": field(v, `{"class":"note","format":"txt"}`),
		}
	}
	cases := []struct {
		name  string
		files map[string]crdt.Field
	}{
		{"metadata not JSON", map[string]crdt.Field{"photo": field(v, `this is not json`)}},
		{"metadata not an object", map[string]crdt.Field{"photo": field(v, `[1,2,3]`)}},
		{"key with a slash", map[string]crdt.Field{"a/b": field(v, `{"fileName":"x","type":"text/plain","size":1}`)}},
		{"metadata without digest", map[string]crdt.Field{"photo": field(v, `{"fileName":"x","type":"text/plain","size":123456789}`)}},
	}
	for i, tc := range cases {
		id := cuid("att" + string(rune('a'+i)))
		res := pushAndWait(c, syncproto.Change{RSeq: uint64(i + 1), Kind: "event", ID: id, Create: true,
			Delta: crdt.Doc{Fields: base(id), Files: tc.files}})
		if res[0].Status != syncproto.StatusRejected || res[0].Error == nil || res[0].Error.ID != model.ErrInvalidParametersFormat {
			st, ev := f.call("GET", "/"+ch+"/events/"+id, nil)
			t.Errorf("%s: push answered %+v (error %+v), want rejected invalid-parameters-format; stored event: %d %v",
				tc.name, res[0].Status, res[0].Error, st, ev)
		}
	}
}

// Version node ids are bounded (model.MaxNodeLen) and counted in an item's
// size: a pushed item whose versions make it far over 256 KiB encoded is
// rejected, so the feed never packs items into a frame over the 4 MiB
// limit that no replica could read.
func TestPushedVersionNodesAreBoundedAndTheFeedStaysReadable(t *testing.T) {
	f := newActFixture(t)
	ch := f.channel("Diary")
	c := openSyncSession(t, f, f.tok, "r-push-3")
	node := string(bytes.Repeat([]byte("n"), 900<<10)) // 900 KiB: under Badger's 1 MiB value limit
	for i := 1; i <= 5; i++ {
		big := crdt.Version{Time: time.Now().UnixMilli() - 1000, Node: node}
		v := crdt.Version{Time: time.Now().UnixMilli() - 1000, Node: "r-push-3"}
		id := cuid(fmt.Sprintf("huge%d", i))
		res := pushAndWait(c, syncproto.Change{RSeq: uint64(i), Kind: "event", ID: id, Create: true, Delta: crdt.Doc{
			Fields: map[string]crdt.Field{"channelId": field(v, `"`+ch+`"`), "time": field(v, "1"),
				"type": field(v, `{"class":"note","format":"txt"}`), "value": field(big, `"x"`)}}})
		if res[0].Status != syncproto.StatusRejected {
			t.Errorf("push %d: a change whose encoding is %d bytes answered %s, want rejected (payload-too-large or invalid-parameters-format)",
				i, len(node), res[0].Status)
		}
	}
	// A fresh replica of a time-framed share downloads its scope.
	from, to := 0.0, 10.0
	shared := f.token(model.Permission{ChannelID: ch, Level: "read", TimeFrame: &model.TimeFrame{From: &from, To: &to}})
	c2, _, err := f.dialSync(t, f.user, shared)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c2.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r-push-fresh"}})
	for {
		_, b, err := c2.conn.Read(c2.ctx)
		if err != nil {
			t.Fatalf("a fresh replica cannot download the account: %v", err)
		}
		m, err := syncproto.Decode(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if m.T == syncproto.TypeChanges {
			if m.Changes.CaughtUp {
				return
			}
			c2.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
		}
	}
}
