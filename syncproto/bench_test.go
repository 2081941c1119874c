package syncproto_test

import (
	"fmt"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// benchChanges is a changes batch of n events of the workloads' shape
// (~200 bytes of JSON each, with versions and server stamps).
func benchChanges(n int) *syncproto.Message {
	ch := &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "0123456789abcdef", Seq: uint64(n)}}
	for i := range n {
		v := crdt.Version{Time: int64(1_700_000_000_000 + i), Node: "server"}
		d := crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": {V: v, Val: model.JSONString("c0")},
			"folderId":  {V: v, Val: model.JSONString(fmt.Sprintf("c0-f%02d", i%20))},
			"time":      {V: v, Val: model.JSONNumber(float64(1_700_000_000 + i))},
			"type":      {V: v, Val: []byte(`{"class":"note","format":"txt"}`)},
			"value":     {V: v, Val: model.JSONString("slept well after a long walk by the river then wrote notes about the morning ru")},
		}, Tags: map[string]crdt.Elem{"run": {V: v, Present: true}}}
		model.Stamp(&d, v, float64(v.Time)/1000, "caccess0000000000000000000", true)
		ch.Items = append(ch.Items, syncproto.Item{Kind: "event", ID: model.NewID(), Doc: d})
	}
	return &syncproto.Message{T: syncproto.TypeChanges, Changes: ch}
}

// BenchmarkEncodeChanges encodes a batch of 1000 events (the server's side
// of every pull).
func BenchmarkEncodeChanges(b *testing.B) {
	m := benchChanges(1000)
	frame, _ := syncproto.Encode(m)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := syncproto.Encode(m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkDecodeChanges validates and decodes a batch of 1000 events.
func BenchmarkDecodeChanges(b *testing.B) {
	frame, err := syncproto.Encode(benchChanges(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := syncproto.Decode(frame); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkBlindID computes one removal id.
func BenchmarkBlindID(b *testing.B) {
	key := model.NewSecret()
	id := model.NewID()
	b.ReportAllocs()
	for b.Loop() {
		_ = syncproto.BlindID(key, "event", id)
	}
}
