package store

import (
	"hash/maphash"
	"math/bits"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Most item writes create an item, and a create must first learn that its
// id is unused: a Badger read that misses in every memtable and table (about
// 3 µs in W6's profiles, a tenth of a change's cost). The committer keeps,
// per user, a Bloom filter of the item keys Badger holds, so that such a
// read is skipped when the filter says the key was never written.
//
// The filter must never miss a key Badger holds. It is built from a scan of
// the user's item keys in the snapshot under the flight, plus the item keys
// of the group commit in flight (handed to Badger, not in that snapshot)
// and of the open one; from then on,
// every group commit adds its item keys when it is handed to Badger. Only
// the committer goroutine touches the filters, and in single-node mode every
// write reaches Badger through it (Open's epoch and Restore's load write no
// item key of a store whose committer has filters). Item keys are never
// deleted, so a filter never needs to forget. A group commit that fails
// leaves its keys in the filter: a false positive, which costs only the read.
//
// In cluster mode other nodes' writes reach Badger from the log, so there
// are no filters (itemFilter returns nil).

// Filter sizing: a layer for n keys has filterBitsPerKey·n bits or up to
// twice that (a power of two) and filterProbes probes per key (false
// positives about 0.2 % when full). A filter starts with room for half again
// the keys it was built with; when its last layer is full, a layer four
// times as large is added. The filters of all users together stay under
// filterBudget bytes: past it, they are all dropped and rebuilt as needed;
// a user whose filter alone would take a quarter of it gets none.
const (
	filterBitsPerKey = 16
	filterProbes     = 5
	filterMinKeys    = 64
)

// filterBudget is a variable for tests.
var filterBudget = 64 << 20

var filterSeed = maphash.MakeSeed()

type filterLayer struct {
	bits []uint64
	mask uint64 // len(bits)*64 - 1
	keys int    // keys added to this layer
	max  int    // keys it holds before the next layer starts
}

func newFilterLayer(keys int) *filterLayer {
	keys = max(keys, filterMinKeys)
	nbits := uint64(1) << bits.Len64(uint64(keys*filterBitsPerKey-1))
	return &filterLayer{bits: make([]uint64, nbits/64), mask: nbits - 1, max: keys}
}

func (l *filterLayer) add(h uint64) {
	h1, h2 := h, h>>32|1
	for i := uint64(0); i < filterProbes; i++ {
		b := (h1 + i*h2) & l.mask
		l.bits[b/64] |= 1 << (b % 64)
	}
	l.keys++
}

func (l *filterLayer) has(h uint64) bool {
	h1, h2 := h, h>>32|1
	for i := uint64(0); i < filterProbes; i++ {
		b := (h1 + i*h2) & l.mask
		if l.bits[b/64]&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

// idFilter is a scalable Bloom filter of one user's item keys.
type idFilter struct {
	layers []*filterLayer
}

func newIDFilter(keys int) *idFilter {
	return &idFilter{layers: []*filterLayer{newFilterLayer(keys + keys/2)}}
}

// add adds key; grew is the bytes a new layer took.
func (f *idFilter) add(key string) (grew int) {
	last := f.layers[len(f.layers)-1]
	if last.keys >= last.max {
		last = newFilterLayer(4 * last.max)
		f.layers = append(f.layers, last)
		grew = 8 * len(last.bits)
	}
	last.add(maphash.String(filterSeed, key))
	return grew
}

func (f *idFilter) size() int {
	n := 0
	for _, l := range f.layers {
		n += 8 * len(l.bits)
	}
	return n
}

// mayHave is false only for a key never added.
func (f *idFilter) mayHave(key string) bool {
	h := maphash.String(filterSeed, key)
	for _, l := range f.layers {
		if l.has(h) {
			return true
		}
	}
	return false
}

// itemUser returns the user of an item key ("u/<user>/i/..."), or false.
func itemUser(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "u/")
	if !ok {
		return "", false
	}
	user, rest, ok := strings.Cut(rest, "/")
	if !ok || !strings.HasPrefix(rest, "i/") {
		return "", false
	}
	return user, true
}

// itemFilter returns user's filter, building it on first use; nil in
// cluster mode, and for a user whose filter would take more than a quarter
// of filterBudget (reads then go to Badger, as they did before filters).
//
// The build scans the snapshot under the flight (c.snap, which holds every
// group commit that landed before it), then adds the flight's writes and
// the open group commit's: a fresh snapshot would wait for the flight.
func (c *committer) itemFilter(user string) *idFilter {
	if c.s.logs != nil {
		return nil
	}
	if f, ok := c.filters[user]; ok {
		return f
	}
	prefix := keyUser(user) + "i/"
	var keys []string
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	opts.PrefetchValues = false
	it := c.snap.NewIterator(opts)
	for it.Rewind(); it.Valid(); it.Next() {
		keys = append(keys, string(it.Item().Key()))
	}
	it.Close()
	f := newIDFilter(len(keys))
	for _, k := range keys {
		f.add(k)
	}
	// The open group commit's keys are added again when it is handed to
	// Badger; adding them now does no harm.
	sets := []map[string][]byte{c.writes}
	if c.flight != nil {
		sets = append(sets, c.flight.writes)
	}
	for _, w := range sets {
		for k, v := range w {
			if v != nil && strings.HasPrefix(k, prefix) {
				f.add(k)
			}
		}
	}
	if f.size() > filterBudget/4 {
		f = nil // remembered: no rescan on the next read
	} else if c.filters == nil || c.filterBytes+f.size() > filterBudget {
		c.filters, c.filterBytes = map[string]*idFilter{}, 0
	}
	if c.filters == nil {
		c.filters = map[string]*idFilter{}
	}
	c.filters[user] = f
	if f != nil {
		c.filterBytes += f.size()
	}
	return f
}

// noteItemKeys adds a group commit's item keys to the filters that exist.
func (c *committer) noteItemKeys(writes map[string][]byte) {
	if len(c.filters) == 0 {
		return
	}
	for k, v := range writes {
		if v == nil {
			continue
		}
		if u, ok := itemUser(k); ok {
			if f := c.filters[u]; f != nil {
				c.filterBytes += f.add(k)
			}
		}
	}
	if c.filterBytes > filterBudget {
		// Rebuilt as needed, from the snapshot under the flight these
		// writes become and the flight's writes.
		c.filters, c.filterBytes = nil, 0
	}
}
