package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// Soak: many replica-like sync clients and HTTP writers against one server
// on loopback, for PRYVSYNC_SOAK (default 3m). Run with
//
//	PRYVSYNC_LONG=1 [PRYVSYNC_SOAK=10m] go test -run TestSoak -timeout 30m -v ./server
//
// PRYVSYNC_SOAK_PROFILES=dir also writes a heap profile at each sample.
//
// Each client keeps the state it received, acks every batch, pushes its own
// creations and edits, and drops and resumes its connection from its cursor
// now and then. At the end every client must hold exactly the server's
// state, and the process heap after GC must not have grown between the first
// and the last minute by more than a bound (a leak per connection, per
// change or per reconnect would).

const (
	soakUsers          = 4
	soakClientsPerUser = 50
	soakWritersPerUser = 2
	soakLiveTarget     = 300 // events per user the writers keep around
)

func TestSoak(t *testing.T) {
	if os.Getenv("PRYVSYNC_LONG") != "1" {
		t.Skip("soak test: set PRYVSYNC_LONG=1 (and PRYVSYNC_SOAK=duration, default 3m)")
	}
	dur := 3 * time.Minute
	if v := os.Getenv("PRYVSYNC_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PRYVSYNC_SOAK: %v", err)
		}
		dur = d
	}
	if err := raiseFileLimit(4*soakUsers*soakClientsPerUser + 500); err != nil {
		t.Skipf("not enough file descriptors: %v", err)
	}
	window := min(time.Minute, dur/3) // "first minute" and "last minute"

	c := server.DefaultConfig()
	c.AdminKey = testAdminKey
	c.PasswordCost = 4
	c.PingInterval = 5 * time.Second
	c.PeerTimeout = 15 * time.Second
	c.Logger = hclog.New(&hclog.LoggerOptions{Output: testWriter{t}, Level: hclog.Warn})
	srv, err := server.Open(c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() {
		ts.CloseClientConnections()
		ts.Close()
		srv.Close()
	}()
	e := &testEnv{t: t, srv: srv, ts: ts, url: ts.URL}

	type account struct{ user, tok, cid string }
	var accounts []account
	for i := range soakUsers {
		user := fmt.Sprintf("soak%02d", i)
		tok := e.createUser(user)
		st, v := e.doJSON("POST", "/"+user+"/channels", tok, map[string]any{"id": "diary", "name": "Diary"})
		mustStatus(t, "channel", st, v, 201)
		// Start at the live set the writers keep, so that the clients'
		// state is as large in the first window as in the last.
		var batch []map[string]any
		for j := range soakLiveTarget {
			batch = append(batch, map[string]any{"tempRefId": fmt.Sprint(j), "type": map[string]any{"class": "note", "format": "txt"},
				"value": fmt.Sprint("initial ", j), "time": 1.7e9 + float64(j)})
		}
		st, v = e.doJSON("POST", "/"+user+"/diary/events/batch", tok, batch)
		mustStatus(t, "initial events", st, v, 200)
		accounts = append(accounts, account{user, tok, "diary"})
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var (
		failMu   sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	probes := &probeBoard{started: map[string]time.Time{}, seen: map[string]int{}, worst: map[string]time.Duration{}}

	// Clients.
	var clients []*soakClient
	var clientsWG sync.WaitGroup
	var pushing atomic.Bool
	pushing.Store(true)
	for _, a := range accounts {
		for j := range soakClientsPerUser {
			cl := &soakClient{
				id: fmt.Sprintf("%s-r%03d", a.user, j), user: a.user, tok: a.tok, cid: a.cid, url: e.url,
				items: map[string]string{}, blind: map[string]string{}, probe: map[string]bool{},
				pushing: &pushing, fail: fail, probes: probes,
			}
			clients = append(clients, cl)
			clientsWG.Add(1)
			go func() { defer clientsWG.Done(); cl.run(ctx) }()
		}
	}

	// HTTP writers, and a probe per user every 2 s to time live delivery.
	var writersWG sync.WaitGroup
	wctx, stopWriters := context.WithCancel(ctx)
	var writes atomic.Int64
	for i, a := range accounts {
		for w := range soakWritersPerUser {
			writersWG.Add(1)
			go func() {
				defer writersWG.Done()
				soakWriter(wctx, e, a.user, a.tok, a.cid, rand.New(rand.NewPCG(uint64(i), uint64(w))), &writes, fail)
			}()
		}
		writersWG.Add(1)
		go func() {
			defer writersWG.Done()
			tick := time.NewTicker(2 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-tick.C:
				}
				id := model.NewID()
				probes.start(id)
				st, b := soakDo(e, "POST", "/"+a.user+"/"+a.cid+"/events", a.tok, map[string]any{
					"id": id, "type": map[string]any{"class": "note", "format": "txt"}, "value": "probe"})
				if st != 201 {
					fail("probe: %d %s", st, b)
				}
			}
		}()
	}

	// Heap and goroutines, sampled after GC.
	type sample struct {
		at         time.Duration
		heap       uint64
		goroutines int
	}
	var samples []sample
	begin := time.Now()
	every := min(10*time.Second, window/3)
	for time.Since(begin) < dur {
		time.Sleep(min(every, dur-time.Since(begin)))
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := sample{time.Since(begin), ms.HeapAlloc, runtime.NumGoroutine()}
		samples = append(samples, s)
		if dir := os.Getenv("PRYVSYNC_SOAK_PROFILES"); dir != "" {
			// Heap profiles for `go tool pprof -base`, one per sample.
			if pf, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-%04.0f.pprof", s.at.Seconds()))); err == nil {
				_ = pprof.WriteHeapProfile(pf)
				pf.Close()
			}
		}
		t.Logf("%6.1fs heap %6.1f MiB, %5d goroutines, %7d HTTP writes, probes worst %v",
			s.at.Seconds(), float64(s.heap)/(1<<20), s.goroutines, writes.Load(), probes.worstSoFar())
		failMu.Lock()
		n := len(failures)
		failMu.Unlock()
		if n > 0 {
			break
		}
	}

	// Quiesce: stop writing and pushing, then wait for every client to
	// reach the head with nothing pending.
	stopWriters()
	writersWG.Wait()
	pushing.Store(false)
	failMu.Lock()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first ones:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	failMu.Unlock()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		behind := 0
		for _, cl := range clients {
			head, err := srv.Store().Head(cl.user)
			if err != nil {
				t.Fatal(err)
			}
			if !cl.settled(head) {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d clients never caught up", behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
	failMu.Lock()
	if len(failures) > 0 {
		t.Fatalf("%d failures, first ones:\n%s", len(failures), strings.Join(failures, "\n"))
	}
	failMu.Unlock()

	// Convergence: each client's state is the server's.
	for _, a := range accounts {
		want := serverState(t, srv, a.user)
		for _, cl := range clients {
			if cl.user != a.user {
				continue
			}
			got := cl.state()
			if len(got) != len(want) {
				t.Errorf("%s holds %d items, the server %d", cl.id, len(got), len(want))
				continue
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: %s differs:\n got %s\nwant %s", cl.id, k, got[k], v)
					break
				}
			}
		}
		t.Logf("%s: %d items, all %d clients converged", a.user, len(want), soakClientsPerUser)
	}
	var pushed, reconnects, conflicts int
	for _, cl := range clients {
		pushed += cl.pushed
		reconnects += cl.sessions - 1
		conflicts += cl.conflicts
	}
	t.Logf("%v: %d HTTP writes, %d pushes (%d conflicts), %d reconnects, worst live delivery %v",
		dur, writes.Load(), pushed, conflicts, reconnects, probes.worstSoFar())
	if w := probes.worstSoFar(); w > 15*time.Second {
		t.Errorf("a change took %v to reach every client of its user", w)
	}

	// Heap: the last window's peak against the first window's.
	var first, last sample
	for _, s := range samples {
		if s.at <= window && s.heap > first.heap {
			first = s
		}
		if s.at >= dur-window && s.heap > last.heap {
			last = s
		}
	}
	// Room for the store's memtables (3 of 32 MiB), which fill and rotate
	// at their own pace, plus a fifth for the rest.
	bound := first.heap + first.heap/5 + 96<<20
	t.Logf("heap peak: first %v %.1f MiB, last %v %.1f MiB (bound %.1f MiB); goroutines %d -> %d",
		window, float64(first.heap)/(1<<20), window, float64(last.heap)/(1<<20), float64(bound)/(1<<20), first.goroutines, last.goroutines)
	if last.heap > bound {
		t.Errorf("heap grew from %.1f MiB to %.1f MiB", float64(first.heap)/(1<<20), float64(last.heap)/(1<<20))
	}
	if last.goroutines > first.goroutines+first.goroutines/5+50 {
		t.Errorf("goroutines grew from %d to %d", first.goroutines, last.goroutines)
	}
	stop()
	clientsWG.Wait()
}

// serverState is what a personal token's replica must hold: every item
// that exists, by kind/id, as JSON.
func serverState(t *testing.T, srv *server.Server, user string) map[string]string {
	out := map[string]string{}
	err := srv.Store().View(user, func(tx *store.Tx) error {
		for _, k := range []model.Kind{model.KindChannel, model.KindFolder, model.KindEvent} {
			err := tx.Items(k, func(id string, r *store.Record) (bool, error) {
				if model.Exists(r.Doc) {
					b, err := json.Marshal(r.Doc)
					out[string(k)+"/"+id] = string(b)
					return true, err
				}
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// probeBoard times how long a probe event takes to reach every client of
// its user.
type probeBoard struct {
	mu      sync.Mutex
	started map[string]time.Time
	seen    map[string]int
	worst   map[string]time.Duration
	max     time.Duration
}

func (p *probeBoard) start(id string) {
	p.mu.Lock()
	p.started[id] = time.Now()
	p.mu.Unlock()
}

func (p *probeBoard) arrived(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t0, ok := p.started[id]
	if !ok {
		return
	}
	p.max = max(p.max, time.Since(t0))
	if p.seen[id]++; p.seen[id] == soakClientsPerUser {
		delete(p.started, id)
		delete(p.seen, id)
	}
}

func (p *probeBoard) worstSoFar() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.max
	for _, t0 := range p.started { // probes some client still waits for
		if d := time.Since(t0); d > 2*time.Second {
			w = max(w, d)
		}
	}
	return w
}

// soakDo sends one JSON request; status 0 when the request itself failed
// because ctx ended.
func soakDo(e *testEnv, method, path, tok string, v any) (int, string) {
	var body []byte
	if v != nil {
		body, _ = json.Marshal(v)
	}
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(string(body)))
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// soakWriter creates, edits, trashes and deletes events over HTTP, keeping
// about soakLiveTarget of them.
func soakWriter(ctx context.Context, e *testEnv, user, tok, cid string, rng *rand.Rand, writes *atomic.Int64, fail func(string, ...any)) {
	base := "/" + user + "/" + cid + "/events"
	var live []string
	refresh := func() {
		st, b := soakDo(e, "GET", base+"?limit=1000&state=all", tok, nil)
		if st != 200 {
			fail("list: %d %.200s", st, b)
			return
		}
		var evs []map[string]any
		_ = json.Unmarshal([]byte(b), &evs)
		live = live[:0]
		for _, ev := range evs {
			if id, _ := ev["id"].(string); id != "" && ev["value"] != "probe" {
				live = append(live, id)
			}
		}
	}
	for i := 0; ctx.Err() == nil; i++ {
		if i%50 == 0 {
			refresh()
		}
		var st int
		var b string
		op := rng.IntN(100)
		switch {
		case len(live) > soakLiveTarget || (op < 15 && len(live) > 0):
			id := live[rng.IntN(len(live))]
			st, b = soakDo(e, "DELETE", base+"/"+id, tok, nil) // trash
			if st == 200 {
				st, b = soakDo(e, "DELETE", base+"/"+id, tok, nil) // delete
			}
			live = slices.DeleteFunc(live, func(s string) bool { return s == id })
			if st == 404 || st == 400 { // a client or the other writer was first
				st = 200
			}
		case op < 25 && len(live) > 0:
			id := live[rng.IntN(len(live))]
			st, b = soakDo(e, "DELETE", base+"/"+id, tok, nil) // trash only
			if st == 404 || st == 400 {
				st = 200
			}
		case op < 55 && len(live) > 0:
			id := live[rng.IntN(len(live))]
			st, b = soakDo(e, "PUT", base+"/"+id, tok, map[string]any{"value": rng.Int64(), "tags": []string{fmt.Sprint("t", rng.IntN(5))}})
			if st == 404 || st == 400 {
				st = 200
			}
		default:
			st, b = soakDo(e, "POST", base, tok, map[string]any{"type": map[string]any{"class": "note", "format": "txt"},
				"value": fmt.Sprint("w", rng.Int64()), "time": 1.7e9 + rng.Float64()*1e6, "clientData": map[string]any{"k": rng.IntN(10)}})
			if st == 201 {
				var out map[string]any
				_ = json.Unmarshal([]byte(b), &out)
				if id, _ := out["id"].(string); id != "" {
					live = append(live, id)
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		if st != 200 && st != 201 {
			fail("%s writer: %d %.300s", user, st, b)
			return
		}
		writes.Add(1)
	}
}

// soakClient is a replica-like raw sync client.
type soakClient struct {
	id, user, tok, cid, url string
	pushing                 *atomic.Bool
	fail                    func(string, ...any)
	probes                  *probeBoard

	mu        sync.Mutex
	items     map[string]string // kind/id → the item's doc as JSON (compact: 200 clients hold it)
	probe     map[string]bool   // kind/id of probe events, which the client leaves alone
	blind     map[string]string // removal id → kind/id
	key       []byte
	perm      int64 // permissions version of the last welcome
	epoch     string
	cursor    uint64
	caughtUp  bool
	rseq      uint64
	pending   *syncproto.Change
	pushed    int
	conflicts int
	sessions  int
}

func (c *soakClient) run(ctx context.Context) {
	for ctx.Err() == nil {
		life := time.Duration(10+rand.IntN(50)) * time.Second
		if err := c.session(ctx, life); err != nil && ctx.Err() == nil {
			c.fail("%s: %v", c.id, err)
			return
		}
	}
}

// settled reports whether the client holds everything up to head with no
// push pending.
func (c *soakClient) settled(head uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caughtUp && c.cursor >= head && c.pending == nil
}

func (c *soakClient) state() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.items)
}

func (c *soakClient) session(ctx context.Context, life time.Duration) error {
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	conn, _, err := websocket.Dial(dctx, strings.Replace(c.url, "http", "ws", 1)+"/"+c.user+"/sync", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {c.tok}}, Subprotocols: []string{syncproto.Subprotocol},
	})
	cancel()
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(syncproto.MaxFrameBytes)
	// The session ends after its life (an abrupt drop, as a network would)
	// unless the soak is over first.
	sctx, scancel := context.WithTimeout(ctx, life)
	defer scancel()
	send := func(m *syncproto.Message) error {
		b, err := syncproto.Encode(m)
		if err != nil {
			return err
		}
		return conn.Write(sctx, websocket.MessageBinary, b)
	}
	c.mu.Lock()
	c.sessions++
	c.caughtUp = false
	hello := &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: c.id, Clock: time.Now().UnixMilli(), PermVersion: c.perm}
	if c.epoch != "" {
		hello.Cursor = &syncproto.Cursor{Epoch: c.epoch, Seq: c.cursor}
	}
	pending := c.pending
	c.mu.Unlock()
	if err := send(&syncproto.Message{T: syncproto.TypeHello, Hello: hello}); err != nil {
		return c.ended(sctx, ctx, err)
	}
	_, b, err := conn.Read(sctx)
	if err != nil {
		return c.ended(sctx, ctx, err)
	}
	m, err := syncproto.Decode(b)
	if err != nil || m.T != syncproto.TypeWelcome {
		return fmt.Errorf("want welcome, got %v %v", m, err)
	}
	c.mu.Lock()
	c.key, c.perm = m.Welcome.Key, m.Welcome.PermVersion
	if m.Welcome.Reset != "" || m.Welcome.Rescan {
		c.mu.Unlock()
		return fmt.Errorf("unexpected reset %q / rescan", m.Welcome.Reset)
	}
	c.mu.Unlock()
	if pending != nil { // the result was lost with the last connection: replay
		if err := send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{*pending}}}); err != nil {
			return c.ended(sctx, ctx, err)
		}
	}

	// Pusher: one change at a time, every few seconds.
	pctx, pcancel := context.WithCancel(sctx)
	defer pcancel()
	go func() {
		for {
			select {
			case <-pctx.Done():
				return
			case <-time.After(time.Duration(2000+rand.IntN(8000)) * time.Millisecond):
			}
			if !c.pushing.Load() {
				continue
			}
			ch := c.nextChange()
			if ch == nil {
				continue
			}
			if send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{*ch}}}) != nil {
				return
			}
		}
	}()

	for {
		_, b, err := conn.Read(sctx)
		if err != nil {
			return c.ended(sctx, ctx, err)
		}
		m, err := syncproto.Decode(b)
		if err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		switch m.T {
		case syncproto.TypeChanges:
			c.apply(m.Changes)
			if err := send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}}); err != nil {
				return c.ended(sctx, ctx, err)
			}
		case syncproto.TypePushResult:
			if err := c.result(m.PushResult); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unexpected %s: %+v", m.T, m.Error)
		}
	}
}

