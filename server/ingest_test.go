package server

import (
	"bytes"
	"fmt"
	"math"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// The stored result of a pushed change is read back with syncproto.Decode
// on a replay: its hand encoding must be syncproto's, byte for byte.
func TestStoredResultEncodesAsSyncproto(t *testing.T) {
	var results []syncproto.Result
	for _, n := range []uint64{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		for _, st := range []string{syncproto.StatusOK, syncproto.StatusConflict, syncproto.StatusRejected, syncproto.StatusDuplicate} {
			results = append(results, syncproto.Result{RSeq: n, Status: st, Seq: n}, syncproto.Result{RSeq: n, Status: st, Seq: 42})
		}
		results = append(results, syncproto.Result{RSeq: n, Status: syncproto.StatusOK})
	}
	results = append(results,
		syncproto.Result{RSeq: 3, Status: syncproto.StatusOK, Seq: 9, StoppedID: "c1"},
		syncproto.Result{RSeq: 3, Status: syncproto.StatusOK, Seq: 9, Renamed: "a (2)"},
		syncproto.Result{RSeq: 3, Status: syncproto.StatusConflict, Seq: 9, Lost: []string{"content"}},
		syncproto.Result{RSeq: 3, Status: syncproto.StatusRejected, Seq: 9, Error: model.Errorf(model.ErrForbidden, "no"),
			Current: &syncproto.Item{Kind: "events", ID: "e1", Doc: crdt.Doc{}}},
	)
	for _, r := range results {
		got, err := encodeStoredResult(r)
		if err != nil {
			t.Fatalf("encode %+v: %v", r, err)
		}
		want, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: []syncproto.Result{r}}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("result %+v: got %x, want %x", r, got, want)
		}
		m, err := syncproto.Decode(got)
		if err != nil {
			t.Fatalf("decode %+v: %v", r, err)
		}
		if g := m.PushResult.Results[0]; g.RSeq != r.RSeq || g.Status != r.Status || g.Seq != r.Seq {
			t.Fatalf("decoded: got %+v, want %+v", g, r)
		}
	}
}

// A big push is checked on several goroutines: each change must still get
// its own verdict, in its place.
func TestCheckPushedKeepsEachVerdictInPlace(t *testing.T) {
	v := crdt.Version{Time: 1, Node: "r"}
	var changes []syncproto.Change
	for i := range 1000 {
		ch := syncproto.Change{RSeq: uint64(i + 1), Kind: string(model.KindEvent), ID: model.NewID(), Create: true,
			Delta: crdt.Doc{Fields: map[string]crdt.Field{
				"channelId": {V: v, Val: model.JSONString("c")},
				"type":      {V: v, Val: []byte(`{"class":"note","format":"txt"}`)},
				"time":      {V: v, Val: model.JSONNumber(float64(i))},
			}}}
		switch i % 7 {
		case 1:
			ch.ID = "not a cuid"
		case 2:
			ch.Kind = "nonsense"
		case 3:
			ch.Delta.Fields["time"] = crdt.Field{V: v, Val: model.JSONString("noon")}
		case 5:
			ch.Delta.Fields["type"] = crdt.Field{V: v}
		}
		changes = append(changes, ch)
	}
	got := checkPushed(changes)
	for i, ch := range changes {
		want := make([]pushCheck, 1)
		checkRange(changes[i:i+1], want)
		if got[i].valid != want[0].valid || fmt.Sprint(got[i].err) != fmt.Sprint(want[0].err) {
			t.Fatalf("change %d (%s %q): got %v %v, want %v %v", i, ch.Kind, ch.ID, got[i].valid, got[i].err, want[0].valid, want[0].err)
		}
		if wantErr := i%7 == 1 || i%7 == 2 || i%7 == 3 || i%7 == 5; (got[i].err != nil) != wantErr {
			t.Fatalf("change %d: error %v, want one: %v", i, got[i].err, wantErr)
		}
	}
}
