package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// laneRig holds a store's committer in a first request and records the
// order in which the requests queued behind it run.
type laneRig struct {
	t       *testing.T
	s       *Store
	gate    chan struct{}
	blocked chan error // the blocking request's result
	mu      sync.Mutex
	order   []string
}

func newLaneRig(t *testing.T, s *Store) *laneRig {
	g := &laneRig{t: t, s: s, gate: make(chan struct{}), blocked: make(chan error, 1)}
	started := make(chan struct{})
	go func() {
		g.blocked <- s.Update(context.Background(), "u", func(tx *Tx) error {
			close(started)
			<-g.gate
			return nil
		})
	}()
	<-started
	return g
}

// fn records name when the request runs, and writes a key.
func (g *laneRig) fn(name string) func(*Tx) error {
	return func(tx *Tx) error {
		g.mu.Lock()
		g.order = append(g.order, name)
		g.mu.Unlock()
		tx.PutRaw("u/u/lane/"+name, []byte(name))
		return nil
	}
}

// submit queues a bulk request and waits until it is queued.
func (g *laneRig) submit(name string) func() error {
	g.t.Helper()
	wait, err := g.s.Submit(context.Background(), "u", g.fn(name))
	if err != nil {
		g.t.Fatal(err)
	}
	return wait
}

// update runs a priority request in a goroutine, waits until it is queued
// and returns its result's channel.
func (g *laneRig) update(name string) chan error {
	g.t.Helper()
	n := len(g.s.prio)
	done := make(chan error, 1)
	go func() { done <- g.s.Update(context.Background(), "u", g.fn(name)) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(g.s.prio) == n {
		if time.Now().After(deadline) {
			g.t.Fatalf("update %s not queued", name)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return done
}

// release lets the committer go and checks that the blocking request, the
// updates and the submits all succeed.
func (g *laneRig) release(updates []chan error, submits []func() error) []string {
	g.t.Helper()
	close(g.gate)
	if err := <-g.blocked; err != nil {
		g.t.Fatal(err)
	}
	for _, u := range updates {
		if err := <-u; err != nil {
			g.t.Fatal(err)
		}
	}
	for _, w := range submits {
		if err := w(); err != nil {
			g.t.Fatal(err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.order)
}

// An Update queued behind pushes (Submit) runs before them; the pushes
// keep their order and all complete. Also in cluster mode.
func TestUpdateOvertakesQueuedSubmits(t *testing.T) {
	for _, clustered := range []bool{false, true} {
		t.Run(fmt.Sprint("clustered=", clustered), func(t *testing.T) {
			opts := Options{}
			if clustered {
				opts = Options{Dir: t.TempDir(), Log: NewMemLog()}
			}
			s, err := Open(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			g := newLaneRig(t, s)
			var submits []func() error
			for i := range 4 {
				submits = append(submits, g.submit(fmt.Sprint("b", i)))
			}
			p := g.update("p")
			order := g.release([]chan error{p}, submits)
			if want := []string{"p", "b0", "b1", "b2", "b3"}; !slices.Equal(order, want) {
				t.Fatalf("requests ran in the order %v, want %v", order, want)
			}
			err = s.View("u", func(tx *Tx) error {
				for _, k := range []string{"p", "b0", "b1", "b2", "b3"} {
					if v, ok, err := tx.GetRaw("u/u/lane/" + k); err != nil || !ok || string(v) != k {
						return fmt.Errorf("%s: %q %v %v", k, v, ok, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A bulk request waits for at most prioBurst priority requests: with more
// queued, the pushes run in between them, in their order.
func TestBulkLaneIsNotStarved(t *testing.T) {
	s, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g := newLaneRig(t, s)
	submits := []func() error{g.submit("b0"), g.submit("b1")}
	var updates []chan error
	for i := range 3 * prioBurst {
		updates = append(updates, g.update(fmt.Sprint("p", i)))
	}
	order := g.release(updates, submits)
	if len(order) != 2+3*prioBurst {
		t.Fatalf("%d requests ran, want %d", len(order), 2+3*prioBurst)
	}
	b0, b1 := slices.Index(order, "b0"), slices.Index(order, "b1")
	if b0 != prioBurst || b1 != 2*prioBurst+1 {
		t.Fatalf("b0 ran at %d and b1 at %d, want %d and %d (after every %d priority requests)",
			b0, b1, prioBurst, 2*prioBurst+1, prioBurst)
	}
}

// Requests of both lanes queued when the store closes are all answered.
func TestCloseAnswersBothLanes(t *testing.T) {
	t.Run("one group commit", func(t *testing.T) { closeAnswersBothLanes(t, Options{}) })
	// One request per group commit: after each, commitLoop's select may
	// take the close, and the drain runs the rest.
	t.Run("drained", func(t *testing.T) { closeAnswersBothLanes(t, Options{MaxBatch: 1}) })
}

func closeAnswersBothLanes(t *testing.T, opts Options) {
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	g := newLaneRig(t, s)
	var submits []func() error
	var updates []chan error
	for i := range 3 {
		submits = append(submits, g.submit(fmt.Sprint("b", i)))
		updates = append(updates, g.update(fmt.Sprint("p", i)))
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !isClosed(s.done) {
		time.Sleep(100 * time.Microsecond)
	}
	order := g.release(updates, submits)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if want := []string{"p0", "p1", "p2", "b0", "b1", "b2"}; !slices.Equal(order, want) {
		t.Fatalf("requests ran in the order %v, want %v", order, want)
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestPickHoldsAReceivedPushBehindQueuedUpdates drives take and pick
// directly, on lanes no committer goroutine reads: a push that a select
// received while an Update was queued waits as the bulk lane's head (the
// Update runs first, then that push, then the push behind it), and after
// prioBurst Updates in a row a waiting push goes first.
func TestPickHoldsAReceivedPushBehindQueuedUpdates(t *testing.T) {
	s := &Store{prio: make(chan *request, 64), bulk: make(chan *request, 64)}
	c := &committer{s: s}
	req := func(name string, bulk bool) *request { return &request{user: name, bulk: bulk} }
	s.bulk <- req("b1", true)
	s.prio <- req("p0", false)
	var order []string
	order = append(order, c.pick(req("b0", true)).user) // as if a select had received b0
	for r := c.take(); r != nil; r = c.take() {
		order = append(order, r.user)
	}
	if want := []string{"p0", "b0", "b1"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}

	s.bulk <- req("b", true)
	for i := range prioBurst + 8 {
		s.prio <- req(fmt.Sprint("p", i), false)
	}
	order = order[:0]
	for r := c.take(); r != nil; r = c.take() {
		order = append(order, r.user)
	}
	if i := slices.Index(order, "b"); i != prioBurst {
		t.Fatalf("the push ran at %d, want %d: %v", i, prioBurst, order)
	}
}
