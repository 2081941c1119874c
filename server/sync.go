package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/hashicorp/go-hclog"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// handleSync serves GET /{user}/sync: one replica's websocket session.
func (s *Server) handleSync(c *call) {
	a, err := s.resolveAccess(c.user, c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	sub, err := s.admit(c.user)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	defer s.hub.Unsubscribe(sub)
	// Counted before the handshake, so Close never waits on a zero count
	// while a session is starting.
	s.wg.Add(1)
	defer s.wg.Done()
	conn, err := websocket.Accept(c.w, c.r, &websocket.AcceptOptions{Subprotocols: []string{syncproto.Subprotocol}})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	if conn.Subprotocol() != syncproto.Subprotocol {
		conn.Close(syncproto.CloseVersion, "subprotocol "+syncproto.Subprotocol+" required")
		return
	}
	conn.SetReadLimit(s.cfg.MaxFrameBytes)
	ss := &syncSession{
		s: s, conn: conn, user: c.user, access: a, actor: actorOf(a),
		log:  s.log.Named("sync").With("user", c.user, "access", a.ID),
		acks: make(chan struct{}, 64), poke: make(chan struct{}, 1), pushSlots: make(chan struct{}, maxQueuedPushes),
	}
	ss.sub = sub
	connections.WithLabelValues("sync").Inc()
	defer connections.WithLabelValues("sync").Dec()
	ss.run()
}

// admitMu makes checking a user's connection count and taking a slot one
// step, so concurrent upgrades cannot all pass the check.
var admitMu sync.Mutex

// admit takes one of the user's connection slots (SPEC §7: beyond the limit,
// 429 at the upgrade) by subscribing to the user's changes; the caller
// unsubscribes when the connection ends.
func (s *Server) admit(user string) (*Sub, error) {
	admitMu.Lock()
	defer admitMu.Unlock()
	if s.hub.Count(user) >= s.cfg.MaxConnsPerUser {
		return nil, model.Errorf(model.ErrTooManyRequests, "too many connections for this user")
	}
	return s.hub.Subscribe(user), nil
}

// syncSession is one replica connection. The reader goroutine handles pushes,
// acks and attachment calls; the feed goroutine sends changes batches.
type syncSession struct {
	s      *Server
	conn   *websocket.Conn
	user   string
	log    hclog.Logger
	sub    *Sub
	cancel context.CancelFunc

	mu      sync.Mutex
	access  *model.Access
	actor   *Actor
	replica string
	cursor  uint64 // last seq sent
	rescan  uint64 // while > 0: re-sending the scope up to this seq, without removals
	initial bool   // no cursor: initial download, no removals needed up to initialHead
	// initialHead is the head when the initial download began: an entry
	// past it may be the change of an item the download already sent (a
	// deletion, a move out of scope), whose removal must go out.
	initialHead uint64
	acked       uint64
	inflight    []uint64 // cursors of full changes batches sent and not yet acknowledged
	upload      *store.Upload
	upDigest    string
	// uploaded holds the digests this session uploaded (read loop only):
	// its pushes may name them (Change.Uploaded), and the store keeps
	// their content while the session lives (releaseUploads).
	uploaded map[string]bool

	rescanAt     uint64 // rescan read position
	sentCaughtUp bool   // a caughtUp batch was sent since the last push
	poke         chan struct{}

	outcome string // how the session ended, for its log line
	acks    chan struct{}
	// Pushes are queued in the committer as they arrive and answered in
	// order (see push): pushTail is closed once the last queued push has
	// answered, pushSlots bounds how many are queued, pushWG counts their
	// completions. readLoop alone touches pushTail.
	pushTail  chan struct{}
	pushSlots chan struct{}
	pushWG    sync.WaitGroup
	itemsOut  int
	itemsIn   int
	startedAt time.Time
}

func (ss *syncSession) send(ctx context.Context, m *syncproto.Message) error {
	b, err := syncproto.Encode(m)
	if err != nil {
		return err
	}
	return ss.conn.Write(ctx, websocket.MessageBinary, b)
}

func (ss *syncSession) closeWith(code int, id, msg string) {
	ss.mu.Lock()
	if ss.outcome == "" {
		ss.outcome = msg
	}
	ss.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ss.send(ctx, &syncproto.Message{T: syncproto.TypeError, Error: &syncproto.Error{Code: code, ID: id, Message: msg}})
	ss.conn.Close(websocket.StatusCode(code), msg)
}

func (ss *syncSession) run() {
	ss.startedAt = time.Now()
	ctx, cancel := context.WithCancel(ss.s.baseCtx)
	ss.cancel = cancel
	defer cancel()
	defer func() {
		ss.log.Info("sync session", "duration", time.Since(ss.startedAt),
			"items_in", ss.itemsIn, "items_out", ss.itemsOut, "outcome", ss.outcome)
	}()
	// Hello.
	hctx, hcancel := context.WithTimeout(ctx, ss.s.cfg.PeerTimeout)
	_, frame, err := ss.conn.Read(hctx)
	hcancel()
	if err != nil {
		return
	}
	msg, err := syncproto.Decode(frame)
	if err != nil || msg.T != syncproto.TypeHello {
		ss.closeWith(syncproto.CloseMalformed, model.ErrInvalidRequestStructure, "expected hello")
		return
	}
	h := msg.Hello
	if h.Version != syncproto.ProtocolVersion {
		ss.closeWith(syncproto.CloseVersion, "version-unsupported", "protocol version unsupported")
		return
	}
	if h.Replica == "" || len(h.Replica) > 64 {
		ss.closeWith(syncproto.CloseMalformed, model.ErrInvalidParametersFormat, "hello needs a replica id")
		return
	}
	ss.replica = h.Replica
	ss.log = ss.log.With("replica", h.Replica)
	w, err := ss.welcome(h)
	if errors.Is(err, errTryLater) {
		ss.closeWith(syncproto.CloseTryAgain, model.ErrUnavailable, "the cluster log is out of reach: try again later")
		return
	}
	if err != nil {
		ss.closeWith(syncproto.CloseInternalErr, model.ErrUnexpected, "could not start the session")
		return
	}
	if err := ss.send(ctx, &syncproto.Message{T: syncproto.TypeWelcome, Welcome: w}); err != nil {
		return
	}
	if w.Reset != "" {
		ss.log.Info("cursor reset", "reason", w.Reset)
	}

	// Two goroutines per session, this one feeding: an idle server holds
	// thousands of sessions, and each goroutine costs its stack.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); defer cancel(); ss.readLoop(ctx) }()
	stopPings := ss.keepAlive(ctx)
	// Whichever side ends the session, the connection closes at once, even
	// while the other loop is still busy (a goroutine only from then on).
	closed := make(chan struct{})
	context.AfterFunc(ctx, func() {
		defer close(closed)
		ss.mu.Lock()
		if ss.outcome == "" {
			ss.outcome = "closed"
		}
		ss.mu.Unlock()
		if ss.s.baseCtx.Err() != nil {
			ss.conn.Close(websocket.StatusGoingAway, "server shutting down")
		}
		ss.conn.CloseNow()
	})
	ss.feedLoop(ctx)
	cancel()
	<-closed
	wg.Wait()
	ss.pushWG.Wait()
	stopPings()
	ss.abortUpload()
	ss.releaseUploads()
}

// connCtx is the context of the session's frequent reads and writes once
// it runs (readLoop, the feed's frames). It has no deadline and is never
// cancelled: the session's AfterFunc closes the connection when the session
// ends, which ends a read or write in progress just as cancelling its
// context would, while the websocket library registers (and removes) a
// context callback on every call whose context can end.
var connCtx = context.Background()

// frameBufs holds the buffers readFrame reads into.
var frameBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledFrameBuf bounds the buffers kept in frameBufs.
const maxPooledFrameBuf = 1 << 20

// readFrame is conn.Read(connCtx) for a message of any type, without its
// io.ReadAll: a push of 1000 changes (~300 KB) no longer grows a new slice
// step by step, and an ack no longer allocates 512 bytes. The frame is
// copied out at its size, as decoded messages may point into it.
func readFrame(conn *websocket.Conn) ([]byte, error) {
	_, r, err := conn.Reader(connCtx)
	if err != nil {
		return nil, err
	}
	b := frameBufs.Get().(*bytes.Buffer)
	b.Reset()
	_, err = b.ReadFrom(r)
	var frame []byte
	if err == nil {
		frame = bytes.Clone(b.Bytes())
	}
	if b.Cap() <= maxPooledFrameBuf {
		frameBufs.Put(b)
	}
	return frame, err
}

// welcome decides where the session resumes.
func (ss *syncSession) welcome(h *syncproto.Hello) (*syncproto.Welcome, error) {
	st := ss.s.st
	// A cluster node first takes what other nodes wrote for the user: a
	// replica that moved here resumes from a cursor another node gave it.
	cctx, cancel := context.WithTimeout(ss.s.baseCtx, 10*time.Second)
	err := st.CatchUp(cctx, ss.user)
	cancel()
	stale := false
	if err != nil {
		if !errors.Is(err, store.ErrLogUnavailable) {
			return nil, err
		}
		// The log is out of reach: the session reads this node's copy,
		// as HTTP reads do (its pushes are refused until the log is back).
		stale = true
	}
	head, err := st.Head(ss.user)
	if err != nil {
		return nil, err
	}
	a := ss.access
	w := &syncproto.Welcome{
		ServerTime: ss.s.cfg.Now().UnixMilli(), Epoch: st.Epoch(), AccessID: a.ID, AccessType: a.Type,
		Permissions: a.Permissions, PermVersion: a.Version, Key: a.Key,
	}
	if w.Permissions == nil {
		w.Permissions = []model.Permission{}
	}
	switch {
	case h.Cursor == nil:
		ss.initial = true
	case h.Cursor.Epoch != st.Epoch():
		w.Reset = syncproto.ResetEpoch
		ss.initial = true
	case h.Cursor.Seq > head && stale:
		// Ahead of this node's copy, which could not catch up: later.
		return nil, errTryLater
	case h.Cursor.Seq > head:
		w.Reset = syncproto.ResetEpoch // a cursor from the future: not this history
		ss.initial = true
	case h.Cursor.Seq < st.Floor(ss.user):
		w.Reset = syncproto.ResetHorizon
		ss.initial = true
	default:
		ss.cursor = h.Cursor.Seq
		if h.PermVersion != a.Version {
			w.Rescan = true
			ss.rescan = max(ss.cursor, 1)
		}
	}
	if ss.initial {
		ss.cursor, ss.initialHead = 0, head
	}
	// A replica whose highest sequence number is below what the server
	// already applied for its id runs from an older copy of its directory:
	// its next changes would be taken for replays and dropped.
	var hw uint64
	if err := st.View(ss.user, func(tx *store.Tx) error {
		var err error
		hw, err = tx.HighWater(h.Replica)
		return err
	}); err != nil {
		return nil, err
	}
	w.Renew = h.MaxRSeq < hw
	w.Resume = ss.cursor
	ss.acked = ss.cursor
	return w, nil
}

// keepAlive pings the peer every PingInterval and ends the session when a
// pong does not come within PeerTimeout-PingInterval. Between pings it holds
// a timer, not a goroutine; the returned stop waits for a ping in progress.
func (ss *syncSession) keepAlive(ctx context.Context) (stop func()) {
	var (
		mu      sync.Mutex // guards stopped and t
		stopped bool
		t       *time.Timer
		pinging sync.WaitGroup
	)
	ping := func() {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		pinging.Add(1)
		mu.Unlock()
		defer pinging.Done()
		pctx, cancel := context.WithTimeout(ctx, ss.s.cfg.PeerTimeout-ss.s.cfg.PingInterval)
		err := ss.conn.Ping(pctx)
		cancel()
		if err != nil {
			ss.cancel()
			return
		}
		mu.Lock()
		if !stopped {
			t.Reset(ss.s.cfg.PingInterval)
		}
		mu.Unlock()
	}
	mu.Lock()
	t = time.AfterFunc(ss.s.cfg.PingInterval, ping)
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
		pinging.Wait()
	}
}

