package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/internal/mp"
	"github.com/pryvsync/pryvsync/model"
)

// Record is an item as stored: its state, the seq of its feed entry and the
// channel whose feed holds it.
type Record struct {
	Doc     crdt.Doc `msgpack:"d"`
	Seq     uint64   `msgpack:"s"`
	Channel string   `msgpack:"c"`
	Time    float64  `msgpack:"t,omitempty"` // events: the indexed time
	Running bool     `msgpack:"r,omitempty"` // events: indexed as running
}

// Item loads an item's record; ok is false when the id was never used.
func (t *Tx) Item(kind model.Kind, id string) (*Record, bool, error) {
	key := keyItem(t.user, kind, id)
	raw, ok, snap, err := t.itemRaw(key)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		if snap && !t.readOnly {
			t.remember(key, metaEntry{snap: true}) // absent: PutItem need not look again
		}
		return nil, false, nil
	}
	var r Record
	if err := t.decodeItem(raw, &r); err != nil {
		return nil, false, fmt.Errorf("item %s/%s: %w", kind, id, err)
	}
	if !t.readOnly {
		t.remember(key, metaEntry{raw: raw, m: metaOf(&r), snap: snap})
	}
	return &r, true, nil
}

// Items calls fn for every item of kind (tombstoned ones included), in id
// order.
func (t *Tx) Items(kind model.Kind, fn func(id string, r *Record) (bool, error)) error {
	prefix := keyItemPrefix(t.user, kind)
	return t.scan(prefix, false, func(k string, raw []byte) (bool, error) {
		var r Record
		if err := t.decodeItem(raw, &r); err != nil {
			return false, fmt.Errorf("item %s: %w", k, err)
		}
		return fn(k[len(prefix):], &r)
	})
}

// itemMeta is what PutItem needs of an item's previous record.
type itemMeta struct {
	seq     uint64
	channel string
	time    float64
	running bool
	deleted bool
}

func metaOf(r *Record) itemMeta {
	return itemMeta{seq: r.Seq, channel: r.Channel, time: r.Time, running: r.Running, deleted: r.Doc.IsDeleted()}
}

// metaEntry caches, within a write request, the meta of a record the
// request decoded (Item) or wrote (PutItem), so that PutItem after Item does
// not read and decode the same record again. An entry read from the snapshot
// (snap) stands for the snapshot's value, which does not change during a
// request (raw nil: no record); any other entry is used only for the very
// bytes it came from. So entries never go stale.
type metaEntry struct {
	raw  []byte
	m    itemMeta
	snap bool
}

func (t *Tx) remember(key string, e metaEntry) {
	if t.meta == nil {
		t.meta = map[string]metaEntry{}
	}
	t.meta[key] = e
}

// itemRaw reads an item record's bytes: from the write sets, else from what
// the request remembers of the snapshot, else from the snapshot (snap true).
func (t *Tx) itemRaw(key string) (raw []byte, ok, snap bool, err error) {
	if v, found := t.layered(key); found {
		return v, v != nil, false, nil
	}
	if e, hit := t.meta[key]; hit && e.snap {
		return e.raw, e.raw != nil, true, nil
	}
	if t.c != nil {
		if f := t.c.itemFilter(t.user); f != nil && !f.mayHave(key) {
			return nil, false, true, nil // never written (idfilter.go)
		}
	}
	raw, ok, err = t.snapGet(key)
	return raw, ok, true, err
}

// oldMeta loads the meta of the item's current record (ok false when the id
// was never used), decoding it only when the request has not seen these
// bytes.
func (t *Tx) oldMeta(kind model.Kind, id, key string) (itemMeta, bool, error) {
	raw, ok, _, err := t.itemRaw(key)
	if err != nil || !ok {
		return itemMeta{}, false, err
	}
	if e, hit := t.meta[key]; hit && e.raw != nil && bytes.Equal(e.raw, raw) {
		return e.m, true, nil
	}
	if m, isRef, err := parseItemRef(raw); isRef {
		if err != nil {
			return itemMeta{}, false, fmt.Errorf("item %s/%s: %w", kind, id, err)
		}
		return m, true, nil
	}
	var r Record
	if err := decode(raw, &r); err != nil {
		return itemMeta{}, false, fmt.Errorf("item %s/%s: %w", kind, id, err)
	}
	return metaOf(&r), true, nil
}

