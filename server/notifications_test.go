package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
)

// notice is one frame of the notifications socket (SPEC §3.4, §7).
type notice struct {
	Type      string `json:"type"`
	ChannelID string `json:"channelId,omitempty"`
}

func (n notice) String() string {
	if n.ChannelID == "" {
		return n.Type
	}
	return n.Type + "{" + n.ChannelID + "}"
}

func eventsChanged(cid string) notice  { return notice{Type: "eventsChanged", ChannelID: cid} }
func foldersChanged(cid string) notice { return notice{Type: "foldersChanged", ChannelID: cid} }

var channelsChanged = notice{Type: "channelsChanged"}

// socketClient reads the frames of one notifications socket in the
// background, so a test can wait for them with a deadline.
type socketClient struct {
	t      *testing.T
	name   string
	conn   *websocket.Conn
	frames chan notice
	closed chan error // the read error that ended the connection
}

func socketURL(e *testEnv, user, token string) string {
	u := strings.Replace(e.url, "http", "ws", 1) + "/" + user + "/socket"
	if token != "" {
		u += "?auth=" + url.QueryEscape(token)
	}
	return u
}

// dialSocket opens /{user}/socket?auth=token and fails the test unless the
// upgrade succeeds.
func dialSocket(t *testing.T, e *testEnv, name, user, token string) *socketClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, socketURL(e, user, token), nil)
	if err != nil {
		st := 0
		if resp != nil {
			st = resp.StatusCode
		}
		t.Fatalf("%s: dial socket: %v (status %d)", name, err, st)
	}
	t.Cleanup(func() { conn.CloseNow() })
	c := &socketClient{t: t, name: name, conn: conn, frames: make(chan notice, 256), closed: make(chan error, 1)}
	go func() {
		for {
			typ, b, err := conn.Read(context.Background())
			if err != nil {
				c.closed <- err
				close(c.frames)
				return
			}
			var n notice
			if typ != websocket.MessageText || json.Unmarshal(b, &n) != nil || n.Type == "" {
				n = notice{Type: fmt.Sprintf("bad frame (%v) %q", typ, b)}
			}
			c.frames <- n
		}
	}()
	return c
}

// until returns the frames received before the first one equal to mark,
// failing when mark does not come within 10 s.
func (c *socketClient) until(mark notice) []notice {
	c.t.Helper()
	var got []notice
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("%s: socket closed (%v) while waiting for %v; got %v", c.name, <-c.closed, mark, got)
			}
			if n == mark {
				return got
			}
			got = append(got, n)
		case <-timeout:
			c.t.Fatalf("%s: no %v within 10 s; got %v", c.name, mark, got)
		}
	}
}

// closeStatus waits for the server to close the socket and returns the
// close code.
func (c *socketClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n, ok := <-c.frames:
			if ok {
				c.t.Logf("%s: frame before close: %v", c.name, n)
				continue
			}
			return websocket.CloseStatus(<-c.closed)
		case <-timeout:
			c.t.Fatalf("%s: socket not closed within 10 s", c.name)
		}
	}
}

func noticeStrings(list []notice) []string {
	out := make([]string, len(list))
	for i, n := range list {
		out[i] = n.String()
	}
	sort.Strings(out)
	return out
}

// notifyFixture is an account with channels A, B and a sentinel channel S
// that only the test's sentinel writes touch. After the writes under test,
// a sentinel write (an event in S) marks the end: everything a socket
// received before the sentinel's frame came from those writes, in full,
// since frames of one connection keep commit order.
type notifyFixture struct {
	*actFixture
	a, b, s string
}

func newNotifyFixture(t *testing.T, cfg ...func(*server.Config)) *notifyFixture {
	f := newActFixture(t, cfg...)
	nf := &notifyFixture{actFixture: f}
	nf.a = f.channel("Alpha")
	nf.b = f.channel("Beta")
	nf.s = f.channel("Sentinel")
	return nf
}

// settle follows a single committed write: it makes a sentinel write and
// checks that each socket received exactly want[i] (as a multiset: one frame
// per channel and kind) since the last settle.
func (f *notifyFixture) settle(what string, clients []*socketClient, want ...[]notice) {
	f.t.Helper()
	f.checkSettle(what, false, clients, want)
}

