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

// A push may name, in an event's attachments, content its session uploaded
// or content an event the token sees names already. Naming any other
// digest answers unknown-attachment whether or not the account holds it: a
// contributor of channel A can neither learn that content of channel B
// exists nor download it through an event of A.
func TestPushedDigestCannotReachContentOutsideTheScope(t *testing.T) {
	f := newActFixture(t)
	a := f.channel("Alpha")
	b := f.channel("Beta")
	secret := f.event(b, map[string]any{"time": 1})
	st, v := f.upload("POST", "/"+b+"/events/"+secret, f.tok, mpPart{name: "result", fileName: "result.txt", body: []byte("test: positive")})
	mustStatus(t, "owner uploads into B", st, v, 200)

	tok := f.token(model.Permission{ChannelID: a, Level: "contribute"})
	c := openSyncSession(t, f, tok, "r-push-2")
	ver := crdt.Version{Time: time.Now().UnixMilli(), Node: "r-push-2"}
	try := func(rseq uint64, guess string) syncproto.Result {
		id := cuid(fmt.Sprintf("guess%d", rseq))
		meta := `{"digest":"` + hexSum([]byte(guess)) + `","fileName":"g","size":1,"type":"text/plain"}`
		return pushAndWait(c, syncproto.Change{RSeq: rseq, Kind: "event", ID: id, Create: true, Delta: crdt.Doc{
			Fields: map[string]crdt.Field{"channelId": field(ver, `"`+a+`"`), "time": field(ver, "1"),
				"type": field(ver, `{"class":"note","format":"txt"}`)},
			Files: map[string]crdt.Field{"g": field(ver, meta)}}})[0]
	}
	neg := try(1, "test: negative")
	pos := try(2, "test: positive")
	t.Logf("guess negative: %s %+v; guess positive: %s %+v", neg.Status, neg.Error, pos.Status, pos.Error)
	if neg.Status != pos.Status {
		t.Errorf("the answer tells which content exists outside the token's scope: negative=%s, positive=%s", neg.Status, pos.Status)
	}
	if pos.Status != syncproto.StatusRejected || pos.Error == nil || pos.Error.ID != model.ErrUnknownAttachment {
		t.Errorf("naming content out of scope: %s %+v, want rejected unknown-attachment", pos.Status, pos.Error)
	}
	st2, body, _ := f.do("GET", f.path("/"+a+"/events/"+cuid("guess2")+"/g"), tok, nil)
	if st2 == 200 {
		t.Errorf("the token downloads content that only an out-of-scope event holds: %q", body)
	}
	// A rejected change is refused whole: the event it would have created
	// (written before its attachments were checked) is not there.
	for _, id := range []string{cuid("guess1"), cuid("guess2")} {
		if st, v := f.call("GET", "/"+a+"/events/"+id, nil); st != 404 {
			t.Errorf("event %s of a rejected change: %d %v, want 404", id, st, v)
		}
	}

	// Content an event of A names already may be named again.
	mine := f.event(a, map[string]any{"time": 2})
	st, v = f.upload("POST", "/"+a+"/events/"+mine, f.tok, mpPart{name: "doc", fileName: "doc.txt", body: []byte("in scope")})
	mustStatus(t, "owner uploads into A", st, v, 200)
	if got := try(3, "in scope"); got.Status != syncproto.StatusOK {
		t.Errorf("naming content an event in scope names: %s %+v, want ok", got.Status, got.Error)
	}
	st2, body, _ = f.do("GET", f.path("/"+a+"/events/"+cuid("guess3")+"/g"), tok, nil)
	if st2 != 200 || string(body) != "in scope" {
		t.Errorf("reading it back: %d %q", st2, body)
	}

	// Content the session uploads may be named by its next push.
	content := []byte("uploaded by this session")
	c.send(&syncproto.Message{T: syncproto.TypeAttachmentPut, AttachmentPut: &syncproto.AttachmentPut{Digest: hexSum(content), Data: content, Final: true}})
	if d := c.recvType(syncproto.TypeAttachmentData).AttachmentData; d.Error != nil {
		t.Fatalf("upload: %+v", d.Error)
	}
	if got := try(4, string(content)); got.Status != syncproto.StatusOK {
		t.Errorf("naming content the session uploaded: %s %+v, want ok", got.Status, got.Error)
	}
}