func (ss *syncSession) readLoop(ctx context.Context) {
	for {
		frame, err := readFrame(ss.conn)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				ss.log.Warn("frame too large")
			}
			return
		}
		msg, err := syncproto.Decode(frame)
		if err != nil {
			ss.closeWith(syncproto.CloseMalformed, model.ErrInvalidRequestStructure, "malformed message")
			return
		}
		switch msg.T {
		case syncproto.TypePush:
			if err := ss.push(ctx, msg.Push); err != nil {
				ss.log.Warn("push failed", "error", err)
				return
			}
		case syncproto.TypeAck:
			ss.mu.Lock()
			if msg.Ack.Cursor.Seq > ss.acked {
				ss.acked = msg.Ack.Cursor.Seq
			}
			// Only an ack of a batch actually sent frees its slot.
			n := 0
			for n < len(ss.inflight) && ss.inflight[n] <= msg.Ack.Cursor.Seq {
				n++
			}
			ss.inflight = ss.inflight[n:]
			ss.mu.Unlock()
			select {
			case ss.acks <- struct{}{}:
			default:
			}
		case syncproto.TypeAttachmentGet:
			if err := ss.attachmentGet(ctx, msg.AttachmentGet); err != nil {
				return
			}
		case syncproto.TypeAttachmentPut:
			if err := ss.attachmentPut(ctx, msg.AttachmentPut); err != nil {
				return
			}
		default:
			ss.closeWith(syncproto.CloseMalformed, model.ErrInvalidRequestStructure, "unexpected message "+msg.T)
			return
		}
	}
}