// settleAny follows several writes: the server may coalesce their frames
// (at most one per channel and kind per write), so only the set of frames
// received is checked.
func (f *notifyFixture) settleAny(what string, clients []*socketClient, want ...[]notice) {
	f.t.Helper()
	f.checkSettle(what, true, clients, want)
}

func (f *notifyFixture) checkSettle(what string, asSet bool, clients []*socketClient, want [][]notice) {
	f.t.Helper()
	f.event(f.s, map[string]any{"time": 1})
	for i, c := range clients {
		got := noticeStrings(c.until(eventsChanged(f.s)))
		w := noticeStrings(want[i])
		if asSet {
			got, w = slices.Compact(got), slices.Compact(w)
		}
		if len(got) == 0 && len(w) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, w) {
			f.t.Fatalf("%s: socket %s got %v, want exactly %v", what, c.name, got, w)
		}
	}
}

func TestSocketNotifiesEveryConnectionOfTheUserOncePerCommittedWrite(t *testing.T) {
	f := newNotifyFixture(t)
	strict := f.channel("Strict", map[string]any{"enforceNoEventsOverlap": true})
	reader := f.token(model.Permission{ChannelID: "*", Level: "read"})
	clients := []*socketClient{
		dialSocket(t, f.testEnv, "personal-1", f.user, f.tok),
		dialSocket(t, f.testEnv, "personal-2", f.user, f.tok),
		dialSocket(t, f.testEnv, "read-only", f.user, reader),
	}
	// Every socket of the user gets the same frames.
	same := func(what string, want ...notice) {
		t.Helper()
		f.settle(what, clients, want, want, want)
	}
	f.settle("nothing written yet", clients, nil, nil, nil)

	id := f.event(f.a, map[string]any{"time": 10})
	same("create event", eventsChanged(f.a))
	f.must(200, "PUT", "/"+f.a+"/events/"+id, map[string]any{"description": "edited", "tags": []any{"x"}})
	same("update event", eventsChanged(f.a))
	f.must(200, "DELETE", "/"+f.a+"/events/"+id, nil)
	same("trash event", eventsChanged(f.a))
	f.must(200, "DELETE", "/"+f.a+"/events/"+id, nil)
	same("remove event", eventsChanged(f.a))

	f.must(200, "POST", "/"+f.a+"/events/batch", []map[string]any{
		{"tempRefId": "1", "type": noteType, "time": 1},
		{"tempRefId": "2", "type": noteType, "time": 2},
		{"tempRefId": "3", "type": noteType, "folderId": "nope"},
		{"tempRefId": "4", "type": noteType, "time": 4},
	})
	same("batch of four items", eventsChanged(f.a))

	f.must(201, "POST", "/"+strict+"/events/start", map[string]any{"type": noteType, "time": 100})
	same("start", eventsChanged(strict))
	// A start that stops the running period is one write.
	f.must(201, "POST", "/"+strict+"/events/start", map[string]any{"type": noteType, "time": 200})
	same("start stopping another", eventsChanged(strict))
	f.must(200, "POST", "/"+strict+"/events/stop", map[string]any{"time": 300})
	same("stop", eventsChanged(strict))

	st, v := f.upload("POST", "/"+f.a+"/events", f.tok, eventPart(`{"type": {"class": "note", "format": "txt"}}`),
		mpPart{name: "doc", fileName: "doc.txt", body: []byte("doc")})
	mustStatus(t, "create with a file", st, v, 201)
	withFile := v.(map[string]any)["id"].(string)
	same("create with a file", eventsChanged(f.a))
	st, v = f.upload("POST", "/"+f.a+"/events/"+withFile, f.tok, mpPart{name: "more", body: []byte("more")})
	mustStatus(t, "add a file", st, v, 200)
	same("add an attachment", eventsChanged(f.a))
	f.must(200, "DELETE", "/"+f.a+"/events/"+withFile+"/doc", nil)
	same("delete an attachment", eventsChanged(f.a))

	moved := f.event(f.a, map[string]any{"time": 20})
	same("create the event to move", eventsChanged(f.a))
	f.must(200, "PUT", "/"+f.a+"/events/"+moved, map[string]any{"channelId": f.b})
	same("move to another channel", eventsChanged(f.a), eventsChanged(f.b))

	f.folder(f.a, "top", "Top", "")
	same("create folder", foldersChanged(f.a))
	f.folder(f.a, "kid", "Kid", "top")
	same("create child folder", foldersChanged(f.a))
	f.must(200, "PUT", "/"+f.a+"/folders/kid", map[string]any{"parentId": nil, "name": "Kid 2"})
	same("move folder", foldersChanged(f.a))
	f.event(f.a, map[string]any{"folderId": "kid", "time": 30})
	f.event(f.a, map[string]any{"folderId": "kid", "time": 31})
	f.settleAny("two creations", clients, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)})
	f.must(200, "DELETE", "/"+f.a+"/folders/kid", nil)
	same("trash folder", foldersChanged(f.a))
	f.must(200, "DELETE", "/"+f.a+"/folders/kid?mergeEventsWithParent=true", nil)
	same("remove folder merging its events", foldersChanged(f.a), eventsChanged(f.a))

	f.channel("Gamma")
	same("create channel", channelsChanged)
	f.must(200, "PUT", "/channels/"+f.b, map[string]any{"name": "Beta 2"})
	same("rename channel", channelsChanged)

	// Refused writes commit nothing and notify nobody.
	f.call("POST", "/"+f.a+"/events", map[string]any{"type": noteType, "folderId": "nope"})
	f.call("PUT", "/"+f.a+"/folders/top", map[string]any{"parentId": "top"})
	f.call("POST", "/"+f.a+"/events", map[string]any{"type": noteType}, reader)
	same("refused writes")
}

