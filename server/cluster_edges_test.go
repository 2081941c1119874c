package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// twoNodes starts two server nodes over one in-memory log; skewB shifts
// node B's wall clock (machines in a cluster never agree to the
// millisecond).
func twoNodes(t *testing.T, skewB time.Duration) (*store.MemLog, *testEnv, *testEnv) {
	t.Helper()
	log := store.NewMemLog()
	a := newEnv(t, func(c *server.Config) { c.Log, c.Blobs = log, nil })
	b := newEnv(t, func(c *server.Config) {
		c.Log, c.Blobs = log, nil
		c.Now = func() time.Time { return time.Now().Add(skewB) }
	})
	return log, a, b
}

// An update acknowledged by node B after an update acknowledged by node A
// (B's append is ordered after A's in the user's log) wins, as it would on
// one node, though B's clock lags A's: HTTP writes are stamped in the
// transaction past every version the item holds (Change.Local).
func TestALaterWriteThroughALaggingNodeWins(t *testing.T) {
	_, a, b := twoNodes(t, -30*time.Millisecond)
	tok := a.createUser("alice01")
	cid := a.create(t, tok, "/alice01/channels", map[string]any{"id": "diary", "name": "Diary"})
	id := a.create(t, tok, "/alice01/"+cid+"/events", map[string]any{"type": map[string]string{"class": "note", "format": "txt"}, "description": "v0"})

	st, v := a.doJSON("PUT", "/alice01/"+cid+"/events/"+id, tok, map[string]any{"description": "from A"})
	mustStatus(t, "PUT through A", st, v, 200)
	// B: the write comes later in real time and in log order (B catches
	// up before appending: its append is conditional on the log's last).
	// B's reads are served from its copy, which may not have applied A's
	// entries yet (OPERATIONS.md): the client reads through B once B has.
	if err := b.srv.Store().CatchUp(context.Background(), "alice01"); err != nil {
		t.Fatal(err)
	}
	st, v = b.doJSON("PUT", "/alice01/"+cid+"/events/"+id, tok, map[string]any{"description": "from B"})
	mustStatus(t, "PUT through B", st, v, 200)
	t.Logf("B answered: description=%v", v.(map[string]any)["description"])

	if err := a.srv.Store().CatchUp(context.Background(), "alice01"); err != nil {
		t.Fatal(err)
	}
	st, v = a.doJSON("GET", "/alice01/"+cid+"/events/"+id, tok, nil)
	mustStatus(t, "GET through A", st, v, 200)
	if got := v.(map[string]any)["description"]; got != "from B" {
		t.Fatalf("after PUT via A then PUT via B (both 200), description is %v, want \"from B\": B's acknowledged write was lost", got)
	}
}

// unreachableLog is a MemLog that can be cut off, as a JetStream stream
// without quorum is: appends and reads both fail.
type unreachableLog struct {
	*store.MemLog
	down atomic.Bool
}

func (l *unreachableLog) Append(ctx context.Context, user string, prev uint64, id string, data []byte) (uint64, error) {
	if l.down.Load() {
		return 0, errors.New("no quorum")
	}
	return l.MemLog.Append(ctx, user, prev, id, data)
}

func (l *unreachableLog) Read(ctx context.Context, user string, after uint64) ([]store.LogEntry, error) {
	if l.down.Load() {
		return nil, errors.New("no quorum")
	}
	return l.MemLog.Read(ctx, user, after)
}

// docs/OPERATIONS.md, "Two NATS servers of three": with the log out of
// reach, reads from each node's copy go on, a replica's download included:
// the session starts from the node's copy.
func TestReplicasReadWhileTheLogIsUnreachable(t *testing.T) {
	log := &unreachableLog{MemLog: store.NewMemLog()}
	e := newEnv(t, func(c *server.Config) { c.Log, c.Blobs = log, nil })
	tok := e.createUser("alice01")
	cid := e.create(t, tok, "/alice01/channels", map[string]any{"id": "diary", "name": "Diary"})
	id := e.create(t, tok, "/alice01/"+cid+"/events", map[string]any{"type": map[string]string{"class": "note", "format": "txt"}})

	log.down.Store(true)
	st, v := e.doJSON("GET", "/alice01/"+cid+"/events/"+id, tok, nil)
	mustStatus(t, "HTTP read with the log unreachable", st, v, 200)

	c, _, err := e.dialSync(t, "alice01", tok)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.send(&syncproto.Message{T: syncproto.TypeHello, Hello: &syncproto.Hello{Version: 1, Replica: "r1"}})
	_, b, err := c.conn.Read(c.ctx)
	if err != nil {
		t.Fatalf("a replica's download with the log unreachable: read: %v", err)
	}
	m, err := syncproto.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.T != syncproto.TypeWelcome {
		t.Fatalf("a replica's download with the log unreachable: got %s %+v, want welcome", m.T, m.Error)
	}
}
