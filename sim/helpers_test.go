package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// edge is a world for one edge-case test, with tapped replicas.
type edge struct {
	t    *testing.T
	w    *World
	base string
	n    int
}

func newEdge(t *testing.T, cfg ...func(*server.Config)) *edge {
	t.Helper()
	base := t.TempDir() // before the world: cleanups run last-in first-out
	return &edge{t: t, w: NewWorld(t, "", cfg...), base: base}
}

// dir returns a fresh replica directory.
func (e *edge) dir() string {
	e.n++
	return filepath.Join(e.base, fmt.Sprintf("r%d", e.n))
}

// replica opens a replica configured with token, dialing through a new
// tapped endpoint; now may be nil.
func (e *edge) replica(token string, now func() time.Time) (*replica.Replica, *Endpoint) {
	e.t.Helper()
	return e.replicaIn(e.dir(), token, now)
}

func (e *edge) replicaIn(dir, token string, now func() time.Time) (*replica.Replica, *Endpoint) {
	e.t.Helper()
	ep := e.w.Endpoint(fmt.Sprintf("ep%d", e.n))
	r, err := e.w.OpenReplica(dir, ep, now)
	if err != nil {
		e.t.Fatalf("open replica: %v", err)
	}
	if err := r.Configure(e.w.URL, User, token); err != nil {
		e.t.Fatalf("configure: %v", err)
	}
	return r, ep
}

func (e *edge) personal(name string) string {
	return e.w.StoreAccess(&model.Access{Type: model.AccessPersonal, Name: name})
}

func (e *edge) shared(name string, perms ...model.Permission) string {
	e.t.Helper()
	tok, err := e.w.CreateShared(name, perms, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func mustSync(t *testing.T, r *replica.Replica) replica.RoundResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	res, err := r.Sync(ctx)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	return res
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func noteBody(id, channel string, folder any, value string, tags ...string) map[string]json.RawMessage {
	if tags == nil {
		tags = []string{}
	}
	return Obj(map[string]any{"id": id, "channelId": channel, "folderId": folder, "value": value, "tags": tags,
		"type": map[string]string{"class": "note", "format": "txt"}, "time": float64(baseEventTime)})
}

var idN int

// eid returns a fresh event id in cuid form (deterministic per test binary).
func eid() string {
	idN++
	return fmt.Sprintf("c%024d", idN)
}

// serverDoc reads an item's stored record.
func (e *edge) serverDoc(kind model.Kind, id string) (crdt.Doc, bool) {
	e.t.Helper()
	var d crdt.Doc
	var ok bool
	err := e.w.Server().Store().View(User, func(tx *store.Tx) error {
		r, found, err := tx.Item(kind, id)
		if err != nil || !found {
			return err
		}
		d, ok = r.Doc, true
		return nil
	})
	if err != nil {
		e.t.Fatalf("read %s %s: %v", kind, id, err)
	}
	return d, ok
}

func hasEvent(r *replica.Replica, id string) bool {
	_, err := r.GetEvent(id)
	return err == nil
}

// held returns the ids of every item the replica holds.
func held(t *testing.T, r *replica.Replica) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	chs, err1 := r.ListChannels()
	fs, err2 := r.ListFolders("")
	evs, err3 := r.ListEvents(replica.Filter{State: "all"})
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatalf("list: %v", err)
	}
	for _, c := range chs {
		out[c.ID] = true
	}
	for _, f := range fs {
		out[f.ID] = true
	}
	for _, e := range evs {
		out[e.ID] = true
	}
	return out
}

// checkConverged runs the simulator's convergence check for one replica.
func (e *edge) checkConverged(r *replica.Replica, p Perms, token string) {
	e.t.Helper()
	s := &Sim{T: e.t, W: e.w, classes: map[string]int{}, started: time.Now()}
	rep := &Rep{Name: "replica", R: r, Perms: p, Token: token}
	st := e.w.Snapshot()
	s.checkConverged(rep, st)
	s.checkHTTPScope(rep, st)
	for _, f := range s.failures {
		e.t.Errorf("[%s] %s", f.class, f.detail)
	}
}

// rawClient is a hand-driven sync connection.
type rawClient struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
}

func (e *edge) raw(token string) *rawClient {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	e.t.Cleanup(cancel)
	ep := e.w.Endpoint("raw")
	conn, _, err := websocket.Dial(ctx, "ws://"+e.w.Addr+"/"+User+"/sync", &websocket.DialOptions{
		HTTPClient: ep.Client, HTTPHeader: map[string][]string{"Authorization": {token}},
		Subprotocols: []string{syncproto.Subprotocol},
	})
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	conn.SetReadLimit(syncproto.MaxFrameBytes)
	e.t.Cleanup(func() { conn.CloseNow() })
	return &rawClient{t: e.t, conn: conn, ctx: ctx}
}

func (c *rawClient) send(m *syncproto.Message) {
	c.t.Helper()
	b, err := syncproto.Encode(m)
	if err != nil {
		c.t.Fatalf("encode: %v", err)
	}
	if err := c.conn.Write(c.ctx, websocket.MessageBinary, b); err != nil {
		c.t.Fatalf("write %s: %v", m.T, err)
	}
}

// recv reads one message; a nil message and the close code when the
// server closed.
func (c *rawClient) recv() (*syncproto.Message, int) {
	c.t.Helper()
	_, b, err := c.conn.Read(c.ctx)
	if err != nil {
		return nil, int(websocket.CloseStatus(err))
	}
	m, err := syncproto.Decode(b)
	if err != nil {
		c.t.Fatalf("decode: %v", err)
	}
	return m, 0
}

// newEventChange builds a pushed creation of a note event.
func newEventChange(rseq uint64, id, channel, value string) syncproto.Change {
	p, err := model.ParsePatch(model.KindEvent, Obj(map[string]any{"channelId": channel, "value": value,
		"type": map[string]string{"class": "note", "format": "txt"}, "time": float64(baseEventTime), "folderId": nil}), true, nil)
	if err != nil {
		panic(err)
	}
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "rawclient"}
	d := p.Delta(crdt.Doc{}, v)
	model.Stamp(&d, v, float64(v.Time)/1000, "", true)
	return syncproto.Change{RSeq: rseq, Kind: string(model.KindEvent), ID: id, Create: true, Delta: d}
}

// seedEvents writes n events into channel straight through the server's
// write rule.
func (e *edge) seedEvents(channel string, n int) {
	e.t.Helper()
	clock := crdt.NewClock("seed", nil, 0)
	actor := &server.Actor{AccessID: "seed", Type: model.AccessPersonal, Scope: model.Personal()}
	for done := 0; done < n; {
		k := min(1000, n-done)
		err := e.w.Server().Store().Update(context.Background(), User, func(tx *store.Tx) error {
			for i := 0; i < k; i++ {
				v := clock.MustNow()
				d := crdt.Doc{Fields: map[string]crdt.Field{
					"channelId": {V: v, Val: model.JSONString(channel)},
					"time":      {V: v, Val: model.JSONNumber(float64(baseEventTime + done + i))},
					"type":      {V: v, Val: []byte(`{"class":"note","format":"txt"}`)},
					"value":     {V: v, Val: model.JSONString(fmt.Sprintf("seeded %d", done+i))},
				}}
				if _, err := server.ApplyChange(tx, actor, server.Change{Kind: model.KindEvent, ID: model.NewID(), Delta: d, Create: true}, clock); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			e.t.Fatalf("seed: %v", err)
		}
		done += k
	}
}
