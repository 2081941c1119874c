package server_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// testClock is a settable clock for server.Config.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestOnlineBackupIsOffWithoutAdminKey(t *testing.T) {
	e := newEnv(t, func(c *server.Config) { c.AdminKey = "" })
	st, v := e.doJSON("GET", "/system/backup", "anything", nil)
	mustStatus(t, "backup without admin key", st, v, 404)
}

func TestOnlineBackupRefusesAWrongKey(t *testing.T) {
	e := newEnv(t)
	for _, key := range []string{"", "wrong", testAdminKey + "x"} {
		st, v := e.doJSON("GET", "/system/backup", key, nil)
		mustStatus(t, "backup with key "+key, st, v, 401)
		if got := errID(v); got != model.ErrInvalidAccessToken {
			t.Fatalf("wrong key: error %q, want invalid-access-token", got)
		}
	}
	// The key is never taken from the query string.
	st, _, _ := e.do("GET", "/system/backup?auth="+testAdminKey, "", nil)
	if st != 401 {
		t.Fatalf("admin key in the query: status %d, want 401", st)
	}
}

func TestOnlineBackupStreamsARestorableStore(t *testing.T) {
	e := newEnv(t)
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"id": "diary", "name": "Diary"})
	mustStatus(t, "create channel", st, v, 201)
	st, body, h := e.do("GET", "/system/backup", testAdminKey, nil)
	if st != 200 || h.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("backup: status %d, type %q: %s", st, h.Get("Content-Type"), body)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := store.Restore(dir, bytes.NewReader(body)); err != nil {
		t.Fatalf("restore the online backup: %v", err)
	}
	cfg := server.DefaultConfig()
	cfg.PasswordCost = 4
	srv, err := server.Open(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if srv.Store().Epoch() == e.srv.Store().Epoch() {
		t.Fatal("restored store kept the epoch")
	}
	req, _ := http.NewRequest("GET", "/alice01/channels", nil)
	req.Header.Set("Authorization", tok)
	rec := newRecorder()
	srv.ServeHTTP(rec, req)
	if rec.status != 200 || !bytes.Contains(rec.body.Bytes(), []byte(`"diary"`)) {
		t.Fatalf("restored server: channels %d %s", rec.status, rec.body.String())
	}
}

type recorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder                    { return &recorder{h: http.Header{}, status: 200} }
func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

// hello opens a sync session with cursor and returns the welcome.
func (e *testEnv) hello(t *testing.T, tok string, cursor *syncproto.Cursor) *syncproto.Welcome {
	t.Helper()
	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.conn.CloseNow()
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: "r1", Cursor: cursor}})
	m := c.recv()
	if m.T != syncproto.TypeWelcome {
		t.Fatalf("got %s, want welcome", m.T)
	}
	return m.Welcome
}

// TestCompactionResetsReplicasBelowTheFloor deletes events, lets the horizon
// pass and compacts: a replica whose cursor predates the deletions gets
// reset=horizon; one that has seen them resumes.
func TestCompactionResetsReplicasBelowTheFloor(t *testing.T) {
	clk := &testClock{t: time.Now()}
	e := newEnv(t, func(c *server.Config) {
		c.Now = clk.now
		c.TombstoneHorizon = 24 * time.Hour
		c.CompactEvery = -1
	})
	tok := e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"id": "diary", "name": "Diary"})
	mustStatus(t, "create channel", st, v, 201)
	var ids []string
	for range 5 {
		st, v := e.doJSON("POST", "/alice01/diary/events", tok, map[string]any{"type": map[string]string{"class": "note", "format": "txt"}, "value": 1})
		mustStatus(t, "create event", st, v, 201)
		ids = append(ids, v.(map[string]any)["id"].(string))
	}
	epoch := e.srv.Store().Epoch()
	oldCursor, err := e.srv.Store().Head("alice01")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		for range 2 { // trash, then delete for good
			st, v := e.doJSON("DELETE", "/alice01/diary/events/"+id, tok, nil)
			mustStatus(t, "delete event", st, v, 200)
		}
	}
	seen, _ := e.srv.Store().Head("alice01")

	// Within the horizon nothing goes.
	stats, err := e.srv.Compact(context.Background())
	if err != nil || stats.Tombstones != 0 {
		t.Fatalf("compaction within the horizon: %+v, %v", stats, err)
	}
	if w := e.hello(t, tok, &syncproto.Cursor{Epoch: epoch, Seq: oldCursor}); w.Reset != "" {
		t.Fatalf("before compaction: reset %q, want none", w.Reset)
	}

	clk.advance(25 * time.Hour)
	stats, err = e.srv.Compact(context.Background())
	if err != nil || stats.Tombstones != len(ids) {
		t.Fatalf("compaction past the horizon: %+v, %v; want %d tombstones", stats, err, len(ids))
	}
	if w := e.hello(t, tok, &syncproto.Cursor{Epoch: epoch, Seq: oldCursor}); w.Reset != syncproto.ResetHorizon {
		t.Fatalf("cursor below the floor: reset %q, want %q", w.Reset, syncproto.ResetHorizon)
	}
	if w := e.hello(t, tok, &syncproto.Cursor{Epoch: epoch, Seq: seen}); w.Reset != "" || w.Resume != seen {
		t.Fatalf("cursor past the deletions: reset %q resume %d, want none and %d", w.Reset, w.Resume, seen)
	}
	// Ids of compacted events stay reserved.
	st, v = e.doJSON("POST", "/alice01/diary/events", tok, map[string]any{"id": ids[0], "type": map[string]string{"class": "note", "format": "txt"}})
	if st != 400 || errID(v) != model.ErrItemIDAlreadyExists {
		t.Fatalf("re-creating a compacted id: %d %v, want item-id-already-exists", st, v)
	}
}