func TestSocketNeverNotifiesAnotherUser(t *testing.T) {
	f := newNotifyFixture(t)
	bobTok := f.createUser("bobby01")
	st, v := f.doJSON("POST", "/bobby01/channels", bobTok, map[string]any{"id": "bobs", "name": "Bob's"})
	mustStatus(t, "bob's channel", st, v, 201)
	// Bob's own channel id equals one of Alice's: only the user tells them apart.
	st, v = f.doJSON("POST", "/bobby01/channels", bobTok, map[string]any{"id": f.a, "name": "Same id"})
	mustStatus(t, "bob's twin channel", st, v, 201)
	bob := dialSocket(t, f.testEnv, "bob", "bobby01", bobTok)
	alice := dialSocket(t, f.testEnv, "alice", f.user, f.tok)

	id := f.event(f.a, map[string]any{"time": 1})
	f.folder(f.a, "fa", "Folder", "")
	f.channel("Gamma")
	f.must(200, "DELETE", "/"+f.a+"/events/"+id, nil)
	f.settleAny("alice writes", []*socketClient{alice}, []notice{eventsChanged(f.a), foldersChanged(f.a), channelsChanged, eventsChanged(f.a)})

	// Bob's sentinel: his own write must be the first thing he hears.
	st, v = f.doJSON("POST", "/bobby01/bobs/events", bobTok, map[string]any{"type": noteType})
	mustStatus(t, "bob writes", st, v, 201)
	if got := bob.until(eventsChanged("bobs")); len(got) != 0 {
		t.Fatalf("bob heard of alice's writes: %v", got)
	}
	// A token of Alice's cannot open a socket on Bob's account.
	_, resp, err := websocket.Dial(context.Background(), socketURL(f.testEnv, "bobby01", f.tok), nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("alice's token on bob's socket: err %v, resp %v", err, resp)
	}
}

