package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/syncproto"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogsOfAFullRunHoldNoSecretAndOneLinePerRequest runs a full flow with
// the server logging at Trace level (SPEC §6): user creation, login, app
// token, accesses, calls with ?auth= and Authorization, a password change,
// a failed login, the notification socket, a sync session and an online
// backup. No token, session id, password or admin key may appear in the
// logs; every request has one line with user, access, duration and outcome,
// and the sync session one line with user, access, duration, items and
// outcome.
func TestLogsOfAFullRunHoldNoSecretAndOneLinePerRequest(t *testing.T) {
	logs := &lockedBuffer{}
	cfg := server.DefaultConfig()
	cfg.AdminKey = "admin-" + model.NewToken()
	cfg.PasswordCost = 4
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace, JSONFormat: true})
	srv, err := server.Open(cfg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()

	secrets := map[string]string{"admin key": cfg.AdminKey}
	requests := 0
	call := func(method, path, auth string, body any, want int) map[string]any {
		t.Helper()
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, ts.URL+path, rd)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		requests++
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: status %d, want %d: %v", method, path, resp.StatusCode, want, out)
		}
		return out
	}

	password := "pw-" + model.NewToken()[:20]
	secrets["password"] = password
	call("POST", "/system/users", cfg.AdminKey, map[string]any{"username": "alice01", "password": password, "email": "a@example.com"}, 201)
	wrong := "wrong-" + model.NewToken()[:20]
	secrets["wrong password"] = wrong
	call("POST", "/alice01/admin/login", "", map[string]any{"username": "alice01", "password": wrong, "appId": "logs-test"}, 401)
	login := call("POST", "/alice01/admin/login", "", map[string]any{"username": "alice01", "password": password, "appId": "logs-test"}, 200)
	session := login["sessionID"].(string)
	secrets["session id"] = session
	personal := call("POST", "/alice01/admin/get-app-token", session, map[string]any{"appId": "logs-test"}, 200)["id"].(string)
	secrets["personal token"] = personal
	newPassword := "new-" + model.NewToken()[:20]
	secrets["new password"] = newPassword
	call("POST", "/alice01/admin/change-password", session, map[string]any{"oldPassword": password, "newPassword": newPassword}, 200)
	call("POST", "/alice01/channels", personal, map[string]any{"id": "diary", "name": "Diary"}, 201)
	shared := call("POST", "/alice01/accesses", personal, map[string]any{"name": "share",
		"permissions": []map[string]any{{"channelId": "diary", "level": "read"}}}, 201)["token"].(string)
	secrets["shared token"] = shared
	predefined := "predefined-" + strings.ToLower(model.NewToken()[:16])
	call("POST", "/alice01/accesses", personal, map[string]any{"name": "pre", "token": predefined,
		"permissions": []map[string]any{{"channelId": "diary", "level": "contribute"}}}, 201)
	secrets["predefined token"] = predefined
	call("GET", "/alice01/channels?auth="+shared, "", nil, 200)
	call("GET", "/alice01/diary/events?auth="+predefined, "", nil, 200)
	call("GET", "/alice01/access-info", personal, nil, 200)
	call("GET", "/alice01/accesses/"+shared, personal, nil, 405)
	call("DELETE", "/alice01/accesses/"+predefined, personal, nil, 200)
	call("GET", "/alice01/channels?auth="+predefined, "", nil, 401)
	call("GET", "/alice01/admin/accesses", session, nil, 200)
	call("GET", "/system/backup", cfg.AdminKey, nil, 200)
	call("GET", "/system/backup", "wrong-"+cfg.AdminKey, nil, 401)

	// Notification socket with ?auth=.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wsURL := strings.Replace(ts.URL, "http", "ws", 1)
	sock, _, err := websocket.Dial(ctx, wsURL+"/alice01/socket?auth="+shared, nil)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	requests++

	// A sync session with a push.
	conn, _, err := websocket.Dial(ctx, wsURL+"/alice01/sync", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {personal}}, Subprotocols: []string{syncproto.Subprotocol},
	})
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	requests++
	conn.SetReadLimit(syncproto.MaxFrameBytes)
	c := &wsClient{t: t, conn: conn, ctx: ctx, items: map[string]bool{}}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: "logs-replica"}})
	c.recvType(syncproto.TypeWelcome)
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "logs-replica"}
	ev := model.NewID()
	c.send(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: ev, Create: true, Delta: crdt.Doc{Fields: map[string]crdt.Field{
			"channelId": field(v, `"diary"`), "time": field(v, "1700000000"), "type": field(v, `{"class":"note","format":"txt"}`)}}},
	}}})
	c.recvType(syncproto.TypePushResult)
	for !c.items[ev] {
		m := c.recvType(syncproto.TypeChanges)
		c.send(&syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}})
	}
	conn.Close(websocket.StatusNormalClosure, "done")
	sock.Close(websocket.StatusNormalClosure, "done")
	ts.CloseClientConnections()
	if err := srv.Close(); err != nil { // waits for the sessions to end and log
		t.Fatal(err)
	}

	out := logs.String()
	for what, secret := range secrets {
		if strings.Contains(out, secret) {
			t.Errorf("the logs hold the %s", what)
		}
	}
	var reqLines, syncLines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		switch m["@message"] {
		case "request":
			reqLines = append(reqLines, m)
		case "sync session":
			syncLines = append(syncLines, m)
		}
	}
	// The server may finish logging a hijacked connection's request just
	// after it answered, so wait for the count to settle (Close above
	// waited for the sessions themselves).
	if len(reqLines) != requests {
		t.Errorf("%d request lines for %d requests", len(reqLines), requests)
	}
	for _, m := range reqLines {
		for _, k := range []string{"method", "path", "status", "duration", "outcome", "user", "access"} {
			if _, ok := m[k]; !ok {
				t.Errorf("request line without %s: %v", k, m)
			}
		}
		path, _ := m["path"].(string)
		status, _ := m["status"].(float64)
		if strings.HasPrefix(path, "/alice01/") && status != 401 && m["user"] != "alice01" {
			t.Errorf("request line of %s without its user: %v", path, m)
		}
		if status < 400 && m["outcome"] != "ok" || status >= 400 && (m["outcome"] == "ok" || m["outcome"] == "") {
			t.Errorf("request line outcome %v for status %v", m["outcome"], status)
		}
	}
	if len(syncLines) != 1 {
		t.Fatalf("%d sync session lines, want 1:\n%s", len(syncLines), out)
	}
	sl := syncLines[0]
	for _, k := range []string{"user", "access", "duration", "items_in", "items_out", "outcome"} {
		if _, ok := sl[k]; !ok {
			t.Errorf("sync session line without %s: %v", k, sl)
		}
	}
	if sl["user"] != "alice01" || sl["access"] == "" || sl["items_in"] != float64(1) {
		t.Errorf("sync session line %v: want user alice01, its access and 1 item in", sl)
	}
}