func itemChannel(kind model.Kind, id string, d crdt.Doc, old itemMeta, had bool) string {
	if kind == model.KindChannel {
		return id
	}
	if c := stringField(d, "channelId"); c != "" {
		return c
	}
	if had {
		return old.channel
	}
	return ""
}

// PutItem stores the item's new state and moves its feed entry to a new
// sequence number: the old entry is deleted, an exit marker is left in the
// old channel's feed when the channel changed, and the event time index is
// kept in step. It returns the new sequence number.
func (t *Tx) PutItem(kind model.Kind, id string, d crdt.Doc) (uint64, error) {
	touch, touchFolder := t.touch, t.touchFolder
	t.touch, t.touchFolder = nil, nil
	notify := func(channel string) {
		switch {
		case kind == model.KindEvent && touch != nil:
			t.notifyExact(kind, channel, touch, nil, false)
		case kind == model.KindFolder && touchFolder != nil:
			t.notifyExact(kind, channel, nil, touchFolder, d.IsDeleted())
		default:
			t.Notify(kind, channel)
		}
	}
	ikey := keyItem(t.user, kind, id)
	old, had, err := t.oldMeta(kind, id, ikey)
	if err != nil {
		return 0, err
	}
	seq, err := t.nextSeq()
	if err != nil {
		return 0, err
	}
	ch := itemChannel(kind, id, d, old, had)
	if had {
		t.del(keyFeed(t.user, old.channel, old.seq))
		if old.channel != ch && old.channel != "" {
			xk := keyExit(t.user, old.channel, kind, id)
			if prev, ok, err := t.get(xk); err != nil {
				return 0, err
			} else if ok && len(prev) == 8 {
				t.del(keyFeed(t.user, old.channel, beUint(prev)))
			}
			t.set(keyFeed(t.user, old.channel, seq), feedRef(kind, true, id))
			t.set(xk, be64(seq))
			notify(old.channel)
		}
		// Coming back to a channel it once left: its exit marker there is
		// moot. An item has an exit marker only in channels it left and
		// is not in, so only a move can find one (a new id has none).
		if old.channel != ch {
			xk := keyExit(t.user, ch, kind, id)
			if prev, ok, err := t.get(xk); err != nil {
				return 0, err
			} else if ok && len(prev) == 8 {
				t.del(keyFeed(t.user, ch, beUint(prev)))
				t.del(xk)
			}
		}
	}
	rec := Record{Doc: d, Seq: seq, Channel: ch}
	if kind == model.KindEvent {
		if had && !old.deleted {
			t.del(keyTime(t.user, old.channel, old.time, id))
			if old.running {
				t.del(keyRunning(t.user, old.channel, id))
			}
		}
		if !d.IsDeleted() {
			f := eventTimesOf(d)
			rec.Time, rec.Running = f.time, f.running
			t.set(keyTime(t.user, ch, f.time, id), nil)
			if f.running {
				t.set(keyRunning(t.user, ch, id), nil)
			}
			if f.period && !f.running {
				if err := t.raiseMaxSpan(ch, f.duration); err != nil {
					return 0, err
				}
			}
		}
	}
	// The record goes into the feed entry only; the item's key points there.
	m := metaOf(&rec)
	ref := itemRef(m)
	t.set(ikey, ref)
	t.set(keyFeed(t.user, ch, seq), feedValueOf(kind, id, &rec))
	if t.meta != nil {
		t.meta[ikey] = metaEntry{raw: ref, m: m}
	}
	notify(ch)
	if kind == model.KindChannel {
		t.Notify(kind, "")
	}
	return seq, nil
}

// feedRef is a feed entry's value: "<k>:<id>", or "<k>!<id>" for an exit.
func feedRef(kind model.Kind, exit bool, id string) []byte {
	b := make([]byte, 2+len(id))
	b[0] = kindByte(kind)[0]
	b[1] = ':'
	if exit {
		b[1] = '!'
	}
	copy(b[2:], id)
	return b
}

// An item's key holds either its record inline (msgpack, as compaction
// leaves a tombstone and as PutItem wrote before records moved into the
// feed) or an itemRef: refMark, a flags byte, the seq of the feed entry that
// carries the record, the indexed time (float64 bits) and the channel whose
// feed holds the entry. refMark (0xc1) is the one byte msgpack never uses,
// so no inline record starts with it. The ref carries the record's itemMeta,
// so a write to an existing item reads no record to update its indexes.
const (
	refMark    = 0xc1
	refRunning = 1 << 0
	refDeleted = 1 << 1
	refHeader  = 2 + 8 + 8
)