func TestSocketOnlyTellsATokenOfChannelsInItsScope(t *testing.T) {
	f := newNotifyFixture(t)
	f.folder(f.a, "fa", "In A", "")
	f.folder(f.b, "fb", "In B", "")
	inA := f.event(f.a, map[string]any{"time": 1})
	inB := f.event(f.b, map[string]any{"time": 2})
	limited := f.token(model.Permission{ChannelID: f.a, Level: "read"}, model.Permission{ChannelID: f.s, Level: "read"})
	folderOnly := f.token(model.Permission{ChannelID: f.a, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("fa"), Level: "read"}}},
		model.Permission{ChannelID: f.s, Level: "read"})
	clients := []*socketClient{
		dialSocket(t, f.testEnv, "personal", f.user, f.tok),
		dialSocket(t, f.testEnv, "limited to A", f.user, limited),
		dialSocket(t, f.testEnv, "folder of A", f.user, folderOnly),
	}
	f.settle("nothing written yet", clients, nil, nil, nil)

	// Writes in B: the restricted sockets hear nothing.
	f.must(200, "PUT", "/"+f.b+"/events/"+inB, map[string]any{"description": "x"})
	f.folder(f.b, "fb2", "Another in B", "")
	f.must(200, "PUT", "/channels/"+f.b, map[string]any{"name": "Beta renamed"})
	f.must(200, "DELETE", "/channels/"+f.b, nil)
	f.channel("Gamma")
	f.must(200, "POST", "/"+f.b+"/events/batch", []map[string]any{{"tempRefId": "1", "type": noteType}})
	f.settleAny("writes outside the scope", clients,
		[]notice{eventsChanged(f.b), foldersChanged(f.b), channelsChanged},
		nil, nil)

	// Writes in A reach them, but an event outside folder fa does not
	// touch the folder-only token's scope: it hears nothing of it.
	f.must(200, "PUT", "/"+f.a+"/events/"+inA, map[string]any{"description": "x"})
	f.settle("event in A, outside fa", clients, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)}, nil)
	inFa := f.event(f.a, map[string]any{"time": 3, "folderId": "fa"})
	f.settle("event created in fa", clients, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)})
	f.must(200, "PUT", "/channels/"+f.a, map[string]any{"name": "Alpha renamed"})
	f.settle("channel A renamed", clients, []notice{channelsChanged}, []notice{channelsChanged}, []notice{channelsChanged})

	// An event leaving A for B (out of the trash first: no event moves
	// into a trashed channel): A's sockets hear of A only.
	f.must(200, "PUT", "/channels/"+f.b, map[string]any{"trashed": false})
	f.settle("B restored", clients, []notice{channelsChanged}, nil, nil)
	f.must(200, "PUT", "/"+f.a+"/events/"+inA, map[string]any{"channelId": f.b})
	f.settle("event moved from A to B", clients,
		[]notice{eventsChanged(f.a), eventsChanged(f.b)}, []notice{eventsChanged(f.a)}, nil)

	// An event leaving fa touches the folder-only scope (it was in it).
	f.must(200, "PUT", "/"+f.a+"/events/"+inFa, map[string]any{"folderId": nil})
	f.settle("event moved out of fa", clients, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)})
	// Now outside fa, its next change does not.
	f.must(200, "PUT", "/"+f.a+"/events/"+inFa, map[string]any{"description": "y"})
	f.settle("event outside fa again", clients, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)}, nil)
}

func TestSocketFollowsPermissionChangesOfItsAccess(t *testing.T) {
	f := newNotifyFixture(t)
	tok := f.must(201, "POST", "/accesses", map[string]any{"name": "Doctor",
		"permissions": []any{accPerm(f.a, "read"), accPerm(f.s, "read")}}).(map[string]any)["token"].(string)
	c := dialSocket(t, f.testEnv, "doctor", f.user, tok)
	clients := []*socketClient{c}
	f.event(f.a, map[string]any{})
	f.settle("before narrowing", clients, []notice{eventsChanged(f.a)})
	f.must(200, "PUT", "/accesses/"+tok, map[string]any{"permissions": []any{accPerm(f.s, "read")}})
	f.event(f.a, map[string]any{})
	f.settle("after narrowing", clients, nil)
	f.must(200, "PUT", "/accesses/"+tok, map[string]any{"permissions": []any{accPerm(f.b, "read"), accPerm(f.s, "read")}})
	f.event(f.b, map[string]any{})
	f.settle("after widening", clients, []notice{eventsChanged(f.b)})
}

