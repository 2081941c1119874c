package syncproto_test

import (
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/syncproto"
)

// TestPushDecodesAsByReflection: Decode's hand path for pushes reads every
// push exactly as msgpack.Unmarshal reads it into a Message.
func TestPushDecodesAsByReflection(t *testing.T) {
	version := rapid.Custom(func(t *rapid.T) crdt.Version {
		return crdt.Version{Time: rapid.Int64().Draw(t, "t"), Counter: rapid.Uint32().Draw(t, "c"), Node: rapid.StringN(0, 20, -1).Draw(t, "n")}
	})
	field := rapid.Custom(func(t *rapid.T) crdt.Field {
		return crdt.Field{V: version.Draw(t, "v"), Val: rapid.SliceOfN(rapid.Byte(), 1, 300).Draw(t, "x")}
	})
	change := rapid.Custom(func(t *rapid.T) syncproto.Change {
		return syncproto.Change{
			RSeq: rapid.Uint64().Draw(t, "rseq"), Kind: rapid.SampledFrom([]string{"event", "folder", "channel", "", "x"}).Draw(t, "kind"),
			ID: rapid.StringN(0, 40, -1).Draw(t, "id"), Create: rapid.Bool().Draw(t, "create"),
			Delta: crdt.Doc{Fields: rapid.MapOfN(rapid.StringN(1, 12, -1), field, 0, 20).Draw(t, "fields")},
		}
	})
	rapid.Check(t, func(t *rapid.T) {
		p := &syncproto.Push{Changes: rapid.SliceOfN(change, 0, 40).Draw(t, "changes")}
		frame, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypePush, Push: p})
		if err != nil {
			t.Fatal(err)
		}
		got, err := syncproto.Decode(frame)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		var want syncproto.Message
		if err := msgpack.Unmarshal(frame, &want); err != nil {
			t.Fatal(err)
		}
		if got.T != want.T || got.Push == nil || len(got.Push.Changes) != len(want.Push.Changes) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		for i, c := range got.Push.Changes {
			w := want.Push.Changes[i]
			if c.RSeq != w.RSeq || c.Kind != w.Kind || c.ID != w.ID || c.Create != w.Create || !crdt.Equal(c.Delta, w.Delta) {
				t.Fatalf("change %d: got %+v, want %+v", i, c, w)
			}
		}
	})
}

func TestPushDecodeRefusesWhatReflectionRefuses(t *testing.T) {
	for name, m := range map[string]any{
		"nil push":         map[string]any{"t": "push", "push": nil},
		"no push":          map[string]any{"t": "push"},
		"changes not list": map[string]any{"t": "push", "push": map[string]any{"changes": "x"}},
		"delta not a doc":  map[string]any{"t": "push", "push": map[string]any{"changes": []any{map[string]any{"delta": 5}}}},
		"rseq a string":    map[string]any{"t": "push", "push": map[string]any{"changes": []any{map[string]any{"rseq": "1"}}}},
	} {
		frame, err := msgpack.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := syncproto.Decode(frame); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
