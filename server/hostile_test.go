package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// Hostile and overload inputs (SPEC §3.5, §4.2, §6, §7): every refusal has
// its status or close code, the server stays up for everybody else, and
// nothing refused changes stored data.

// wsDial opens /{user}/{what} ("sync" or "socket") offering protos.
func wsDial(e *testEnv, user, what, token string, protos ...string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return websocket.Dial(ctx, strings.Replace(e.url, "http", "ws", 1)+"/"+user+"/"+what, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {token}}, Subprotocols: protos,
	})
}

// mustDialSync opens a sync connection that the test's end closes.
func mustDialSync(t *testing.T, e *testEnv, user, token string) *websocket.Conn {
	t.Helper()
	conn, _, err := wsDial(e, user, "sync", token, syncproto.Subprotocol)
	if err != nil {
		t.Fatalf("dial sync: %v", err)
	}
	conn.SetReadLimit(syncproto.MaxFrameBytes)
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

func frameOf(t testing.TB, m *syncproto.Message) []byte {
	t.Helper()
	b, err := syncproto.Encode(m)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

func helloFrame(t testing.TB, replica string) []byte {
	return frameOf(t, &syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: replica}})
}

// writeFrame sends one binary frame. The server may already have closed,
// so an error is only returned, for callers that expect success.
func writeFrame(conn *websocket.Conn, b []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return conn.Write(ctx, websocket.MessageBinary, b)
}

// readMsg reads one sync message.
func readMsg(t *testing.T, conn *websocket.Conn) *syncproto.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	m, err := syncproto.Decode(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return m
}

// closeStatus reads until the server ends the connection and returns its
// close code (-1: it ended without one) and the error messages it sent.
func closeStatus(t *testing.T, conn *websocket.Conn, within time.Duration) (websocket.StatusCode, []*syncproto.Error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	var errs []*syncproto.Error
	for {
		_, b, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the server did not close the connection within %v", within)
			}
			return websocket.CloseStatus(err), errs
		}
		if m, err := syncproto.Decode(b); err == nil && m.T == syncproto.TypeError {
			errs = append(errs, m.Error)
		}
	}
}

// upgradeRefusal returns the status and error id of a refused upgrade.
func upgradeRefusal(t *testing.T, resp *http.Response, err error) (int, string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the upgrade succeeded, want a refusal")
	}
	if resp == nil {
		t.Fatalf("the upgrade failed without an HTTP answer: %v", err)
	}
	var e struct {
		ID string `json:"id"`
	}
	if resp.Body != nil {
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &e)
	}
	return resp.StatusCode, e.ID
}

// liveReplica is a well-behaved sync client: it reads everything, acks
// every batch and records when each item first arrived.
type liveReplica struct {
	conn *websocket.Conn
	done chan struct{}

	mu       sync.Mutex
	seen     map[string]time.Time
	caughtUp bool
	err      error
}