func TestSocketRefusesABadTokenAtTheUpgrade(t *testing.T) {
	f := newNotifyFixture(t)
	expired := f.storeAccess(f.user, &model.Access{Type: model.AccessShared, Name: "expired",
		Permissions: []model.Permission{{ChannelID: "*", Level: "read"}}, Expires: ptr(float64(time.Now().Unix() - 10))})
	revoked := f.must(201, "POST", "/accesses", map[string]any{"name": "revoked", "permissions": []any{accPerm("*", "read")}}).(map[string]any)["token"].(string)
	f.must(200, "DELETE", "/accesses/"+revoked, nil)
	f.createUser("bobby01")
	bobs := f.storeAccess("bobby01", &model.Access{Type: model.AccessShared, Name: "bob's", Permissions: []model.Permission{{ChannelID: "*", Level: "read"}}})
	for name, tok := range map[string]string{
		"no token": "", "unknown token": "nope", "expired token": expired, "revoked token": revoked, "another user's token": bobs,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, resp, err := websocket.Dial(ctx, socketURL(f.testEnv, f.user, tok), nil)
		cancel()
		if err == nil {
			conn.CloseNow()
			t.Fatalf("%s: the upgrade succeeded", name)
		}
		if resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: got %v (%v), want 401", name, resp, err)
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["id"] != "invalid-access-token" {
			t.Fatalf("%s: body %v (%v), want invalid-access-token", name, body, err)
		}
		if resp.Header.Get("API-Version") == "" || resp.Header.Get("Server-Time") == "" {
			t.Fatalf("%s: refusal without API-Version/Server-Time headers: %v", name, resp.Header)
		}
	}
	// The Authorization header works like auth=.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, socketURL(f.testEnv, f.user, ""), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {f.tok}}})
	if err != nil {
		t.Fatalf("dial with the Authorization header: %v", err)
	}
	conn.CloseNow()
}

func TestSocketClosesWith4403WhenItsAccessIsRevoked(t *testing.T) {
	f := newNotifyFixture(t)
	tok := f.must(201, "POST", "/accesses", map[string]any{"name": "Doctor", "permissions": []any{accPerm("*", "read")}}).(map[string]any)["token"].(string)
	other := f.must(201, "POST", "/accesses", map[string]any{"name": "Nurse", "permissions": []any{accPerm("*", "read")}}).(map[string]any)["token"].(string)
	doomed := dialSocket(t, f.testEnv, "doctor", f.user, tok)
	kept := dialSocket(t, f.testEnv, "nurse", f.user, other)
	f.must(200, "DELETE", "/accesses/"+tok, nil)
	if got := doomed.closeStatus(); got != 4403 {
		t.Fatalf("close status: got %d, want 4403", got)
	}
	// The other access's socket lives on.
	f.settle("after the revocation", []*socketClient{kept}, nil)
}

func TestSocketClosesWith4401WhenItsAccessExpires(t *testing.T) {
	f := newNotifyFixture(t)
	exp := float64(time.Now().UnixMicro())/1e6 + 0.5
	tok := f.storeAccess(f.user, &model.Access{Type: model.AccessShared, Name: "brief",
		Permissions: []model.Permission{{ChannelID: "*", Level: "read"}}, Expires: &exp})
	c := dialSocket(t, f.testEnv, "brief", f.user, tok)
	if got := c.closeStatus(); got != 4401 {
		t.Fatalf("close status: got %d, want 4401", got)
	}
}

func TestSocketConnectionsBeyondTheLimitAreRefusedAtTheUpgrade(t *testing.T) {
	f := newNotifyFixture(t, func(c *server.Config) { c.MaxConnsPerUser = 2 })
	dialSocket(t, f.testEnv, "one", f.user, f.tok)
	dialSocket(t, f.testEnv, "two", f.user, f.tok)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, socketURL(f.testEnv, f.user, f.tok), nil)
	if err == nil {
		conn.CloseNow()
		t.Fatalf("a third connection was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: got %v (%v), want 429", resp, err)
	}
	var body map[string]any
	if json.NewDecoder(resp.Body).Decode(&body); body["id"] != "too-many-requests" {
		t.Fatalf("third connection: body %v, want too-many-requests", body)
	}
}

