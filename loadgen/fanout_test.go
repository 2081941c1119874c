package loadgen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// TestScanChangesReadsWhatTheCodecWrites checks the idle clients' frame
// scanner against frames encoded by syncproto: ids, cursor and caughtUp of a
// changes batch, other messages passed over, a server error returned.
func TestScanChangesReadsWhatTheCodecWrites(t *testing.T) {
	doc := crdt.Doc{Fields: map[string]crdt.Field{"value": {V: crdt.Version{Time: 7, Node: "n"}, Val: []byte(`"x"`)}}}
	for _, tc := range []struct {
		name     string
		m        *syncproto.Message
		changes  bool
		ids      []string
		cursor   syncproto.Cursor
		caughtUp bool
		err      string
	}{
		{name: "batch", m: &syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Items:    []syncproto.Item{{Kind: "event", ID: "cabc", Doc: doc}, {Kind: "folder", ID: "fone", Doc: doc}},
			Removals: [][]byte{[]byte("0123456789abcdef")}, Cursor: syncproto.Cursor{Epoch: "ep", Seq: 1 << 40}, CaughtUp: true}},
			changes: true, ids: []string{"cabc", "fone"}, cursor: syncproto.Cursor{Epoch: "ep", Seq: 1 << 40}, caughtUp: true},
		{name: "full batch", m: &syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{
			Items: []syncproto.Item{{Kind: "event", ID: "cdef", Doc: doc}}, Cursor: syncproto.Cursor{Epoch: "ep", Seq: 7}}},
			changes: true, ids: []string{"cdef"}, cursor: syncproto.Cursor{Epoch: "ep", Seq: 7}},
		{name: "empty batch", m: &syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "ep", Seq: 3}}},
			changes: true, cursor: syncproto.Cursor{Epoch: "ep", Seq: 3}},
		{name: "scope", m: &syncproto.Message{T: syncproto.TypeScope, Scope: &syncproto.Scope{Permissions: []model.Permission{}, PermVersion: 2}}},
		{name: "error", m: &syncproto.Message{T: syncproto.TypeError, Error: &syncproto.Error{Code: 4403, ID: "invalid-access-token", Message: "revoked"}},
			err: "invalid-access-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame, err := syncproto.Encode(tc.m)
			if err != nil {
				t.Fatal(err)
			}
			// Without ids (a pusher's read), the rest is the same.
			_, changes2, cursor2, caughtUp2, err2 := scanChanges(frame, nil, false)
			ids, changes, cursor, caughtUp, err := scanChanges(frame, nil, true)
			if (err == nil) != (err2 == nil) || changes2 != changes || cursor2 != cursor || caughtUp2 != caughtUp {
				t.Fatalf("without ids: changes %v cursor %+v caughtUp %v (%v), with: %v %+v %v (%v)", changes2, cursor2, caughtUp2, err2, changes, cursor, caughtUp, err)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error: got %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, id := range ids {
				got = append(got, string(id))
			}
			if g, w := strings.Join(got, ","), strings.Join(tc.ids, ","); g != w {
				t.Fatalf("ids: got %q, want %q", g, w)
			}
			if changes != tc.changes || cursor != tc.cursor || caughtUp != tc.caughtUp {
				t.Fatalf("got changes %v cursor %+v caughtUp %v, want %v %+v %v", changes, cursor, caughtUp, tc.changes, tc.cursor, tc.caughtUp)
			}
		})
	}
}

// The pusher's early stop (no ids wanted) does not depend on the key order
// the server uses: a batch with caughtUp after its items, and one without
// caughtUp (an older server's false), read right.
func TestScanChangesAnyKeyOrder(t *testing.T) {
	doc := crdt.Doc{Fields: map[string]crdt.Field{"value": {V: crdt.Version{Time: 7, Node: "n"}, Val: []byte(`"x"`)}}}
	frame := func(withCaughtUp bool) []byte {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		n := 2
		if withCaughtUp {
			n = 3
		}
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(enc.EncodeMapLen(2))
		must(enc.EncodeString("t"))
		must(enc.EncodeString(syncproto.TypeChanges))
		must(enc.EncodeString("changes"))
		must(enc.EncodeMapLen(n))
		must(enc.EncodeString("cursor"))
		must(enc.Encode(syncproto.Cursor{Epoch: "ep", Seq: 9}))
		must(enc.EncodeString("items"))
		must(enc.Encode([]syncproto.Item{{Kind: "event", ID: "cx", Doc: doc}}))
		if withCaughtUp {
			must(enc.EncodeString("caughtUp"))
			must(enc.EncodeBool(true))
		}
		return buf.Bytes()
	}
	for _, withCaughtUp := range []bool{true, false} {
		_, changes, cursor, caughtUp, err := scanChanges(frame(withCaughtUp), nil, false)
		if err != nil || !changes || cursor != (syncproto.Cursor{Epoch: "ep", Seq: 9}) || caughtUp != withCaughtUp {
			t.Fatalf("caughtUp %v after the items: read changes %v cursor %+v caughtUp %v (%v)", withCaughtUp, changes, cursor, caughtUp, err)
		}
	}
}