func TestScheduledCompactionRunsAndStopsOnClose(t *testing.T) {
	clk := &testClock{t: time.Now()}
	cfg := server.DefaultConfig()
	cfg.Now = clk.now
	cfg.TombstoneHorizon = time.Hour
	cfg.CompactEvery = 10 * time.Millisecond
	srv, err := server.Open(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := srv.Store()
	err = st.Update(context.Background(), "alice01", func(tx *store.Tx) error {
		return tx.PutJSON(store.KeyUserRecord("alice01"), &model.User{Username: "alice01"})
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := server.CreateAccessForTest(srv, "alice01", &model.Access{Type: model.AccessPersonal, Name: "p"})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Handler(srv)
	call := func(method, path string, body string) int {
		req, _ := http.NewRequest(method, path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", tok)
		req.Header.Set("Content-Type", "application/json")
		rec := newRecorder()
		h.ServeHTTP(rec, req)
		return rec.status
	}
	if s := call("POST", "/alice01/channels", `{"id":"diary","name":"Diary"}`); s != 201 {
		t.Fatalf("create channel: %d", s)
	}
	if s := call("DELETE", "/alice01/channels/diary", ""); s != 200 {
		t.Fatalf("trash channel: %d", s)
	}
	if s := call("DELETE", "/alice01/channels/diary", ""); s != 200 {
		t.Fatalf("delete channel: %d", s)
	}
	clk.advance(2 * time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for st.Floor("alice01") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the scheduled compaction never raised the floor")
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the compaction loop")
	}
}

// TestConfiguredLimitsAnswerTheirErrors sets every limit of SPEC §6 low
// through server.Config and checks each answers its own clear error.
func TestConfiguredLimitsAnswerTheirErrors(t *testing.T) {
	clk := &testClock{t: time.Now()}
	e := newEnv(t, func(c *server.Config) {
		c.Now = clk.now
		c.MaxBodyBytes = 200
		c.MaxAttachmentBytes = 1000
		c.MaxFrameBytes = 64 << 10
		c.MaxConnsPerUser = 1
		c.LoginFailuresPerUser = 2
		c.LoginFailuresPerAddr = 100
		c.SessionTTL = time.Hour
	})
	tok := e.createUser("alice01")

	t.Run("body", func(t *testing.T) {
		st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"name": strings.Repeat("x", 300)})
		if st != 413 || errID(v) != model.ErrPayloadTooLarge {
			t.Fatalf("body over the limit: %d %v, want 413 payload-too-large", st, v)
		}
	})
	t.Run("attachment", func(t *testing.T) {
		st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"id": "diary", "name": "Diary"})
		mustStatus(t, "create channel", st, v, 201)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormField("event")
		fw.Write([]byte(`{"type":{"class":"picture","format":"attached"}}`))
		ff, _ := mw.CreateFormFile("photo", "photo.bin")
		ff.Write(bytes.Repeat([]byte("p"), 2000))
		mw.Close()
		st, b, _ := e.do("POST", "/alice01/diary/events", tok, body.Bytes(), "Content-Type", mw.FormDataContentType())
		if st != 413 || !bytes.Contains(b, []byte(model.ErrPayloadTooLarge)) {
			t.Fatalf("attachment over the limit: %d %s, want 413 payload-too-large", st, b)
		}
	})
	t.Run("frame", func(t *testing.T) {
		c, _, err := e.dialSync(t, "alice01", tok)
		if err != nil {
			t.Fatal(err)
		}
		defer c.conn.CloseNow()
		// One byte over: small enough to be written whole before the
		// server reads its header and closes.
		_ = c.conn.Write(c.ctx, websocket.MessageBinary, bytes.Repeat([]byte{0xc1}, 64<<10+1))
		_, _, err = c.conn.Read(c.ctx)
		if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
			t.Fatalf("frame over the limit: %v (status %d), want close 1009", err, got)
		}
	})
	t.Run("connections", func(t *testing.T) {
		// The frame test's connection frees its slot when its handler
		// returns, which may be a moment after the client saw the close.
		var c *wsClient
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, _, err = e.dialSync(t, "alice01", tok); err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.conn.CloseNow()
		c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: "r1"}})
		c.recvType(syncproto.TypeWelcome)
		_, resp, err := e.dialSync(t, "alice01", tok)
		if err == nil || resp == nil || resp.StatusCode != 429 {
			t.Fatalf("connection over the limit: %v %v, want 429 at the upgrade", err, resp)
		}
	})
	t.Run("login", func(t *testing.T) {
		login := func(pw string) (int, any) {
			return e.doJSON("POST", "/alice01/admin/login", "", map[string]any{"username": "alice01", "password": pw, "appId": "a"})
		}
		for range 2 {
			if st, v := login("wrong-password"); st != 401 {
				t.Fatalf("wrong password: %d %v", st, v)
			}
		}
		if st, v := login("secret-pw"); st != 429 || errID(v) != model.ErrTooManyRequests {
			t.Fatalf("right password during the lockout: %d %v, want 429 too-many-requests", st, v)
		}
		clk.advance(61 * time.Second)
		st, v := login("secret-pw")
		mustStatus(t, "login after the minute", st, v, 200)
		ses := v.(map[string]any)["sessionID"].(string)
		st, v = e.doJSON("GET", "/alice01/admin/user-info", ses, nil)
		mustStatus(t, "session in use", st, v, 200)
		clk.advance(2 * time.Hour)
		st, v = e.doJSON("GET", "/alice01/admin/user-info", ses, nil)
		if st != 401 || errID(v) != model.ErrInvalidAccessToken {
			t.Fatalf("session past its TTL: %d %v, want 401 invalid-access-token", st, v)
		}
	})
}
