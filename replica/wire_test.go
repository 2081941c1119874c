package replica

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

func wireDoc(n int) crdt.Doc {
	v := crdt.Version{Time: int64(1_700_000_000_000 + n), Counter: uint32(n % 7), Node: "cserver"}
	d := crdt.Doc{Fields: map[string]crdt.Field{
		"channelId": {V: v, Val: model.JSONString("diary")},
		"time":      {V: v, Val: model.JSONNumber(float64(n))},
		"value":     {V: v, Val: model.JSONString("some text")},
	}, Tags: map[string]crdt.Elem{"run": {V: v, Present: true}}}
	if n%3 == 0 {
		d.Data = map[string]crdt.Field{"k": {V: v, Val: []byte(`{"a":1}`)}}
	}
	return d
}

// TestDecodeChangesMatchesSyncprotoDecode: the replica's one-pass reading
// of a changes batch gives what syncproto.Decode gives, and each item's raw
// bytes decode to its document.
func TestDecodeChangesMatchesSyncprotoDecode(t *testing.T) {
	ch := &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "e1", Seq: 42}, CaughtUp: true,
		Removals: [][]byte{[]byte("0123456789abcdef")}}
	for i := range 50 {
		ch.Items = append(ch.Items, syncproto.Item{Kind: "event", ID: model.NewID(), Doc: wireDoc(i)})
	}
	frame, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypeChanges, Changes: ch})
	if err != nil {
		t.Fatal(err)
	}
	want, err := syncproto.Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeInbound(frame)
	if err != nil {
		t.Fatal(err)
	}
	if got.T != syncproto.TypeChanges || got.changes == nil {
		t.Fatalf("decoded %q, changes %v", got.T, got.changes)
	}
	c := got.changes
	if c.Cursor != want.Changes.Cursor || c.CaughtUp != want.Changes.CaughtUp || len(c.Removals) != 1 ||
		string(c.Removals[0]) != string(want.Changes.Removals[0]) || len(c.Items) != len(want.Changes.Items) {
		t.Fatalf("got %+v, want %+v", c, want.Changes)
	}
	for i, it := range c.Items {
		w := want.Changes.Items[i]
		d, err := it.doc()
		info := crdt.DocInfo{Max: w.Doc.MaxVersion(), Deleted: w.Doc.IsDeleted()}
		if it.Kind != w.Kind || it.ID != w.ID || err != nil || !crdt.Equal(d, w.Doc) || it.Info != info {
			t.Fatalf("item %d: got %+v, want %+v", i, it, w)
		}
		var again crdt.Doc
		if err := msgpack.Unmarshal(it.Raw, &again); err != nil || !crdt.Equal(again, w.Doc) {
			t.Fatalf("item %d: raw bytes decode to %+v (%v), want %+v", i, again, err, w.Doc)
		}
	}
}

func TestDecodeInboundRefusesMalformedChanges(t *testing.T) {
	for name, m := range map[string]any{
		"no body":       map[string]any{"t": "changes"},
		"nil body":      map[string]any{"t": "changes", "changes": nil},
		"items not map": map[string]any{"t": "changes", "changes": map[string]any{"items": []any{1}}},
		"doc not a doc": map[string]any{"t": "changes", "changes": map[string]any{"items": []any{map[string]any{"doc": "x"}}}},
	} {
		frame, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeInbound(frame); err == nil {
			t.Errorf("%s: decoded without an error", name)
		}
	}
	// Other messages still go through syncproto.Decode.
	frame, _ := syncproto.Encode(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{}})
	if m, err := decodeInbound(frame); err != nil || m.Ack == nil {
		t.Fatalf("ack: %+v, %v", m, err)
	}
}