// errTryLater ends a session that cannot start on this node for now.
var errTryLater = errors.New("sync: the cluster log is out of reach")

var (
	errPushRevoked = errors.New("sync: push refused, access revoked")
	errPushExpired = errors.New("sync: push refused, access expired")
)

// maxQueuedPushes bounds the pushes of one session queued in the committer
// and not yet answered.
const maxQueuedPushes = 4

// push applies a replica's changes in order, in one committer request; each
// change is checked against the state left by the earlier ones. What does
// not depend on stored state (the ids and the values of the deltas) is
// checked first, in the session's goroutine, so the committer, which all
// writers share, only does what must see the state.
//
// push returns once the request is queued: the next push is read, checked
// and queued while this one is written, and a goroutine answers each push
// when it is durable, after the push before it has answered. Requests run
// in the order they are queued, so pushes still apply in order.
func (ss *syncSession) push(ctx context.Context, p *syncproto.Push) error {
	start := time.Now()
	ss.mu.Lock()
	actor, current := ss.actor, ss.access
	ss.mu.Unlock()
	checks := checkPushed(p.Changes)
	uploaded := ss.uploadedIn(p.Changes)
	results := make([]syncproto.Result, 0, len(p.Changes))
	select {
	case ss.pushSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	var orphans []string // content no event names any more, to remove once durable
	wait, err := ss.s.st.Submit(ctx, ss.user, func(tx *store.Tx) error {
		results, orphans = results[:0], orphans[:0]
		// The rights as they stand in this transaction: a push is never
		// applied with an access revoked, expired or narrowed since the
		// session last looked (its feed may be waiting for acks).
		a, _, err := loadAccess(tx, current.ID)
		if err != nil {
			return err
		}
		actor := actor
		switch {
		case a == nil:
			return errPushRevoked
		case a.Expired(ss.s.now()):
			return errPushExpired
		case a.Version != current.Version:
			actor = actorOf(a)
		}
		hw, err := tx.HighWater(ss.replica)
		if err != nil {
			return err
		}
		from := hw
		var rseqs []uint64
		var stored [][]byte
		for i, ch := range p.Changes {
			if ch.RSeq <= hw {
				res := syncproto.Result{RSeq: ch.RSeq, Status: syncproto.StatusDuplicate}
				// A bare duplicate (its first result no longer kept) says
				// where the change is at the latest: the head. The replica
				// holds the change in its view until its cursor is there.
				if h, err := tx.Head(); err == nil {
					res.Seq = h
				}
				if raw, ok, err := tx.Result(ss.replica, ch.RSeq); err == nil && ok {
					if m, err := syncproto.Decode(raw); err == nil && m.PushResult != nil && len(m.PushResult.Results) == 1 {
						res = m.PushResult.Results[0]
					}
				}
				if res.Current != nil {
					// The stored item was read under the rights of the
					// first answer; the access may have been narrowed
					// since. Read it again as this access sees it now.
					// The status and seq stay those of the first answer
					// (a replay answers the same); an item newer than seq
					// merges into the replica like any later state.
					res.Current = visibleItem(tx, actor, model.Kind(ch.Kind), ch.ID)
				}
				results = append(results, res)
				continue
			}
			hw = ch.RSeq
			res := ss.applyPushed(tx, actor, ch, checks[i], uploaded, &orphans)
			results = append(results, res)
			if enc, err := encodeStoredResult(res); err == nil {
				rseqs, stored = append(rseqs, ch.RSeq), append(stored, enc)
			}
		}
		if hw != from {
			// In the same transaction as the changes it covers.
			tx.SetHighWater(ss.replica, hw)
		}
		tx.PutResults(ss.replica, rseqs, stored)
		return tx.PruneResults(ss.replica, storedResults)
	})
	if err != nil {
		<-ss.pushSlots
		return err
	}
	prev, done := ss.pushTail, make(chan struct{})
	ss.pushTail = done
	ss.pushWG.Add(1)
	go func() {
		defer ss.pushWG.Done()
		defer close(done)
		defer func() { <-ss.pushSlots }()
		err := wait()
		if err == nil {
			ss.s.removeContent(ss.user, orphans)
			// Content this push named: replicated again at once if
			// another node removed it meanwhile (cluster mode).
			for d := range uploaded {
				ss.s.st.EnsureReplicated(ss.user, d)
			}
		}
		if prev != nil {
			<-prev
		}
		if err := ss.answerPush(ctx, len(p.Changes), results, err, start); err != nil {
			if ctx.Err() == nil {
				ss.log.Warn("push failed", "error", err)
			}
			ss.cancel()
		}
	}()
	return nil
}

// storedResults is how many results of a replica's latest pushes the
// server keeps at least, to answer replays with (PROTOCOL.md §4).
const storedResults = 1000

// answerPush sends a push's results once its request is durable, or ends
// the session as its outcome requires.
func (ss *syncSession) answerPush(ctx context.Context, n int, results []syncproto.Result, err error, start time.Time) error {
	switch {
	case errors.Is(err, errPushRevoked):
		ss.closeWith(syncproto.CloseRevoked, model.ErrInvalidAccessToken, "access revoked")
		return err
	case errors.Is(err, errPushExpired):
		ss.closeWith(syncproto.CloseBadToken, model.ErrInvalidAccessToken, "access expired")
		return err
	case err != nil:
		return err
	}
	ss.mu.Lock()
	ss.sentCaughtUp = false
	ss.itemsIn += n
	ss.mu.Unlock()
	select {
	case ss.poke <- struct{}{}:
	default:
	}
	syncItemsIn.Add(float64(n))
	pushLatency.Observe(time.Since(start).Seconds())
	return ss.send(ctx, &syncproto.Message{T: syncproto.TypePushResult, PushResult: &syncproto.PushResult{Results: results}})
}

func (ss *syncSession) applyPushed(tx *store.Tx, actor *Actor, ch syncproto.Change, chk pushCheck, uploaded map[string]bool, orphans *[]string) syncproto.Result {
	res := syncproto.Result{RSeq: ch.RSeq}
	kind := model.Kind(ch.Kind)
	var out *Outcome
	err := chk.err
	if err == nil {
		sp := tx.Savepoint()
		var gone []string
		gone, err = ss.s.removeContents(tx, actor, kind, ch)
		if err == nil {
			out, err = ApplyChange(tx, actor, Change{Kind: kind, ID: ch.ID, Delta: ch.Delta, Create: ch.Create, RenameOnClash: true, Uploaded: uploaded}, ss.s.clock)
		}
		if err != nil {
			// Refused whole: nothing it wrote before the refusal stays.
			tx.RollbackTo(sp)
		} else {
			*orphans = append(append(*orphans, gone...), out.Orphans...)
		}
	}
	if err != nil {
		var me *model.Error
		if !errors.As(err, &me) {
			ss.log.Error("apply pushed change", "error", err)
			me = model.Errorf(model.ErrUnexpected, "unexpected error")
		}
		rejectedWrites.Inc()
		res.Status, res.Error = syncproto.StatusRejected, me
		if chk.valid {
			res.Current = visibleItem(tx, actor, kind, ch.ID)
		}
		// The head Current was read at: a replica already past it holds
		// newer state than Current and must not roll back to it.
		if h, err := tx.Head(); err == nil {
			res.Seq = h
		}
		return res
	}
	res.Status, res.Seq, res.Renamed, res.StoppedID = syncproto.StatusOK, out.Seq, out.Renamed, out.StoppedID
	if len(out.Lost) > 0 || out.Renamed != "" {
		if len(out.Lost) > 0 {
			res.Status = syncproto.StatusConflict
			res.Lost = out.Lost
		}
		res.Current = &syncproto.Item{Kind: ch.Kind, ID: ch.ID, Doc: wireDoc(tx, actor, kind, out.Doc)}
	}
	return res
}

// removeContents removes, for a pushed tombstone of a live folder or
// channel the actor can see, what it holds, as the HTTP removal does:
// subfolders (events linked to the subtree refuse it: sync has no
// mergeEventsWithParent), or the channel's folders and events. The pushed
// change then deletes the item itself. It returns the content digests left
// without a reference.
func (s *Server) removeContents(tx *store.Tx, a *Actor, kind model.Kind, ch syncproto.Change) ([]string, error) {
	if kind == model.KindEvent || !ch.Delta.IsDeleted() {
		return nil, nil
	}
	r, ok, err := tx.Item(kind, ch.ID)
	if err != nil || !ok || !model.Exists(r.Doc) || visibleLevel(tx, a, kind, ch.ID, r.Doc) == model.LevelNone {
		return nil, err // ApplyChange answers as for an unknown item
	}
	if kind == model.KindChannel {
		return s.removeChannel(tx, a, ch.ID, true)
	}
	return s.removeFolderTree(tx, a, model.StringField(r.Doc, "channelId"), ch.ID, model.StringField(r.Doc, "parentId"), nil, true)
}

// uploadedIn is the set of the digests the changes' attachments name that
// this session uploaded (nil when none: most pushes name no attachment).
// It is taken in the read loop, which alone writes ss.uploaded.
func (ss *syncSession) uploadedIn(changes []syncproto.Change) map[string]bool {
	var m map[string]bool
	for _, ch := range changes {
		for _, f := range ch.Delta.Files {
			var a model.Attachment
			if f.Val == nil || json.Unmarshal(f.Val, &a) != nil || !ss.uploaded[a.Digest] {
				continue
			}
			if m == nil {
				m = map[string]bool{}
			}
			m[a.Digest] = true
		}
	}
	return m
}

func validPushedID(kind model.Kind, id string) bool {
	if kind == model.KindEvent {
		return model.IsCuid(id)
	}
	n, err := model.ItemID(id)
	return err == nil && n == id
}

var deltaBodies = sync.Pool{New: func() any { return make(map[string]json.RawMessage, 16) }}

// validateDelta checks a pushed delta's values with the same rules as the
// HTTP API: every scalar field must pass ParsePatch for its kind.
func validateDelta(kind model.Kind, d crdt.Doc) error {
	// A push validates up to 1000 deltas: their field maps are reused
	// (ParsePatch keeps none).
	body := deltaBodies.Get().(map[string]json.RawMessage)
	defer func() {
		// A map that grew for a delta of many fields stays out of the
		// pool: clear keeps its size, and every later range would pay it.
		if len(body) <= 32 {
			clear(body)
			deltaBodies.Put(body)
		}
	}()
	for k, f := range d.Fields {
		switch k {
		case model.FieldCreated, model.FieldCreatedBy, model.FieldModified, model.FieldModifiedBy:
			continue
		}
		if kind == model.KindFolder && k == "channelId" {
			continue
		}
		if f.Val == nil {
			if k != "description" {
				return model.FieldError(k, "cannot be unset")
			}
			continue
		}
		body[k] = f.Val
	}
	if _, err := model.ParsePatch(kind, body, false, nil); err != nil {
		return err
	}
	for k := range d.Tags {
		if n, err := model.NormalizeTags([]string{k}); err != nil || len(n) != 1 || n[0] != k {
			return model.FieldError("tags", "invalid tag")
		}
	}
	if err := model.CheckNodes(d); err != nil {
		return err
	}
	for k, f := range d.Files {
		if kind != model.KindEvent {
			return model.FieldError("attachments", "only events have attachments")
		}
		if f.Val == nil {
			if err := model.CheckAttachmentKey(k); err != nil {
				return err
			}
			continue // the attachment's removal
		}
		if _, err := model.ParseAttachment(k, f.Val); err != nil {
			return err
		}
	}
	for k, f := range d.Data {
		if f.Val != nil {
			if _, err := model.Canonical(f.Val); err != nil {
				return model.FieldError("clientData", "key %q is not JSON", k)
			}
		}
	}
	if kind == model.KindFolder {
		if f, ok := d.Fields["channelId"]; ok && f.Val != nil {
			if _, err := model.Canonical(f.Val); err != nil {
				return model.FieldError("channelId", "must be a string")
			}
		}
	}
	return nil
}

// visibleItem returns the item as the actor may see it, or nil.
func visibleItem(tx *store.Tx, a *Actor, kind model.Kind, id string) *syncproto.Item {
	r, ok, err := tx.Item(kind, id)
	if err != nil || !ok || !model.Exists(r.Doc) || visibleLevel(tx, a, kind, id, r.Doc) == model.LevelNone {
		return nil
	}
	return &syncproto.Item{Kind: string(kind), ID: id, Doc: wireDoc(tx, a, kind, r.Doc)}
}

// feedLoop sends changes from the cursor whenever the hub signals, with at
// most MaxInFlight unacknowledged batches.
func (ss *syncSession) feedLoop(ctx context.Context) {
	for {
		// Access changes first, in feed order with the data.
		_, _, accesses := ss.sub.Take()
		if len(accesses) > 0 || ss.expired() {
			if !ss.recheckAccess(ctx) {
				return
			}
		}
		// A batch another session of the access already read and encoded
		// from this cursor, after its own floor check: as if this session
		// had read it then (sendShared).
		sent, err := ss.sendShared(ctx)
		more := false
		if !sent && err == nil {
			if ss.belowFloor() {
				// Compaction removed tombstones this session has not sent yet:
				// the replica must reconnect and be told to reset.
				ss.closeWith(int(websocket.StatusGoingAway), "cursor-reset", "the cursor passed the tombstone horizon; reconnect")
				return
			}
			more, err = ss.sendBatch(ctx)
		}
		if err != nil {
			if ctx.Err() == nil {
				ss.log.Warn("feed", "error", err)
			}
			return
		}
		if more {
			if !ss.waitFlight(ctx) {
				return
			}
			continue
		}
		timer := ss.expiryTimer()
		select {
		case <-ctx.Done():
			return
		case <-ss.sub.Wake():
		case <-ss.poke:
		case <-timer:
		}
	}
}

func (ss *syncSession) expired() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.access.Expired(ss.s.now())
}

