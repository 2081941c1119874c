package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/internal/mp"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

func randRecord(rng *rand.Rand, huge bool) Record {
	str := func() string {
		switch rng.IntN(40) {
		case 0:
			return ""
		case 1:
			return strings.Repeat("x", 31+rng.IntN(3))
		case 2:
			return strings.Repeat("y", 255+rng.IntN(3))
		case 3:
			return strings.Repeat("z", 65535+rng.IntN(3))
		}
		return "n" + string(rune('a'+rng.IntN(26)))
	}
	ver := func() crdt.Version {
		ts := []int64{0, 1, 127, 128, 255, 256, 65535, 65536, 1 << 32, 1735689600000, -1, -32, -33, -129, -40000, math.MinInt64, math.MaxInt64}
		cs := []uint32{0, 1, 127, 128, 255, 256, 65535, 65536, math.MaxUint32}
		return crdt.Version{Time: ts[rng.IntN(len(ts))], Counter: cs[rng.IntN(len(cs))], Node: str()}
	}
	fields := func() map[string]crdt.Field {
		switch rng.IntN(4) {
		case 0:
			return nil
		case 1:
			return map[string]crdt.Field{}
		}
		n := rng.IntN(20)
		big := huge && rng.IntN(2) == 0
		if big {
			n = 70000 // map32 header
		}
		m := make(map[string]crdt.Field, n)
		for i := range n {
			if big {
				m[strconv.Itoa(i)] = crdt.Field{V: crdt.Version{Time: int64(i)}, Val: []byte("1")}
				continue
			}
			var val []byte
			switch rng.IntN(4) {
			case 0:
			case 1:
				val = []byte{}
			case 2:
				val = model.JSONString(str())
			default:
				val = model.JSONNumber(rng.Float64())
			}
			m[str()+string(rune('A'+i%26))+strings.Repeat("k", i/26)] = crdt.Field{V: ver(), Val: val}
		}
		return m
	}
	d := crdt.Doc{Fields: fields(), Data: fields(), Files: fields()}
	if rng.IntN(2) == 0 {
		d.Tags = map[string]crdt.Elem{}
		for range rng.IntN(20) {
			d.Tags[str()] = crdt.Elem{V: ver(), Present: rng.IntN(2) == 0}
		}
	}
	if rng.IntN(3) == 0 {
		d.Deleted = ver()
	}
	times := []float64{0, math.Copysign(0, -1), 1.5, -3, math.Inf(1), math.NaN()}
	seqs := []uint64{0, 1, 127, 128, 1 << 20, 1 << 40, math.MaxUint64}
	return Record{Doc: d, Seq: seqs[rng.IntN(len(seqs))], Channel: str(), Time: times[rng.IntN(len(times))], Running: rng.IntN(2) == 0}
}

// TestRecordEncoding: the hand-written encoder passes the validation gate and
// decodes to exactly what msgpack.Marshal's encoding decodes to.
func TestRecordEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		r := randRecord(rng, i < 4)
		mine := encode(&r)
		if err := syncproto.Validate(mine, syncproto.DefaultMaxDepth); err != nil {
			t.Fatalf("record %d: gate: %v", i, err)
		}
		theirs, err := msgpack.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		var a, b Record
		if err := decode(mine, &a); err != nil {
			t.Fatalf("record %d: decode: %v", i, err)
		}
		if err := msgpack.Unmarshal(theirs, &b); err != nil {
			t.Fatal(err)
		}
		// NaN != NaN: compare its bits.
		if math.Float64bits(a.Time) != math.Float64bits(b.Time) {
			t.Fatalf("record %d: time %v, want %v", i, a.Time, b.Time)
		}
		a.Time, b.Time = 0, 0
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("record %d: decodes to\n%+v\nwant\n%+v", i, a, b)
		}
		if len(mine) > len(theirs) {
			t.Fatalf("record %d: %d bytes, msgpack.Marshal makes %d", i, len(mine), len(theirs))
		}
	}
}

