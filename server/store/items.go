package store

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"

	"github.com/pryvsync/pryvsync/crdt"
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
	raw, ok, err := t.get(keyItem(t.user, kind, id))
	if err != nil || !ok {
		return nil, false, err
	}
	var r Record
	if err := decode(raw, &r); err != nil {
		return nil, false, fmt.Errorf("item %s/%s: %w", kind, id, err)
	}
	return &r, true, nil
}

// Items calls fn for every item of kind (tombstoned ones included), in id
// order.
func (t *Tx) Items(kind model.Kind, fn func(id string, r *Record) (bool, error)) error {
	prefix := keyItemPrefix(t.user, kind)
	return t.scan(prefix, false, func(k string, raw []byte) (bool, error) {
		var r Record
		if err := decode(raw, &r); err != nil {
			return false, fmt.Errorf("item %s: %w", k, err)
		}
		return fn(k[len(prefix):], &r)
	})
}

func itemChannel(kind model.Kind, id string, d crdt.Doc, old *Record) string {
	if kind == model.KindChannel {
		return id
	}
	if c := model.StringField(d, "channelId"); c != "" {
		return c
	}
	if old != nil {
		return old.Channel
	}
	return ""
}

// PutItem stores the item's new state and moves its feed entry to a new
// sequence number: the old entry is deleted, an exit marker is left in the
// old channel's feed when the channel changed, and the event time index is
// kept in step. It returns the new sequence number.
func (t *Tx) PutItem(kind model.Kind, id string, d crdt.Doc) (uint64, error) {
	old, had, err := t.Item(kind, id)
	if err != nil {
		return 0, err
	}
	seq, err := t.nextSeq()
	if err != nil {
		return 0, err
	}
	ch := itemChannel(kind, id, d, old)
	ref := kindByte(kind) + ":" + id
	if had {
		t.del(keyFeed(t.user, old.Channel, old.Seq))
		if old.Channel != ch && old.Channel != "" {
			xk := keyExit(t.user, old.Channel, kind, id)
			if prev, ok, err := t.get(xk); err != nil {
				return 0, err
			} else if ok && len(prev) == 8 {
				t.del(keyFeed(t.user, old.Channel, beUint(prev)))
			}
			t.set(keyFeed(t.user, old.Channel, seq), []byte(kindByte(kind)+"!"+id))
			t.set(xk, be64(seq))
			t.Notify(kind, old.Channel)
		}
	}
	// Coming back to a channel it once left: its exit marker there is moot.
	xk := keyExit(t.user, ch, kind, id)
	if prev, ok, err := t.get(xk); err != nil {
		return 0, err
	} else if ok && len(prev) == 8 {
		t.del(keyFeed(t.user, ch, beUint(prev)))
		t.del(xk)
	}
	t.set(keyFeed(t.user, ch, seq), []byte(ref))
	rec := Record{Doc: d, Seq: seq, Channel: ch}
	if kind == model.KindEvent {
		if had && !old.Doc.IsDeleted() {
			t.del(keyTime(t.user, old.Channel, old.Time, id))
			if old.Running {
				t.del(keyRunning(t.user, old.Channel, id))
			}
		}
		if !d.IsDeleted() {
			f := model.EventFactsOf(d)
			rec.Time, rec.Running = f.Time, f.Running
			t.set(keyTime(t.user, ch, f.Time, id), nil)
			if f.Running {
				t.set(keyRunning(t.user, ch, id), nil)
			}
			if f.Period && !f.Running {
				if err := t.raiseMaxSpan(ch, f.Duration); err != nil {
					return 0, err
				}
			}
		}
	}
	t.set(keyItem(t.user, kind, id), encode(&rec))
	t.Notify(kind, ch)
	if kind == model.KindChannel {
		t.Notify(kind, "")
	}
	return seq, nil
}

func beUint(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

func keyRunning(user, channel, id string) string { return keyUser(user) + "run/" + channel + "/" + id }
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
