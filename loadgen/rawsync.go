package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// A raw sync client speaks the protocol without a local store: the
// pushers of W6 (and of seeding an external server), and the thousands of
// idle replicas of W5. It decodes only what it needs (the server is
// trusted here), so the client side takes little of the CPU it shares with
// the server.

// lightMsg is a frame decoded without the items' documents.
type lightMsg struct {
	T          string                `msgpack:"t"`
	Welcome    *syncproto.Welcome    `msgpack:"welcome,omitempty"`
	PushResult *syncproto.PushResult `msgpack:"pushResult,omitempty"`
	Changes    *lightChanges         `msgpack:"changes,omitempty"`
	Error      *syncproto.Error      `msgpack:"error,omitempty"`
}

type lightChanges struct {
	Cursor   syncproto.Cursor `msgpack:"cursor"`
	CaughtUp bool             `msgpack:"caughtUp,omitempty"`
}

// rawConn is one sync websocket.
type rawConn struct {
	c       *websocket.Conn
	welcome *syncproto.Welcome
}

func syncURL(base, user string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/" + user + "/sync"
}

// dialRaw connects, says hello as a new replica and reads the welcome.
func dialRaw(ctx context.Context, hc *http.Client, base, user, token, replicaID string) (*rawConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(dctx, syncURL(base, user), &websocket.DialOptions{
		HTTPClient:   hc,
		HTTPHeader:   http.Header{"Authorization": {token}},
		Subprotocols: []string{syncproto.Subprotocol},
	})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(syncproto.MaxFrameBytes)
	rc := &rawConn{c: c}
	hello := &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: replicaID, Clock: time.Now().UnixMilli()}
	if err := rc.send(dctx, &syncproto.Message{T: syncproto.TypeHello, Hello: hello}); err != nil {
		c.CloseNow()
		return nil, err
	}
	// The handshake read uses the long-lived context: a read cancelled by a
	// timeout would close the websocket (research/go-stack.md §0.4).
	m, err := rc.read(ctx)
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	if m.T != syncproto.TypeWelcome {
		c.CloseNow()
		return nil, fmt.Errorf("loadgen: expected welcome, got %q", m.T)
	}
	rc.welcome = m.Welcome
	return rc, nil
}

func (rc *rawConn) send(ctx context.Context, m *syncproto.Message) error {
	b, err := syncproto.Encode(m)
	if err != nil {
		return err
	}
	return rc.c.Write(ctx, websocket.MessageBinary, b)
}

// read reads the next message. The frame goes into a pooled buffer (what
// read returns does not refer to it): the load generator shares the
// machine with the server it measures, so it allocates little.
func (rc *rawConn) read(ctx context.Context) (*lightMsg, error) {
	_, r, err := rc.c.Reader(ctx)
	if err != nil {
		return nil, err
	}
	buf := framePool.Get().(*bytes.Buffer)
	defer framePool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	// A changes batch (the frequent, large frame) is scanned, not decoded.
	if _, changes, cursor, caughtUp, err := scanChanges(b, nil, false); err != nil {
		return nil, err
	} else if changes {
		return &lightMsg{T: syncproto.TypeChanges, Changes: &lightChanges{Cursor: cursor, CaughtUp: caughtUp}}, nil
	}
	var m lightMsg
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m.T == syncproto.TypeError && m.Error != nil {
		return nil, fmt.Errorf("loadgen: server error %s: %s", m.Error.ID, m.Error.Message)
	}
	return &m, nil
}

func (rc *rawConn) ack(ctx context.Context, c syncproto.Cursor) error {
	return rc.send(ctx, &syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: c}})
}

// pusher is a sync writer: it pushes batches of new events and acks the
// changes the server echoes back, as a live replica would.
type pusher struct {
	rc      *rawConn
	id      string
	clock   *crdt.Clock
	by      string
	rseq    uint64
	results chan *syncproto.PushResult
	errc    chan error
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func dialPusher(ctx context.Context, base, user, token string) (*pusher, error) {
	id := model.NewID()
	rc, err := dialRaw(ctx, newHTTPClient(), base, user, token, id)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	p := &pusher{
		rc: rc, id: id, clock: crdt.NewClock(id, nil, 0), by: rc.welcome.AccessID,
		results: make(chan *syncproto.PushResult, 1), errc: make(chan error, 1), ctx: pctx, cancel: cancel,
	}
	p.clock.SetServerTime(rc.welcome.ServerTime)
	p.wg.Add(1)
	go p.readLoop()
	return p, nil
}

func (p *pusher) readLoop() {
	defer p.wg.Done()
	for {
		m, err := p.rc.read(p.ctx)
		if err != nil {
			p.errc <- err
			return
		}
		switch m.T {
		case syncproto.TypePushResult:
			select {
			case p.results <- m.PushResult:
			case <-p.ctx.Done():
				return
			}
		case syncproto.TypeChanges:
			if !syncproto.NeedsAck(m.Changes.CaughtUp) {
				continue
			}
			if err := p.rc.ack(p.ctx, m.Changes.Cursor); err != nil {
				p.errc <- err
				return
			}
		}
	}
}

// push sends k new events of g and waits for the result; it returns how
// many the server accepted (ok).
func (p *pusher) push(ctx context.Context, g *eventGen, k int) (int, error) {
	frame, err := p.encode(g, k)
	if err != nil {
		return 0, err
	}
	if err := p.send(ctx, frame); err != nil {
		return 0, err
	}
	return p.result(ctx, k)
}

// encode builds a push of k new events of g.
func (p *pusher) encode(g *eventGen, k int) ([]byte, error) {
	changes := make([]syncproto.Change, k)
	for i := range changes {
		p.rseq++
		changes[i] = syncproto.Change{RSeq: p.rseq, Kind: string(model.KindEvent), ID: model.NewID(), Create: true, Delta: g.doc(p.clock.MustNow(), p.by)}
	}
	return syncproto.Encode(&syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: changes}})
}

// send sends an encoded push.
func (p *pusher) send(ctx context.Context, frame []byte) error {
	return p.rc.c.Write(ctx, websocket.MessageBinary, frame)
}

// result waits for the result of the oldest push in flight, of k changes,
// and returns how many the server accepted (ok).
func (p *pusher) result(ctx context.Context, k int) (int, error) {
	select {
	case res := <-p.results:
		ok := 0
		var firstErr *model.Error
		for _, r := range res.Results {
			if r.Status == syncproto.StatusOK {
				ok++
			} else if firstErr == nil && r.Error != nil {
				firstErr = r.Error
			}
		}
		if ok != k {
			return ok, fmt.Errorf("loadgen: push: %d of %d accepted (first error: %v)", ok, k, firstErr)
		}
		return ok, nil
	case err := <-p.errc:
		return 0, fmt.Errorf("loadgen: push: %w", err)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (p *pusher) close() {
	_ = p.rc.c.Close(websocket.StatusNormalClosure, "")
	p.cancel()
	p.rc.c.CloseNow()
	p.wg.Wait()
}