// A pushed folder deletion removes the folder's subtree as the HTTP delete
// does. Events linked to the subtree need mergeEventsWithParent, which a
// push cannot give: it is refused (missing-parameter) and nothing changes.
// With the events moved out, the same deletion removes the subfolders too:
// nothing is left pointing at a deleted folder.
func TestPushedFolderDeletionLeavesNoDanglingReferences(t *testing.T) {
	f := newActFixture(t)
	ch := f.channel("Diary")
	f.folder(ch, "top", "Top", "")
	f.folder(ch, "mid", "Mid", "top")
	f.folder(ch, "leaf", "Leaf", "mid")
	ev := f.event(ch, map[string]any{"time": 1, "folderId": "mid"})
	tok := f.token(model.Permission{ChannelID: ch, Level: "manage",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("top"), Level: "manage"}}})
	c := openSyncSession(t, f, tok, "r-push-4")
	del := func(rseq uint64) syncproto.Result {
		return pushAndWait(c, syncproto.Change{RSeq: rseq, Kind: "folder", ID: "mid",
			Delta: crdt.Doc{Deleted: crdt.Version{Time: time.Now().UnixMilli(), Node: "r-push-4"}}})[0]
	}
	if res := del(1); res.Status != syncproto.StatusRejected || res.Error == nil || res.Error.ID != model.ErrMissingParameter {
		t.Fatalf("deleting a folder with events: %s %+v, want rejected missing-parameter", res.Status, res.Error)
	}
	folders := func() map[string]bool {
		out := map[string]bool{}
		var walk func(list any)
		walk = func(list any) {
			l, _ := list.([]any)
			for _, x := range l {
				fo := x.(map[string]any)
				out[fo["id"].(string)] = true
				walk(fo["children"])
			}
		}
		_, tree := f.call("GET", "/"+ch+"/folders", nil)
		walk(tree)
		return out
	}
	if got := folders(); !got["mid"] || !got["leaf"] {
		t.Errorf("folders after the refused deletion: %v", got)
	}
	f.must(200, "PUT", "/"+ch+"/events/"+ev, map[string]any{"folderId": "top"})
	if res := del(2); res.Status != syncproto.StatusOK {
		t.Fatalf("deleting the folder once its events moved out: %s %+v", res.Status, res.Error)
	}
	if st, v := f.call("PUT", "/"+ch+"/events/"+ev, map[string]any{"description": "edited"}); st != 200 {
		t.Errorf("the owner can no longer edit the event: %d %v", st, v)
	}
	if got := folders(); got["mid"] || got["leaf"] || !got["top"] {
		t.Errorf("folders after the deletion: %v, want top only", got)
	}
}

// A pushed channel deletion removes the channel with its folders, events
// and files, as the HTTP delete does.
func TestPushedChannelDeletionRemovesItsEventsAndFiles(t *testing.T) {
	f := newActFixture(t)
	ch := f.channel("Diary")
	ev := f.event(ch, map[string]any{"time": 1})
	st, v := f.upload("POST", "/"+ch+"/events/"+ev, f.tok, mpPart{name: "doc", fileName: "doc.txt", body: []byte("private doc")})
	mustStatus(t, "upload", st, v, 200)
	f.must(200, "DELETE", "/channels/"+ch, nil) // trash
	c := openSyncSession(t, f, f.tok, "r-push-5")
	res := pushAndWait(c, syncproto.Change{RSeq: 1, Kind: "channel", ID: ch,
		Delta: crdt.Doc{Deleted: crdt.Version{Time: time.Now().UnixMilli(), Node: "r-push-5"}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("push: %+v", res[0])
	}
	if f.srv.Store().HasFile(f.user, hexSum([]byte("private doc"))) {
		t.Errorf("the deleted channel's attachment content is still stored")
	}
	if st, v := f.call("GET", "/"+ch+"/events/"+ev, nil); st != 404 {
		t.Errorf("the deleted channel's event: %d %v, want 404", st, v)
	}
}

// An HTTP write wins over a version a device stamped ahead of the server's
// clock (within the skew allowance), and that version does not drag the
// server's later stamps on other items ahead: a device's write made after
// them, at its true time, still wins there.
func TestHTTPWritesPassAheadVersionsWithoutFollowingThem(t *testing.T) {
	f := newActFixture(t)
	ch := f.channel("Diary")
	x := f.event(ch, map[string]any{"time": 1})
	y := f.event(ch, map[string]any{"time": 2})
	c := openSyncSession(t, f, f.tok, "r-ahead")
	ahead := crdt.Version{Time: time.Now().Add(2 * time.Minute).UnixMilli(), Node: "r-ahead"}
	res := pushAndWait(c, syncproto.Change{RSeq: 1, Kind: "event", ID: x, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"description": field(ahead, `"from a fast clock"`)}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("push: %+v", res[0])
	}
	f.must(200, "PUT", "/"+ch+"/events/"+x, map[string]any{"description": "later, over HTTP"})
	if ev := f.must(200, "GET", "/"+ch+"/events/"+x, nil).(map[string]any); ev["description"] != "later, over HTTP" {
		t.Errorf("x: %v, want the later HTTP write", ev["description"])
	}
	f.must(200, "PUT", "/"+ch+"/events/"+y, map[string]any{"description": "over HTTP"})
	now := crdt.Version{Time: time.Now().Add(time.Second).UnixMilli(), Node: "r-ahead"}
	res = pushAndWait(c, syncproto.Change{RSeq: 2, Kind: "event", ID: y, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"description": field(now, `"later, from the device"`)}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("push on y: %+v (lost %v)", res[0], res[0].Lost)
	}
	if ev := f.must(200, "GET", "/"+ch+"/events/"+y, nil).(map[string]any); ev["description"] != "later, from the device" {
		t.Errorf("y: %v, want the device's later write", ev["description"])
	}
}
