package syncproto_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"sync"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/syncproto"
)

// TestBlindIDIsTheTruncatedHMAC: whatever HMAC state BlindID reuses, with
// keys alternating across goroutines, it returns HMAC-SHA256(key,
// kind ":" id) cut to 16 bytes.
func TestBlindIDIsTheTruncatedHMAC(t *testing.T) {
	keys := [][]byte{[]byte("key-one"), []byte("key-two"), bytes.Repeat([]byte{7}, 100)}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				key := keys[(g+i)%len(keys)]
				id := string(rune('a'+i%26)) + "xyz"
				h := hmac.New(sha256.New, key)
				h.Write([]byte("event:" + id))
				want := h.Sum(nil)[:16]
				if got := syncproto.BlindID(key, "event", id); !bytes.Equal(got, want) {
					t.Errorf("BlindID(%q, event, %q) = %x, want %x", key, id, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestItemRawDocEncodesAsItsDoc: an item sent with its stored document
// bytes is the same frame as one sent with the decoded document.
func TestItemRawDocEncodesAsItsDoc(t *testing.T) {
	v := crdt.Version{Time: 1700000000000, Counter: 3, Node: "srv"}
	doc := crdt.Doc{Fields: map[string]crdt.Field{"name": {V: v, Val: []byte(`"Diary"`)}}, Deleted: crdt.Version{}}
	frame := func(it syncproto.Item) []byte {
		b, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{Items: []syncproto.Item{it}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	decoded := frame(syncproto.Item{Kind: "channel", ID: "diary", Doc: doc})
	raw := frame(syncproto.Item{Kind: "channel", ID: "diary", RawDoc: crdt.AppendDoc(nil, &doc)})
	if !bytes.Equal(decoded, raw) {
		t.Fatalf("frames differ:\n%x\n%x", decoded, raw)
	}
	m, err := syncproto.Decode(raw)
	if err != nil || len(m.Changes.Items) != 1 || !crdt.Equal(m.Changes.Items[0].Doc, doc) || m.Changes.Items[0].RawDoc != nil {
		t.Fatalf("decoded %+v, %v", m, err)
	}
}
