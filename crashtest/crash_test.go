package crashtest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
)

const eventType = `{"class":"note","format":"txt"}`

func eventBody(value string) string {
	return `{"channelId":"` + channel + `","type":` + eventType + `,"value":` + value + `}`
}

// TestHelperServerProcess is a child process: a server on the data
// directory $PRYVSYNC_CRASH_DATA, listening on $PRYVSYNC_CRASH_ADDR (any
// loopback port when empty). It prints "LISTEN <addr>" and serves until
// killed.
func TestHelperServerProcess(t *testing.T) {
	if os.Getenv(envMode) != "server" {
		t.Skip("child process of the crash tests")
	}
	srv, err := server.Open(serverConfig(), os.Getenv(envDir))
	if err != nil {
		fail("open server: %v", err)
	}
	addr := os.Getenv(envAddr)
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := listenRetry(addr)
	if err != nil {
		fail("listen %s: %v", addr, err)
	}
	say("LISTEN %s", ln.Addr())
	fail("serve: %v", http.Serve(ln, srv))
}

// TestHelperReplicaProcess is a child process: a replica on the directory
// $PRYVSYNC_CRASH_DATA, configured for $PRYVSYNC_CRASH_URL and
// $PRYVSYNC_CRASH_TOKEN. In mode "download" it runs one Sync round and
// prints "APPLIED <n>" as server items are committed locally; in mode
// "writes" it syncs once, then creates events until killed, printing
// "ID <id> <i>" once each CreateEvent has returned, and syncs now and then.
func TestHelperReplicaProcess(t *testing.T) {
	mode := os.Getenv(envMode)
	if mode != "download" && mode != "writes" {
		t.Skip("child process of the crash tests")
	}
	r, err := replica.Open(os.Getenv(envDir), replica.Options{})
	if err != nil {
		fail("open replica: %v", err)
	}
	if err := r.Configure(os.Getenv(envURL), user, os.Getenv(envToken)); err != nil {
		fail("configure: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if mode == "download" {
		sub := r.Subscribe()
		go func() {
			n := 0
			for range sub {
				if n++; n%100 == 0 {
					say("APPLIED %d", n)
				}
			}
		}()
		say("READY")
		if _, err := r.Sync(ctx); err != nil {
			fail("sync: %v", err)
		}
		say("DONE")
		return
	}
	if _, err := r.Sync(ctx); err != nil {
		fail("first sync: %v", err)
	}
	say("READY")
	for i := 0; ; i++ {
		id, err := r.CreateEvent(body(t, eventBody(fmt.Sprintf(`"w%d"`, i))))
		if err != nil {
			fail("create event %d: %v", i, err)
		}
		say("ID %s %d", id, i)
		if i%7 == 6 {
			sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
			_, err := r.Sync(sctx)
			scancel()
			say("SYNCED %v", err)
		}
	}
}

// TestServerKilledDuringPushesLosesNothingAcknowledged kills the server
// process at random moments while a replica writes and syncs, restarts it
// on the same data, and checks that every push the replica saw
// acknowledged survived the kill, and that after the replica has synced
// the server holds each of its events exactly once.
func TestServerKilledDuringPushesLosesNothingAcknowledged(t *testing.T) {
	rng := newRNG(t)
	dir := t.TempDir()
	f := openFixture(t, dir)
	token := f.token
	f.close()

	srv := startServer(t, dir, "")
	r := openReplica(t, t.TempDir(), srv.url, token)
	mustSync(t, r)

	created := map[string]string{} // id → JSON value
	var unacked []string           // created and not yet acknowledged, in order
	acked := map[string]bool{}
	// settle moves what the server acknowledged from unacked to acked:
	// pushes go in order, so the first len(unacked)-Pending are done.
	settle := func() {
		t.Helper()
		st, err := r.Status()
		if err != nil {
			t.Fatalf("status: %v", err)
		}
		if st.Rejections != 0 {
			rej, _ := r.Rejections()
			t.Fatalf("unexpected rejections: %+v", rej)
		}
		if st.Pending > len(unacked) {
			t.Fatalf("replica has %d pending changes, only %d writes unacknowledged", st.Pending, len(unacked))
		}
		k := len(unacked) - st.Pending
		for _, id := range unacked[:k] {
			acked[id] = true
		}
		unacked = unacked[k:]
	}
	write := func(tag string) {
		t.Helper()
		v := fmt.Sprintf(`"%s-%d"`, tag, len(created))
		id, err := r.CreateEvent(body(t, eventBody(v)))
		if err != nil {
			t.Fatalf("create event: %v", err)
		}
		created[id] = v
		unacked = append(unacked, id)
	}

	const rounds = 3
	for round := range rounds {
		delay := time.Duration(30+rng.IntN(400)) * time.Millisecond
		kill := time.AfterFunc(delay, srv.kill)
		syncs, failed := 0, 0
		for alive := true; alive; {
			select {
			case <-srv.exited:
				alive = false
			default:
			}
			for range 1 + rng.IntN(4) {
				write(fmt.Sprintf("r%d", round))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err := r.Sync(ctx)
			cancel()
			settle()
			if err == nil {
				syncs++
				if len(unacked) != 0 {
					t.Fatalf("Sync returned nil with %d writes not acknowledged", len(unacked))
				}
			} else {
				failed++
			}
		}
		kill.Stop()
		for range 1 + rng.IntN(3) {
			write("offline")
		}
		t.Logf("round %d: killed after %v; %d rounds completed, %d failed; %d writes, %d acknowledged, %d not",
			round, delay, syncs, failed, len(created), len(acked), len(unacked))

		srv = startServer(t, dir, srv.addr)
		if err := r.Configure(srv.url, user, token); err != nil {
			t.Fatal(err)
		}
		// Before the replica says anything: what was acknowledged is there.
		got := serverEvents(t, srv.url, token)
		for id := range acked {
			if v, ok := got[id]; !ok || v != created[id] {
				t.Fatalf("round %d: acknowledged event %s is %q (present %v) on the restarted server, want %s", round, id, v, ok, created[id])
			}
		}
		for id := range got {
			if _, ok := created[id]; !ok {
				t.Fatalf("round %d: the server holds event %s that the replica never wrote", round, id)
			}
		}
	}
	syncUntilClean(t, r)
	settle()
	got := serverEvents(t, srv.url, token)
	sameEvents(t, "server events after the final sync", got, created)
	sameEvents(t, "replica events after the final sync", localEvents(t, r), got)
}

// TestServerKilledDuringInitialSyncResumes kills the server process
// (twice) in the middle of a replica's initial download, restarts it on the
// same data each time, and checks that the replica resumes from its cursor
// (no applied batch is fetched again) and ends with exactly the server's
// events.
func TestServerKilledDuringInitialSyncResumes(t *testing.T) {
	rng := newRNG(t)
	n := sized(20_000, 8_000)
	dir := t.TempDir()
	f := openFixture(t, dir)
	f.seedEvents(n)
	token := f.token
	f.close()

	srv := startServer(t, dir, "")
	want := serverEvents(t, srv.url, token)
	if len(want) != n {
		t.Fatalf("server holds %d events, want %d", len(want), n)
	}
	r := openReplica(t, t.TempDir(), srv.url, token)
	total := 0 // items applied over all rounds
	for round := 0; round < 2; round++ {
		remaining := n + 1 - total // the channel is the +1
		threshold := remaining/10 + rng.IntN(remaining*3/10)
		jitter := time.Duration(rng.IntN(60)) * time.Millisecond
		sub := r.Subscribe()
		stop := make(chan struct{})
		kill := srv.kill
		go func() {
			seen := 0
			for {
				select {
				case <-sub:
					if seen++; seen == threshold {
						time.AfterFunc(jitter, kill)
					}
				case <-stop:
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		res, err := r.Sync(ctx)
		cancel()
		close(stop)
		total += res.Applied
		if err == nil {
			if round == 0 {
				t.Fatalf("the initial sync completed (%d items) although the server was killed after %d", res.Applied, threshold)
			}
			// The kill may still be on its way: make it certain, then
			// restart, so that the last round runs against a live server.
			t.Logf("round %d completed (%d items) before the kill after %d took effect", round, res.Applied, threshold)
			srv.rest()
			srv = startServer(t, dir, srv.addr)
			if err := r.Configure(srv.url, user, token); err != nil {
				t.Fatal(err)
			}
			break
		}
		srv.rest()
		st, _ := r.Status()
		t.Logf("round %d: server killed %v after %d of %d remaining items: round applied %d, replica holds %d events, cursor %+v (%v)",
			round, jitter, threshold, remaining, res.Applied, len(localEvents(t, r)), st.Cursor, err)
		if res.Applied == 0 && round == 0 {
			t.Fatalf("interrupted round applied nothing")
		}
		srv = startServer(t, dir, srv.addr)
		if err := r.Configure(srv.url, user, token); err != nil {
			t.Fatal(err)
		}
	}
	total += mustSync(t, r).Applied
	// §4.1.6: a batch applied is never fetched again (the channel is the +1).
	if total != n+1 {
		t.Fatalf("items applied over all rounds: %d, want %d", total, n+1)
	}
	sameEvents(t, "server events after the restarts", serverEvents(t, srv.url, token), want)
	sameEvents(t, "replica events after resuming", localEvents(t, r), want)
	if st, err := r.Status(); err != nil || st.Pending != 0 || st.Rejections != 0 {
		t.Fatalf("status after resuming: %+v, %v", st, err)
	}
}

// TestReplicaKilledDuringApplyRecovers kills a replica process (twice) while
// it applies a large initial download, reopens its directory after each
// kill, and checks that its content matches its cursor exactly (each batch
// applied whole or not at all, with the cursor), then that one more Sync
// makes it equal to the server.
func TestReplicaKilledDuringApplyRecovers(t *testing.T) {
	rng := newRNG(t)
	n := sized(20_000, 6_000)
	f := openFixture(t, "")
	f.seedEvents(n)
	seqs := f.eventSeqs()
	want := serverEvents(t, f.ts.URL, f.token)
	if len(want) != n || len(seqs) != n {
		t.Fatalf("server holds %d events (%d in the store), want %d", len(want), len(seqs), n)
	}

	dir := t.TempDir()
	held := 0
	for round := 0; round < 2; round++ {
		c := startChild(t, "TestHelperReplicaProcess", envMode+"=download", envDir+"="+dir, envURL+"="+f.ts.URL, envToken+"="+f.token)
		c.await("READY", time.Minute, nil)
		remaining := n + 1 - held
		threshold := remaining/10 + rng.IntN(remaining*4/10)
		jitter := time.Duration(rng.IntN(80)) * time.Millisecond
		applied := 0
		for applied < threshold {
			line := c.await("APPLIED ", 2*time.Minute, func(l string) {
				if l == "DONE" {
					t.Fatalf("round %d: the replica finished its download before being killed (threshold %d)", round, threshold)
				}
			})
			applied, _ = strconv.Atoi(strings.TrimPrefix(line, "APPLIED "))
		}
		time.Sleep(jitter)
		c.kill()
		c.rest()

		r := openReplica(t, dir, "", "")
		st, err := r.Status()
		if err != nil {
			t.Fatalf("round %d: status after the kill: %v", round, err)
		}
		local := localEvents(t, r)
		t.Logf("round %d: replica killed %v after %d applied items (threshold %d of %d remaining): holds %d events, cursor %+v",
			round, jitter, applied, threshold, remaining, len(local), st.Cursor)
		if len(local) < held+applied-1 { // the channel is among the applied items
			t.Fatalf("round %d: replica holds %d events after reporting %d more items committed (held %d)", round, len(local), applied, held)
		}
		if st.Pending != 0 || st.Rejections != 0 {
			t.Fatalf("round %d: status after the kill: %+v, want nothing pending", round, st)
		}
		// Content and cursor agree: exactly the server's events up to the cursor.
		upTo := map[string]string{}
		if st.Cursor != nil {
			for id, seq := range seqs {
				if seq <= st.Cursor.Seq {
					upTo[id] = want[id]
				}
			}
		}
		sameEvents(t, fmt.Sprintf("round %d: replica events after the kill (server events up to its cursor)", round), local, upTo)
		held = len(local) + 1
		if round == 0 {
			r.Close() // the next child opens the directory
			continue
		}
		mustSync(t, r)
		sameEvents(t, "replica events after one more sync", localEvents(t, r), serverEvents(t, f.ts.URL, f.token))
		if st, err := r.Status(); err != nil || st.Pending != 0 || st.Rejections != 0 {
			t.Fatalf("status after the sync: %+v, %v", st, err)
		}
	}
}

// TestReplicaKilledDuringLocalWritesKeepsReturnedWrites kills a replica
// process between (or during) local writes and syncs, reopens its
// directory, and checks that every write whose call had returned is there,
// then reaches the server exactly once.
func TestReplicaKilledDuringLocalWritesKeepsReturnedWrites(t *testing.T) {
	rng := newRNG(t)
	f := openFixture(t, "")
	dir := t.TempDir()
	c := startChild(t, "TestHelperReplicaProcess", envMode+"=writes", envDir+"="+dir, envURL+"="+f.ts.URL, envToken+"="+f.token)
	c.await("READY", time.Minute, nil)
	delay := time.Duration(100+rng.IntN(500)) * time.Millisecond
	time.Sleep(delay)
	c.kill()
	returned := map[string]string{} // id → JSON value
	syncs := 0
	for _, line := range c.rest() {
		switch {
		case strings.HasPrefix(line, "ID "):
			var id string
			var i int
			if _, err := fmt.Sscanf(line, "ID %s %d", &id, &i); err != nil {
				t.Fatalf("bad line %q: %v", line, err)
			}
			returned[id] = fmt.Sprintf(`"w%d"`, i)
		case strings.HasPrefix(line, "SYNCED "):
			syncs++
		case strings.HasPrefix(line, "FAIL "):
			t.Fatalf("replica process: %s", line)
		}
	}
	t.Logf("replica killed after %v: %d writes returned, %d syncs", delay, len(returned), syncs)
	if len(returned) == 0 {
		t.Fatal("the replica wrote nothing before the kill")
	}

	r := openReplica(t, dir, "", "")
	local := localEvents(t, r)
	for id, v := range returned {
		if local[id] != v {
			t.Fatalf("returned write %s is %q locally after the kill, want %s", id, local[id], v)
		}
	}
	// Writes are sequential: only the one in progress at the kill may be
	// there without having returned, and then whole.
	inProgress := fmt.Sprintf(`"w%d"`, len(returned))
	extra := 0
	for id, v := range local {
		if _, ok := returned[id]; !ok {
			if extra++; extra > 1 || v != inProgress {
				t.Fatalf("unexpected local event %s = %s (the write in progress was %s)", id, v, inProgress)
			}
		}
	}
	syncUntilClean(t, r)
	got := serverEvents(t, f.ts.URL, f.token)
	for id, v := range returned {
		if got[id] != v {
			t.Fatalf("returned write %s is %q on the server after sync, want %s", id, got[id], v)
		}
	}
	sameEvents(t, "replica events after sync", localEvents(t, r), got)
}
