package crdt_test

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/crdt"
)

// base is an arbitrary wall-clock reading, in ms (2025-01-01T00:00:00Z).
const base int64 = 1735689600000

const skewMs = int64(crdt.DefaultSkew / time.Millisecond)

// wall is an injected wall clock that tests move by hand.
type wall struct {
	mu sync.Mutex
	ms int64
}

func newWall(ms int64) *wall { return &wall{ms: ms} }

func (w *wall) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.UnixMilli(w.ms)
}

func (w *wall) Add(ms int64) {
	w.mu.Lock()
	w.ms += ms
	w.mu.Unlock()
}

func (w *wall) Set(ms int64) {
	w.mu.Lock()
	w.ms = ms
	w.mu.Unlock()
}

func mustNow(t *testing.T, c *crdt.Clock) crdt.Version {
	t.Helper()
	v, err := c.Now()
	if err != nil {
		t.Fatalf("Now: %v", err)
	}
	return v
}

func TestClockCountsWithinTheSameMillisecond(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	for i := uint32(0); i < 3; i++ {
		v := mustNow(t, c)
		if got, want := v, (crdt.Version{Time: base, Counter: i, Node: "r1"}); got != want {
			t.Fatalf("version %d: got %v, want %v", i, got, want)
		}
	}
	w.Add(1)
	if got, want := mustNow(t, c), (crdt.Version{Time: base + 1, Node: "r1"}); got != want {
		t.Fatalf("next millisecond: got %v, want %v", got, want)
	}
}

func TestClockStaysMonotonicWhenWallClockGoesBackwards(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	v1 := mustNow(t, c)
	w.Add(-time.Minute.Milliseconds())
	v2 := mustNow(t, c)
	if got, want := v2, (crdt.Version{Time: v1.Time, Counter: v1.Counter + 1, Node: "r1"}); got != want {
		t.Fatalf("after the wall clock went back: got %v, want %v", got, want)
	}
	w.Add(time.Minute.Milliseconds() + 1)
	if got, want := mustNow(t, c), (crdt.Version{Time: base + 1, Node: "r1"}); got != want {
		t.Fatalf("once the wall clock caught up: got %v, want %v", got, want)
	}
}

func TestNowMovesToTheNextMillisecondWhenTheCounterWraps(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	c.Restore(crdt.Version{Time: base, Counter: math.MaxUint32, Node: "r1"})
	if got, want := mustNow(t, c), (crdt.Version{Time: base + 1, Node: "r1"}); got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestObserveMovesTheClockPastARemoteVersion(t *testing.T) {
	for _, node := range []string{"a", "zz"} { // sorting before and after "r1"
		w := newWall(base)
		c := crdt.NewClock("r1", w.Now, 0)
		remote := crdt.Version{Time: base + 60_000, Counter: 7, Node: node}
		c.Observe(remote)
		v := mustNow(t, c)
		if !remote.Less(v) {
			t.Fatalf("issued %v, not newer than observed %v", v, remote)
		}
		if got, want := v, (crdt.Version{Time: remote.Time, Counter: 8, Node: "r1"}); got != want {
			t.Fatalf("after observing %v: got %v, want %v", remote, got, want)
		}
	}
}

func TestObserveNeverMovesTheClockBack(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	v := mustNow(t, c)
	c.Observe(crdt.Version{Time: base - 1000, Counter: 9, Node: "zz"})
	if got, want := c.Last(), v; got != want {
		t.Fatalf("Last after observing an older version: got %v, want %v", got, want)
	}
}

func TestObserveIgnoresVersionsBeyondTheSkewAllowance(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	c.Observe(crdt.Version{Time: base + skewMs + 1, Node: "zz"})
	if got, want := c.Last(), (crdt.Version{}); got != want {
		t.Fatalf("Last after observing a version beyond the skew: got %v, want %v", got, want)
	}
	if got, want := mustNow(t, c), (crdt.Version{Time: base, Node: "r1"}); got != want {
		t.Fatalf("Now: got %v, want %v", got, want)
	}
	c.Observe(crdt.Version{Time: base + skewMs, Node: "zz"})
	if got, want := c.Last(), (crdt.Version{Time: base + skewMs, Node: "r1"}); got != want {
		t.Fatalf("Last after observing a version right at the skew: got %v, want %v", got, want)
	}
}

func TestClockHonoursACustomSkew(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, time.Second)
	c.Observe(crdt.Version{Time: base + 1001, Node: "zz"})
	if got, want := c.Last(), (crdt.Version{}); got != want {
		t.Fatalf("Last after observing 1001 ms ahead with a 1 s skew: got %v, want %v", got, want)
	}
	c.Observe(crdt.Version{Time: base + 1000, Node: "zz"})
	if got, want := c.Last().Time, base+1000; got != want {
		t.Fatalf("Last after observing 1000 ms ahead: got %d, want %d", got, want)
	}
}