func itemRef(m itemMeta) []byte {
	var flags byte
	if m.running {
		flags |= refRunning
	}
	if m.deleted {
		flags |= refDeleted
	}
	b := make([]byte, 0, refHeader+len(m.channel))
	b = append(b, refMark, flags)
	b = binary.BigEndian.AppendUint64(b, m.seq)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(m.time))
	return append(b, m.channel...)
}

// parseItemRef reads an itemRef; isRef is false for an inline record.
func parseItemRef(v []byte) (m itemMeta, isRef bool, err error) {
	if len(v) == 0 || v[0] != refMark {
		return m, false, nil
	}
	if len(v) < refHeader || v[1]&^(refRunning|refDeleted) != 0 {
		return m, true, fmt.Errorf("%w: malformed item reference", ErrCorrupt)
	}
	m.running = v[1]&refRunning != 0
	m.deleted = v[1]&refDeleted != 0
	m.seq = binary.BigEndian.Uint64(v[2:])
	m.time = math.Float64frombits(binary.BigEndian.Uint64(v[10:]))
	m.channel = string(v[refHeader:])
	return m, true, nil
}

// decodeItem decodes an item key's value into r: the inline record, or the
// record carried by the feed entry an itemRef points to.
func (t *Tx) decodeItem(raw []byte, r *Record) error {
	m, isRef, err := parseItemRef(raw)
	if !isRef {
		return decode(raw, r)
	}
	if err != nil {
		return err
	}
	v, ok, err := t.get(keyFeed(t.user, m.channel, m.seq))
	if err != nil {
		return err
	}
	rec, good := feedRecordBytes(v)
	if !ok || !good {
		return fmt.Errorf("%w: no record in feed entry %s/%d", ErrCorrupt, m.channel, m.seq)
	}
	if err := decodeRecord(rec, r); err != nil {
		return err
	}
	if r.Seq != m.seq || r.Channel != m.channel {
		return fmt.Errorf("%w: feed entry %s/%d holds the record of seq %d", ErrCorrupt, m.channel, m.seq, r.Seq)
	}
	return nil
}

