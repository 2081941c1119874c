package replica

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// benchEvent is an event as the server sends it: the workloads' shape
// (channel, folder, time, type note/txt, an 80-character value, tags),
// with the server's stamps.
func benchEvent(n int) crdt.Doc {
	v := crdt.Version{Time: int64(1_700_000_000_000 + n), Node: "server"}
	d := crdt.Doc{Fields: map[string]crdt.Field{
		"channelId": {V: v, Val: model.JSONString("c0")},
		"folderId":  {V: v, Val: model.JSONString(fmt.Sprintf("c0-f%02d", n%20))},
		"time":      {V: v, Val: model.JSONNumber(float64(1_700_000_000 + n))},
		"type":      {V: v, Val: json.RawMessage(`{"class":"note","format":"txt"}`)},
		"value":     {V: v, Val: model.JSONString("slept well after a long walk by the river then wrote notes about the morning ru")},
	}, Tags: map[string]crdt.Elem{"run": {V: v, Present: true}, "mood": {V: v, Present: true}}}
	model.Stamp(&d, v, float64(v.Time)/1000, "caccess0000000000000000000", true)
	return d
}

// benchFrames encodes frames changes batches of 1000 new events.
func benchFrames(b *testing.B, frames int) [][]byte {
	out := make([][]byte, frames)
	for f := range out {
		ch := &syncproto.Changes{Cursor: syncproto.Cursor{Epoch: "e", Seq: uint64((f + 1) * 1000)}}
		for i := range 1000 {
			ch.Items = append(ch.Items, syncproto.Item{Kind: "event", ID: model.NewID(), Doc: benchEvent(f*1000 + i)})
		}
		var err error
		if out[f], err = syncproto.Encode(&syncproto.Message{T: syncproto.TypeChanges, Changes: ch}); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkApplyChanges measures the replica side of an initial sync: a
// changes frame of 1000 new events decoded and applied in one transaction
// (what W1 does per batch, without the network and the server).
func BenchmarkApplyChanges(b *testing.B) {
	const perReplica = 50
	frames := benchFrames(b, perReplica)
	var r *Replica
	var s *sessionState
	next := perReplica
	b.ReportAllocs()
	b.SetBytes(int64(len(frames[0])))
	for b.Loop() {
		if next == perReplica {
			b.StopTimer()
			if r != nil {
				r.Close()
			}
			var err error
			if r, err = Open(b.TempDir(), Options{}); err != nil {
				b.Fatal(err)
			}
			s = &sessionState{r: r, res: &RoundResult{}, key: []byte("0123456789abcdef0123456789abcdef")}
			next = 0
			b.StartTimer()
		}
		m, err := decodeInbound(frames[next])
		if err != nil {
			b.Fatal(err)
		}
		if err := s.changes(m.changes); err != nil {
			b.Fatal(err)
		}
		next++
	}
	b.StopTimer()
	if r != nil {
		r.Close()
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLocalWrite measures one offline event write with 1000 changes
// already pending (W2's local side).
func BenchmarkLocalWrite(b *testing.B) {
	r, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	body := map[string]json.RawMessage{
		"channelId": model.JSONString("c0"), "folderId": model.JSONString("c0-f01"), "time": model.JSONNumber(1_700_000_000),
		"type": json.RawMessage(`{"class":"note","format":"txt"}`), "value": model.JSONString("slept well after a long walk by the river"),
		"tags": json.RawMessage(`["run","mood"]`),
	}
	for range 1000 {
		if _, err := r.CreateEvent(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.CreateEvent(body); err != nil {
			b.Fatal(err)
		}
	}
}