// expiryTimer fires when the access expires (nil channel: never).
func (ss *syncSession) expiryTimer() <-chan time.Time {
	ss.mu.Lock()
	exp := ss.access.Expires
	ss.mu.Unlock()
	if exp == nil {
		return nil
	}
	d := time.Duration((*exp - ss.s.now()) * float64(time.Second))
	if d < 0 {
		d = 0
	}
	return time.After(d)
}

// waitFlight blocks while too many batches are unacknowledged.
func (ss *syncSession) waitFlight(ctx context.Context) bool {
	for {
		ss.mu.Lock()
		f := len(ss.inflight)
		ss.mu.Unlock()
		if f < syncproto.MaxInFlight {
			return true
		}
		// A replica that stops acking still learns at once that its
		// access was revoked, expired or changed.
		select {
		case <-ctx.Done():
			return false
		case <-ss.acks:
		case <-ss.sub.Wake():
			if _, _, accesses := ss.sub.Take(); len(accesses) > 0 && !ss.recheckAccess(ctx) {
				return false
			}
		case <-ss.expiryTimer():
			if !ss.recheckAccess(ctx) {
				return false
			}
		}
	}
}

// recheckAccess reloads the access: revoked or expired closes the session;
// new permissions are announced and the scope re-sent.
func (ss *syncSession) recheckAccess(ctx context.Context) bool {
	var a *model.Access
	err := ss.s.st.View(ss.user, func(tx *store.Tx) error {
		ss.mu.Lock()
		id := ss.access.ID
		ss.mu.Unlock()
		var err error
		a, _, err = loadAccess(tx, id)
		return err
	})
	if err != nil {
		return false
	}
	if a == nil {
		ss.closeWith(syncproto.CloseRevoked, model.ErrInvalidAccessToken, "access revoked")
		return false
	}
	if a.Expired(ss.s.now()) {
		ss.closeWith(syncproto.CloseBadToken, model.ErrInvalidAccessToken, "access expired")
		return false
	}
	ss.mu.Lock()
	changed := a.Version != ss.access.Version
	ss.access, ss.actor = a, actorOf(a)
	if changed {
		ss.rescan, ss.rescanAt = max(ss.cursor, 1), 0
		ss.sentCaughtUp = false
	}
	ss.mu.Unlock()
	if changed {
		perms := a.Permissions
		if perms == nil {
			perms = []model.Permission{}
		}
		if err := ss.send(ctx, &syncproto.Message{T: syncproto.TypeScope, Scope: &syncproto.Scope{Permissions: perms, PermVersion: a.Version}}); err != nil {
			return false
		}
	}
	return true
}