// A client that opens its socket and then reads the current state must not
// miss a change committed right after the upgrade answered: the
// subscription exists before the handshake completes.
func TestSocketIsSubscribedWhenTheUpgradeCompletes(t *testing.T) {
	f := newNotifyFixture(t)
	for i := 0; i < 20; i++ {
		c := dialSocket(t, f.testEnv, fmt.Sprintf("socket %d", i), f.user, f.tok)
		f.event(f.a, map[string]any{"time": i})
		if got := c.until(eventsChanged(f.a)); len(got) != 0 {
			t.Fatalf("unexpected frames before the write's: %v", got)
		}
		c.conn.Close(websocket.StatusNormalClosure, "")
	}
}

// A token limited by tags or a time frame hears of an event change only
// when the event is one it can see, before or after the change.
func TestSocketTellsATagOrTimeLimitedTokenOnlyOfEventsItSees(t *testing.T) {
	f := newNotifyFixture(t)
	private := f.event(f.a, map[string]any{"time": 100, "tags": []string{"private"}})
	tagged := f.token(model.Permission{ChannelID: f.a, Level: "read", Tags: []string{"shared"}},
		model.Permission{ChannelID: f.s, Level: "read"})
	from, to := 1000.0, 2000.0
	framed := f.token(model.Permission{ChannelID: f.a, Level: "read", TimeFrame: &model.TimeFrame{From: &from, To: &to}},
		model.Permission{ChannelID: f.s, Level: "read"})
	f.must(404, "GET", "/"+f.a+"/events/"+private, nil, tagged)
	f.must(404, "GET", "/"+f.a+"/events/"+private, nil, framed)
	clients := []*socketClient{
		dialSocket(t, f.testEnv, "tag shared", f.user, tagged),
		dialSocket(t, f.testEnv, "frame 1000-2000", f.user, framed),
	}
	f.settle("nothing written yet", clients, nil, nil)
	f.must(200, "PUT", "/"+f.a+"/events/"+private, map[string]any{"description": "secret edit"})
	f.settle("an event outside both scopes changed", clients, nil, nil)
	f.must(200, "PUT", "/"+f.a+"/events/"+private, map[string]any{"tags": []string{"shared"}})
	f.settle("the event now tagged shared", clients, []notice{eventsChanged(f.a)}, nil)
	f.must(200, "PUT", "/"+f.a+"/events/"+private, map[string]any{"time": 1500})
	f.settle("the event now in the frame", clients, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)})
	f.must(200, "PUT", "/"+f.a+"/events/"+private, map[string]any{"time": 100, "tags": []string{"private"}})
	f.settle("the event leaves both scopes", clients, []notice{eventsChanged(f.a)}, []notice{eventsChanged(f.a)})
}

// A folder-limited token hears of a folder change only when the folder is
// one it can see, or was before the change.
func TestSocketTellsAFolderLimitedTokenOnlyOfFoldersItSees(t *testing.T) {
	f := newNotifyFixture(t)
	f.folder(f.a, "fa", "In A", "")
	folderOnly := f.token(model.Permission{ChannelID: f.a, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("fa"), Level: "read"}}},
		model.Permission{ChannelID: f.s, Level: "read"})
	clients := []*socketClient{dialSocket(t, f.testEnv, "folder fa", f.user, folderOnly)}
	f.settle("nothing written yet", clients, nil)
	f.folder(f.a, "secret", "Secret plans", "")
	f.settle("a folder created outside fa", clients, nil)
	f.folder(f.a, "sub", "Below fa", "fa")
	f.settle("a folder created below fa", clients, []notice{foldersChanged(f.a)})
	f.must(200, "PUT", "/"+f.a+"/folders/sub", map[string]any{"parentId": "secret"})
	f.settle("the folder moved out of fa", clients, []notice{foldersChanged(f.a)})
	f.must(200, "PUT", "/"+f.a+"/folders/sub", map[string]any{"name": "Still secret"})
	f.settle("a folder outside fa renamed", clients, nil)
}
