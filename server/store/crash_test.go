package store_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

const crashDirEnv = "PRYVSYNC_CRASH_DIR"

// crashItemID spreads writes over a fixed set of ids so that most writes
// move an existing item's feed entry.
func crashItemID(n int) string { return fmt.Sprintf("ev%03d", n%200) }

// TestCrashWriterHelper is the child process of TestCrashRecovery: it writes
// until killed, printing "ACK <seq> <id> <counter>" after each commit.
func TestCrashWriterHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	s, err := store.Open(store.Options{Dir: dir, SyncWrites: true})
	if err != nil {
		fmt.Fprintf(os.Stdout, "OPENFAIL %v\n", err)
		os.Exit(3)
	}
	var (
		mu      sync.Mutex // one write per line
		counter int
		cmu     sync.Mutex
	)
	fmt.Fprintln(os.Stdout, "READY")
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cmu.Lock()
				counter++
				n := counter
				cmu.Unlock()
				id := crashItemID(n)
				var seq uint64
				err := s.Update(context.Background(), user, func(tx *store.Tx) error {
					v := crdt.Version{Time: int64(n), Node: "crash"}
					d := crdt.Doc{Fields: map[string]crdt.Field{
						"channelId": {V: v, Val: model.JSONString(fmt.Sprintf("ch%d", n%3))},
						"time":      {V: v, Val: model.JSONNumber(float64(n))},
						"type":      {V: v, Val: model.JSONString("count/generic")},
						"value":     {V: v, Val: model.JSONNumber(float64(n))},
					}}
					var err error
					seq, err = tx.PutItem(model.KindEvent, id, d)
					return err
				})
				if err != nil {
					fmt.Fprintf(os.Stdout, "ERR %v\n", err)
					os.Exit(4)
				}
				line := fmt.Sprintf("ACK %d %s %d\n", seq, id, n)
				mu.Lock()
				_, _ = os.Stdout.WriteString(line) // unbuffered: one write(2) per line
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

type ack struct {
	seq uint64
	id  string
	n   int
}

func TestCrashRecovery(t *testing.T) {
	seed := time.Now().UnixNano()
	if v := os.Getenv("PRYVSYNC_CRASH_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	t.Logf("seed %d (set PRYVSYNC_CRASH_SEED to replay)", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	dir := t.TempDir()
	var acks []ack // across all rounds
	for round := range 3 {
		delay := time.Duration(100+rng.IntN(400)) * time.Millisecond
		got := runCrashWriter(t, dir, delay)
		t.Logf("round %d: killed after %v, %d acknowledged commits", round, delay, len(got))
		acks = append(acks, got...)
		checkAfterCrash(t, dir, acks)
		if t.Failed() {
			return
		}
	}
}

func runCrashWriter(t *testing.T, dir string, delay time.Duration) []ack {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterHelper$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var (
		acks   []ack
		timer  <-chan time.Time
		killed bool
		guard  = time.After(20 * time.Second)
	)
	kill := func() {
		if !killed {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	for lines != nil {
		select {
		case line, ok := <-lines:
			if !ok {
				lines = nil
				break
			}
			switch {
			case line == "READY":
				timer = time.After(delay)
			case strings.HasPrefix(line, "ACK "):
				var a ack
				if _, err := fmt.Sscanf(line, "ACK %d %s %d", &a.seq, &a.id, &a.n); err != nil {
					kill()
					t.Errorf("bad line %q: %v", line, err)
				}
				acks = append(acks, a)
			case strings.HasPrefix(line, "ERR"), strings.HasPrefix(line, "OPENFAIL"):
				t.Errorf("writer: %s", line)
			}
		case <-timer:
			timer = nil
			kill()
		case <-guard:
			guard = nil
			kill()
			t.Errorf("writer did not finish in time")
		}
	}
	kill() // the writer may have exited on its own (an error)
	_ = cmd.Wait()
	if len(acks) == 0 {
		t.Fatal("writer acknowledged nothing")
	}
	return acks
}

func checkAfterCrash(t *testing.T, dir string, acks []ack) {
	t.Helper()
	s, err := store.Open(store.Options{Dir: dir, SyncWrites: true})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	var maxAck uint64
	latest := map[string]ack{} // the newest acknowledged write per id
	for _, a := range acks {
		maxAck = max(maxAck, a.seq)
		if cur, ok := latest[a.id]; !ok || a.seq > cur.seq {
			latest[a.id] = a
		}
	}
	h, err := s.Head(user)
	if err != nil {
		t.Fatal(err)
	}
	if h < maxAck {
		t.Fatalf("head %d < last acknowledged seq %d", h, maxAck)
	}
	chans := []string{"ch0", "ch1", "ch2"}
	err = s.View(user, func(tx *store.Tx) error {
		for id, a := range latest {
			r, ok, err := tx.Item(model.KindEvent, id)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("acknowledged item %s (seq %d) missing", id, a.seq)
			}
			if r.Seq < a.seq {
				return fmt.Errorf("item %s at seq %d, older than acknowledged %d", id, r.Seq, a.seq)
			}
			if v, _ := model.NumberField(r.Doc, "value"); r.Seq == a.seq && int(v) != a.n {
				return fmt.Errorf("item %s at acknowledged seq %d holds %v, want %d", id, a.seq, v, a.n)
			}
		}
		var (
			last uint64
			prev store.FeedEntry
			live = map[string]uint64{}
		)
		err := tx.ReadFeed(chans, 0, func(e store.FeedEntry) (bool, error) {
			sameMove := e.Seq == last && e.ID == prev.ID && e.Exit != prev.Exit && e.Channel != prev.Channel
			if e.Seq < last || (e.Seq == last && !sameMove) {
				return false, fmt.Errorf("feed not ascending: %+v after %+v", e, prev)
			}
			if e.Seq > h {
				return false, fmt.Errorf("feed entry %+v beyond head %d", e, h)
			}
			last, prev = e.Seq, e
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
		err = tx.Items(model.KindEvent, func(id string, r *store.Record) (bool, error) {
			if live[id] != r.Seq {
				return false, fmt.Errorf("item %s record seq %d, feed entry at %d", id, r.Seq, live[id])
			}
			delete(live, id)
			return true, nil
		})
		if err == nil && len(live) > 0 {
			err = fmt.Errorf("feed entries without a record: %v", live)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