// TestNowRefusesOnlyBeyondTheSkewAllowance: the clock reaches the edge of the
// allowance by observing a version from a clock that runs ahead; Now refuses
// only while issuing would cross it, and does not move the clock when it does.
func TestNowRefusesOnlyBeyondTheSkewAllowance(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	c.Observe(crdt.Version{Time: base + skewMs, Node: "zz"})
	if got, want := mustNow(t, c), (crdt.Version{Time: base + skewMs, Counter: 1, Node: "r1"}); got != want {
		t.Fatalf("at the edge of the allowance: got %v, want %v", got, want)
	}

	c.Observe(crdt.Version{Time: base + skewMs, Counter: math.MaxUint32, Node: "zz"})
	last := c.Last()
	if _, err := c.Now(); !errors.Is(err, crdt.ErrClockAhead) {
		t.Fatalf("Now when the next version would be 1 ms beyond the allowance: got %v, want ErrClockAhead", err)
	}
	if got, want := c.Last(), last; got != want {
		t.Fatalf("Last after a refused Now: got %v, want %v", got, want)
	}

	w.Add(1)
	if got, want := mustNow(t, c), (crdt.Version{Time: base + skewMs + 1, Node: "r1"}); got != want {
		t.Fatalf("once the wall clock moved on: got %v, want %v", got, want)
	}
}

func TestNowRefusesAfterRestoringAClockThatRanAhead(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	ahead := crdt.Version{Time: base + time.Hour.Milliseconds(), Counter: 3, Node: "r1"}
	c.Restore(ahead)
	if _, err := c.Now(); !errors.Is(err, crdt.ErrClockAhead) {
		t.Fatalf("Now: got %v, want ErrClockAhead", err)
	}
	w.Set(ahead.Time - skewMs)
	if got, want := mustNow(t, c), (crdt.Version{Time: ahead.Time, Counter: 4, Node: "r1"}); got != want {
		t.Fatalf("once within the allowance: got %v, want %v", got, want)
	}
}

func TestRestoreNeverMovesTheClockBack(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, 0)
	v := mustNow(t, c)
	c.Restore(crdt.Version{Time: base - 1, Counter: 5, Node: "r1"})
	if got, want := c.Last(), v; got != want {
		t.Fatalf("Last after restoring an older version: got %v, want %v", got, want)
	}
	c.Restore(crdt.Version{Time: base + 10, Counter: 5, Node: "other"})
	if got, want := c.Last(), (crdt.Version{Time: base + 10, Counter: 5, Node: "r1"}); got != want {
		t.Fatalf("Last after restoring a newer version: got %v, want %v", got, want)
	}
}

func TestMustNowIssuesNewerVersionsEvenBeyondTheSkewAllowance(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("srv", w.Now, 0)
	prev := crdt.Version{Time: base + time.Hour.Milliseconds(), Node: "srv"}
	c.Restore(prev)
	for i := 0; i < 3; i++ {
		v := c.MustNow()
		if !prev.Less(v) || v.Node != "srv" {
			t.Fatalf("MustNow %d: got %v after %v", i, v, prev)
		}
		prev = v
	}
}