// sendBatch reads the feed after the session's position and sends one
// changes batch. It reports whether more may follow at once.
func (ss *syncSession) sendBatch(ctx context.Context) (bool, error) {
	start := time.Now()
	ss.mu.Lock()
	actor, key := ss.actor, ss.access.Key
	from, rescan, initial, initialHead := ss.cursor, ss.rescan, ss.initial, ss.initialHead
	prev := ss.cursor
	if rescan > 0 {
		from = ss.rescanAt
	}
	ss.mu.Unlock()
	var (
		batch    syncproto.Changes
		size     int
		last     uint64
		full     bool
		head     uint64
		caughtUp bool
	)
	err := ss.s.st.View(ss.user, func(tx *store.Tx) error {
		var err error
		if head, err = tx.Head(); err != nil {
			return err
		}
		channels, all := actor.Scope.Channels()
		if all {
			if channels, err = tx.ChannelIDs(); err != nil {
				return err
			}
		}
		err = tx.ReadFeed(channels, from, func(e store.FeedEntry) (bool, error) {
			if e.Seq != last && (len(batch.Items)+len(batch.Removals) >= syncproto.MaxBatchItems || size >= syncproto.MaxBatchBytes-model.MaxItemSize) {
				full = true
				return false, nil
			}
			last = e.Seq
			// No removals where the replica cannot hold the item: in an
			// initial download up to the head it began at, in a rescan
			// up to the position it began at (the replica dropped what
			// left its scope itself).
			quiet := initial && e.Seq <= initialHead || rescan > 0 && e.Seq <= rescan
			if !e.Exit && e.Raw != nil && (actor.Scope.IsPersonal() || e.Kind != model.KindFolder && actor.Scope.SeesWholeChannel(e.Channel)) {
				// An access that sees every item of the channel sees each
				// one that exists as it is stored (wireDoc changes only a
				// folder's parent, and only for a non-personal access):
				// the entry's bytes go out without decoding.
				doc, deleted, created, err := e.Summary()
				if err != nil {
					return false, err
				}
				if !deleted && created {
					batch.Items = append(batch.Items, syncproto.Item{Kind: string(e.Kind), ID: e.ID, RawDoc: doc})
					size += 64 + len(doc)
				} else if !quiet {
					batch.Removals = append(batch.Removals, syncproto.BlindID(key, string(e.Kind), e.ID))
					size += 24
				}
				return true, nil
			}
			r, ok, err := tx.FeedRecord(e)
			if err != nil {
				return false, err
			}
			visible := ok && model.Exists(r.Doc) && !e.Exit && visibleLevel(tx, actor, e.Kind, e.ID, r.Doc) > model.LevelNone
			if e.Exit && ok && model.Exists(r.Doc) && visibleLevel(tx, actor, e.Kind, e.ID, r.Doc) > model.LevelNone {
				return true, nil // moved into another channel it is visible in: its entry there counts
			}
			if visible {
				batch.Items = append(batch.Items, syncproto.Item{Kind: string(e.Kind), ID: e.ID, Doc: wireDoc(tx, actor, e.Kind, r.Doc)})
				size += docSize(r.Doc)
				return true, nil
			}
			if !quiet {
				batch.Removals = append(batch.Removals, syncproto.BlindID(key, string(e.Kind), e.ID))
				size += 24
			}
			return true, nil
		})
		return err
	})
	if err != nil {
		return false, err
	}
	if !full {
		last = head
		caughtUp = true
	}
	ss.mu.Lock()
	if ss.rescan > 0 {
		if last >= ss.rescan || caughtUp {
			// The re-sent scope reached the old position: back to normal.
			if last > ss.cursor {
				ss.cursor = last
			}
			ss.rescan = 0
		} else {
			ss.rescanAt = last
		}
	} else {
		ss.cursor = last
	}
	if caughtUp {
		ss.initial = false
	}
	cursor := ss.cursor
	ss.mu.Unlock()
	ss.mu.Lock()
	skip := len(batch.Items) == 0 && len(batch.Removals) == 0 && caughtUp && cursor == prev && ss.sentCaughtUp
	if !skip {
		if !caughtUp {
			// Only full batches are held back by the in-flight limit, so
			// only they are counted, and a client need not ack a caught-up
			// batch (syncproto.NeedsAck). waitFlight keeps at most
			// MaxInFlight.
			ss.inflight = append(ss.inflight, cursor)
		}
		if caughtUp {
			ss.sentCaughtUp = true
		}
	}
	ss.mu.Unlock()
	if skip {
		return false, nil
	}
	batch.Cursor = syncproto.Cursor{Epoch: ss.s.st.Epoch(), Seq: cursor}
	batch.CaughtUp = caughtUp
	// Observed before the send: once the replica has the batch, it may
	// look at the metrics (a test does) before this goroutine runs again.
	ss.s.FeedSent(ss.user, prev, cursor)
	if err := ss.sendChanges(ctx, &batch, prev, rescan == 0 && !initial); err != nil {
		return false, err
	}
	n := len(batch.Items) + len(batch.Removals)
	ss.itemsOut += n
	syncItemsOut.Add(float64(n))
	pullLatency.Observe(time.Since(start).Seconds())
	return full, nil
}