// TestPushFrameMatchesSyncproto: a push built from stored entries without
// decoding their deltas decodes to the changes syncproto would have sent,
// and an entry rewritten from its stored form keeps its delta.
func TestPushFrameMatchesSyncproto(t *testing.T) {
	v := crdt.Version{Time: 1_700_000_000_000, Node: "creplica"}
	files := map[string]crdt.Field{"photo": {V: v, Val: []byte(`{"digest":"abc","size":3}`)}}
	var want []syncproto.Change
	var changes []pushChange
	for i := range 5 {
		e := entry{RSeq: uint64(10 + i), Kind: "event", ID: model.NewID(), Create: i%2 == 0, Delta: wireDoc(i), Repush: i == 3}
		if i == 1 {
			e.Delta.Files = files
		}
		raw, err := msgpack.Marshal(&e)
		if err != nil {
			t.Fatal(err)
		}
		se, err := readEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		if se.RSeq != e.RSeq || se.Kind != e.Kind || se.ID != e.ID || se.Create != e.Create || se.Repush != e.Repush || se.Acked {
			t.Fatalf("entry %d read as %+v", i, se)
		}
		got, err := deltaFiles(se.Delta)
		if err != nil || len(got) != len(e.Delta.Files) {
			t.Fatalf("entry %d: files %v (%v), want %v", i, got, err, e.Delta.Files)
		}
		// Acknowledged and rewritten from its stored form.
		se.Acked, se.Seq, se.Epoch = true, 99, "ep"
		again, err := msgpack.Marshal(&se)
		if err != nil {
			t.Fatal(err)
		}
		var back entry
		if err := msgpack.Unmarshal(again, &back); err != nil || !crdt.Equal(back.Delta, e.Delta) || !back.Acked ||
			back.Seq != 99 || back.Epoch != "ep" || back.RSeq != e.RSeq || back.Repush != e.Repush || back.Create != e.Create {
			t.Fatalf("entry %d rewritten as %+v (%v)", i, back, err)
		}
		want = append(want, syncproto.Change{RSeq: e.RSeq, Kind: e.Kind, ID: e.ID, Create: e.Create, Delta: e.Delta})
		changes = append(changes, pushChange{RSeq: se.RSeq, Kind: se.Kind, ID: se.ID, Create: se.Create, Delta: se.Delta})
	}
	frame, err := encodePush(changes)
	if err != nil {
		t.Fatal(err)
	}
	if lib := encodePushWithLibrary(t, changes); !bytes.Equal(frame, lib) {
		t.Fatalf("hand-encoded push differs from the library's encoding:\n%x\n%x", frame, lib)
	}
	m, err := syncproto.Decode(frame)
	if err != nil {
		t.Fatalf("the push frame does not pass syncproto.Decode: %v", err)
	}
	if m.T != syncproto.TypePush || m.Push == nil || len(m.Push.Changes) != len(want) {
		t.Fatalf("decoded %+v", m)
	}
	for i, c := range m.Push.Changes {
		w := want[i]
		if c.RSeq != w.RSeq || c.Kind != w.Kind || c.ID != w.ID || c.Create != w.Create || !crdt.Equal(c.Delta, w.Delta) {
			t.Fatalf("change %d: got %+v, want %+v", i, c, w)
		}
	}
}

// TestDecodeInboundRefusesHostileFrames: lengths beyond the frame and deep
// nesting are refused before anything is allocated for them.
func TestDecodeInboundRefusesHostileFrames(t *testing.T) {
	head := []byte{0x82, 0xa1, 't', 0xa7, 'c', 'h', 'a', 'n', 'g', 'e', 's', 0xa7, 'c', 'h', 'a', 'n', 'g', 'e', 's'}
	frames := map[string][]byte{
		"items array of 2^32-1": append(append([]byte{}, head...), 0x81, 0xa5, 'i', 't', 'e', 'm', 's', 0xdd, 0xff, 0xff, 0xff, 0xff),
		"body map of 2^32-1":    append(append([]byte{}, head...), 0xdf, 0xff, 0xff, 0xff, 0xff),
		"removal of 2 GiB":      append(append([]byte{}, head...), 0x81, 0xa8, 'r', 'e', 'm', 'o', 'v', 'a', 'l', 's', 0x91, 0xc6, 0x7f, 0xff, 0xff, 0xff),
		"deep unknown key":      append(append(append([]byte{}, head...), 0x81, 0xa1, 'z'), append(bytes.Repeat([]byte{0x91}, 100000), 0xc0)...),
		"truncated":             head[:len(head)-3],
	}
	for name, f := range frames {
		if _, err := decodeInbound(f); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzDecodeInbound: no frame makes the replica's decoder panic or hang.
func FuzzDecodeInbound(f *testing.F) {
	ch := &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "e", Seq: 3}, Items: []syncproto.Item{{Kind: "event", ID: "c1", Doc: wireDoc(1)}}, Removals: [][]byte{[]byte("0123456789abcdef")}}
	frame, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypeChanges, Changes: ch})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frame)
	f.Add([]byte{0x81, 0xa1, 't', 0xa5, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodeInbound(b)
	})
}

// encodePushWithLibrary is the reference encodePush is held to: msgpack's
// reflection encoder on the same shape, with compact integers.
func encodePushWithLibrary(t *testing.T, changes []pushChange) []byte {
	var frame struct {
		T    string `msgpack:"t"`
		Push struct {
			Changes []pushChange `msgpack:"changes"`
		} `msgpack:"push"`
	}
	frame.T, frame.Push.Changes = syncproto.TypePush, changes
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(&frame); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
