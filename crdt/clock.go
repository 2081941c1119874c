package crdt

import (
	"errors"
	"sync"
	"time"
)

// DefaultSkew is how far a version may run ahead of the server's clock before
// the server re-stamps it (SPEC §4.3).
const DefaultSkew = 5 * time.Minute

// ErrClockAhead is returned by Clock.Now when issuing a version would put the
// clock more than the skew allowance ahead of the last server time it saw.
var ErrClockAhead = errors.New("crdt: clock runs ahead of the server beyond the skew allowance")

// Clock is a hybrid logical clock. Its physical part is the wall clock plus
// an offset learned from the server (SetServerTime), so a replica whose device
// clock is wrong still stamps versions close to the server's time. It is safe
// for concurrent use.
type Clock struct {
	mu     sync.Mutex
	node   string
	now    func() time.Time
	skew   time.Duration
	offset int64 // ms to add to now() to get server time
	server int64 // last server time seen, ms; 0 = never synced
	seenAt int64 // local ms when server was seen
	last   Version
}

// NewClock returns a clock for node. now defaults to time.Now and skew to
// DefaultSkew when zero.
func NewClock(node string, now func() time.Time, skew time.Duration) *Clock {
	if now == nil {
		now = time.Now
	}
	if skew <= 0 {
		skew = DefaultSkew
	}
	return &Clock{node: node, now: now, skew: skew}
}

// Node returns the id stamped on every version this clock issues.
func (c *Clock) Node() string { return c.node }

// SetServerTime records the server's time (ms) as seen now; later readings
// follow it.
func (c *Clock) SetServerTime(serverMs int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	local := c.now().UnixMilli()
	c.offset = serverMs - local
	c.server = serverMs
	c.seenAt = local
	// A device that wrote offline with its clock far ahead would otherwise
	// be unable to write until real time caught up: its runaway versions
	// are re-stamped by the server anyway (SPEC §4.3), so follow the server.
	if c.last.Time > serverMs+c.skew.Milliseconds() {
		c.last = Version{Time: serverMs, Node: c.node}
	}
}

// Offset returns the learned offset to server time in milliseconds.
func (c *Clock) Offset() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// SetOffset restores an offset persisted earlier (a replica reopening).
func (c *Clock) SetOffset(ms int64) {
	c.mu.Lock()
	c.offset = ms
	c.mu.Unlock()
}

// Now issues a new version, strictly newer than every version this clock
// issued or observed. It refuses (ErrClockAhead) to issue one more than the
// skew allowance ahead of the estimated server time, which can only happen
// after observing a version from a clock that runs far ahead.
func (c *Clock) Now() (Version, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	phys := c.now().UnixMilli() + c.offset
	v := Version{Time: phys, Node: c.node}
	if !c.last.Less(Version{Time: phys}) { // last.Time >= phys
		v.Time = c.last.Time
		v.Counter = c.last.Counter + 1
		if v.Counter == 0 { // wrapped: move to the next millisecond
			v.Time++
		}
	}
	if v.Time > phys+c.skew.Milliseconds() {
		return Version{}, ErrClockAhead
	}
	c.last = v
	return v, nil
}

// MustNow is Now for callers that keep the clock within bounds themselves
// (the server, which re-stamps what runs ahead before observing it).
func (c *Clock) MustNow() Version {
	v, err := c.Now()
	if err != nil {
		// Fall back to physical time with the node's counter: never panic.
		c.mu.Lock()
		v = Version{Time: c.last.Time, Counter: c.last.Counter + 1, Node: c.node}
		if v.Counter == 0 { // wrapped, as in Now
			v.Time++
		}
		c.last = v
		c.mu.Unlock()
	}
	return v
}

// Observe moves the clock past v, so the next version issued is newer. A
// version beyond the skew allowance is ignored (it is re-stamped by the
// server and must not drag this clock ahead).
func (c *Clock) Observe(v Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	phys := c.now().UnixMilli() + c.offset
	if v.Time > phys+c.skew.Milliseconds() {
		return
	}
	if c.last.Less(v) {
		c.last = Version{Time: v.Time, Counter: v.Counter, Node: c.node}
	}
}

// Last returns the newest version issued or observed.
func (c *Clock) Last() Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Restore sets the last version (a replica reopening its stored clock).
func (c *Clock) Restore(last Version) {
	c.mu.Lock()
	if c.last.Less(last) {
		c.last = Version{Time: last.Time, Counter: last.Counter, Node: c.node}
	}
	c.mu.Unlock()
}