func docSize(d crdt.Doc) int { return 64 + model.ItemSize(d) }

func (ss *syncSession) attachmentGet(ctx context.Context, g *syncproto.AttachmentGet) error {
	reply := func(d *syncproto.AttachmentData) error {
		return ss.send(ctx, &syncproto.Message{T: syncproto.TypeAttachmentData, AttachmentData: d})
	}
	notFound := &syncproto.AttachmentData{Digest: g.Digest, EOF: true, Error: model.Errorf(model.ErrUnknownAttachment, "unknown attachment")}
	ss.mu.Lock()
	actor := ss.actor
	ss.mu.Unlock()
	found := false
	_ = ss.s.st.View(ss.user, func(tx *store.Tx) error {
		it := visibleItem(tx, actor, model.KindEvent, g.EventID)
		if it == nil {
			return nil
		}
		for _, raw := range it.Doc.FileMap() {
			if bytes.Contains(raw, []byte(`"`+g.Digest+`"`)) && store.ValidDigest(g.Digest) {
				found = true
			}
		}
		return nil
	})
	if !found || g.Offset < 0 {
		return reply(notFound)
	}
	f, err := ss.s.st.OpenFile(ss.user, g.Digest)
	if err != nil {
		return reply(notFound)
	}
	defer f.Close()
	if _, err := f.Seek(g.Offset, io.SeekStart); err != nil {
		return reply(notFound)
	}
	buf := make([]byte, syncproto.MaxChunkBytes)
	off := g.Offset
	for {
		n, err := io.ReadFull(f, buf)
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			return reply(notFound)
		}
		if werr := reply(&syncproto.AttachmentData{Digest: g.Digest, Offset: off, Data: buf[:n], EOF: eof}); werr != nil {
			return werr
		}
		off += int64(n)
		if eof {
			return nil
		}
	}
}