func TestFastJSONFields(t *testing.T) {
	v := crdt.Version{Time: 1}
	for _, raw := range []string{`"ch"`, `""`, `"a\"b"`, `"é"`, `"\u00e9"`, "\"\x01\"", `"\xff"`, ` "x"`, `"x" `, `5`, `null`, `"`, `x"`,
		`0`, `-0`, `1.5`, `-1.5e10`, `1E+2`, `1e-400`, `1e400`, `01`, `1.`, `.5`, `+1`, `-`, `1e`, `0x10`, `Infinity`, `NaN`, `1_0`, ` 1`, `1 `, `true`} {
		d := crdt.Doc{Fields: map[string]crdt.Field{"f": {V: v, Val: []byte(raw)}}}
		if got, want := stringField(d, "f"), model.StringField(d, "f"); got != want {
			t.Errorf("stringField(%q) = %q, want %q", raw, got, want)
		}
		gf, gok := numberField(d, "f")
		wf, wok := model.NumberField(d, "f")
		if gok != wok || math.Float64bits(gf) != math.Float64bits(wf) {
			t.Errorf("numberField(%q) = %v %v, want %v %v", raw, gf, gok, wf, wok)
		}
	}
	for _, dur := range []string{"", "null", "12.5", `"x"`} {
		d := crdt.Doc{Fields: map[string]crdt.Field{"time": {V: v, Val: []byte("3")}}}
		if dur != "" {
			d.Fields["duration"] = crdt.Field{V: v, Val: []byte(dur)}
		}
		got, f := eventTimesOf(d), model.EventFactsOf(d)
		if got != (eventTimes{time: f.Time, duration: f.Duration, period: f.Period, running: f.Running}) {
			t.Errorf("eventTimesOf(duration %q) = %+v, want %+v", dur, got, f)
		}
	}
}