// ended tells a session that ran its life (nil) from a real failure.
func (c *soakClient) ended(sctx, ctx context.Context, err error) error {
	if sctx.Err() != nil || ctx.Err() != nil {
		return nil
	}
	return err
}

// nextChange makes the client's next change (nil while one is pending):
// mostly an edit of an event it holds, sometimes a new event.
func (c *soakClient) nextChange() *syncproto.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending != nil || !c.caughtUp {
		return nil
	}
	c.rseq++
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: c.id}
	ch := &syncproto.Change{RSeq: c.rseq, Kind: string(model.KindEvent)}
	var held []string
	if rand.IntN(10) < 7 {
		for k := range c.items {
			if strings.HasPrefix(k, "event/") && !c.probe[k] {
				held = append(held, k)
				if len(held) == 20 {
					break
				}
			}
		}
	}
	if len(held) > 0 {
		ch.ID = strings.TrimPrefix(held[rand.IntN(len(held))], "event/")
		ch.Delta = crdt.Doc{Fields: map[string]crdt.Field{"value": {V: v, Val: []byte(fmt.Sprintf(`"%s-%d"`, c.id, c.rseq))}}}
	} else {
		ch.ID, ch.Create = model.NewID(), true
		ch.Delta = crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": {V: v, Val: []byte(`"` + c.cid + `"`)},
			"time":      {V: v, Val: []byte(fmt.Sprint(1.7e9 + float64(rand.IntN(1e6))))},
			"type":      {V: v, Val: []byte(`{"class":"note","format":"txt"}`)},
			"value":     {V: v, Val: []byte(fmt.Sprintf(`"%s-%d"`, c.id, c.rseq))},
		}}
	}
	c.pending = ch
	c.pushed++
	return ch
}

