package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/internal/mp"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// RoundResult says what one Sync round did.
type RoundResult struct {
	Pushed    int // changes acknowledged (ok, duplicate, conflict)
	Rejected  int // changes refused by the server (now in Rejections)
	Conflicts int // changes applied with some fields lost (now in Rejections)
	Applied   int // server items applied or removed
}

// Sync runs one round: connect, push every pending change, pull until caught
// up, disconnect.
func (r *Replica) Sync(ctx context.Context) (RoundResult, error) {
	var res RoundResult
	err := r.session(ctx, false, &res, nil)
	if errors.Is(err, errRenewed) {
		err = r.session(ctx, false, &res, nil) // under the new replica id
	}
	return res, err
}

// Run syncs continuously until ctx ends: it reconnects with exponential
// back-off and jitter, pushes local writes as they happen and applies live
// changes. It returns nil when ctx ends, or an error that retrying cannot fix
// (token revoked or invalid, protocol version, not configured).
func (r *Replica) Run(ctx context.Context) error {
	backoff := r.opts.MinBackoff
	renewed := false
	for {
		welcomed := false
		err := r.session(ctx, true, nil, func() { welcomed = true })
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrAccessRevoked) || errors.Is(err, ErrVersion) || errors.Is(err, ErrNotConfigured) {
			return err
		}
		if errors.Is(err, errRenewed) && !renewed {
			renewed = true
			continue // reconnect at once under the new replica id
		}
		renewed = false
		if welcomed {
			backoff = r.opts.MinBackoff
		}
		d := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, r.opts.MaxBackoff)
	}
}

func wsURL(server, username string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("replica: bad server URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("replica: server URL must be http:// or https://, got %q", server)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/" + url.PathEscape(username) + "/sync"
	return u.String(), nil
}

type sessionState struct {
	r         *Replica
	conn      *websocket.Conn
	res       *RoundResult
	live      bool
	epoch     string
	key       []byte
	cursor    syncproto.Cursor
	welcomed  bool
	inflight  int             // pushes sent and not yet answered (at most maxPushesInFlight)
	uploading string          // digest whose upload awaits the server's answer
	uploaded  map[string]bool // digests uploaded in this session (pendingUploads)
	pushedTo  uint64          // highest rseq pushed this session
	sent      []sentChange    // pushed changes awaiting their result, in rseq order
	caughtUp  bool
	maxSeq    uint64 // highest seq acknowledged this session
	// helloPerm is the permissions version hello announced and hadCursor
	// whether it carried a cursor.
	helloPerm int64
	hadCursor bool
	// permPending: new permissions (welcome or scope) are stored but their
	// scope is not yet wholly received; the next caught-up batch confirms
	// them (see permState.Unconfirmed).
	permPending bool
	// known lists what base has received this session when base was
	// empty at the welcome (nil otherwise): applying an item it does not
	// list needs no read of base.
	known *baseSet
	// blind resolves the removal ids of the session's access key.
	blind *blindIndex
}

// session runs one connection. Without live it returns once the round is
// complete.
func (r *Replica) session(ctx context.Context, live bool, res *RoundResult, onWelcome func()) (err error) {
	st, err := r.Settings()
	if err != nil {
		return err
	}
	if st.Server == "" {
		return ErrNotConfigured
	}
	u, err := wsURL(st.Server, st.Username)
	if err != nil {
		return err
	}
	if res == nil {
		res = &RoundResult{}
	}
	dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
	conn, resp, err := websocket.Dial(dctx, u, &websocket.DialOptions{
		HTTPClient:   r.opts.HTTPClient,
		HTTPHeader:   http.Header{"Authorization": {st.Token}},
		Subprotocols: []string{syncproto.Subprotocol},
	})
	dcancel()
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return r.revoked()
		}
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("replica: %s: unknown user or no sync endpoint (HTTP 404)", u)
		}
		return fmt.Errorf("replica: connect: %w", err)
	}
	conn.SetReadLimit(syncproto.MaxFrameBytes)

	// One reader goroutine with a context that lives as long as the
	// connection: cancelling a read closes the websocket.
	rctx, rcancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	msgs := make(chan inbound)
	rerr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, data, err := conn.Read(rctx)
			if err == nil {
				var m inbound
				if m, err = decodeInbound(data); err == nil {
					select {
					case msgs <- m:
						continue
					case <-rctx.Done():
						return
					}
				}
			}
			rerr <- err
			return
		}
	}()
	defer func() {
		r.connected.Store(false)
		rcancel()
		conn.CloseNow()
		wg.Wait()
		if ferr := r.flushAcks(); ferr != nil && err == nil {
			err = fmt.Errorf("replica: recording acknowledged changes: %w", ferr)
		}
	}()

	s := &sessionState{r: r, conn: conn, res: res, live: live}
	if err := s.hello(ctx); err != nil {
		return err
	}
	var ping <-chan time.Time
	if live {
		t := time.NewTicker(r.opts.PingInterval)
		defer t.Stop()
		ping = t.C
	}
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close(websocket.StatusNormalClosure, "")
			return ctx.Err()
		case err := <-rerr:
			return r.closeErr(err)
		case <-ping:
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(rctx, 10*time.Second)
				defer cancel()
				if err := conn.Ping(pctx); err != nil && rctx.Err() == nil {
					conn.CloseNow()
				}
			}()
		case <-r.wake:
			if s.welcomed {
				if err := s.pushNext(ctx); err != nil {
					return err
				}
			}
		case m := <-msgs:
			if m.Message != nil && m.T == syncproto.TypeError && m.Error != nil {
				// The server closes right after an error: take its close
				// code (revoked, expired…) rather than cutting the
				// connection under its close handshake.
				select {
				case err := <-rerr:
					if websocket.CloseStatus(err) != -1 {
						return r.closeErr(err)
					}
				case <-time.After(2 * time.Second):
				case <-ctx.Done():
				}
			}
			if err := s.handle(ctx, m); err != nil {
				return err
			}
			if s.welcomed && onWelcome != nil {
				onWelcome()
				onWelcome = nil
			}
			if !live && s.done() {
				if err := r.update(func(txn *badger.Txn) error {
					return setJSON(txn, keyLastSync, float64(r.opts.Now().UnixMilli())/1000)
				}); err != nil {
					return err
				}
				_ = conn.Close(websocket.StatusNormalClosure, "round complete")
				return nil
			}
		}
	}
}