func startLiveReplica(t *testing.T, e *testEnv, user, tok, replica string) *liveReplica {
	t.Helper()
	conn := mustDialSync(t, e, user, tok)
	if err := writeFrame(conn, helloFrame(t, replica)); err != nil {
		t.Fatalf("hello: %v", err)
	}
	if m := readMsg(t, conn); m.T != syncproto.TypeWelcome {
		t.Fatalf("got %q, want welcome", m.T)
	}
	r := &liveReplica{conn: conn, done: make(chan struct{}), seen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.done)
		for {
			_, b, err := conn.Read(ctx)
			if err == nil {
				var m *syncproto.Message
				if m, err = syncproto.Decode(b); err == nil && m.T == syncproto.TypeChanges {
					now := time.Now()
					r.mu.Lock()
					for _, it := range m.Changes.Items {
						if _, ok := r.seen[it.ID]; !ok {
							r.seen[it.ID] = now
						}
					}
					r.caughtUp = r.caughtUp || m.Changes.CaughtUp
					r.mu.Unlock()
					err = conn.Write(ctx, websocket.MessageBinary, frameOf(t, &syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: m.Changes.Cursor}}))
				}
			}
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); conn.CloseNow(); <-r.done })
	deadline := time.Now().Add(10 * time.Second)
	for !r.isCaughtUp() {
		if time.Now().After(deadline) {
			t.Fatalf("replica %s never caught up", replica)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

func (r *liveReplica) isCaughtUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.caughtUp
}

// arrival waits up to within for id and returns when it arrived.
func (r *liveReplica) arrival(id string, within time.Duration) (time.Time, error) {
	deadline := time.Now().Add(within)
	for {
		r.mu.Lock()
		at, ok := r.seen[id]
		err := r.err
		r.mu.Unlock()
		switch {
		case ok:
			return at, nil
		case err != nil:
			return time.Time{}, fmt.Errorf("the replica's connection ended: %w", err)
		case time.Now().After(deadline):
			return time.Time{}, fmt.Errorf("%s did not arrive within %v", id, within)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// mustStayLive checks that the server answers and that r still receives a
// change written over HTTP.
func mustStayLive(t *testing.T, f *actFixture, r *liveReplica, cid string) {
	t.Helper()
	if st, _, _ := f.do("GET", "/healthz", "", nil); st != 200 {
		t.Fatalf("healthz: %d", st)
	}
	id := f.event(cid, map[string]any{"value": "still live?"})
	if _, err := r.arrival(id, 10*time.Second); err != nil {
		t.Fatalf("healthy replica: %v", err)
	}
}

// storedState is everything stored for user that a request could change:
// each channel, folder and event with its versions, and the content files
// (temporary upload files included).
func storedState(t testing.TB, e *testEnv, user string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := e.srv.Store().View(user, func(tx *store.Tx) error {
		for _, k := range []model.Kind{model.KindChannel, model.KindFolder, model.KindEvent} {
			err := tx.Items(k, func(id string, r *store.Record) (bool, error) {
				b, err := json.Marshal(r)
				out[string(k)+"/"+id] = string(b)
				return true, err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the store: %v", err)
	}
	dir := filepath.Join(e.srv.Store().FilesDir(), user)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			out["file/"+d.Name()] = ""
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list content files: %v", err)
	}
	return out
}

// mustBeUnchanged fails with the differences between two storedStates.
func mustBeUnchanged(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	if reflect.DeepEqual(before, after) {
		return
	}
	var diff []string
	for k, v := range after {
		if w, ok := before[k]; !ok {
			diff = append(diff, "added "+k)
		} else if w != v {
			diff = append(diff, "changed "+k+": "+w+" -> "+v)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			diff = append(diff, "removed "+k)
		}
	}
	sort.Strings(diff)
	t.Fatalf("%s changed stored data:\n%s", what, strings.Join(diff, "\n"))
}

func TestOversizedSyncFrameCloses1009AndOthersCarryOn(t *testing.T) {
	const limit = 8 << 10
	f := newActFixture(t, func(c *server.Config) { c.MaxFrameBytes = limit })
	cid := f.channel("Diary")
	f.event(cid, map[string]any{"value": "before"})
	healthy := startLiveReplica(t, f.testEnv, f.user, f.tok, "healthy")
	before := storedState(t, f.testEnv, f.user)

	// A push whose frame is just over the limit: valid msgpack, too big.
	bigPush := func(size int) []byte {
		id := model.NewID()
		d := docOf(map[string]string{"channelId": `"` + cid + `"`})
		frame := func(pad int) []byte {
			d.Fields["value"] = crdt.Field{V: d.Fields["time"].V, Val: []byte(`"` + strings.Repeat("x", pad) + `"`)}
			return frameOf(t, &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
				{RSeq: 1, Kind: "event", ID: id, Create: true, Delta: d}}}})
		}
		b := frame(size - 1024)
		b = frame(size - 1024 + size - len(b))
		if len(b) != size {
			t.Fatalf("test bug: push frame of %d bytes, want %d", len(b), size)
		}
		return b
	}
	garbage := func(n int) []byte { return bytes.Repeat([]byte{0xc1}, n) } // 0xc1: never used in msgpack
	cases := []struct {
		name       string
		afterHello bool
		frame      []byte
		want       websocket.StatusCode
	}{
		{"one byte over, before hello", false, garbage(limit + 1), syncproto.CloseTooBig},
		{"a megabyte, before hello", false, garbage(1 << 20), syncproto.CloseTooBig},
		{"a valid push one byte over, after hello", true, bigPush(limit + 1), syncproto.CloseTooBig},
		{"a megabyte, after hello", true, garbage(1 << 20), syncproto.CloseTooBig},
		{"exactly the limit is read, then refused as malformed", true, garbage(limit), syncproto.CloseMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := mustDialSync(t, f.testEnv, f.user, f.tok)
			if c.afterHello {
				if err := writeFrame(conn, helloFrame(t, "r-"+model.NewID())); err != nil {
					t.Fatal(err)
				}
				if m := readMsg(t, conn); m.T != syncproto.TypeWelcome {
					t.Fatalf("got %q, want welcome", m.T)
				}
			}
			_ = writeFrame(conn, c.frame)
			if code, _ := closeStatus(t, conn, 10*time.Second); code != c.want {
				t.Fatalf("close code %d, want %d", code, c.want)
			}
		})
	}
	mustBeUnchanged(t, "oversized frames", before, storedState(t, f.testEnv, f.user))
	mustStayLive(t, f, healthy, cid)
}

// docOf is an event delta with the given JSON field values, a type and a
// time unless given.
func docOf(fields map[string]string) (d crdt.Doc) {
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "hostile"}
	d.Fields = map[string]crdt.Field{}
	for k, val := range fields {
		d.Fields[k] = field(v, val)
	}
	if _, ok := fields["type"]; !ok {
		d.Fields["type"] = field(v, `{"class":"note","format":"txt"}`)
	}
	if _, ok := fields["time"]; !ok {
		d.Fields["time"] = field(v, "1700000000")
	}
	return d
}

func TestOversizedJSONBodyIs413(t *testing.T) {
	const limit = 4 << 10
	f := newActFixture(t, func(c *server.Config) { c.MaxBodyBytes = limit })
	cid := f.channel("Diary")
	eid := f.event(cid, map[string]any{"value": "before"})
	before := storedState(t, f.testEnv, f.user)
	pad := strings.Repeat("x", limit)
	ev := `{"type":{"class":"note","format":"txt"},"value":"` + pad + `"}`
	form := "_json=" + url.QueryEscape(ev)
	cases := []struct {
		name, method, path, ctype, body string
	}{
		{"channel", "POST", "/channels", "application/json", `{"name":"` + pad + `"}`},
		{"event", "POST", "/" + cid + "/events", "application/json", ev},
		{"event update", "PUT", "/" + cid + "/events/" + eid, "application/json", `{"value":"` + pad + `"}`},
		{"batch", "POST", "/" + cid + "/events/batch", "application/json", `[` + ev + `]`},
		{"start", "POST", "/" + cid + "/events/start", "application/json", ev},
		{"folder", "POST", "/" + cid + "/folders", "application/json", `{"name":"` + pad + `"}`},
		{"browser form", "POST", "/" + cid + "/events", "application/x-www-form-urlencoded", form},
		{"browser form update", "POST", "/" + cid + "/events/" + eid, "application/x-www-form-urlencoded", "_method=PUT&" + form},
		{"far over, no length known in advance", "POST", "/" + cid + "/events", "application/json", `{"value":"` + strings.Repeat(pad, 256) + `"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, b, _ := f.do(c.method, f.path(c.path), f.tok, []byte(c.body), "Content-Type", c.ctype)
			if id := errID(decodeAnswer(t, b)); st != 413 || id != model.ErrPayloadTooLarge {
				t.Fatalf("got %d %q, want 413 payload-too-large; answer %.300s", st, id, b)
			}
		})
	}
	mustBeUnchanged(t, "oversized bodies", before, storedState(t, f.testEnv, f.user))
	// Just under the limit still works.
	small := `{"type":{"class":"note","format":"txt"},"value":"` + pad[:limit-200] + `"}`
	st, b, _ := f.do("POST", f.path("/"+cid+"/events"), f.tok, []byte(small))
	if st != 201 {
		t.Fatalf("a body under the limit: %d %s", st, b)
	}
}

func TestOversizedAttachmentIs413AndNothingIsStored(t *testing.T) {
	const limit = 4 << 10
	f := newActFixture(t, func(c *server.Config) { c.MaxAttachmentBytes = limit })
	cid := f.channel("Diary")
	st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type":{"class":"note","format":"txt"}}`),
		mpPart{name: "kept", fileName: "kept.txt", body: []byte("kept content")})
	mustStatus(t, "create with a file", st, v, 201)
	eid := v.(map[string]any)["id"].(string)
	before := storedState(t, f.testEnv, f.user)

	fits := bytes.Repeat([]byte("f"), limit)     // exactly the limit: allowed
	over := bytes.Repeat([]byte("o"), limit+1)   // one byte over
	far := bytes.Repeat([]byte("F"), 64*limit+3) // far over
	cases := []struct {
		name  string
		path  string
		parts []mpPart
	}{
		{"create, one file over", "/" + cid + "/events", []mpPart{eventPart(`{"type":{"class":"note","format":"txt"}}`), {name: "a", fileName: "a.bin", body: over}}},
		{"create, a file that fits then one over", "/" + cid + "/events", []mpPart{eventPart(`{"type":{"class":"note","format":"txt"}}`), {name: "a", fileName: "a.bin", body: fits}, {name: "b", fileName: "b.bin", body: far}}},
		{"create, files before the event part", "/" + cid + "/events", []mpPart{{name: "a", fileName: "a.bin", body: fits}, {name: "b", body: over}, eventPart(`{"type":{"class":"note","format":"txt"}}`)}},
		{"add, one file over", "/" + cid + "/events/" + eid, []mpPart{{name: "a", fileName: "a.bin", body: over}}},
		{"add, a file that fits then one far over", "/" + cid + "/events/" + eid, []mpPart{{name: "a", fileName: "a.bin", body: fits}, {name: "b", fileName: "b.bin", body: far}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, v := f.upload("POST", c.path, f.tok, c.parts...)
			f.wantErr(c.name, st, v, 413, model.ErrPayloadTooLarge)
			for _, p := range c.parts {
				if p.name != "event" && f.srv.Store().HasFile(f.user, hexSum(p.body)) {
					t.Fatalf("content of part %q was kept", p.name)
				}
			}
			mustBeUnchanged(t, c.name, before, storedState(t, f.testEnv, f.user))
		})
	}

	t.Run("sync upload over the limit", func(t *testing.T) {
		conn := mustDialSync(t, f.testEnv, f.user, f.tok)
		if err := writeFrame(conn, helloFrame(t, "uploader")); err != nil {
			t.Fatal(err)
		}
		digest := hexSum(far)
		for off := 0; off < len(far); off += 2 << 10 {
			end := min(off+2<<10, len(far))
			err := writeFrame(conn, frameOf(t, &syncproto.Message{T: syncproto.TypeAttachmentPut, AttachmentPut: &syncproto.AttachmentPut{
				Digest: digest, Offset: int64(off), Data: far[off:end], Final: end == len(far)}}))
			if err != nil {
				t.Fatal(err)
			}
			if off > limit {
				break // the server has refused by now
			}
		}
		for {
			m := readMsg(t, conn)
			if m.T != syncproto.TypeAttachmentData {
				continue
			}
			if m.AttachmentData.Error == nil || m.AttachmentData.Error.ID != model.ErrPayloadTooLarge {
				t.Fatalf("upload answer %+v, want payload-too-large", m.AttachmentData)
			}
			break
		}
		if f.srv.Store().HasFile(f.user, digest) {
			t.Fatalf("the refused upload was kept")
		}
		conn.CloseNow()
		// The aborted upload's temporary file goes with the session.
		deadline := time.Now().Add(5 * time.Second)
		for {
			after := storedState(t, f.testEnv, f.user)
			if reflect.DeepEqual(before, after) || time.Now().After(deadline) {
				mustBeUnchanged(t, "refused sync upload", before, after)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	// At the limit is accepted.
	st, v = f.upload("POST", "/"+cid+"/events/"+eid, f.tok, mpPart{name: "fits", fileName: "fits.bin", body: fits})
	mustStatus(t, "an attachment of exactly the limit", st, v, 200)
	if !f.srv.Store().HasFile(f.user, hexSum(fits)) {
		t.Fatalf("accepted attachment not stored")
	}
}

// hostile frames built by hand, byte by byte (msgpack).
var (
	hostileTopArray32 = []byte{0xdd, 0xff, 0xff, 0xff, 0xff}
	hostileTopMap32   = []byte{0xdf, 0xff, 0xff, 0xff, 0xff}
	hostileStr32      = []byte{0x81, 0xa1, 't', 0xdb, 0xff, 0xff, 0xff, 0xff, 'p'}
	hostileBin32      = []byte{0x82, 0xa1, 't', 0xa4, 'p', 'u', 's', 'h', 0xa4, 'p', 'u', 's', 'h', 0xc6, 0xff, 0xff, 0xff, 0xff}
	// {"t":"push","push":{"changes": array32(2^32-1)}}
	hostilePushChanges = append([]byte{0x82, 0xa1, 't', 0xa4, 'p', 'u', 's', 'h', 0xa4, 'p', 'u', 's', 'h', 0x81,
		0xa7, 'c', 'h', 'a', 'n', 'g', 'e', 's'}, hostileTopArray32...)
	// the same inside a change's delta: {"f": map32(2^32-1)}
	hostileDelta = append([]byte{0x82, 0xa1, 't', 0xa4, 'p', 'u', 's', 'h', 0xa4, 'p', 'u', 's', 'h', 0x81,
		0xa7, 'c', 'h', 'a', 'n', 'g', 'e', 's', 0x91, 0x81, 0xa5, 'd', 'e', 'l', 't', 'a', 0x81, 0xa1, 'f'}, hostileTopMap32...)
)

func mustMsgpack(t testing.TB, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deepNest is n nested one-element arrays.
func deepNest(n int) []byte { return append(bytes.Repeat([]byte{0x91}, n), 0xc0) }

func TestMalformedSyncInputClosesOnlyThatSession(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.event(cid, map[string]any{"value": "before"})
	healthy := startLiveReplica(t, f.testEnv, f.user, f.tok, "healthy")
	before := storedState(t, f.testEnv, f.user)

	ack := frameOf(t, &syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: syncproto.Cursor{Seq: 1 << 40}}})
	push := frameOf(t, &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: model.NewID(), Create: true, Delta: docOf(map[string]string{"channelId": `"` + cid + `"`})}}}})
	hello := func(version int, replica string) []byte {
		return frameOf(t, &syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: version, Replica: replica}})
	}
	cases := []struct {
		name       string
		protos     []string
		afterHello bool
		frames     [][]byte
		want       websocket.StatusCode
	}{
		{"no subprotocol", nil, false, [][]byte{hello(1, "r")}, syncproto.CloseVersion},
		{"another subprotocol", []string{"pryvsync.v2"}, false, [][]byte{hello(1, "r")}, syncproto.CloseVersion},
		{"hello of protocol version 2", []string{syncproto.Subprotocol}, false, [][]byte{hello(2, "r")}, syncproto.CloseVersion},
		{"hello of protocol version 0", []string{syncproto.Subprotocol}, false, [][]byte{hello(0, "r")}, syncproto.CloseVersion},
		{"hello of a huge version", []string{syncproto.Subprotocol}, false, [][]byte{hello(1<<62, "r")}, syncproto.CloseVersion},
		{"hello without replica id", []string{syncproto.Subprotocol}, false, [][]byte{hello(1, "")}, syncproto.CloseMalformed},
		{"hello with a 65-byte replica id", []string{syncproto.Subprotocol}, false, [][]byte{hello(1, strings.Repeat("r", 65))}, syncproto.CloseMalformed},
		{"garbage before hello", []string{syncproto.Subprotocol}, false, [][]byte{{0xc1, 0xc1}}, syncproto.CloseMalformed},
		{"empty frame before hello", []string{syncproto.Subprotocol}, false, [][]byte{{}}, syncproto.CloseMalformed},
		{"truncated hello", []string{syncproto.Subprotocol}, false, [][]byte{hello(1, "r")[:7]}, syncproto.CloseMalformed},
		{"array32 of 2^32-1 before hello", []string{syncproto.Subprotocol}, false, [][]byte{hostileTopArray32}, syncproto.CloseMalformed},
		{"map32 of 2^32-1 before hello", []string{syncproto.Subprotocol}, false, [][]byte{hostileTopMap32}, syncproto.CloseMalformed},
		{"str32 of 2^32-1 before hello", []string{syncproto.Subprotocol}, false, [][]byte{hostileStr32}, syncproto.CloseMalformed},
		{"nested 10000 deep before hello", []string{syncproto.Subprotocol}, false, [][]byte{deepNest(10000)}, syncproto.CloseMalformed},
		{"ack before hello", []string{syncproto.Subprotocol}, false, [][]byte{ack}, syncproto.CloseMalformed},
		{"push before hello", []string{syncproto.Subprotocol}, false, [][]byte{push}, syncproto.CloseMalformed},
		{"welcome from the client", []string{syncproto.Subprotocol}, false, [][]byte{frameOf(t, &syncproto.Message{T: syncproto.TypeWelcome, Welcome: &syncproto.Welcome{}})}, syncproto.CloseMalformed},
		{"unknown type before hello", []string{syncproto.Subprotocol}, false, [][]byte{mustMsgpack(t, map[string]any{"t": "bonjour", "bonjour": map[string]any{}})}, syncproto.CloseMalformed},
		{"hello without its body", []string{syncproto.Subprotocol}, false, [][]byte{mustMsgpack(t, map[string]any{"t": "hello"})}, syncproto.CloseMalformed},
		{"hello with a second body", []string{syncproto.Subprotocol}, false, [][]byte{mustMsgpack(t, map[string]any{"t": "hello", "hello": map[string]any{"version": 1, "replica": "r"}, "ack": map[string]any{}})}, syncproto.CloseMalformed},
		{"hello with wrong field types", []string{syncproto.Subprotocol}, false, [][]byte{mustMsgpack(t, map[string]any{"t": "hello", "hello": map[string]any{"version": "one", "replica": 7}})}, syncproto.CloseMalformed},
		{"garbage after hello", []string{syncproto.Subprotocol}, true, [][]byte{{0xc1}}, syncproto.CloseMalformed},
		{"array32 of 2^32-1 as the changes of a push", []string{syncproto.Subprotocol}, true, [][]byte{hostilePushChanges}, syncproto.CloseMalformed},
		{"map32 of 2^32-1 inside a delta", []string{syncproto.Subprotocol}, true, [][]byte{hostileDelta}, syncproto.CloseMalformed},
		{"bin32 of 2^32-1 as a body", []string{syncproto.Subprotocol}, true, [][]byte{hostileBin32}, syncproto.CloseMalformed},
		{"a second hello", []string{syncproto.Subprotocol}, true, [][]byte{hello(1, "r")}, syncproto.CloseMalformed},
		{"a server message from the client", []string{syncproto.Subprotocol}, true, [][]byte{frameOf(t, &syncproto.Message{T: syncproto.TypeChanges, Changes: &syncproto.Changes{}})}, syncproto.CloseMalformed},
		{"push of too many changes", []string{syncproto.Subprotocol}, true, [][]byte{frameOf(t, &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: make([]syncproto.Change, syncproto.MaxPushChanges+1)}})}, syncproto.CloseMalformed},
		{"a valid push, then garbage", []string{syncproto.Subprotocol}, true, [][]byte{push[:len(push)-1]}, syncproto.CloseMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, _, err := wsDial(f.testEnv, f.user, "sync", f.tok, c.protos...)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.CloseNow()
			if c.afterHello {
				if err := writeFrame(conn, helloFrame(t, "r-"+model.NewID())); err != nil {
					t.Fatal(err)
				}
				if m := readMsg(t, conn); m.T != syncproto.TypeWelcome {
					t.Fatalf("got %q, want welcome", m.T)
				}
			}
			for _, fr := range c.frames {
				_ = writeFrame(conn, fr)
			}
			code, errs := closeStatus(t, conn, 10*time.Second)
			if code != c.want {
				t.Fatalf("close code %d, want %d", code, c.want)
			}
			// The close is explained in an error message, except when
			// there is no agreed protocol to explain it in.
			if slices.Contains(c.protos, syncproto.Subprotocol) && (len(errs) != 1 || errs[0].Code != int(c.want) || errs[0].ID == "") {
				t.Fatalf("error messages %+v, want one with code %d and an id", errs, c.want)
			}
		})
	}
	mustBeUnchanged(t, "malformed sync input", before, storedState(t, f.testEnv, f.user))
	mustStayLive(t, f, healthy, cid)
}