func TestMustNowStaysMonotonicWhenTheCounterSaturates(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("srv", w.Now, 0)
	saturated := crdt.Version{Time: base + time.Hour.Milliseconds(), Counter: math.MaxUint32, Node: "srv"}
	c.Restore(saturated)
	if v := c.MustNow(); !saturated.Less(v) {
		t.Fatalf("MustNow: got %v, not newer than %v", v, saturated)
	}
}

func TestSetServerTimeMakesVersionsFollowTheServer(t *testing.T) {
	const server = base
	for _, tc := range []struct {
		name   string
		device int64 // device wall clock minus server time, ms
	}{
		{"device three hours ahead", 3 * time.Hour.Milliseconds()},
		{"device three hours behind", -3 * time.Hour.Milliseconds()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWall(server + tc.device)
			c := crdt.NewClock("r1", w.Now, 0)
			c.SetServerTime(server)
			if got, want := c.Offset(), -tc.device; got != want {
				t.Fatalf("Offset: got %d, want %d", got, want)
			}
			if got, want := mustNow(t, c), (crdt.Version{Time: server, Node: "r1"}); got != want {
				t.Fatalf("Now: got %v, want %v", got, want)
			}
			w.Add(10_000)
			if got, want := mustNow(t, c).Time, server+10_000; got != want {
				t.Fatalf("Now 10 s later: got %d, want %d", got, want)
			}
			// A version from the server's clock is within the allowance now.
			remote := crdt.Version{Time: server + 60_000, Node: "srv"}
			c.Observe(remote)
			if v := mustNow(t, c); !remote.Less(v) {
				t.Fatalf("Now after observing %v: got %v", remote, v)
			}
		})
	}
}

func TestSetOffsetRestoresALearnedOffset(t *testing.T) {
	const server = base
	w := newWall(server + time.Hour.Milliseconds())
	c := crdt.NewClock("r1", w.Now, 0)
	c.SetServerTime(server)

	reopened := crdt.NewClock("r1", w.Now, 0)
	reopened.SetOffset(c.Offset())
	if got, want := mustNow(t, reopened).Time, server; got != want {
		t.Fatalf("Now after SetOffset: got %d, want %d", got, want)
	}
}

func TestNewClockDefaultsToTheWallClockAndDefaultSkew(t *testing.T) {
	c := crdt.NewClock("r1", nil, 0)
	if got, want := c.Node(), "r1"; got != want {
		t.Fatalf("Node: got %q, want %q", got, want)
	}
	before := time.Now().UnixMilli()
	v := mustNow(t, c)
	after := time.Now().UnixMilli()
	if v.Time < before || v.Time > after {
		t.Fatalf("Now: got time %d, want within [%d, %d]", v.Time, before, after)
	}
	far := crdt.Version{Time: after + skewMs + time.Minute.Milliseconds(), Node: "zz"}
	c.Observe(far)
	if got := c.Last(); !got.Less(far) {
		t.Fatalf("Last after observing a version beyond the default skew: got %v", got)
	}
}

func TestClockIssuesDistinctVersionsToConcurrentCallers(t *testing.T) {
	c := crdt.NewClock("r1", nil, 0)
	const goroutines, each = 8, 300
	got := make([][]crdt.Version, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				c.Observe(crdt.Version{Time: time.Now().UnixMilli(), Counter: 2, Node: "zz"})
				v, err := c.Now()
				if err != nil {
					t.Errorf("Now: %v", err)
					return
				}
				got[g] = append(got[g], v)
			}
		})
	}
	wg.Wait()
	seen := make(map[crdt.Version]bool, goroutines*each)
	for g, vs := range got {
		for i, v := range vs {
			if seen[v] {
				t.Fatalf("version %v issued twice", v)
			}
			seen[v] = true
			if i > 0 && !vs[i-1].Less(v) {
				t.Fatalf("goroutine %d: %v issued after %v", g, v, vs[i-1])
			}
		}
	}
}