func (ss *syncSession) attachmentPut(ctx context.Context, p *syncproto.AttachmentPut) error {
	reply := func(e *model.Error) error {
		return ss.send(ctx, &syncproto.Message{T: syncproto.TypeAttachmentData, AttachmentData: &syncproto.AttachmentData{Digest: p.Digest, EOF: true, Error: e}})
	}
	if !store.ValidDigest(p.Digest) {
		return reply(model.Errorf(model.ErrInvalidParametersFormat, "digest must be lower-case hex SHA-256"))
	}
	ss.mu.Lock()
	canWrite := ss.actor.Scope.ContributesAnywhere()
	ss.mu.Unlock()
	if !canWrite {
		ss.abortUpload()
		return reply(model.Errorf(model.ErrForbidden, "uploading attachments needs contribute rights"))
	}
	if p.Offset == 0 || ss.upload == nil || ss.upDigest != p.Digest {
		ss.abortUpload()
		if p.Offset != 0 {
			return reply(model.Errorf(model.ErrInvalidParametersFormat, "chunk offset out of order"))
		}
		up, err := ss.s.st.NewUpload(ss.user)
		if err != nil {
			return reply(model.Errorf(model.ErrUnexpected, "could not store the attachment"))
		}
		ss.upload, ss.upDigest = up, p.Digest
	}
	if p.Offset != ss.upload.Size() {
		ss.abortUpload()
		return reply(model.Errorf(model.ErrInvalidParametersFormat, "chunk offset out of order"))
	}
	if ss.upload.Size()+int64(len(p.Data)) > ss.s.cfg.MaxAttachmentBytes {
		ss.abortUpload()
		return reply(model.Errorf(model.ErrPayloadTooLarge, "attachment over its limit"))
	}
	if _, err := ss.upload.Write(p.Data); err != nil {
		ss.abortUpload()
		return reply(model.Errorf(model.ErrUnexpected, "could not store the attachment"))
	}
	if !p.Final {
		return nil
	}
	up := ss.upload
	ss.upload = nil
	if err := up.Commit(p.Digest); err != nil {
		if errors.Is(err, store.ErrDigestMismatch) {
			return reply(model.Errorf(model.ErrInvalidParametersFormat, "content does not match its digest"))
		}
		return reply(model.Errorf(model.ErrUnexpected, "could not store the attachment"))
	}
	switch {
	case ss.uploaded[p.Digest]:
		ss.s.st.ReleaseFile(ss.user, p.Digest) // held once already
	case len(ss.uploaded) >= maxSessionUploads:
		// A replica uploads content just before the push naming it: the
		// older uploads are let go once the pushes queued so far, which
		// may name them, are answered.
		ss.releaseAfterPushes(ss.uploaded)
		ss.uploaded = nil
		fallthrough
	default:
		if ss.uploaded == nil {
			ss.uploaded = map[string]bool{}
		}
		ss.uploaded[p.Digest] = true
	}
	return reply(nil)
}