func TestSilentPeerStallsNobodyAndIsDropped(t *testing.T) {
	const peerTimeout = 6 * time.Second
	f := newActFixture(t, func(c *server.Config) {
		c.PingInterval = 500 * time.Millisecond
		c.PeerTimeout = peerTimeout
		c.MaxConnsPerUser = 4 // the healthy replica and three silent peers: a fifth is refused while they live
	})
	cid := f.channel("Diary")
	big := bytes.Repeat([]byte("0123456789abcdef"), 256<<10) // 4 MiB
	st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type":{"class":"note","format":"txt"}}`),
		mpPart{name: "big", fileName: "big.bin", body: big})
	mustStatus(t, "create with a big file", st, v, 201)
	eid := v.(map[string]any)["id"].(string)
	healthy := startLiveReplica(t, f.testEnv, f.user, f.tok, "healthy")

	// The silent peer says hello, asks for 32 MiB it will never read, and
	// never reads anything: the server's writes to it block once the
	// socket buffers are full, and it never answers a ping.
	silent := mustDialSync(t, f.testEnv, f.user, f.tok)
	silentSince := time.Now()
	if err := writeFrame(silent, helloFrame(t, "silent")); err != nil {
		t.Fatal(err)
	}
	get := frameOf(t, &syncproto.Message{T: syncproto.TypeAttachmentGet, AttachmentGet: &syncproto.AttachmentGet{EventID: eid, Digest: hexSum(big)}})
	for range 8 {
		if err := writeFrame(silent, get); err != nil {
			t.Fatal(err)
		}
	}
	// Two more: a sync peer that never says hello, and a notifications
	// socket that never reads.
	mustDialSync(t, f.testEnv, f.user, f.tok)
	silentSocket, _, err := wsDial(f.testEnv, f.user, "socket", f.tok)
	if err != nil {
		t.Fatalf("dial socket: %v", err)
	}
	defer silentSocket.CloseNow()
	_, resp, err := wsDial(f.testEnv, f.user, "sync", f.tok, syncproto.Subprotocol)
	if st, id := upgradeRefusal(t, resp, err); st != 429 || id != model.ErrTooManyRequests {
		t.Fatalf("a fifth connection while the silent ones live: %d %q, want 429 too-many-requests", st, id)
	}

	// Meanwhile a writer commits as fast as it can; every change reaches
	// the healthy replica promptly and every write completes.
	const writeFor = 2 * time.Second
	var worst time.Duration
	n := 0
	for start := time.Now(); time.Since(start) < writeFor; n++ {
		t0 := time.Now()
		st, b, _ := f.do("POST", f.path("/"+cid+"/events"), f.tok,
			[]byte(`{"type":{"class":"note","format":"txt"},"value":"`+strings.Repeat("w", 8<<10)+`"}`))
		if st != 201 {
			t.Fatalf("write %d: %d %s", n, st, b)
		}
		id := decodeAnswer(t, b).(map[string]any)["id"].(string)
		at, err := healthy.arrival(id, 5*time.Second)
		if err != nil {
			t.Fatalf("write %d: %v", n, err)
		}
		worst = max(worst, at.Sub(t0))
	}
	t.Logf("%d writes in %v while a peer was silent; slowest write-to-replica %v", n, writeFor, worst)
	if worst > 2*time.Second {
		t.Fatalf("a change took %v to reach the healthy replica", worst)
	}

	// The silent peers are dropped: their three slots free up.
	deadline := silentSince.Add(peerTimeout + 10*time.Second)
	var probes []*websocket.Conn
	for len(probes) < 3 {
		conn, resp, err := wsDial(f.testEnv, f.user, "sync", f.tok, syncproto.Subprotocol)
		if err == nil {
			defer conn.CloseNow()
			probes = append(probes, conn)
			continue
		}
		if resp == nil || resp.StatusCode != 429 {
			t.Fatalf("dial: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the silent peers still hold their slots %v after they went quiet", 3-len(probes), time.Since(silentSince))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("silent peers dropped after %v", time.Since(silentSince))
	if d := time.Since(silentSince); d < peerTimeout/2 {
		t.Fatalf("silent peers dropped after %v: sooner than the peer timeout allows", d)
	}
	mustStayLive(t, f, healthy, cid)
}

func TestConnectionsPerUserOverTheLimitAre429(t *testing.T) {
	const limit = 50
	f := newActFixture(t, func(c *server.Config) { c.MaxConnsPerUser = limit })
	bobTok := f.createUser("bob0001")
	open := make([]*websocket.Conn, 0, limit)
	defer func() {
		for _, c := range open {
			c.CloseNow()
		}
	}()
	kinds := []string{"sync", "socket"}
	dial := func(user, tok, what string) (*websocket.Conn, *http.Response, error) {
		var protos []string
		if what == "sync" {
			protos = []string{syncproto.Subprotocol}
		}
		return wsDial(f.testEnv, user, what, tok, protos...)
	}
	for i := range limit {
		c, _, err := dial(f.user, f.tok, kinds[i%2])
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		open = append(open, c)
	}
	for _, what := range kinds {
		_, resp, err := dial(f.user, f.tok, what)
		if st, id := upgradeRefusal(t, resp, err); st != 429 || id != model.ErrTooManyRequests {
			t.Fatalf("/%s connection %d: %d %q, want 429 too-many-requests", what, limit+1, st, id)
		}
	}
	// Another user is not counted against alice.
	c, _, err := dial("bob0001", bobTok, "sync")
	if err != nil {
		t.Fatalf("another user's connection: %v", err)
	}
	c.CloseNow()
	// Closing one frees one slot, for either endpoint.
	for i, what := range kinds {
		open[i].CloseNow()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, resp, err := dial(f.user, f.tok, what)
			if err == nil {
				open[i] = c
				break
			}
			if resp == nil || resp.StatusCode != 429 || time.Now().After(deadline) {
				t.Fatalf("/%s after closing one: %v", what, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		_, resp, err := dial(f.user, f.tok, kinds[1-i])
		if st, _ := upgradeRefusal(t, resp, err); st != 429 {
			t.Fatalf("the freed slot was used twice: %d", st)
		}
	}
}

// raiseFileLimit makes room for n more descriptors, or reports why not.
func raiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	want := uint64(len(entries)) + n
	if lim.Cur >= want {
		return nil
	}
	if lim.Max < want {
		return fmt.Errorf("RLIMIT_NOFILE hard limit %d < %d", lim.Max, want)
	}
	lim.Cur = want
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

func TestThousandConcurrentUpgradesAgainstTheDefaultLimit(t *testing.T) {
	const dials = 1000
	if err := raiseFileLimit(2*dials + 200); err != nil {
		t.Skipf("cannot open %d connections here: %v", dials, err)
	}
	f := newActFixture(t)
	limit := server.DefaultConfig().MaxConnsPerUser
	start := time.Now()
	var (
		mu       sync.Mutex
		conns    []*websocket.Conn
		refused  atomic.Int64
		failures []string
		wg       sync.WaitGroup
		gate     = make(chan struct{})
	)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	for i := range dials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			what, protos := "socket", []string(nil)
			if i%2 == 0 {
				what, protos = "sync", []string{syncproto.Subprotocol}
			}
			<-gate
			c, resp, err := wsDial(f.testEnv, f.user, what, f.tok, protos...)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				conns = append(conns, c)
			case resp != nil && resp.StatusCode == 429:
				refused.Add(1)
			default:
				failures = append(failures, err.Error())
			}
		}()
	}
	close(gate)
	wg.Wait()
	t.Logf("%d concurrent upgrades in %v: %d accepted, %d refused", dials, time.Since(start), len(conns), refused.Load())
	if len(failures) > 0 {
		t.Fatalf("%d dials failed otherwise, first: %s", len(failures), failures[0])
	}
	if len(conns) != limit || refused.Load() != int64(dials-limit) {
		t.Fatalf("accepted %d and refused %d, want exactly %d accepted and the rest refused with 429", len(conns), refused.Load(), limit)
	}
	// Every accepted connection is live: a change reaches the sockets.
	conns[0].CloseNow()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, resp, err := wsDial(f.testEnv, f.user, "sync", f.tok, syncproto.Subprotocol)
		if err == nil {
			conns[0] = c
			break
		}
		if resp == nil || resp.StatusCode != 429 || time.Now().After(deadline) {
			t.Fatalf("after closing one: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, resp, err := wsDial(f.testEnv, f.user, "socket", f.tok)
	if st, _ := upgradeRefusal(t, resp, err); st != 429 {
		t.Fatalf("the freed slot was used twice: %d", st)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Logf("slow: %v for %d upgrades", d, dials)
	}
}

func TestExpiredTokenMidStreamCloses4401(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.event(cid, map[string]any{"value": "visible until expiry"})
	expiresAt := time.Now().Add(1500 * time.Millisecond)
	exp := float64(expiresAt.UnixMicro()) / 1e6
	tok := f.storeAccess(f.user, &model.Access{Type: model.AccessShared, Name: "short-lived", Expires: &exp,
		Permissions: []model.Permission{{ChannelID: cid, Level: "read"}}})

	syncConn := mustDialSync(t, f.testEnv, f.user, tok)
	if err := writeFrame(syncConn, helloFrame(t, "short")); err != nil {
		t.Fatal(err)
	}
	socketConn, _, err := wsDial(f.testEnv, f.user, "socket", tok)
	if err != nil {
		t.Fatalf("dial socket: %v", err)
	}
	defer socketConn.CloseNow()

	// Nothing is written from here on: the expiry alone closes both.
	var wg sync.WaitGroup
	check := func(name string, conn *websocket.Conn, wantErrMsg bool) {
		defer wg.Done()
		code, errs := closeStatus(t, conn, 10*time.Second)
		if code != syncproto.CloseBadToken {
			t.Errorf("%s: close code %d, want %d", name, code, syncproto.CloseBadToken)
		}
		if early := time.Until(expiresAt); early > 50*time.Millisecond {
			t.Errorf("%s: closed %v before the expiry", name, early)
		}
		if late := time.Since(expiresAt); late > 3*time.Second {
			t.Errorf("%s: closed %v after the expiry", name, late)
		}
		if wantErrMsg && (len(errs) != 1 || errs[0].ID != model.ErrInvalidAccessToken) {
			t.Errorf("%s: error messages %+v, want invalid-access-token", name, errs)
		}
	}
	wg.Add(2)
	go check("sync", syncConn, true)
	go check("socket", socketConn, false)
	wg.Wait()
	_, resp, err := wsDial(f.testEnv, f.user, "sync", tok, syncproto.Subprotocol)
	if st, id := upgradeRefusal(t, resp, err); st != 401 || id != model.ErrInvalidAccessToken {
		t.Fatalf("upgrade after expiry: %d %q, want 401 invalid-access-token", st, id)
	}
}

// stalledSession opens a sync session for tok that reads MaxInFlight
// batches of a large initial download and acks none, so the server's feed
// waits for acks.
func stalledSession(t *testing.T, f *actFixture, tok string) *websocket.Conn {
	t.Helper()
	conn := mustDialSync(t, f.testEnv, f.user, tok)
	if err := writeFrame(conn, helloFrame(t, "stalled-"+model.NewID())); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, conn); m.T != syncproto.TypeWelcome {
		t.Fatalf("got %q, want welcome", m.T)
	}
	for i := 0; i < syncproto.MaxInFlight; i++ {
		if m := readMsg(t, conn); m.T != syncproto.TypeChanges || m.Changes.CaughtUp {
			t.Fatalf("batch %d: got %q (caught up: %v), want a full changes batch", i, m.T, m.Changes != nil && m.Changes.CaughtUp)
		}
	}
	return conn
}

// bigEvents fills the channel with enough data for more than MaxInFlight
// changes batches.
func bigEvents(t *testing.T, f *actFixture, cid string) {
	t.Helper()
	big := strings.Repeat("b", 200<<10)
	for range 6 * syncproto.MaxInFlight {
		f.event(cid, map[string]any{"value": big})
	}
}

func pushCreate(t *testing.T, conn *websocket.Conn, cid, id string) {
	t.Helper()
	_ = writeFrame(conn, frameOf(t, &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: id, Create: true, Delta: docOf(map[string]string{"channelId": `"` + cid + `"`})}}}}))
}

