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
	return res, err
}

// Run syncs continuously until ctx ends: it reconnects with exponential
// back-off and jitter, pushes local writes as they happen and applies live
// changes. It returns nil when ctx ends, or an error that retrying cannot fix
// (token revoked or invalid, protocol version, not configured).
func (r *Replica) Run(ctx context.Context) error {
	backoff := r.opts.MinBackoff
	for {
		welcomed := false
		err := r.session(ctx, true, nil, func() { welcomed = true })
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrAccessRevoked) || errors.Is(err, ErrVersion) || errors.Is(err, ErrNotConfigured) {
			return err
		}
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
	pushing   []uint64 // rseqs of the push in flight
	uploading string   // digest whose upload awaits the server's answer
	pushedTo  uint64   // highest rseq pushed this session
	caughtUp  bool
	maxSeq    uint64 // highest seq acknowledged this session
}

// session runs one connection. Without live it returns once the round is
// complete.
func (r *Replica) session(ctx context.Context, live bool, res *RoundResult, onWelcome func()) error {
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
	msgs := make(chan *syncproto.Message)
	rerr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			_, data, err := conn.Read(rctx)
			if err == nil {
				var m *syncproto.Message
				if m, err = syncproto.Decode(data); err == nil {
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
			if s.welcomed && s.pushing == nil {
				if err := s.pushNext(ctx); err != nil {
					return err
				}
			}
		case m := <-msgs:
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
	if err := r.deletePrefixes(prefixBase, prefixBlind, prefixOutbox, prefixRej, prefixUploaded); err != nil {
		return err
	}
	if err := os.RemoveAll(r.filesDir()); err != nil {
		return err
	}
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
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.conn.Write(wctx, websocket.MessageBinary, frame); err != nil {
		return fmt.Errorf("replica: send %s: %w", m.T, err)
	}
	return nil
}

func (s *sessionState) hello(ctx context.Context) error {
	h := &syncproto.Hello{Version: syncproto.ProtocolVersion, Replica: s.r.id, Clock: s.r.opts.Now().UnixMilli()}
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
			h.PermVersion = p.PermVersion
			s.key = p.Key
		}
		es, err := loadEntries(txn)
		for _, e := range es {
			if !e.Acked {
				h.Pending++
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	return s.send(ctx, &syncproto.Message{T: syncproto.TypeHello, Hello: h})
}

func (s *sessionState) done() bool {
	if !s.welcomed || s.pushing != nil || !s.caughtUp || s.cursor.Seq < s.maxSeq {
		return false
	}
	n := 0
	_ = s.r.db.View(func(txn *badger.Txn) error {
		es, err := loadEntries(txn)
		for _, e := range es {
			if !e.Acked && e.RSeq > s.pushedTo {
				n++
			}
		}
		return err
	})
	return n == 0
}

func (s *sessionState) handle(ctx context.Context, m *syncproto.Message) error {
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
		if err := s.changes(m.Changes); err != nil {
			return err
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
		if err := s.r.markUploaded(d.Digest); err != nil {
			return err
		}
		return s.pushNext(ctx)
	}
	return fmt.Errorf("replica: unexpected message %q", m.T)
}

func (s *sessionState) welcome(w *syncproto.Welcome) error {
	r := s.r
	r.clock.SetServerTime(w.ServerTime)
	s.epoch = w.Epoch
	keyChanged := !bytes.Equal(s.key, w.Key)
	s.key = w.Key
	perms := permState{AccessID: w.AccessID, AccessType: w.AccessType, Permissions: w.Permissions, PermVersion: w.PermVersion, Key: w.Key}
	r.mu.Lock()
	defer r.mu.Unlock()
	if w.Reset != "" {
		if err := r.deletePrefixes(prefixBase, prefixBlind); err != nil {
			return err
		}
		keyChanged = false
	}
	if keyChanged {
		if err := r.rebuildIndex(w.Key); err != nil {
			return err
		}
	}
	var removed []Change
	if w.Rescan && w.Reset == "" {
		var err error
		if removed, err = r.dropOutOfScope(w.Key, model.Compile(w.AccessType, w.Permissions)); err != nil {
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
	r.notify(removed...)
	return nil
}

// rebuildIndex recomputes every x/ entry for a new key (r.mu held).
func (r *Replica) rebuildIndex(key []byte) error {
	if err := r.deletePrefixes(prefixBlind); err != nil {
		return err
	}
	var items []string
	if err := r.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefixBase)
		opts.PrefetchValues = false
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			items = append(items, strings.TrimPrefix(string(it.Item().Key()), prefixBase))
		}
		return nil
	}); err != nil {
		return err
	}
	for len(items) > 0 {
		n := min(len(items), 1000)
		if err := r.db.Update(func(txn *badger.Txn) error {
			for _, it := range items[:n] {
				kind, id := splitItemKey(it)
				if err := txn.Set(blindKey(syncproto.BlindID(key, kind, id)), []byte(it)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// dropOutOfScope deletes the base items the scope excludes (r.mu held).
func (r *Replica) dropOutOfScope(key []byte, sc model.Scope) ([]Change, error) {
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
					if err := deleteBase(txn, key, string(kind), id); err != nil {
						return err
					}
					gone = append(gone, Change{Kind: string(kind), ID: id, Source: "server", Removed: true})
				}
			}
		}
		return nil
	})
	return gone, err
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
	p.Permissions, p.PermVersion = perms, version
	gone, err := r.dropOutOfScope(p.Key, model.Compile(p.AccessType, perms))
	if err == nil {
		err = r.db.Update(func(txn *badger.Txn) error { return setJSON(txn, keyPerms, p) })
	}
	r.mu.Unlock()
	r.notify(gone...)
	return err
}

// pushNext sends the next batch of pending changes, if any and none is in
// flight.
func (s *sessionState) pushNext(ctx context.Context) error {
	if s.pushing != nil || s.uploading != "" {
		return nil
	}
	var changes []syncproto.Change
	size := 0
	err := s.r.db.View(func(txn *badger.Txn) error {
		return eachPrefix(txn, prefixOutbox, func(_ string, raw []byte) (bool, error) {
			var e entry
			if err := msgpack.Unmarshal(raw, &e); err != nil {
				return false, err
			}
			if e.Acked || e.RSeq <= s.pushedTo {
				return true, nil
			}
			if len(changes) > 0 && (len(changes) >= syncproto.MaxPushChanges || size+len(raw) > syncproto.MaxFrameBytes/2) {
				return false, nil
			}
			size += len(raw) + 64
			changes = append(changes, syncproto.Change{RSeq: e.RSeq, Kind: e.Kind, ID: e.ID, Create: e.Create, Delta: e.Delta})
			return true, nil
		})
	})
	if err != nil || len(changes) == 0 {
		return err
	}
	// Content first: a change naming an attachment is pushed only once the
	// server holds its content.
	if ups, err := s.r.pendingUploads(changes); err != nil {
		return err
	} else if len(ups) > 0 {
		return s.upload(ctx, ups[0])
	}
	s.pushing = make([]uint64, len(changes))
	for i, c := range changes {
		s.pushing[i] = c.RSeq
	}
	s.pushedTo = changes[len(changes)-1].RSeq
	return s.send(ctx, &syncproto.Message{T: syncproto.TypePush, Push: &syncproto.Push{Changes: changes}})
}

func (s *sessionState) pushResult(pr *syncproto.PushResult) error {
	r := s.r
	s.pushing = nil
	var notes []Change
	now := float64(r.opts.Now().UnixMilli()) / 1000
	err := r.update(func(txn *badger.Txn) error {
		for i, res := range pr.Results {
			raw, ok, err := getRaw(txn, string(outboxKey(res.RSeq)))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			var e entry
			if err := msgpack.Unmarshal(raw, &e); err != nil {
				return err
			}
			switch res.Status {
			case syncproto.StatusOK, syncproto.StatusDuplicate, syncproto.StatusConflict:
				s.res.Pushed++
				e.Acked, e.Seq, e.Epoch = true, res.Seq, s.epoch
				if res.Seq > s.maxSeq {
					s.maxSeq = res.Seq
				}
				if e.Epoch == s.cursor.Epoch && e.Seq <= s.cursor.Seq {
					if err := txn.Delete(outboxKey(e.RSeq)); err != nil {
						return err
					}
				} else if err := putEntry(txn, &e); err != nil {
					return err
				}
				if res.Status == syncproto.StatusConflict && len(res.Lost) > 0 {
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
				s.res.Rejected++
				if err := txn.Delete(outboxKey(e.RSeq)); err != nil {
					return err
				}
				re := RejectionError{ID: model.ErrUnexpected, Message: "rejected"}
				if res.Error != nil {
					re = RejectionError{ID: res.Error.ID, Message: res.Error.Message}
				}
				rj := Rejection{ID: model.NewID(), ItemID: e.ID, ItemKind: e.Kind, Kind: "rejected", Error: re, Change: changeJSON(e), At: now + float64(i)/1e6}
				if err := setJSON(txn, prefixRej+rj.ID, rj); err != nil {
					return err
				}
				if res.Current != nil && res.Current.Kind == e.Kind && res.Current.ID == e.ID {
					if err := putBase(txn, s.key, e.Kind, e.ID, res.Current.Doc); err != nil {
						return err
					}
				} else if err := deleteBase(txn, s.key, e.Kind, e.ID); err != nil {
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

func (s *sessionState) changes(c *syncproto.Changes) error {
	r := s.r
	var notes []Change
	err := r.update(func(txn *badger.Txn) error {
		notes = notes[:0]
		for _, it := range c.Items {
			if !model.Kind(it.Kind).Valid() {
				continue
			}
			cur, _, err := getBase(txn, it.Kind, it.ID)
			if err != nil {
				return err
			}
			if err := putBase(txn, s.key, it.Kind, it.ID, crdt.Merge(cur, it.Doc)); err != nil {
				return err
			}
			r.clock.Observe(it.Doc.MaxVersion())
			notes = append(notes, Change{Kind: it.Kind, ID: it.ID, Source: "server", Removed: it.Doc.IsDeleted()})
		}
		for _, b := range c.Removals {
			raw, ok, err := getRaw(txn, string(blindKey(b)))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			kind, id := splitItemKey(string(raw))
			if err := deleteBase(txn, s.key, kind, id); err != nil {
				return err
			}
			notes = append(notes, Change{Kind: kind, ID: id, Source: "server", Removed: true})
		}
		if err := setJSON(txn, keyCursor, c.Cursor); err != nil {
			return err
		}
		es, err := loadEntries(txn)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Acked && e.Epoch == c.Cursor.Epoch && e.Seq <= c.Cursor.Seq {
				if err := txn.Delete(outboxKey(e.RSeq)); err != nil {
					return err
				}
			}
		}
		if c.CaughtUp {
			if err := setJSON(txn, keyLastSync, float64(r.opts.Now().UnixMilli())/1000); err != nil {
				return err
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
	}
	r.notify(notes...)
	return nil
}