// maxSessionUploads bounds the digests a session remembers uploading.
const maxSessionUploads = 4096

// releaseUploads ends the holds the session's uploads keep on their content
// (store.Upload.Commit), and removes the content no event names (once the
// read loop and the pushes have ended).
func (ss *syncSession) releaseUploads() {
	ss.release(ss.uploaded)
	ss.uploaded = nil
}

func (ss *syncSession) release(digests map[string]bool) {
	for d := range digests {
		ss.s.st.ReleaseFile(ss.user, d)
		ss.s.st.RemoveFile(ss.user, d)
	}
}

// releaseAfterPushes releases digests once every push queued so far has
// been answered (read loop).
func (ss *syncSession) releaseAfterPushes(digests map[string]bool) {
	tail := ss.pushTail
	ss.pushWG.Add(1)
	go func() {
		defer ss.pushWG.Done()
		if tail != nil {
			<-tail
		}
		ss.release(digests)
	}()
}

func (ss *syncSession) abortUpload() {
	if ss.upload != nil {
		ss.upload.Abort()
		ss.upload = nil
	}
}

// belowFloor reports whether the session's position is older than the
// user's compaction floor (initial downloads have nothing to lose).
func (ss *syncSession) belowFloor() bool {
	ss.mu.Lock()
	initial, cursor := ss.initial, ss.cursor
	ss.mu.Unlock()
	return !initial && cursor < ss.s.st.Floor(ss.user)
}