// TestClockModel runs random sequences of wall-clock moves (also backwards),
// SetServerTime, Observe and Now, and checks every reading against the rules:
// Now issues a version strictly newer than all issued and observed ones, at
// max(estimated server time, newest seen), and refuses with ErrClockAhead
// exactly when that would be beyond the skew allowance; Observe ignores what
// is beyond the allowance.
func TestClockModel(t *testing.T) {
	const skew = time.Minute
	const sk = int64(skew / time.Millisecond)
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		w := newWall(base)
		c := crdt.NewClock("r1", w.Now, skew)
		var offset int64
		var newest crdt.Version // newest issued or observed, by Time and Counter
		steps := rapid.IntRange(1, 80).Draw(t, "steps")
		for range steps {
			n++
			local := w.Now().UnixMilli()
			phys := local + offset
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0:
				w.Add(rapid.Int64Range(-2*sk, 2*sk).Draw(t, "wall move"))
			case 1:
				server := phys + rapid.Int64Range(-2*sk, 2*sk).Draw(t, "server - estimate")
				c.SetServerTime(server)
				offset = server - local
				// A clock left beyond the allowance by a runaway past follows
				// the server from now on.
				if newest.Time > server+sk {
					newest = crdt.Version{Time: server}
				}
			case 2:
				v := crdt.Version{
					Time:    phys + rapid.Int64Range(-2*sk, 2*sk).Draw(t, "remote - estimate"),
					Counter: uint32(rapid.IntRange(0, 3).Draw(t, "remote counter")),
					Node:    rapid.SampledFrom([]string{"a", "r1", "zz"}).Draw(t, "remote node"),
				}
				c.Observe(v)
				if v.Time <= phys+sk && newest.Less(v) {
					newest = v
				}
			default:
				v, err := c.Now()
				wantTime := max(phys, newest.Time)
				if wantErr := wantTime > phys+sk; wantErr {
					if !errors.Is(err, crdt.ErrClockAhead) {
						t.Fatalf("Now with newest %v and estimated server time %d: got %v, %v; want ErrClockAhead", newest, phys, v, err)
					}
					break
				}
				if err != nil {
					t.Fatalf("Now with newest %v and estimated server time %d: %v", newest, phys, err)
				}
				wantCounter := uint32(0)
				if newest.Time >= phys {
					wantCounter = newest.Counter + 1
				}
				if !newest.Less(v) || v != (crdt.Version{Time: wantTime, Counter: wantCounter, Node: "r1"}) {
					t.Fatalf("Now with newest %v and estimated server time %d: got %v", newest, phys, v)
				}
				newest = v
			}
			if got := c.Last(); got.Time != newest.Time || got.Counter != newest.Counter {
				t.Fatalf("Last: got %v, want %v", got, newest)
			}
		}
	})
	t.Logf("%d steps checked", n)
}

func TestSetServerTimeLetsARunawayOfflineClockWriteAgain(t *testing.T) {
	w := newWall(base)
	c := crdt.NewClock("r1", w.Now, time.Minute)
	w.Add(3 * 60 * 60 * 1000) // device 3 h ahead, writing offline
	if _, err := c.Now(); err != nil {
		t.Fatalf("offline write: %v", err)
	}
	w.Add(-3 * 60 * 60 * 1000)
	c.SetServerTime(base) // first welcome: the device learns the real time
	v, err := c.Now()
	if err != nil {
		t.Fatalf("write after welcome: %v", err)
	}
	if got, want := v.Time, base; got < want || got > want+1 {
		t.Fatalf("version time: got %d, want about %d", got, want)
	}
}