func (c *soakClient) result(r *syncproto.PushResult) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, res := range r.Results {
		if c.pending == nil || res.RSeq != c.pending.RSeq {
			return fmt.Errorf("result for rseq %d, pending %v", res.RSeq, c.pending)
		}
		switch res.Status {
		case syncproto.StatusOK, syncproto.StatusDuplicate:
		case syncproto.StatusConflict:
			c.conflicts++
		case syncproto.StatusRejected:
			// An edit of an event a writer deleted meanwhile is refused;
			// anything unexpected is a failure.
			if res.Error == nil || res.Error.ID == model.ErrUnexpected {
				return fmt.Errorf("push rejected: %+v", res.Error)
			}
			if c.pending.Create {
				return fmt.Errorf("creation rejected: %+v", res.Error)
			}
		default:
			return fmt.Errorf("push result status %q", res.Status)
		}
		c.pending = nil
	}
	return nil
}

func (c *soakClient) apply(b *syncproto.Changes) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, it := range b.Items {
		k := it.Kind + "/" + it.ID
		if _, had := c.items[k]; !had && it.Kind == string(model.KindEvent) {
			c.probes.arrived(it.ID)
		}
		b, _ := json.Marshal(it.Doc)
		c.items[k] = string(b)
		if string(it.Doc.Fields["value"].Val) == `"probe"` {
			c.probe[k] = true
		}
		c.blind[string(syncproto.BlindID(c.key, it.Kind, it.ID))] = k
	}
	for _, r := range b.Removals {
		if k, ok := c.blind[string(r)]; ok {
			delete(c.items, k)
			delete(c.probe, k)
			delete(c.blind, string(r))
		}
	}
	c.cursor, c.epoch, c.caughtUp = b.Cursor.Seq, b.Cursor.Epoch, b.CaughtUp
}