func (f *actFixture) eventStored(id string) bool {
	f.t.Helper()
	var ok bool
	err := f.srv.Store().View(f.user, func(tx *store.Tx) error {
		var err error
		_, ok, err = tx.Item(model.KindEvent, id)
		return err
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

// A replica that stops acknowledging must not keep the rights of an access
// that has since expired, been revoked or been narrowed.
func TestStalledSessionLosesItsRightsWithItsAccess(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	bigEvents(t, f, cid)
	contribute := []model.Permission{{ChannelID: cid, Level: "contribute"}}

	t.Run("expired", func(t *testing.T) {
		exp := float64(time.Now().Add(1500*time.Millisecond).UnixMicro()) / 1e6
		tok := f.storeAccess(f.user, &model.Access{Type: model.AccessShared, Name: "expiring", Expires: &exp, Permissions: contribute})
		conn := stalledSession(t, f, tok)
		time.Sleep(time.Until(time.UnixMicro(int64(exp*1e6))) + 100*time.Millisecond)
		id := model.NewID()
		pushCreate(t, conn, cid, id)
		if code, _ := closeStatus(t, conn, 10*time.Second); code != syncproto.CloseBadToken {
			t.Fatalf("close code %d, want %d", code, syncproto.CloseBadToken)
		}
		if f.eventStored(id) {
			t.Fatalf("a push after the access expired was applied")
		}
	})

	t.Run("revoked", func(t *testing.T) {
		tok := f.storeAccess(f.user, &model.Access{Type: model.AccessShared, Name: "revoked", Permissions: contribute})
		conn := stalledSession(t, f, tok)
		f.must(200, "DELETE", "/accesses/"+tok, nil)
		id := model.NewID()
		pushCreate(t, conn, cid, id)
		if code, _ := closeStatus(t, conn, 10*time.Second); code != syncproto.CloseRevoked {
			t.Fatalf("close code %d, want %d", code, syncproto.CloseRevoked)
		}
		if f.eventStored(id) {
			t.Fatalf("a push after the access was revoked was applied")
		}
	})

	t.Run("narrowed", func(t *testing.T) {
		tok := f.storeAccess(f.user, &model.Access{Type: model.AccessShared, Name: "narrowed", Permissions: contribute})
		conn := stalledSession(t, f, tok)
		f.must(200, "PUT", "/accesses/"+tok, map[string]any{"permissions": []map[string]any{{"channelId": cid, "level": "read"}}})
		id := model.NewID()
		pushCreate(t, conn, cid, id)
		for {
			m := readMsg(t, conn)
			if m.T != syncproto.TypePushResult {
				continue
			}
			if r := m.PushResult.Results[0]; r.Status != syncproto.StatusRejected || r.Error == nil || r.Error.ID != model.ErrForbidden {
				t.Fatalf("push with a narrowed access: %+v, want rejected forbidden", r)
			}
			break
		}
		if f.eventStored(id) {
			t.Fatalf("a push beyond the narrowed access was applied")
		}
	})
}

// A pushed create whose created field holds an empty value (which the
// store's encoding keeps as no value) gets the server's created stamp, and
// every reader sees the event: HTTP and a full-scope session alike.
func TestPushedEmptyCreatedIsStampedByTheServer(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	id := model.NewID()
	d := docOf(map[string]string{"channelId": `"` + cid + `"`})
	d.Fields[model.FieldCreated] = crdt.Field{V: crdt.Version{Time: time.Now().UnixMilli(), Node: "hostile"}, Val: []byte("MARKER")}
	frame := frameOf(t, &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: []syncproto.Change{
		{RSeq: 1, Kind: "event", ID: id, Create: true, Delta: d}}}})
	// Empty the value in place: the encoder never writes an empty one.
	i := bytes.Index(frame, []byte("MARKER"))
	var hacked []byte
	switch {
	case i >= 2 && frame[i-2] == 0xc4 && frame[i-1] == 6: // bin8
		hacked = append(append(append([]byte{}, frame[:i-1]...), 0), frame[i+6:]...)
	case i >= 1 && frame[i-1] == 0xa6: // fixstr
		hacked = append(append(append([]byte{}, frame[:i-1]...), 0xa0), frame[i+6:]...)
	default:
		t.Fatalf("the marker's encoding is not the expected one")
	}
	conn := mustDialSync(t, f.testEnv, f.user, f.tok)
	writeFrame(conn, helloFrame(t, "hostile-"+model.NewID()))
	for m := readMsg(t, conn); m.T != syncproto.TypeWelcome; m = readMsg(t, conn) {
	}
	if err := writeFrame(conn, hacked); err != nil {
		t.Fatal(err)
	}
	for m := readMsg(t, conn); ; m = readMsg(t, conn) {
		if m.T == syncproto.TypePushResult {
			if r := m.PushResult.Results[0]; r.Status != syncproto.StatusOK {
				t.Fatalf("push: %+v", r)
			}
			break
		}
	}
	st, out := f.call("GET", "/"+cid+"/events/"+id, nil)
	ev, _ := out.(map[string]any)
	if st != 200 || ev == nil || ev["created"] == nil {
		t.Fatalf("GET the event: %d %v", st, out)
	}
	reader := mustDialSync(t, f.testEnv, f.user, f.tok)
	writeFrame(reader, helloFrame(t, "reader-"+model.NewID()))
	found := false
	for {
		m := readMsg(t, reader)
		if m.T != syncproto.TypeChanges {
			continue
		}
		for _, it := range m.Changes.Items {
			if it.ID == id {
				found = model.Exists(it.Doc) && it.Doc.Has(model.FieldCreated)
			}
		}
		if m.Changes.CaughtUp {
			break
		}
	}
	if !found {
		t.Fatal("a full-scope session did not receive the event with its created field")
	}
}
