package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// openNode opens a clustered store over log in its own directory; commits
// it reports (its own and other nodes') are counted per user.
func openNode(t *testing.T, log store.Log, seen *sync.Map) *store.Store {
	t.Helper()
	s, err := store.Open(store.Options{Dir: t.TempDir(), SyncWrites: false, Log: log, OnCommit: func(cs []store.Commit) {
		if seen == nil {
			return
		}
		for _, c := range cs {
			v, _ := seen.LoadOrStore(c.User, new(sync.Map))
			v.(*sync.Map).Store(c.Head, true)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Two nodes write for the same users at once: each user's sequence numbers
// are gap-free and unique across both nodes, every acknowledged write is
// on both, and both nodes end with the same heads and feeds.
func TestTwoNodesCommittingForOneUserNeverForkTheLog(t *testing.T) {
	log := store.NewMemLog()
	var seenB sync.Map
	a := openNode(t, log, nil)
	b := openNode(t, log, &seenB)
	if a.Epoch() != b.Epoch() {
		t.Fatalf("epochs differ: %s, %s", a.Epoch(), b.Epoch())
	}
	ctx := context.Background()
	users := []string{user, "bobby"}
	for _, u := range users {
		if err := a.Update(ctx, u, func(tx *store.Tx) error {
			_, err := tx.PutItem(model.KindChannel, "ch", channelDoc("ch"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	const writers, each = 6, 40
	var mu sync.Mutex
	seqs := map[string]map[uint64]string{}
	var wg sync.WaitGroup
	for w := range writers {
		node := []*store.Store{a, b}[w%2]
		u := users[(w/2)%len(users)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("e-%d-%d", w, i)
				var seq uint64
				err := node.Update(ctx, u, func(tx *store.Tx) error {
					var err error
					seq, err = tx.PutItem(model.KindEvent, id, eventDoc("ch", float64(i), nil))
					return err
				})
				if err != nil {
					t.Errorf("%s on node %d: %v", id, w%2, err)
					return
				}
				mu.Lock()
				if seqs[u] == nil {
					seqs[u] = map[uint64]string{}
				}
				if other, dup := seqs[u][seq]; dup {
					t.Errorf("%s: seq %d given to %s and %s", u, seq, other, id)
				}
				seqs[u][seq] = id
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d appends lost a race and ran again", log.Conflicts())
	for _, u := range users {
		for _, s := range []*store.Store{a, b} {
			if err := s.CatchUp(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		ha, _ := a.Head(u)
		hb, _ := b.Head(u)
		// The channel took seq 1; each event one more.
		want := uint64(1 + len(seqs[u]))
		if ha != want || hb != want {
			t.Fatalf("%s: heads %d and %d, want %d", u, ha, hb, want)
		}
		for seq := uint64(2); seq <= want; seq++ {
			if seqs[u][seq] == "" {
				t.Fatalf("%s: seq %d was given to no acknowledged write (gap)", u, seq)
			}
		}
		fa, fb := feedOf(t, a, u), feedOf(t, b, u)
		if fmt.Sprint(fa) != fmt.Sprint(fb) {
			t.Fatalf("%s: the nodes' feeds differ:\n%v\n%v", u, fa, fb)
		}
		if len(fa) != int(want) {
			t.Fatalf("%s: feed holds %d entries, want %d", u, len(fa), want)
		}
	}
	// Node B heard of node A's commits as of its own: its sessions follow
	// the whole user.
	v, ok := seenB.Load(user)
	if !ok {
		t.Fatal("node B reported no commit")
	}
	n := 0
	v.(*sync.Map).Range(func(any, any) bool { n++; return true })
	if want := 1 + len(seqs[user]); n != want {
		t.Fatalf("node B reported %d of %s's %d commits", n, user, want)
	}
}

func feedOf(t *testing.T, s *store.Store, u string) []string {
	t.Helper()
	var out []string
	err := s.View(u, func(tx *store.Tx) error {
		return tx.ReadFeed([]string{"ch", ""}, 0, func(e store.FeedEntry) (bool, error) {
			out = append(out, fmt.Sprintf("%d:%s", e.Seq, e.ID))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A node started on an existing log, with an empty directory, rebuilds its
// cache from the log; a node whose log cannot be reached refuses writes
// with ErrLogUnavailable and keeps nothing of them.
func TestANewNodeRebuildsFromTheLogAndAnUnreachableLogRefusesWrites(t *testing.T) {
	log := store.NewMemLog()
	a := openNode(t, log, nil)
	put(t, a, model.KindChannel, "ch", channelDoc("ch"))
	for i := range 20 {
		put(t, a, model.KindEvent, fmt.Sprintf("e%d", i), eventDoc("ch", float64(i), nil))
	}
	c := openNode(t, log, nil)
	deadline := time.Now().Add(5 * time.Second)
	for head(t, c) != 21 {
		if time.Now().After(deadline) {
			t.Fatalf("the new node's head is %d, want 21", head(t, c))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if fa, fc := feedOf(t, a, user), feedOf(t, c, user); fmt.Sprint(fa) != fmt.Sprint(fc) {
		t.Fatalf("rebuilt feed differs:\n%v\n%v", fa, fc)
	}

	log.SetDown(true)
	err := a.Update(context.Background(), user, func(tx *store.Tx) error {
		_, err := tx.PutItem(model.KindEvent, "lost", eventDoc("ch", 99, nil))
		return err
	})
	if !errors.Is(err, store.ErrLogUnavailable) {
		t.Fatalf("write with the log down: %v, want ErrLogUnavailable", err)
	}
	if _, ok := getItem(t, a, model.KindEvent, "lost"); ok {
		t.Fatal("a write the log refused is in the store")
	}
	log.SetDown(false)
	put(t, a, model.KindEvent, "back", eventDoc("ch", 100, nil))
	if h := head(t, a); h != 22 {
		t.Fatalf("head after the log came back: %d, want 22", h)
	}
}

// A node that has not applied another node's latest entry for a user does
// not refuse a request on that stale state: a refusal is checked against
// the log, and the request runs again once the node has caught up. A
// refusal on a state that is current stands.
func TestARefusalOnAStaleNodeIsCheckedAgainstTheLog(t *testing.T) {
	log := store.NewMemLog()
	a := openNode(t, log, nil)
	b := openNode(t, log, nil)
	log.Hold(true) // node B will not hear of A's channel by itself
	put(t, a, model.KindChannel, "ch", channelDoc("ch"))
	errNoChannel := errors.New("no such channel")
	needChannel := func(tx *store.Tx) error {
		if _, ok, err := tx.Item(model.KindChannel, "ch"); err != nil || !ok {
			return errors.Join(errNoChannel, err)
		}
		_, err := tx.PutItem(model.KindEvent, "e1", eventDoc("ch", 1, nil))
		return err
	}
	if err := b.Update(context.Background(), user, needChannel); err != nil {
		t.Fatalf("node B refused a write on a channel node A created: %v", err)
	}
	// A refusal that holds: no such item anywhere.
	err := b.Update(context.Background(), user, func(tx *store.Tx) error {
		if _, ok, err := tx.Item(model.KindChannel, "nope"); err != nil || !ok {
			return errors.Join(errNoChannel, err)
		}
		return nil
	})
	if !errors.Is(err, errNoChannel) {
		t.Fatalf("a request refused on a current state: %v, want its own error", err)
	}
	log.Hold(false)
}

// smallLog takes entries of at most 40 000 bytes (group commits of 30 000).
type smallLog struct{ *store.MemLog }

func (smallLog) MaxEntry() int { return 40000 }

// A request too big for its group commit runs again in the next one: the
// group before it may have caught a user up from the log and run its
// requests again, so what the big request read is void. Two acknowledged
// writes never share a sequence number.
func TestARequestMovedToTheNextGroupCommitRunsAgain(t *testing.T) {
	ml := store.NewMemLog()
	log := smallLog{ml}
	a := openNode(t, log, nil)
	b := openNode(t, log, nil)
	ctx := context.Background()
	put(t, a, model.KindChannel, "ch", channelDoc("ch"))
	if err := b.CatchUp(ctx, user); err != nil {
		t.Fatal(err)
	}
	ml.Hold(true)
	put(t, a, model.KindEvent, "x", eventDoc("ch", 1, nil)) // seq 2: B does not know
	gate := make(chan struct{})
	w0, _ := b.Submit(ctx, "bobby", func(tx *store.Tx) error { <-gate; tx.PutRaw("u/bobby/k", []byte("v")); return nil })
	var s1, s2 uint64
	w1, _ := b.Submit(ctx, user, func(tx *store.Tx) error {
		var err error
		s1, err = tx.PutItem(model.KindEvent, "r1", eventDoc("ch", 2, nil))
		return err
	})
	w2, _ := b.Submit(ctx, user, func(tx *store.Tx) error {
		var err error
		s2, err = tx.PutItem(model.KindEvent, "r2", eventDoc("ch", 3, nil))
		tx.PutRaw("u/"+user+"/big", make([]byte, 35000))
		return err
	})
	time.Sleep(20 * time.Millisecond) // r1 and r2 queue behind the gate
	close(gate)
	for _, w := range []func() error{w0, w1, w2} {
		if err := w(); err != nil {
			t.Fatal(err)
		}
	}
	ml.Hold(false)
	if s1 == s2 || s1 < 3 || s2 < 3 {
		t.Fatalf("r1 acknowledged at seq %d, r2 at %d: want two distinct seqs after node A's 2", s1, s2)
	}
	if err := a.CatchUp(ctx, user); err != nil {
		t.Fatal(err)
	}
	if fa, fb := feedOf(t, a, user), feedOf(t, b, user); fmt.Sprint(fa) != fmt.Sprint(fb) || len(fa) != 4 {
		t.Fatalf("feeds after the race: A %v, B %v (want the same 4 entries)", fa, fb)
	}
}

// lossyLog stores an append but loses its answer, once.
type lossyLog struct {
	*store.MemLog
	mu   sync.Mutex
	lose bool
}

func (l *lossyLog) Append(ctx context.Context, user string, prev uint64, id string, data []byte) (uint64, error) {
	seq, err := l.MemLog.Append(ctx, user, prev, id, data)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.lose {
		l.lose = false
		return 0, context.DeadlineExceeded
	}
	return seq, err
}

// An append whose answer was lost, but which the log holds, is a write
// made: the request is answered as one.
func TestAnAppendWhoseAnswerWasLostIsAWriteMade(t *testing.T) {
	log := &lossyLog{MemLog: store.NewMemLog()}
	a := openNode(t, log, nil)
	put(t, a, model.KindChannel, "ch", channelDoc("ch"))
	log.mu.Lock()
	log.lose = true
	log.mu.Unlock()
	err := a.Update(context.Background(), user, func(tx *store.Tx) error {
		_, err := tx.PutItem(model.KindEvent, "e", eventDoc("ch", 1, nil))
		return err
	})
	if err != nil {
		t.Fatalf("the log holds the write, but the request was answered %v", err)
	}
	if _, ok := getItem(t, a, model.KindEvent, "e"); !ok {
		t.Fatal("the write is not in the node's store")
	}
	if h := head(t, a); h != 2 {
		t.Fatalf("head %d, want 2", h)
	}
}
