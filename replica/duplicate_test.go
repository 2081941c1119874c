package replica

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/syncproto"
)

// A replay answered duplicate with the head as seq (its first result no
// longer kept) leaves the edit in the view until the cursor reaches that
// head: it does not revert to the older base meanwhile.
func TestDuplicateWithTheHeadKeepsTheEditVisible(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	s := &sessionState{r: r, res: &RoundResult{}, epoch: "e1", key: key, cursor: syncproto.Cursor{Epoch: "e1", Seq: 10}}
	id := "c" + "dddddddddddddddddddddddd"
	base := serverDoc(map[string]string{"channelId": `"diary"`, "type": `{"class":"n","format":"t"}`, "time": "5", "value": `"old"`})
	edit := crdt.Doc{Fields: map[string]crdt.Field{
		"value": {V: crdt.Version{Time: time.Now().UnixMilli() + 1000, Node: "me"}, Val: []byte(`"new"`)}}}
	if err := r.update(func(txn *badger.Txn) error {
		if err := putBase(txn, nil, "event", id, base); err != nil {
			return err
		}
		return putEntry(txn, &entry{RSeq: 1, Kind: "event", ID: id, Delta: edit})
	}); err != nil {
		t.Fatal(err)
	}
	if e, err := r.GetEvent(id); err != nil || string(e.Value) != `"new"` {
		t.Fatalf("local edit not shown: %+v %v", e, err)
	}
	// Pushed (a replay after a lost result); the server answers a bare duplicate.
	s.inflight, s.pushedTo = 1, 1
	s.sent = []sentChange{{rseq: 1, kind: "event", id: id}}
	if err := s.pushResult(&syncproto.PushResult{Results: []syncproto.Result{{RSeq: 1, Status: syncproto.StatusDuplicate, Seq: 12}}}); err != nil {
		t.Fatal(err)
	}
	// No changes batch has been applied since: the cursor is still 10.
	if e, err := r.GetEvent(id); err != nil || string(e.Value) != `"new"` {
		t.Fatalf("after a bare duplicate, before any pull, the replica shows %s: the edit reverted", e.Value)
	}
}