// dump returns every key and value of the store (but the epoch).
func dump(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := string(it.Item().Key())
			if k == keyEpoch {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var e FeedEntry
			if strings.Contains(k, "/f/") && parseFeedValue(v, &e) == nil && e.Raw != nil {
				// A record's maps are encoded in any order: compare it
				// decoded (fmt prints maps sorted).
				var r Record
				if err := decodeRecord(e.Raw, &r); err != nil {
					return err
				}
				out[k] = fmt.Sprintf("%s %s %+v", e.Kind, e.ID, r)
				continue
			}
			out[k] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestItemCacheWithinRequest: the reads a request caches (Item, then PutItem
// of the same item, repeatedly, across moves, running periods and deletes)
// leave exactly the state the same steps leave one request at a time, and a
// corrupt record written in the request is still reported.
func TestItemCacheWithinRequest(t *testing.T) {
	v := 0
	doc := func(ch string, extra ...string) crdt.Doc {
		v++
		ver := crdt.Version{Time: int64(v), Node: "t"}
		d := crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": {V: ver, Val: model.JSONString(ch)},
			"time":      {V: ver, Val: model.JSONNumber(float64(v))},
		}}
		for i := 0; i+1 < len(extra); i += 2 {
			d.Fields[extra[i]] = crdt.Field{V: ver, Val: []byte(extra[i+1])}
		}
		return d
	}
	// Each step is its own request in the reference run, so nothing is
	// cached across steps there.
	var steps []func(tx *Tx) error
	item := func(id string) {
		steps = append(steps, func(tx *Tx) error { _, _, err := tx.Item(model.KindEvent, id); return err })
	}
	put := func(id string, d crdt.Doc) {
		steps = append(steps, func(tx *Tx) error { _, err := tx.PutItem(model.KindEvent, id, d); return err })
	}
	for i, d := range []crdt.Doc{doc("a"), doc("a", "duration", "null"), doc("b", "duration", "5"), doc("a"), doc("c"), doc("a"),
		{Deleted: crdt.Version{Time: 99, Node: "t"}}} {
		for _, id := range []string{"x", "y"} {
			item(id)
			put(id, d)
			if i%2 == 0 {
				put(id, d) // right after its own write
			}
			if i%3 == 1 {
				// The record changes under the cache (as compaction does).
				item(id)
				steps = append(steps, func(tx *Tx) error {
					r, ok, err := tx.Item(model.KindEvent, id)
					if err != nil || !ok {
						return fmt.Errorf("%s: %v %v", id, ok, err)
					}
					r.Seq += 1000
					r.Channel = "q"
					r.Running = !r.Running
					tx.PutRaw(keyItem("u", model.KindEvent, id), encode(r))
					return nil
				})
				put(id, d)
			}
		}
	}
	open := func() *Store {
		s, err := Open(Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	one, many := open(), open()
	err := one.Update(context.Background(), "u", func(tx *Tx) error {
		for _, st := range steps {
			if err := st(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if err := many.Update(context.Background(), "u", st); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := dump(t, one), dump(t, many); !reflect.DeepEqual(a, b) {
		t.Fatalf("one request left\n%q\nstep by step\n%q", a, b)
	}

	err = one.Update(context.Background(), "u", func(tx *Tx) error {
		if _, ok, err := tx.Item(model.KindEvent, "z"); ok || err != nil {
			return fmt.Errorf("z: %v %v", ok, err)
		}
		tx.PutRaw(keyItem("u", model.KindEvent, "z"), nil)
		_, err := tx.PutItem(model.KindEvent, "z", doc("a"))
		return err
	})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("PutItem over an empty record written in the request: %v, want ErrCorrupt", err)
	}
}

// TestPipelinedReadsSeeEarlierWrites: group commits are pipelined (the next
// runs while the previous one syncs); every request must still see all
// writes acknowledged or committed before it, by point reads and by scans.
// Concurrent read-modify-write of one counter loses no increment, and each
// request's scan counts exactly the keys written before it.
func TestPipelinedReadsSeeEarlierWrites(t *testing.T) {
	// Small group commits, so that requests often run while one is in flight.
	s, err := Open(Options{Dir: t.TempDir(), SyncWrites: true, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, each = 16, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				err := s.Update(context.Background(), "u", func(tx *Tx) error {
					raw, _, err := tx.GetRaw("u/u/counter")
					if err != nil {
						return err
					}
					var n uint64
					if len(raw) == 8 {
						n = beUint(raw)
					}
					seen := uint64(0)
					err = ScanJSON(tx, "u/u/list/", func(string, *int) (bool, error) { seen++; return true, nil })
					if err != nil {
						return err
					}
					if seen != n {
						return fmt.Errorf("counter %d but the scan sees %d keys", n, seen)
					}
					tx.PutRaw("u/u/counter", be64(n+1))
					return tx.PutJSON(fmt.Sprintf("u/u/list/%02d-%03d", w, i), int(n))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	err = s.View("u", func(tx *Tx) error {
		raw, _, err := tx.GetRaw("u/u/counter")
		if err != nil || len(raw) != 8 || beUint(raw) != writers*each {
			return fmt.Errorf("counter %x %v, want %d", raw, err, writers*each)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFailedGroupCommit: when group commits fail, so does the pipelined one
// built on top of a failed one unless it is run again. Whatever was
// acknowledged holds a gap-free run of sequence numbers, with one feed entry
// per item.
func TestFailedGroupCommit(t *testing.T) {
	var n atomic.Int64
	commitFault = func() error {
		if n.Add(1)%3 == 0 {
			return errors.New("injected")
		}
		return nil
	}
	defer func() { commitFault = nil }()
	s, err := Open(Options{Dir: t.TempDir(), SyncWrites: true, MaxBatch: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var (
		mu     sync.Mutex
		acked  = map[uint64]string{}
		failed int
		wg     sync.WaitGroup
	)
	for w := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				id := fmt.Sprintf("w%d-%d", w%4, i%10) // items are rewritten
				var seq uint64
				err := s.Update(context.Background(), "u", func(tx *Tx) error {
					ver := crdt.Version{Time: int64(i + 1), Node: "t"}
					var err error
					seq, err = tx.PutItem(model.KindEvent, id, crdt.Doc{Fields: map[string]crdt.Field{
						"channelId": {V: ver, Val: model.JSONString(fmt.Sprint("c", i%3))},
						"time":      {V: ver, Val: model.JSONNumber(float64(i))},
					}})
					return err
				})
				mu.Lock()
				if err != nil {
					failed++
				} else if prev, dup := acked[seq]; dup {
					t.Errorf("seq %d acknowledged to %s and %s", seq, prev, id)
				} else {
					acked[seq] = id
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d acknowledged, %d failed", len(acked), failed)
	if failed == 0 {
		t.Fatal("no commit failed")
	}
	h, err := s.Head("u")
	if err != nil {
		t.Fatal(err)
	}
	if h != uint64(len(acked)) {
		t.Fatalf("head %d, %d acknowledged", h, len(acked))
	}
	for q := uint64(1); q <= h; q++ {
		if _, ok := acked[q]; !ok {
			t.Fatalf("seq %d was not acknowledged: a gap", q)
		}
	}
	err = s.View("u", func(tx *Tx) error {
		live := map[string]uint64{}
		err := tx.ReadFeed([]string{"c0", "c1", "c2"}, 0, func(e FeedEntry) (bool, error) {
			if !e.Exit {
				if s, dup := live[e.ID]; dup {
					return false, fmt.Errorf("item %s has feed entries at %d and %d", e.ID, s, e.Seq)
				}
				live[e.ID] = e.Seq
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		return tx.Items(model.KindEvent, func(id string, r *Record) (bool, error) {
			if live[id] != r.Seq || acked[r.Seq] != id {
				return false, fmt.Errorf("item %s at seq %d, feed entry at %d, seq acknowledged to %q", id, r.Seq, live[id], acked[r.Seq])
			}
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFeedEntryCarriesTheRecord: a feed entry carries its item's record as
// stored (through moves and deletes); an entry of the older form (a bare
// reference) reads the item instead; a corrupt entry is ErrCorrupt.
func TestFeedEntryCarriesTheRecord(t *testing.T) {
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := crdt.Version{Time: 5, Node: "t"}
	doc := func(ch string) crdt.Doc {
		return crdt.Doc{Fields: map[string]crdt.Field{"channelId": {V: v, Val: []byte(`"` + ch + `"`)}, "time": {V: v, Val: []byte(`3`)}, "type": {V: v, Val: []byte(`"note/txt"`)}}}
	}
	ctx := context.Background()
	for _, d := range []crdt.Doc{doc("a"), doc("b"), {Deleted: crdt.Version{Time: 9, Node: "t"}}} {
		if err := s.Update(ctx, "u", func(tx *Tx) error { _, err := tx.PutItem(model.KindEvent, "x", d); return err }); err != nil {
			t.Fatal(err)
		}
		entries := 0
		err := s.View("u", func(tx *Tx) error {
			return tx.ReadFeed([]string{"a", "b"}, 0, func(e FeedEntry) (bool, error) {
				if e.Exit {
					return true, nil
				}
				entries++
				fr, ok, err := tx.FeedRecord(e)
				r, _, err2 := tx.Item(e.Kind, e.ID)
				if e.Raw == nil || err != nil || err2 != nil || !ok || fr.Seq != r.Seq || fr.Channel != r.Channel || !crdt.Equal(fr.Doc, r.Doc) {
					t.Fatalf("entry %+v carries %+v (%v), the item is %+v", e, fr, err, r)
				}
				doc, info, err := e.ScanDoc("time")
				if err != nil {
					t.Fatal(err)
				}
				d, err := crdt.ReadDoc(mp.NewReader(doc))
				want := crdt.DocInfo{Max: r.Doc.MaxVersion(), Deleted: r.Doc.IsDeleted(), HasField: r.Doc.Has("time")}
				if err != nil || !crdt.Equal(d, r.Doc) || info != want {
					t.Fatalf("ScanDoc: %+v %+v (%v), want the item's document and %+v", d, info, err, want)
				}
				return true, nil
			})
		})
		if err != nil || entries != 1 {
			t.Fatalf("%d live entries, %v", entries, err)
		}
	}

	read := func() (recs []*Record, err error) {
		err = s.View("u", func(tx *Tx) error {
			return tx.ReadFeed([]string{"b"}, 0, func(e FeedEntry) (bool, error) {
				if e.Exit {
					return true, nil
				}
				r, _, err := tx.FeedRecord(e)
				recs = append(recs, r)
				return err == nil, err
			})
		})
		return recs, err
	}
	var seq uint64
	var inline []byte
	s.View("u", func(tx *Tx) error {
		r, _, _ := tx.Item(model.KindEvent, "x")
		seq, inline = r.Seq, encode(r)
		return nil
	})
	// The oldest layout: the record under the item's key, a bare reference
	// in the feed.
	if err := s.Update(ctx, "u", func(tx *Tx) error {
		tx.PutRaw(keyItem("u", model.KindEvent, "x"), inline)
		tx.PutRaw(keyFeed("u", "b", seq), feedRef(model.KindEvent, false, "x"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if recs, err := read(); err != nil || len(recs) != 1 || recs[0].Seq != seq || !recs[0].Doc.IsDeleted() {
		t.Fatalf("bare reference: %+v, %v", recs, err)
	}
	for name, v := range map[string][]byte{
		"short":           {'e', '='},
		"id past the end": {'e', '=', 0x7f, 'x'},
		"varint overflow": append([]byte{'e', '='}, bytes.Repeat([]byte{0xff}, 11)...),
		"no record":       {'e', '=', 1, 'x'},
		"garbage record":  {'e', '=', 1, 'x', 0xc1},
		"unknown form":    {'e', '?', 'x'},
	} {
		if err := s.Update(ctx, "u", func(tx *Tx) error { tx.PutRaw(keyFeed("u", "b", seq), v); return nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := read(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
	}
}

// An item's key holds a reference to the feed entry that carries its record
// (the record is written once); a reference that is malformed, or whose
// entry is gone or holds another record, is ErrCorrupt, never a panic.
func TestItemRefPointsIntoTheFeed(t *testing.T) {
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	v := crdt.Version{Time: 5, Node: "t"}
	d := crdt.Doc{Fields: map[string]crdt.Field{"channelId": {V: v, Val: []byte(`"a"`)}, "time": {V: v, Val: []byte(`3`)}, "duration": {V: v, Val: []byte(`null`)}}}
	var seq uint64
	if err := s.Update(ctx, "u", func(tx *Tx) error { seq, err = tx.PutItem(model.KindEvent, "x", d); return err }); err != nil {
		t.Fatal(err)
	}
	var ref, entry []byte
	s.View("u", func(tx *Tx) error {
		ref, _, _ = tx.get(keyItem("u", model.KindEvent, "x"))
		entry, _, _ = tx.get(keyFeed("u", "a", seq))
		return nil
	})
	m, isRef, err := parseItemRef(ref)
	if !isRef || err != nil || m != (itemMeta{seq: seq, channel: "a", time: 3, running: true}) {
		t.Fatalf("item key holds %q: %+v %v %v", ref, m, isRef, err)
	}
	rec, ok := feedRecordBytes(entry)
	if !ok || bytes.Contains(ref, rec) || len(ref) >= len(rec) {
		t.Fatalf("the record is not in the feed entry only: key %q, entry %q", ref, entry)
	}
	item := func() (*Record, error) {
		var r *Record
		err := s.View("u", func(tx *Tx) error {
			var err error
			r, _, err = tx.Item(model.KindEvent, "x")
			return err
		})
		return r, err
	}
	if r, err := item(); err != nil || r.Seq != seq || r.Channel != "a" || r.Time != 3 || !r.Running || !crdt.Equal(r.Doc, d) {
		t.Fatalf("Item: %+v, %v", r, err)
	}
	put := func(key string, v []byte) {
		t.Helper()
		if err := s.Update(ctx, "u", func(tx *Tx) error {
			if v == nil {
				tx.del(key)
			} else {
				tx.PutRaw(key, v)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	other := itemRef(itemMeta{seq: seq + 7, channel: "a"})
	for name, c := range map[string]struct{ key, entry []byte }{
		"short reference":      {ref[:refHeader-1], entry},
		"unknown flags":        {append([]byte{refMark, 0x80}, ref[2:]...), entry},
		"entry gone":           {ref, nil},
		"entry is a bare ref":  {ref, feedRef(model.KindEvent, false, "x")},
		"entry is an exit":     {ref, feedRef(model.KindEvent, true, "x")},
		"garbage record":       {ref, []byte{'e', '=', 1, 'x', 0xc1}},
		"another seq's record": {other, entry},
	} {
		put(keyItem("u", model.KindEvent, "x"), c.key)
		if bytes.Equal(c.key, other) {
			put(keyFeed("u", "a", seq+7), c.entry)
		} else {
			put(keyFeed("u", "a", seq), c.entry)
		}
		if r, err := item(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %+v, %v, want ErrCorrupt", name, r, err)
		}
		put(keyFeed("u", "a", seq+7), nil)
	}
	// A record stored inline (before records moved into the feed) reads as
	// it did.
	var inline Record
	if err := decodeRecord(rec, &inline); err != nil {
		t.Fatal(err)
	}
	put(keyItem("u", model.KindEvent, "x"), encode(&inline))
	put(keyFeed("u", "a", seq), nil)
	if r, err := item(); err != nil || r.Seq != seq || !crdt.Equal(r.Doc, d) {
		t.Fatalf("inline record: %+v, %v", r, err)
	}
}

// feedValueOf's entry carries the record that feedValue's (the older form)
// carries over encodeRecord (documents are maps, so compared decoded), as
// the feed reader and decodeItem parse them.
func TestFeedValueOfMatchesFeedValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 500 {
		r := randRecord(rng, i%50 == 0)
		id := fmt.Sprintf("id%d", i)
		got, want := feedValueOf(model.KindEvent, id, &r), feedValue(model.KindEvent, id, encodeRecord(&r))
		var eg, ew FeedEntry
		if err := parseFeedValue(got, &eg); err != nil || got[1] != '+' {
			t.Fatalf("record %d: %v, form %c", i, err, got[1])
		}
		if err := parseFeedValue(want, &ew); err != nil || eg.ID != id || eg.Kind != model.KindEvent {
			t.Fatalf("record %d: entry %s/%s (%v)", i, eg.Kind, eg.ID, err)
		}
		rec, ok := feedRecordBytes(got)
		var dg, dw Record
		if !ok || !bytes.Equal(rec, eg.Raw) || decodeRecord(rec, &dg) != nil || decodeRecord(ew.Raw, &dw) != nil {
			t.Fatalf("record %d: feedRecordBytes %v", i, ok)
		}
		// NaN != NaN: compare the time's bits.
		if math.Float64bits(dg.Time) != math.Float64bits(dw.Time) || dg.Running != dw.Running || dg.Seq != dw.Seq || dg.Channel != dw.Channel || !crdt.Equal(dg.Doc, dw.Doc) {
			t.Fatalf("record %d: feedValueOf carries %+v, want %+v", i, dg, dw)
		}
	}
}

// An entry of the "<k>+" form tells, from its header, what ScanDoc would
// learn by scanning its document; entries of the older form are scanned.
func TestFeedEntrySummary(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for i := range 400 {
		r := randRecord(rng, i%40 == 0)
		switch i % 4 {
		case 1:
			r.Doc.Deleted = crdt.Version{Time: 9, Node: "t"}
		case 2:
			r.Doc.Fields = map[string]crdt.Field{model.FieldCreated: {V: crdt.Version{Time: 1, Node: "t"}, Val: []byte("12.5")}}
		case 3:
			// Empty, not nil: stored as no value.
			r.Doc.Fields = map[string]crdt.Field{model.FieldCreated: {V: crdt.Version{Time: 1, Node: "t"}, Val: []byte{}}}
		}
		for _, v := range [][]byte{feedValueOf(model.KindEvent, "x", &r), feedValue(model.KindEvent, "x", encodeRecord(&r))} {
			var e FeedEntry
			if err := parseFeedValue(v, &e); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
			doc, deleted, created, err := e.Summary()
			scanned, info, err2 := e.ScanDoc(model.FieldCreated)
			if err != nil || err2 != nil || !bytes.Equal(doc, scanned) || deleted != info.Deleted || created != info.HasField {
				t.Fatalf("record %d (%c form): Summary %v %v (%v), ScanDoc %+v (%v), same doc %v", i, v[1], deleted, created, err, info, err2, bytes.Equal(doc, scanned))
			}
			if deleted != r.Doc.IsDeleted() || created != (len(r.Doc.Fields[model.FieldCreated].Val) > 0) {
				t.Fatalf("record %d: Summary %v %v, the record's document %v %v", i, deleted, created, r.Doc.IsDeleted(), r.Doc.Has(model.FieldCreated))
			}
		}
	}
	good := feedValueOf(model.KindEvent, "x", &Record{Doc: crdt.Doc{Deleted: crdt.Version{Time: 1, Node: "t"}}, Seq: 3})
	// good: 'e' '+' flags 1 'x' start length record
	for name, v := range map[string][]byte{
		"unknown flag":         append([]byte{'e', '+', 0x80}, good[3:]...),
		"no id":                append([]byte{'e', '+', 1, 0}, good[5:]...),
		"doc past the end":     append(append([]byte{}, good[:5]...), append([]byte{0x7f, 2}, good[7:]...)...),
		"doc longer than rest": append(append([]byte{}, good[:5]...), append([]byte{3, 0x7f}, good[7:]...)...),
		"empty doc":            append(append([]byte{}, good[:5]...), append([]byte{3, 0}, good[7:]...)...),
		"truncated header":     good[:6],
	} {
		var e FeedEntry
		if err := parseFeedValue(v, &e); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
		if _, ok := feedRecordBytes(v); ok {
			t.Errorf("%s: feedRecordBytes found a record", name)
		}
	}
	var e FeedEntry
	if err := parseFeedValue(good, &e); err != nil || e.ID != "x" || !e.summary || e.docStart != 3 {
		t.Fatalf("good entry: %+v, %v", e, err)
	}
}

// An event at time -0 is indexed as at +0, the time its record keeps, so a
// later write moves its index entry instead of leaving one behind.
func TestNegativeZeroTimeIndexedOnce(t *testing.T) {
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v := crdt.Version{Time: 5, Node: "t"}
	doc := func(tm string) crdt.Doc {
		return crdt.Doc{Fields: map[string]crdt.Field{"channelId": {V: v, Val: []byte(`"a"`)}, "time": {V: v, Val: []byte(tm)}}}
	}
	ctx := context.Background()
	if err := s.Update(ctx, "u", func(tx *Tx) error { _, err := tx.PutItem(model.KindEvent, "x", doc("-0")); return err }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "u", func(tx *Tx) error {
		if _, _, err := tx.Item(model.KindEvent, "x"); err != nil { // as ApplyChange does
			return err
		}
		_, err := tx.PutItem(model.KindEvent, "x", doc("5"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var times []float64
	s.View("u", func(tx *Tx) error {
		return tx.EventsByTime("a", -100, 100, true, func(id string, r *Record) (bool, error) {
			times = append(times, r.Time)
			return true, nil
		})
	})
	if len(times) != 1 || times[0] != 5 {
		t.Fatalf("EventsByTime found the event at %v, want once at 5", times)
	}
}

// feedValue builds a feed entry of the older form, which stores before
// the "<k>+" header wrote and this code still reads:
// "<k>=" + uvarint(len(id)) + id + record.
func feedValue(kind model.Kind, id string, rec []byte) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(id)+len(rec))
	b = append(b, kindByte(kind)[0], '=')
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(append(b, id...), rec...)
}