func (r *Replica) closeErr(err error) error {
	switch websocket.CloseStatus(err) {
	case syncproto.CloseBadToken, syncproto.CloseRevoked:
		return r.revoked()
	case syncproto.CloseVersion:
		return ErrVersion
	case syncproto.CloseMalformed:
		return fmt.Errorf("replica: the server refused a malformed message: %w", err)
	case syncproto.CloseGoingAway:
		return fmt.Errorf("replica: server going away: %w", err)
	}
	return fmt.Errorf("replica: connection lost: %w", err)
}

// revoked purges everything held through the token.
func (r *Replica) revoked() error {
	if err := r.Purge(); err != nil {
		return fmt.Errorf("%w (purge failed: %v)", ErrAccessRevoked, err)
	}
	return ErrAccessRevoked
}

// Purge deletes every item, pending change, rejection, the cursor and the
// permissions (the settings, replica id and clock stay).
func (r *Replica) Purge() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.acks = nil
	if err := r.deletePrefixes(prefixBase, prefixBlind, prefixOutbox, prefixOutboxIndex, prefixRej, prefixUploaded); err != nil {
		return err
	}
	if err := os.RemoveAll(r.filesDir()); err != nil {
		return err
	}
	return r.forgetSession()
}

// forgetSession deletes the cursor, the permissions and the last sync
// time, and tells subscribers everything was removed (r.mu held).
func (r *Replica) forgetSession() error {
	if err := r.db.Update(func(txn *badger.Txn) error {
		for _, k := range []string{keyCursor, keyPerms, keyLastSync} {
			if err := txn.Delete([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	r.notify(Change{Kind: "*", Source: "server", Removed: true})
	return nil
}

func (s *sessionState) send(ctx context.Context, m *syncproto.Message) error {
	frame, err := syncproto.Encode(m)
	if err != nil {
		return err
	}
	return s.write(ctx, m.T, frame)
}

// write sends an encoded frame of type t.
func (s *sessionState) write(ctx context.Context, t string, frame []byte) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.conn.Write(wctx, websocket.MessageBinary, frame); err != nil {
		return fmt.Errorf("replica: send %s: %w", t, err)
	}
	return nil
}

func (s *sessionState) hello(ctx context.Context) error {
	h := &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: s.r.ID(), Clock: s.r.opts.Now().UnixMilli()}
	err := s.r.db.View(func(txn *badger.Txn) error {
		var c syncproto.Cursor
		if ok, err := getJSON(txn, keyCursor, &c); err != nil {
			return err
		} else if ok {
			h.Cursor = &c
			s.cursor = c
		}
		p, err := loadPerms(txn)
		if err != nil {
			return err
		}
		if p != nil {
			h.PermVersion = p.announced()
			s.key = p.Key
		}
		if h.MaxRSeq, err = maxRSeq(txn); err != nil {
			return err
		}
		h.Pending, err = countPending(txn)
		return err
	})
	s.helloPerm, s.hadCursor = h.PermVersion, h.Cursor != nil
	if err != nil {
		return err
	}
	return s.send(ctx, &syncproto.Message{T: syncproto.TypeHello, Hello: h})
}

func (s *sessionState) done() bool {
	if !s.welcomed || s.inflight > 0 || !s.caughtUp || s.cursor.Seq < s.maxSeq {
		return false
	}
	n := 0
	_ = s.r.db.View(func(txn *badger.Txn) error {
		return eachEntry(txn, s.pushedTo+1, func(raw []byte) (bool, error) {
			h, err := headOf(raw)
			if err == nil && !h.Acked {
				n++
			}
			return n == 0, err
		})
	})
	return n == 0
}

func (s *sessionState) handle(ctx context.Context, m inbound) error {
	switch m.T {
	case syncproto.TypeWelcome:
		if err := s.welcome(m.Welcome); err != nil {
			return err
		}
		s.welcomed = true
		s.r.connected.Store(true)
		return s.pushNext(ctx)
	case syncproto.TypePushResult:
		if err := s.pushResult(m.PushResult); err != nil {
			return err
		}
		return s.pushNext(ctx)
	case syncproto.TypeChanges:
		if err := s.changes(m.changes); err != nil {
			return err
		}
		if !syncproto.NeedsAck(m.changes.CaughtUp) {
			return nil
		}
		return s.send(ctx, &syncproto.Message{T: syncproto.TypeAck, Ack: &syncproto.Ack{Cursor: s.cursor}})
	case syncproto.TypeScope:
		return s.scope(m.Scope.Permissions, m.Scope.PermVersion)
	case syncproto.TypeError:
		return fmt.Errorf("replica: server error %s: %s", m.Error.ID, m.Error.Message)
	case syncproto.TypeAttachmentData:
		d := m.AttachmentData
		if d.Digest != s.uploading || !d.EOF {
			return nil
		}
		s.uploading = ""
		s.markUploaded(d.Digest)
		return s.pushNext(ctx)
	}
	return fmt.Errorf("replica: unexpected message %q", m.T)
}

// errRenewed ends a session whose welcome asked for a new replica id: the
// replica has taken one and connects again under it.
var errRenewed = errors.New("replica: the server asked for a new replica id")

func (s *sessionState) welcome(w *syncproto.Welcome) error {
	r := s.r
	r.clock().SetServerTime(w.ServerTime)
	if w.Renew {
		// This directory was restored from an older copy: its sequence
		// numbers were already used by the later copy, and pushes under
		// the old id would be dropped as replays. Take a new id (pending
		// changes stay and are pushed under it), then reconnect.
		if err := r.renewID(); err != nil {
			return err
		}
		return errRenewed
	}
	s.epoch = w.Epoch
	s.key = w.Key
	s.blind = &blindIndex{key: w.Key}
	perms := permState{AccessID: w.AccessID, AccessType: w.AccessType, Permissions: w.Permissions, PermVersion: w.PermVersion, Key: w.Key}
	// Without a cursor, or after a reset, the download starts at the
	// beginning of the feed under the new permissions, so resuming it from
	// any cursor brings their whole scope. Otherwise new permissions make
	// the server re-send their scope from the start: until a caught-up
	// batch ends that re-send, hello keeps announcing the version sent
	// this time, so an interrupted re-send is started again.
	if s.hadCursor && w.Reset == "" && w.PermVersion != s.helloPerm {
		perms.Unconfirmed, perms.HelloVersion = true, s.helloPerm
		s.permPending = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.Reset == syncproto.ResetEpoch {
		// The server was restored from a backup: what it acknowledged
		// after the backup is gone there but still here. Push it back.
		if err := r.repushAll(); err != nil {
			return err
		}
	}
	if w.Reset != "" {
		if err := r.deletePrefixes(prefixBase); err != nil {
			return err
		}
	}
	// Removal ids now resolve in memory (blindIndex): an index that
	// earlier versions kept on disk is dropped (a no-op once gone).
	if err := r.deletePrefixes(prefixBlind); err != nil {
		return err
	}
	var removed []Change
	if w.Rescan && w.Reset == "" {
		var err error
		if removed, err = r.dropOutOfScope(model.Compile(w.AccessType, w.Permissions)); err != nil {
			return err
		}
	}
	err := r.db.Update(func(txn *badger.Txn) error {
		if w.Reset != "" {
			s.cursor = syncproto.Cursor{Epoch: w.Epoch}
			if err := setJSON(txn, keyCursor, s.cursor); err != nil {
				return err
			}
			es, err := loadEntries(txn)
			if err != nil {
				return err
			}
			for i := range es {
				e := &es[i]
				if !e.Acked {
					continue
				}
				if w.Reset == syncproto.ResetEpoch {
					// A restored server may have lost it: push it again.
					e.Acked, e.Seq, e.Epoch = false, 0, ""
				} else {
					e.Epoch = w.Epoch
				}
				if err := putEntry(txn, e); err != nil {
					return err
				}
			}
		}
		if err := setJSON(txn, keyPerms, perms); err != nil {
			return err
		}
		return r.saveClock(txn)
	})
	if err != nil {
		return err
	}
	if w.Reset != "" {
		removed = append(removed, Change{Kind: "*", Source: "server", Removed: true})
	}
	s.known = nil
	if err := r.db.View(func(txn *badger.Txn) error {
		if baseEmpty(txn) {
			s.known = newBaseSet()
		}
		return nil
	}); err != nil {
		return err
	}
	r.notify(removed...)
	return nil
}

// dropOutOfScope deletes the base items the scope excludes (r.mu held).
func (r *Replica) dropOutOfScope(sc model.Scope) ([]Change, error) {
	var gone []Change
	err := r.db.Update(func(txn *badger.Txn) error {
		base := map[model.Kind]view{}
		for _, k := range []model.Kind{model.KindChannel, model.KindFolder, model.KindEvent} {
			v := view{}
			err := eachPrefix(txn, prefixBase+string(k)+"/", func(key string, raw []byte) (bool, error) {
				var d crdt.Doc
				if err := msgpack.Unmarshal(raw, &d); err != nil {
					return false, err
				}
				v[strings.TrimPrefix(key, prefixBase+string(k)+"/")] = d
				return true, nil
			})
			if err != nil {
				return err
			}
			base[k] = v
		}
		t := tree{base[model.KindFolder], false}
		for kind, v := range base {
			for id, d := range v {
				var in bool
				switch kind {
				case model.KindChannel:
					in = sc.SeesChannel(id)
				case model.KindFolder:
					in = sc.FolderLevel(model.StringField(d, "channelId"), id, t) > model.LevelNone
				default:
					in = sc.SeesEvent(model.EventFactsOf(d), t)
				}
				if !in {
					if err := deleteBase(txn, string(kind), id); err != nil {
						return err
					}
					gone = append(gone, Change{Kind: string(kind), ID: id, Source: "server", Removed: true})
					continue
				}
				if kind == model.KindFolder {
					if err := redactParent(txn, sc, t, id, d); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	return gone, err
}

// redactParent gives a folder kept after a scope change whose parent the
// scope no longer shows the parent the server sends for it (wireDoc): null
// at the field's own version, the visible parent's successor mark dropped.
// The server's re-sent state then merges as equal; merging it alone could
// not hide the parent, which was held at a newer mark.
func redactParent(txn *badger.Txn, sc model.Scope, t tree, id string, d crdt.Doc) error {
	if sc.IsPersonal() {
		return nil
	}
	parent := model.StringField(d, "parentId")
	if parent == "" || sc.FolderLevel(model.StringField(d, "channelId"), parent, t) > model.LevelNone {
		return nil
	}
	out := d.Clone()
	pf := out.Fields["parentId"]
	pf.Val, pf.V.Node = []byte("null"), strings.TrimSuffix(pf.V.Node, "+")
	out.Fields["parentId"] = pf
	return putBase(txn, nil, string(model.KindFolder), id, out)
}

func (s *sessionState) scope(perms []model.Permission, version int64) error {
	r := s.r
	r.mu.Lock()
	var p *permState
	err := r.db.View(func(txn *badger.Txn) (err error) { p, err = loadPerms(txn); return err })
	if err != nil || p == nil {
		r.mu.Unlock()
		return err
	}
	if !p.Unconfirmed && p.PermVersion != version {
		// Keep announcing the version whose scope is held until the
		// re-send the scope change starts is caught up (see welcome).
		p.Unconfirmed, p.HelloVersion = true, p.PermVersion
	}
	if p.Unconfirmed {
		s.permPending = true
	}
	p.Permissions, p.PermVersion = perms, version
	gone, err := r.dropOutOfScope(model.Compile(p.AccessType, perms))
	if err == nil {
		err = r.db.Update(func(txn *badger.Txn) error { return setJSON(txn, keyPerms, p) })
	}
	r.mu.Unlock()
	r.notify(gone...)
	return err
}

// maxPushesInFlight bounds the pushes sent and not yet answered: with two,
// the replica prepares the next push while the server applies one (the
// server reads frames in order, so the order of changes is kept).
const maxPushesInFlight = 2

// pushNext sends the next batches of pending changes, while fewer than
// maxPushesInFlight are in flight and no upload is.
func (s *sessionState) pushNext(ctx context.Context) error {
	for s.inflight < maxPushesInFlight && s.uploading == "" {
		sent, err := s.pushOne(ctx)
		if err != nil || !sent {
			return err
		}
	}
	return nil
}

// pushOne sends one batch of the pending changes after those already
// pushed (or the upload the batch needs first); it reports whether it sent
// a push.
func (s *sessionState) pushOne(ctx context.Context) (bool, error) {
	var changes []pushChange
	var sent []sentChange
	var withFiles []syncproto.Change // the attachments the changes name
	size := 0
	err := s.r.db.View(func(txn *badger.Txn) error {
		return eachEntry(txn, s.pushedTo+1, func(raw []byte) (bool, error) {
			if len(changes) > 0 && (len(changes) >= syncproto.MaxPushChanges || size+len(raw) > syncproto.MaxFrameBytes/2) {
				return false, nil
			}
			e, err := readEntry(raw)
			if err != nil || e.Acked {
				return err == nil, err
			}
			size += len(raw) + 64
			delta := bytes.Clone(e.Delta)
			changes = append(changes, pushChange{RSeq: e.RSeq, Kind: e.Kind, ID: e.ID, Create: e.Create, Delta: delta})
			sent = append(sent, sentChange{rseq: e.RSeq, kind: e.Kind, id: e.ID, repush: e.Repush})
			if files, err := deltaFiles(delta); err != nil {
				return false, err
			} else if len(files) > 0 {
				withFiles = append(withFiles, syncproto.Change{Delta: crdt.Doc{Files: files}})
			}
			return true, nil
		})
	})
	if err != nil || len(changes) == 0 {
		return false, err
	}
	// Content first: a change naming an attachment is pushed only once the
	// server holds its content.
	if ups := s.pendingUploads(withFiles); len(ups) > 0 {
		if err := s.upload(ctx, ups[0]); err != nil || s.uploading != "" {
			return false, err
		}
		// Nothing was sent (the content is not held here): go on, or
		// nothing would ever wake the next push.
		return s.pushOne(ctx)
	}
	frame, err := encodePush(changes)
	if err != nil {
		return false, err
	}
	last := changes[len(changes)-1].RSeq
	if err := s.r.markPushed(last); err != nil {
		return false, err
	}
	s.inflight++
	s.pushedTo = last
	s.sent = append(s.sent, sent...)
	return true, s.write(ctx, syncproto.TypePush, frame)
}

// sentChange is what the session remembers of a pushed change until its
// result comes back.
type sentChange struct {
	rseq     uint64
	kind, id string
	repush   bool
}

// heldAck is a change the server acknowledged (ok, duplicate, or a
// conflict with nothing to report) at seq of epoch, whose outbox entry is
// kept, unchanged, until the applied cursor reaches seq (SYNC-NOTES §3).
// The usual next step is the changes batch that brings the change back,
// which then deletes the entry: so the acknowledgement is held in memory
// rather than written into the entry, and the entry is read and written
// once instead of three times. A session that ends first writes what it
// holds into the entries (flushAcks); after a crash the entries read as
// pending and are pushed again, which the server answers as replays of
// the same results.
type heldAck struct {
	rseq, seq uint64
	epoch     string
	kind, id  string
}

// flushAcks records the held acknowledgements in their outbox entries.
func (r *Replica) flushAcks() error {
	return r.update(func(txn *badger.Txn) error {
		for _, a := range r.acks {
			se, _, ok, err := loadStoredEntry(txn, a.rseq)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			se.Acked, se.Seq, se.Epoch = true, a.seq, a.epoch
			if err := putStoredEntry(txn, &se); err != nil {
				return err
			}
		}
		r.acks = nil
		return nil
	})
}

// dropReachedAcks deletes the entries of the held acknowledgements the
// cursor has reached (r.mu held).
func (r *Replica) dropReachedAcks(txn *badger.Txn, c syncproto.Cursor) error {
	keep := r.acks[:0]
	for _, a := range r.acks {
		if a.epoch == c.Epoch && a.seq <= c.Seq {
			if err := deleteEntry(txn, a.kind, a.id, a.rseq); err != nil {
				return err
			}
			continue
		}
		keep = append(keep, a)
	}
	clear(r.acks[len(keep):])
	r.acks = keep
	return nil
}

// pushChange is syncproto.Change with its delta as the outbox stores it
// (msgpack): a push is encoded without decoding the changes.
type pushChange struct {
	RSeq   uint64             `msgpack:"rseq"`
	Kind   string             `msgpack:"kind"`
	ID     string             `msgpack:"id"`
	Create bool               `msgpack:"create,omitempty"`
	Delta  msgpack.RawMessage `msgpack:"delta"`
}

// encodePush encodes a push frame as syncproto.Encode would (with the
// keys in the order of syncproto's structs), by hand.
func encodePush(changes []pushChange) ([]byte, error) {
	n := 32
	for _, c := range changes {
		n += len(c.Delta) + len(c.ID) + 48
	}
	b := make([]byte, 0, n)
	b = append(b, 0x82)
	b = mp.AppendStr(b, "t")
	b = mp.AppendStr(b, syncproto.TypePush)
	b = mp.AppendStr(b, "push")
	b = append(b, 0x81)
	b = mp.AppendStr(b, "changes")
	b = mp.AppendArrayLen(b, len(changes))
	for _, c := range changes {
		if len(c.Delta) == 0 {
			return nil, fmt.Errorf("replica: encode push: change %d has no delta", c.RSeq)
		}
		if c.Create {
			b = append(b, 0x85)
		} else {
			b = append(b, 0x84)
		}
		b = mp.AppendStr(b, "rseq")
		b = mp.AppendUint(b, c.RSeq)
		b = mp.AppendStr(b, "kind")
		b = mp.AppendStr(b, c.Kind)
		b = mp.AppendStr(b, "id")
		b = mp.AppendStr(b, c.ID)
		if c.Create {
			b = mp.AppendStr(b, "create")
			b = mp.AppendBool(b, true)
		}
		b = mp.AppendStr(b, "delta")
		b = append(b, c.Delta...)
	}
	return b, nil
}

// deltaFiles returns the attachments an encoded delta sets (the "a" map of
// crdt.Doc), decoding nothing else.
func deltaFiles(delta []byte) (map[string]crdt.Field, error) {
	if !bytes.Contains(delta, []byte{0xa1, 'a'}) { // no "a" key anywhere
		return nil, nil
	}
	var d struct {
		Files map[string]crdt.Field `msgpack:"a,omitempty"`
	}
	err := msgpack.Unmarshal(delta, &d)
	return d.Files, err
}

func (s *sessionState) pushResult(pr *syncproto.PushResult) error {
	r := s.r
	s.inflight = max(0, s.inflight-1)
	var notes []Change
	now := float64(r.opts.Now().UnixMilli()) / 1000
	err := r.update(func(txn *badger.Txn) error {
		for i, res := range pr.Results {
			// What was sent before res and has no result is not
			// answered any more (a result per change, in order).
			for len(s.sent) > 0 && s.sent[0].rseq < res.RSeq {
				s.sent = s.sent[1:]
			}
			var sc *sentChange
			if len(s.sent) > 0 && s.sent[0].rseq == res.RSeq {
				sc = &s.sent[0]
				s.sent = s.sent[1:]
			}
			if sc != nil && (res.Status == syncproto.StatusOK || res.Status == syncproto.StatusDuplicate ||
				res.Status == syncproto.StatusConflict && (len(res.Lost) == 0 || sc.repush)) {
				// Acknowledged with nothing to record: hold it (heldAck).
				s.res.Pushed++
				s.maxSeq = max(s.maxSeq, res.Seq)
				if s.epoch == s.cursor.Epoch && res.Seq <= s.cursor.Seq {
					if err := deleteEntry(txn, sc.kind, sc.id, sc.rseq); err != nil {
						return err
					}
				} else {
					r.acks = append(r.acks, heldAck{rseq: sc.rseq, seq: res.Seq, epoch: s.epoch, kind: sc.kind, id: sc.id})
				}
				continue
			}
			// The delta stays encoded unless a rejection records it.
			se, raw, ok, err := loadStoredEntry(txn, res.RSeq)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			full := func() (entry, error) {
				var e entry
				return e, msgpack.Unmarshal(raw, &e)
			}
			switch res.Status {
			case syncproto.StatusOK, syncproto.StatusDuplicate, syncproto.StatusConflict:
				s.res.Pushed++
				se.Acked, se.Seq, se.Epoch = true, res.Seq, s.epoch
				if res.Seq > s.maxSeq {
					s.maxSeq = res.Seq
				}
				if se.Epoch == s.cursor.Epoch && se.Seq <= s.cursor.Seq {
					if err := deleteEntry(txn, se.Kind, se.ID, se.RSeq); err != nil {
						return err
					}
				} else if err := putStoredEntry(txn, &se); err != nil {
					return err
				}
				if res.Status == syncproto.StatusConflict && len(res.Lost) > 0 && !se.Repush {
					e, err := full()
					if err != nil {
						return err
					}
					s.res.Conflicts++
					var cur crdt.Doc
					if res.Current != nil {
						cur = res.Current.Doc
					}
					rj := Rejection{
						ID: model.NewID(), ItemID: e.ID, ItemKind: e.Kind, Kind: "conflict",
						Error:  RejectionError{ID: "conflict", Message: "some fields lost to newer values: " + strings.Join(res.Lost, ", ")},
						Change: changeJSON(e), Lost: res.Lost, Winning: winningValues(res.Lost, cur), At: now + float64(i)/1e6,
					}
					if err := setJSON(txn, prefixRej+rj.ID, rj); err != nil {
						return err
					}
				}
			case syncproto.StatusRejected:
				e, err := full()
				if err != nil {
					return err
				}
				if err := deleteEntry(txn, e.Kind, e.ID, e.RSeq); err != nil {
					return err
				}
				if e.Repush {
					continue // the restored server already knows better
				}
				s.res.Rejected++
				re := RejectionError{ID: model.ErrUnexpected, Message: "rejected"}
				if res.Error != nil {
					re = RejectionError{ID: res.Error.ID, Message: res.Error.Message}
				}
				rj := Rejection{ID: model.NewID(), ItemID: e.ID, ItemKind: e.Kind, Kind: "rejected", Error: re, Change: changeJSON(e), At: now + float64(i)/1e6}
				if err := setJSON(txn, prefixRej+rj.ID, rj); err != nil {
					return err
				}
				// Current is the item as the server held it at head res.Seq.
				// Pushes and changes batches leave the server separately, so
				// a batch at or past that head may have been applied already:
				// then base is at least as new and stays as it is.
				if s.cursor.Epoch != s.epoch || s.cursor.Seq >= res.Seq {
					notes = append(notes, Change{Kind: e.Kind, ID: e.ID, Source: "server"})
					continue
				}
				if res.Current != nil && res.Current.Kind == e.Kind && res.Current.ID == e.ID {
					cur, _, err := getBase(txn, e.Kind, e.ID)
					if err != nil {
						return err
					}
					if err := putBase(txn, s.blind, e.Kind, e.ID, crdt.Merge(cur, res.Current.Doc)); err != nil {
						return err
					}
					s.known.add(e.Kind, e.ID)
				} else if err := deleteBase(txn, e.Kind, e.ID); err != nil {
					return err
				}
				notes = append(notes, Change{Kind: e.Kind, ID: e.ID, Source: "server"})
			default:
				return fmt.Errorf("replica: unknown push status %q", res.Status)
			}
		}
		return nil
	})
	r.notify(notes...)
	return err
}

// inbound is one frame from the server. A changes batch is in changes,
// with its items' documents as received; every other message is decoded by
// syncproto.Decode.
type inbound struct {
	*syncproto.Message
	changes *wireChanges
}

// wireChanges is a changes batch (syncproto.Changes) as the replica reads
// it: each item's document is decoded, and raw is its encoding, a slice of
// the frame, so that an item is stored as the server sent it rather than
// encoded again (see putServerItem).
type wireChanges struct {
	Items    []wireItem
	Removals [][]byte
	Cursor   syncproto.Cursor
	CaughtUp bool
}

type wireItem struct {
	Kind, ID string
	Info     crdt.DocInfo // what the apply needs, read without decoding
	Raw      []byte       // the document as encoded
}

// doc decodes the item's document.
func (it *wireItem) doc() (crdt.Doc, error) { return crdt.ReadDoc(mp.NewReader(it.Raw)) }

// decodeInbound decodes a frame: a changes batch in one pass
// (decodeChanges), anything else with syncproto.Decode.
func decodeInbound(frame []byte) (inbound, error) {
	// decodeChanges reads with internal/mp, which bounds every length by
	// the bytes left and every nesting; the validation gate guards the
	// reflection decoder, which syncproto.Decode runs it before.
	t, c, err := decodeChanges(frame)
	if err != nil {
		return inbound{}, fmt.Errorf("%w: %v", syncproto.ErrMalformed, err)
	}
	if t != syncproto.TypeChanges {
		m, err := syncproto.Decode(frame)
		return inbound{Message: m}, err
	}
	if c == nil {
		return inbound{}, fmt.Errorf("%w: message %q without its body", syncproto.ErrMalformed, t)
	}
	return inbound{Message: &syncproto.Message{T: t}, changes: c}, nil
}

// decodeChanges reads the envelope of a validated frame: its type, and its
// changes body if it has one (other bodies are skipped). It reads by hand
// (internal/mp): each item's document is decoded once and its encoded bytes
// kept as they arrived, to be stored as they are.
func decodeChanges(frame []byte) (string, *wireChanges, error) {
	r := mp.NewReader(frame)
	var t string
	var c *wireChanges
	err := r.Map(func(k []byte) (err error) {
		switch string(k) {
		case "t":
			t, err = r.Name()
			return err
		case syncproto.TypeChanges:
			if r.Nil() {
				return nil
			}
			c = &wireChanges{}
			return r.Map(func(k []byte) (err error) {
				switch string(k) {
				case "items":
					n, err := r.ArrayLen()
					if err != nil || n == 0 {
						return err
					}
					c.Items = make([]wireItem, n)
					for i := range c.Items {
						it := &c.Items[i]
						err := r.Map(func(k []byte) (err error) {
							switch string(k) {
							case "kind":
								it.Kind, err = r.Name()
							case "id":
								it.ID, err = r.String()
							case "doc":
								start := r.Offset()
								if it.Info, err = crdt.ScanDoc(r, ""); err == nil {
									it.Raw = frame[start:r.Offset():r.Offset()]
								}
							default:
								err = r.Skip()
							}
							return err
						})
						if err != nil {
							return err
						}
					}
					return nil
				case "removals":
					n, err := r.ArrayLen()
					if err != nil || n == 0 {
						return err
					}
					c.Removals = make([][]byte, n)
					for i := range c.Removals {
						if c.Removals[i], err = r.Bytes(); err != nil {
							return err
						}
					}
					return nil
				case "cursor":
					return r.Map(func(k []byte) (err error) {
						switch string(k) {
						case "epoch":
							c.Cursor.Epoch, err = r.String()
						case "seq":
							c.Cursor.Seq, err = r.Uint()
						default:
							err = r.Skip()
						}
						return err
					})
				case "caughtUp":
					c.CaughtUp, err = r.Bool()
					return err
				}
				return r.Skip()
			})
		}
		return r.Skip()
	})
	return t, c, err
}

func (s *sessionState) changes(c *wireChanges) error {
	r := s.r
	var notes []Change
	err := r.update(func(txn *badger.Txn) error {
		notes = notes[:0]
		// Acknowledged entries come first in the outbox (pushes go in rseq
		// order), so the scan stops at the first pending one. It runs
		// before the batch's writes: an iterator over a transaction sorts
		// the writes it holds.
		err := eachEntry(txn, 0, func(raw []byte) (bool, error) {
			h, err := headOf(raw)
			if err != nil || !h.Acked {
				return false, err
			}
			if h.Epoch == c.Cursor.Epoch && h.Seq <= c.Cursor.Seq {
				return true, deleteEntry(txn, h.Kind, h.ID, h.RSeq)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if err := r.dropReachedAcks(txn, c.Cursor); err != nil {
			return err
		}
		for _, it := range c.Items {
			if !model.Kind(it.Kind).Valid() {
				continue
			}
			// A new item is stored as it came; any other is merged into
			// base, so only then is its document decoded.
			absent := s.known.absent(it.Kind, it.ID)
			if err := putServerItem(txn, s.blind, it.Kind, it.ID, it.Raw, it.Info.Deleted, it.doc, absent); err != nil {
				return err
			}
			s.known.add(it.Kind, it.ID)
			r.clock().Observe(it.Info.Max)
			notes = append(notes, Change{Kind: it.Kind, ID: it.ID, Source: "server", Removed: it.Info.Deleted})
		}
		for _, b := range c.Removals {
			kind, id, ok, err := s.blind.lookup(txn, b)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := deleteBase(txn, kind, id); err != nil {
				return err
			}
			notes = append(notes, Change{Kind: kind, ID: id, Source: "server", Removed: true})
		}
		if err := setJSON(txn, keyCursor, c.Cursor); err != nil {
			return err
		}
		if c.CaughtUp {
			if err := setJSON(txn, keyLastSync, float64(r.opts.Now().UnixMilli())/1000); err != nil {
				return err
			}
			if s.permPending {
				// The re-send of the new permissions' scope is complete.
				p, err := loadPerms(txn)
				if err != nil {
					return err
				}
				if p != nil && p.Unconfirmed {
					p.Unconfirmed, p.HelloVersion = false, 0
					if err := setJSON(txn, keyPerms, p); err != nil {
						return err
					}
				}
			}
		}
		return r.saveClock(txn)
	})
	if err != nil {
		return err
	}
	s.cursor = c.Cursor
	s.res.Applied += len(notes)
	if c.CaughtUp {
		s.caughtUp = true
		s.permPending = false
	}
	r.notify(notes...)
	return nil
}

// repushAll turns what the replica holds into changes to push again after
// the server was restored from a backup (r.mu held): base ⊔ acknowledged
// overlay becomes one whole-document change per item — channels, then
// folders parents first, then events — and the pending local changes
// follow, renumbered in their order. Content markers are cleared so
// attachments are uploaded again. Run again after an interruption, it
// rebuilds the same changes from base and the re-push entries.
func (r *Replica) repushAll() error {
	view := map[string]map[string]crdt.Doc{}
	var pending, old []entry
	err := r.db.View(func(txn *badger.Txn) error {
		for _, k := range []model.Kind{model.KindChannel, model.KindFolder, model.KindEvent} {
			view[string(k)] = map[string]crdt.Doc{}
			prefix := prefixBase + string(k) + "/"
			err := eachPrefix(txn, prefix, func(key string, raw []byte) (bool, error) {
				var d crdt.Doc
				if err := msgpack.Unmarshal(raw, &d); err != nil {
					return false, err
				}
				view[string(k)][strings.TrimPrefix(key, prefix)] = d
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		es, err := loadEntries(txn)
		if err != nil {
			return err
		}
		old = es
		for _, e := range es {
			if e.Acked || e.Repush {
				if view[e.Kind] == nil {
					view[e.Kind] = map[string]crdt.Doc{}
				}
				view[e.Kind][e.ID] = crdt.Merge(view[e.Kind][e.ID], e.Delta)
			} else {
				pending = append(pending, e)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var fresh []entry
	add := func(kind, id string, d crdt.Doc) {
		fresh = append(fresh, entry{Kind: kind, ID: id, Create: !d.IsDeleted(), Delta: d, Repush: true})
	}
	for id, d := range view[string(model.KindChannel)] {
		add(string(model.KindChannel), id, d)
	}
	folders := view[string(model.KindFolder)]
	done := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if done[id] {
			return
		}
		done[id] = true
		if p := model.StringField(folders[id], "parentId"); p != "" {
			if _, ok := folders[p]; ok {
				visit(p)
			}
		}
		add(string(model.KindFolder), id, folders[id])
	}
	for id := range folders {
		visit(id)
	}
	for id, d := range view[string(model.KindEvent)] {
		add(string(model.KindEvent), id, d)
	}
	fresh = append(fresh, pending...)
	// Write in chunks (a large replica does not fit one transaction): new
	// entries first, then drop the old ones and the upload markers.
	const chunk = 2000
	for i := 0; i < len(fresh); i += chunk {
		err := r.db.Update(func(txn *badger.Txn) error {
			for j := i; j < min(i+chunk, len(fresh)); j++ {
				rseq, err := nextRSeq(txn)
				if err != nil {
					return err
				}
				e := fresh[j]
				e.RSeq, e.Acked, e.Seq, e.Epoch = rseq, false, 0, ""
				if err := putEntry(txn, &e); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for i := 0; i < len(old); i += chunk {
		err := r.db.Update(func(txn *badger.Txn) error {
			for _, e := range old[i:min(i+chunk, len(old))] {
				if err := deleteEntry(txn, e.Kind, e.ID, e.RSeq); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return r.deletePrefixes(prefixUploaded)
}
