package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/pryvsync/pryvsync/cluster"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
)

const user = "alice01"

// node is one pryvsync server of the cluster.
type node struct {
	srv *server.Server
	ts  *httptest.Server
	log *cluster.Log
	url string
}

func startNode(t *testing.T, urls string) *node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := cluster.Connect(ctx, urls, cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.DefaultConfig()
	cfg.PasswordCost = 4
	cfg.Log, cfg.Blobs = l, l
	srv, err := server.Open(cfg, t.TempDir())
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	n := &node{srv: srv, ts: ts, log: l, url: ts.URL}
	t.Cleanup(n.stop)
	return n
}

// stop ends the node as a crash would for its replicas: connections cut.
func (n *node) stop() {
	if n.ts == nil {
		return
	}
	n.ts.CloseClientConnections()
	n.ts.Close()
	n.srv.Close()
	n.log.Close()
	n.ts = nil
}

// setup starts 3 NATS servers, two nodes, and a user with a personal token
// (created through node A), known to node B.
func setup(t *testing.T) (*cluster.NATS, *node, *node, string) {
	t.Helper()
	nc, err := cluster.StartNATS(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	a, b := startNode(t, nc.URLs()), startNode(t, nc.URLs())
	err = a.srv.Store().Update(context.Background(), user, func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord(user), &model.User{Username: user, Email: "a@example.com", Language: "en"})
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := server.CreateAccessForTest(a.srv, user, &model.Access{Type: model.AccessPersonal, Name: "personal"})
	if err != nil {
		t.Fatal(err)
	}
	call(t, a, "POST", "/"+user+"/channels", tok, `{"id":"diary","name":"Diary"}`, 201)
	// B follows the log: the token and the channel reach it.
	waitFor(t, "node B to know the channel", func() bool {
		st, body := do(b, "GET", "/"+user+"/channels", tok, "")
		return st == 200 && bytes.Contains(body, []byte(`"diary"`))
	})
	return nc, a, b, tok
}

func do(n *node, method, path, token, body string) (int, []byte) {
	req, _ := http.NewRequest(method, n.url+path, bytes.NewBufferString(body))
	req.Header.Set("Authorization", token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func call(t *testing.T, n *node, method, path, token, body string, want int) []byte {
	t.Helper()
	st, b := do(n, method, path, token, body)
	if st != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, st, b, want)
	}
	return b
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openReplica(t *testing.T, n *node, token string) *replica.Replica {
	t.Helper()
	r, err := replica.Open(t.TempDir(), replica.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Configure(n.url, user, token); err != nil {
		t.Fatal(err)
	}
	return r
}

func syncOnce(t *testing.T, r *replica.Replica) replica.RoundResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := r.Sync(ctx)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

func eventBody(i int) map[string]json.RawMessage {
	return map[string]json.RawMessage{
		"channelId": json.RawMessage(`"diary"`),
		"type":      json.RawMessage(`{"class":"note","format":"txt"}`),
		"value":     json.RawMessage(fmt.Sprintf(`"note %d"`, i)),
		"time":      json.RawMessage(fmt.Sprint(1_700_000_000 + i)),
	}
}

// A write through node A reaches a replica connected to node B live.
func TestAWriteOnOneNodeReachesAReplicaOnTheOtherLive(t *testing.T) {
	// Registered first, so it runs after every cleanup has stopped the
	// nodes, the replicas and the NATS servers.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	_, a, b, tok := setup(t)
	rb := openReplica(t, b, tok)
	syncOnce(t, rb)
	changes := rb.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rb.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the replica to be connected", func() bool { st, _ := rb.Status(); return st.Connected })

	out := call(t, a, "POST", "/"+user+"/diary/events", tok, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"from A"}`, 201)
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.ID == "" {
		t.Fatalf("create: %s (%v)", out, err)
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case c := <-changes:
			if c.ID != created.ID {
				continue
			}
			ev, err := rb.GetEvent(c.ID)
			if err != nil || string(ev.Value) != `"from A"` {
				t.Fatalf("the event on B's replica: %+v, %v", ev, err)
			}
			return
		case <-deadline:
			t.Fatal("node A's write did not reach the replica on node B")
		}
	}
}

// Writers on both nodes for one user: the user's sequence numbers come out
// gap-free and unique, and both nodes hold the same feed.
func TestBothNodesWritingForOneUserKeepOneLog(t *testing.T) {
	_, a, b, tok := setup(t)
	h0, err := a.srv.Store().Head(user)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 15
	var wg sync.WaitGroup
	for w := range writers {
		n := []*node{a, b}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body, _ := json.Marshal(eventBody(w*1000 + i))
				if st, out := do(n, "POST", "/"+user+"/diary/events", tok, string(body)); st != 201 {
					t.Errorf("writer %d: %d %s", w, st, out)
					return
				}
			}
		}()
	}
	wg.Wait()
	want := h0 + writers*each
	for _, n := range []*node{a, b} {
		if err := n.srv.Store().CatchUp(context.Background(), user); err != nil {
			t.Fatal(err)
		}
		if h, _ := n.srv.Store().Head(user); h != want {
			t.Fatalf("head %d, want %d", h, want)
		}
	}
	fa, fb := feed(t, a), feed(t, b)
	if fmt.Sprint(fa) != fmt.Sprint(fb) {
		t.Fatalf("the nodes' feeds differ:\n%v\n%v", fa, fb)
	}
	seen := map[uint64]bool{}
	for _, e := range fa {
		if seen[e.Seq] {
			t.Fatalf("seq %d twice", e.Seq)
		}
		seen[e.Seq] = true
	}
	for s := h0 + 1; s <= want; s++ {
		if !seen[s] {
			t.Fatalf("seq %d missing from the feed (gap): %v", s, fa)
		}
	}
}

func feed(t *testing.T, n *node) []store.FeedEntry {
	t.Helper()
	var out []store.FeedEntry
	err := n.srv.Store().View(user, func(tx *store.Tx) error {
		return tx.ReadFeed([]string{"diary", ""}, 0, func(e store.FeedEntry) (bool, error) {
			e.Raw = nil
			out = append(out, e)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// One NATS server of three dies while replicas push and another replica
// downloads everything: nothing acknowledged is lost, and both nodes end
// with every change.
func TestANATSServerDyingLosesNothingAcknowledged(t *testing.T) {
	nc, a, b, tok := setup(t)
	// History for the download to take a while.
	seeder := openReplica(t, a, tok)
	var seeded []string
	for j := range 1500 {
		id, err := seeder.CreateEvent(eventBody(10_000 + j))
		if err != nil {
			t.Fatal(err)
		}
		seeded = append(seeded, id)
	}
	syncOnce(t, seeder)

	pushers := []*replica.Replica{openReplica(t, a, tok), openReplica(t, b, tok)}
	var ids [2][]string
	for i, r := range pushers {
		for j := range 150 {
			id, err := r.CreateEvent(eventBody(i*1000 + j))
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = append(ids[i], id)
		}
	}
	downloader := openReplica(t, b, tok)
	// Rounds until a round ends clean with nothing pending: a round cut by
	// the failover is taken again, as a replica's Run would.
	untilClean := func(r *replica.Replica, what string) {
		deadline := time.Now().Add(45 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err := r.Sync(ctx)
			cancel()
			st, _ := r.Status()
			if err == nil && st.Pending == 0 {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("%s did not complete within 45 s of the failover", what)
	}
	var wg sync.WaitGroup
	for i, r := range pushers {
		wg.Add(1)
		go func() { defer wg.Done(); untilClean(r, fmt.Sprintf("pusher %d", i)) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); untilClean(downloader, "the initial download") }()
	time.Sleep(20 * time.Millisecond)
	nc.Stop(1)
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, id := range seeded {
		if _, err := downloader.GetEvent(id); err != nil {
			t.Fatalf("the download through the failover lacks %s: %v", id, err)
		}
	}
	// A fresh replica on each node downloads the whole user.
	for _, n := range []*node{a, b} {
		r := openReplica(t, n, tok)
		syncOnce(t, r)
		for i := range ids {
			for _, id := range append(ids[i], seeded...) {
				if _, err := r.GetEvent(id); err != nil {
					t.Fatalf("acknowledged event %s missing from a download through %s: %v", id, n.url, err)
				}
			}
		}
	}
}

// Node A dies; its replica moves to node B with the same token and resumes
// from its cursor: no reset, its offline writes pushed, and it converges
// with a replica that stayed on B.
func TestAReplicaMovesToTheOtherNodeAndResumes(t *testing.T) {
	_, a, b, tok := setup(t)
	ra, rb := openReplica(t, a, tok), openReplica(t, b, tok)
	for i := range 30 {
		if _, err := ra.CreateEvent(eventBody(i)); err != nil {
			t.Fatal(err)
		}
	}
	syncOnce(t, ra)
	before, _ := ra.Status()
	a.stop()
	// Offline writes while it moves.
	for i := range 5 {
		if _, err := ra.CreateEvent(eventBody(100 + i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ra.Configure(b.url, user, tok); err != nil {
		t.Fatal(err)
	}
	res := syncOnce(t, ra)
	if res.Pushed != 5 {
		t.Fatalf("round on node B: %+v, want the 5 offline writes pushed", res)
	}
	after, _ := ra.Status()
	if after.Cursor == nil || before.Cursor == nil || after.Cursor.Epoch != before.Cursor.Epoch || after.Cursor.Seq != before.Cursor.Seq+5 {
		t.Fatalf("cursor %+v on A, %+v on B: want the same epoch, 5 further", before.Cursor, after.Cursor)
	}
	if res.Applied > 5 {
		t.Fatalf("node B sent %d items: the replica downloaded again instead of resuming", res.Applied)
	}
	syncOnce(t, rb)
	la, _ := ra.ListEvents(replica.Filter{})
	lb, _ := rb.ListEvents(replica.Filter{})
	if len(la) != 35 || len(la) != len(lb) {
		t.Fatalf("the replicas hold %d and %d events, want 35 each", len(la), len(lb))
	}
	for i := range la {
		if la[i].ID != lb[i].ID || la[i].Modified != lb[i].Modified {
			t.Fatalf("the replicas differ at %d: %+v vs %+v", i, la[i], lb[i])
		}
	}
}

// An attachment uploaded through node A is served by node B, from the
// replicated object store, byte for byte.
func TestAnAttachmentUploadedOnOneNodeIsServedByTheOther(t *testing.T) {
	_, a, b, tok := setup(t)
	photo := bytes.Repeat([]byte("\x89PNG not really "), 4096)
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	ev, _ := w.CreateFormField("event")
	ev.Write([]byte(`{"type":{"class":"picture","format":"attached"},"time":10}`))
	fw, _ := w.CreateFormFile("photo", "photo.png")
	fw.Write(photo)
	w.Close()
	req, _ := http.NewRequest("POST", a.url+"/"+user+"/diary/events", &buf)
	req.Header.Set("Authorization", tok)
	req.Header.Set("Content-Type", w.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID string `json:"id"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != 201 || created.ID == "" {
		t.Fatalf("upload through A: %d %+v", resp.StatusCode, created)
	}
	path := "/" + user + "/diary/events/" + created.ID + "/photo"
	var got []byte
	waitFor(t, "node B to serve the attachment", func() bool {
		var st int
		st, got = do(b, "GET", path, tok, "")
		return st == 200
	})
	if !bytes.Equal(got, photo) {
		t.Fatalf("node B served %d bytes that differ from the %d uploaded", len(got), len(photo))
	}
}

func TestRedactDropsCredentials(t *testing.T) {
	got := cluster.Redact("nats://user:secret@n1:4222, nats://n2:4222,nats://tok@n3:4222,admin:hunter2@n4:4222")
	if strings.Contains(got, "secret") || strings.Contains(got, "tok@") || strings.Contains(got, "hunter2") ||
		!strings.Contains(got, "n1:4222") || !strings.Contains(got, "n3:4222") || !strings.Contains(got, "n4:4222") {
		t.Fatalf("Redact: %s", got)
	}
}