func beUint(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

func keyRunning(user, channel, id string) string { return "u/" + user + "/run/" + channel + "/" + id }
func keyMaxSpan(user, channel string) string     { return keyUser(user) + "ms/" + channel }

func (t *Tx) maxSpan(channel string) (float64, error) {
	raw, ok, err := t.get(keyMaxSpan(t.user, channel))
	if err != nil || !ok || len(raw) != 8 {
		return 0, err
	}
	return math.Float64frombits(beUint(raw)), nil
}

func (t *Tx) raiseMaxSpan(channel string, d float64) error {
	cur, err := t.maxSpan(channel)
	if err != nil {
		return err
	}
	if d > cur {
		t.set(keyMaxSpan(t.user, channel), be64(math.Float64bits(d)))
	}
	return nil
}

// EventsByTime calls fn for every live (not hard-deleted) event of channel
// whose span meets [from, to], ordered by time (newest first unless asc),
// ties by id. It streams: memory does not grow with the number of events
// (except for running periods, which are few).
func (t *Tx) EventsByTime(channel string, from, to float64, asc bool, fn func(id string, r *Record) (bool, error)) error {
	span, err := t.maxSpan(channel)
	if err != nil {
		return err
	}
	// Running periods that started before the scan's lower bound.
	low := from - span
	type hit struct {
		time float64
		id   string
	}
	var running []hit
	err = t.scan(keyUser(t.user)+"run/"+channel+"/", true, func(k string, _ []byte) (bool, error) {
		id := k[strings.LastIndexByte(k, '/')+1:]
		r, ok, err := t.Item(model.KindEvent, id)
		if err != nil || !ok {
			return err == nil, err
		}
		if r.Time < low && r.Time <= to {
			running = append(running, hit{r.Time, id})
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	sort.Slice(running, func(i, j int) bool {
		if running[i].time != running[j].time {
			return (running[i].time < running[j].time) == asc
		}
		return (running[i].id < running[j].id) == asc
	})
	emit := func(id string) (bool, error) {
		r, ok, err := t.Item(model.KindEvent, id)
		if err != nil || !ok || r.Doc.IsDeleted() {
			return err == nil, err
		}
		if !model.EventFactsOf(r.Doc).Meets(from, to) {
			return true, nil
		}
		return fn(id, r)
	}
	prefix := keyTimePrefix(t.user, channel)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false
	opts.Reverse = !asc
	if t.readOnly {
		// Stream straight from the snapshot.
		it := t.txn.NewIterator(opts)
		defer it.Close()
		if asc {
			it.Seek([]byte(prefix + timeKey(math.Max(low, math.Inf(-1)))))
		} else {
			it.Seek([]byte(prefix + timeKey(to) + "/\xff"))
		}
		ri := 0
		for ; it.Valid(); it.Next() {
			k := it.Item().Key()
			tm := timeFromKey(k[len(prefix) : len(prefix)+8])
			if (asc && tm > to) || (!asc && tm < low) {
				break
			}
			for ri < len(running) && ((asc && running[ri].time <= tm) || (!asc && running[ri].time >= tm)) {
				if more, err := emit(running[ri].id); err != nil || !more {
					return err
				}
				ri++
			}
			if more, err := emit(string(k[len(prefix)+9:])); err != nil || !more {
				return err
			}
		}
		for ; ri < len(running); ri++ {
			if more, err := emit(running[ri].id); err != nil || !more {
				return err
			}
		}
		return nil
	}
	// Inside a write request: merge with the overlay (small channels only
	// reach here: period checks).
	var ids []hit
	err = t.scan(prefix, true, func(k string, _ []byte) (bool, error) {
		tm := timeFromKey([]byte(k[len(prefix) : len(prefix)+8]))
		if tm >= low && tm <= to {
			ids = append(ids, hit{tm, k[len(prefix)+9:]})
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	ids = append(ids, running...)
	sort.Slice(ids, func(i, j int) bool {
		if ids[i].time != ids[j].time {
			return (ids[i].time < ids[j].time) == asc
		}
		return (ids[i].id < ids[j].id) == asc
	})
	for _, h := range ids {
		if more, err := emit(h.id); err != nil || !more {
			return err
		}
	}
	return nil
}

// Records are encoded by hand: the same msgpack map msgpack.Marshal makes
// of a Record (keys from the field tags, the same omitempty rules, so
// msgpack.Unmarshal reads it back unchanged), with compact integers, in one
// allocation and without reflection.

// encodeBuf holds scratch buffers: a record is encoded into one, then
// copied out at its exact size.
var encodeBuf = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Feed entry flags of the "<k>+" form: what a reader that sends the
// document as it is stored needs to know of it (crdt.ScanDoc's DocInfo).
const (
	feedDeleted    = 1 << 0 // Doc.IsDeleted
	feedHasCreated = 1 << 1 // Doc.Has(model.FieldCreated)
)

// feedValueOf is the feed entry PutItem writes: "<k>+" + flags +
// uvarint(len(id)) + id + uvarint(doc offset) + uvarint(doc length) +
// record, where the document's bytes within the record are given so that a
// reader can send them without scanning them. It carries the same record
// as an entry of the older "<k>=" form (feedValue in the tests).
func feedValueOf(kind model.Kind, id string, r *Record) []byte {
	bp := encodeBuf.Get().(*[]byte)
	rec, docStart, docEnd := appendRecordDoc((*bp)[:0], r)
	var flags byte
	if r.Doc.IsDeleted() {
		flags |= feedDeleted
	}
	// As ScanDoc would find it in the stored bytes: AppendDoc leaves out
	// an empty value, so an empty created field is none.
	if len(r.Doc.Fields[model.FieldCreated].Val) > 0 {
		flags |= feedHasCreated
	}
	out := make([]byte, 0, 3+3*binary.MaxVarintLen32+len(id)+len(rec))
	out = append(out, kindByte(kind)[0], '+', flags)
	out = binary.AppendUvarint(out, uint64(len(id)))
	out = append(out, id...)
	out = binary.AppendUvarint(out, uint64(docStart))
	out = binary.AppendUvarint(out, uint64(docEnd-docStart))
	out = append(out, rec...)
	if cap(rec) <= 1<<16 {
		*bp = rec
		encodeBuf.Put(bp)
	}
	return out
}

func encodeRecord(r *Record) []byte {
	bp := encodeBuf.Get().(*[]byte)
	b := appendRecord((*bp)[:0], r)
	out := make([]byte, len(b))
	copy(out, b)
	if cap(b) <= 1<<16 {
		*bp = b
		encodeBuf.Put(bp)
	}
	return out
}

func appendRecord(b []byte, r *Record) []byte {
	b, _, _ = appendRecordDoc(b, r)
	return b
}

// appendRecordDoc appends r's encoding to b and returns where, in what it
// appended, the document's encoding starts and ends.
func appendRecordDoc(b []byte, r *Record) (_ []byte, docStart, docEnd int) {
	base := len(b)
	n := 3
	if r.Time != 0 {
		n++
	}
	if r.Running {
		n++
	}
	b = append(b, 0x80|byte(n))
	b = append(b, 0xa1, 'd')
	docStart = len(b) - base
	b = crdt.AppendDoc(b, &r.Doc)
	docEnd = len(b) - base
	b = append(b, 0xa1, 's')
	b = mp.AppendUint(b, r.Seq)
	b = append(b, 0xa1, 'c')
	b = mp.AppendStr(b, r.Channel)
	if r.Time != 0 {
		b = append(b, 0xa1, 't')
		b = mp.AppendFloat64(b, r.Time)
	}
	if r.Running {
		b = append(b, 0xa1, 'r', 0xc3)
	}
	return b, docStart, docEnd
}

// decodeRecord reads a record by hand. It accepts whatever msgpack.Marshal
// makes of a Record (any key order, any integer width, unknown keys), and
// reports anything else as ErrCorrupt. Field values alias raw.
func decodeRecord(raw []byte, rec *Record) error {
	r := mp.NewReader(raw)
	*rec = Record{}
	err := r.Map(func(k []byte) (err error) {
		switch string(k) {
		case "d":
			rec.Doc, err = crdt.ReadDoc(r)
		case "s":
			rec.Seq, err = r.Uint()
		case "c":
			rec.Channel, err = r.Name()
		case "t":
			rec.Time, err = r.Float()
		case "r":
			rec.Running, err = r.Bool()
		default:
			err = r.Skip()
		}
		return err
	})
	if err == nil && r.Len() != 0 {
		err = fmt.Errorf("%d bytes after the record", r.Len())
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return nil
}

// eventTimes are the facts of an event that its indexes need; eventTimesOf
// computes them as model.EventFactsOf does, without its other work.
type eventTimes struct {
	time     float64
	duration float64
	period   bool
	running  bool
}

func eventTimesOf(d crdt.Doc) eventTimes {
	var e eventTimes
	e.time, _ = numberField(d, "time")
	if e.time == 0 {
		// -0 as +0: the record keeps no zero time (appendRecord), so its
		// index key must be +0's, or a later write could not find it.
		e.time = 0
	}
	if raw := d.Get("duration"); raw != nil {
		e.period = true
		if string(raw) == "null" {
			e.running = true
		} else {
			e.duration, _ = numberField(d, "duration")
		}
	}
	return e
}

// stringField is model.StringField with a fast path for plain ASCII strings.
func stringField(d crdt.Doc, name string) string {
	raw := d.Get(name)
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		plain := true
		for _, c := range raw[1 : n-1] {
			if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			return string(raw[1 : n-1])
		}
	}
	return model.StringField(d, name)
}

// numberField is model.NumberField with a fast path for a bare JSON number
// (json.Unmarshal parses one with strconv.ParseFloat too).
func numberField(d crdt.Doc, name string) (float64, bool) {
	raw := d.Get(name)
	if isJSONNumber(raw) {
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return 0, false
		}
		return f, true
	}
	return model.NumberField(d, name)
}

// isJSONNumber reports whether b is exactly one JSON number, no spaces.
func isJSONNumber(b []byte) bool {
	i, n := 0, len(b)
	if i < n && b[i] == '-' {
		i++
	}
	switch {
	case i < n && b[i] == '0':
		i++
	case i < n && b[i] >= '1' && b[i] <= '9':
		for i < n && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < n && b[i] == '.' {
		i++
		if i >= n || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < n && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < n && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < n && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= n || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < n && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == n
}
