package server_test

import (
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// A replay whose first result is no longer kept is answered duplicate with
// the head as seq, so the replica holds the change in its view until its
// cursor reaches it (SYNC-NOTES §3).
func TestReplayOfAPushWhoseResultsWerePrunedAnswersWithTheHead(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	e.create(t, tok, "/alice01/channels", map[string]any{"id": "diary", "name": "Diary"})
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "r-replay"}
	mk := func(from, n int) []syncproto.Change {
		var out []syncproto.Change
		for i := 0; i < n; i++ {
			out = append(out, syncproto.Change{RSeq: uint64(from + i), Kind: "event", ID: model.NewID(), Create: true,
				Delta: crdt.Doc{Fields: map[string]crdt.Field{
					"channelId": field(v, `"diary"`), "time": field(v, "1700000000"),
					"type": field(v, `{"class":"note","format":"txt"}`)}}})
		}
		return out
	}
	p1, p2 := mk(1, 1000), mk(1001, 1000)

	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatal(err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r-replay"}})
	c.recvType(syncproto.TypeWelcome)
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: p1}})
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: p2}})
	first := c.recvType(syncproto.TypePushResult).PushResult.Results[0]
	if first.Status != syncproto.StatusOK || first.Seq == 0 {
		t.Fatalf("first result: %+v", first)
	}
	c.recvType(syncproto.TypePushResult)
	c.conn.CloseNow() // as if both results had been lost

	// The replica reconnects and replays what it pushed.
	c2, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatal(err)
	}
	c2.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r-replay", MaxRSeq: 2000}})
	c2.recvType(syncproto.TypeWelcome)
	c2.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: p1}})
	replay := c2.recvType(syncproto.TypePushResult).PushResult.Results[0]
	if replay.Status != syncproto.StatusDuplicate || replay.Seq < first.Seq {
		t.Fatalf("the replay of rseq 1 (applied at seq %d) is answered %+v, want duplicate with a seq at least that", first.Seq, replay)
	}
}
