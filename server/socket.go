package server

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// notification is a frame of the notifications socket (SPEC §7).
type notification struct {
	Type      string `json:"type"`
	ChannelID string `json:"channelId,omitempty"`
}

// handleSocket serves GET /{user}/socket: JSON text frames telling which
// kinds of items changed in which channels, for changes the token's scope
// touches; closes 4403 on revocation and 4401 on expiry.
func (s *Server) handleSocket(c *call) {
	a, err := s.resolveAccess(c.user, c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	// Subscribe before the upgrade answers: a client that opens its socket
	// and then reads the current state must hear of every change committed
	// after that read. Then read the access again, so a revocation between
	// the check above and the subscription is not missed either. The
	// subscription is also the connection's slot (admit, sync.go).
	sub, err := s.admit(c.user)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	defer s.hub.Unsubscribe(sub)
	var cur *model.Access
	err = s.st.View(c.user, func(tx *store.Tx) error {
		var err error
		cur, _, err = loadAccess(tx, a.ID)
		return err
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if cur == nil || cur.Expired(s.now()) {
		s.fail(c.w, c.r, errBadToken())
		return
	}
	a = cur
	// Counted before the upgrade hijacks the connection: from then on only
	// this WaitGroup tells Close that the handler still runs.
	s.wg.Add(1)
	defer s.wg.Done()
	conn, err := websocket.Accept(c.w, c.r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	connections.WithLabelValues("socket").Inc()
	defer connections.WithLabelValues("socket").Dec()
	ctx := conn.CloseRead(s.baseCtx)
	actor := actorOf(a)
	go func() {
		t := time.NewTicker(s.cfg.PingInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				pctx, cancel := context.WithTimeout(ctx, s.cfg.PeerTimeout-s.cfg.PingInterval)
				err := conn.Ping(pctx)
				cancel()
				if err != nil {
					conn.CloseNow()
					return
				}
			}
		}
	}()
	for {
		var expiry <-chan time.Time
		if a.Expires != nil {
			expiry = time.After(time.Duration((*a.Expires - s.now()) * float64(time.Second)))
		}
		select {
		case <-ctx.Done():
			if s.baseCtx.Err() != nil {
				conn.Close(websocket.StatusGoingAway, "server shutting down")
			}
			return
		case <-expiry:
			conn.Close(syncproto.CloseBadToken, "access expired")
			return
		case <-sub.Wake():
		}
		_, notices, accesses := sub.Take()
		for _, id := range accesses {
			if id != a.ID {
				continue
			}
			var cur *model.Access
			_ = s.st.View(c.user, func(tx *store.Tx) error {
				cur, _, err = loadAccess(tx, a.ID)
				return err
			})
			if cur == nil {
				conn.Close(syncproto.CloseRevoked, "access revoked")
				return
			}
			a, actor = cur, actorOf(cur)
		}
		sent := map[notification]bool{}
		unseen := s.unseenNotices(c.user, actor, notices)
		for i, n := range notices {
			if unseen[i] {
				continue
			}
			var f notification
			switch n.Kind {
			case model.KindChannel:
				// Each channel change comes with a notice naming the
				// channel: only a token that sees it is told (SPEC §3.4).
				if n.Channel == "" || !actor.Scope.SeesChannel(n.Channel) {
					continue
				}
				f = notification{Type: "channelsChanged"}
			case model.KindFolder:
				f = notification{Type: "foldersChanged", ChannelID: n.Channel}
			default:
				f = notification{Type: "eventsChanged", ChannelID: n.Channel}
			}
			if f.ChannelID != "" && !actor.Scope.SeesChannel(f.ChannelID) || sent[f] {
				continue
			}
			sent[f] = true
			b, _ := json.Marshal(f)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return
			}
		}
	}
}

// unseenNotices marks the exact notices (store.Notice.Exact) of channels
// the actor sees only in part where nothing it can see changed, before or
// after the change: those are not told (SPEC §3.4: only connections whose
// scope the change touches). Events count for a token that does not see
// every event of the channel (folders, tags or a time frame), folders for
// one that does not see every folder.
func (s *Server) unseenNotices(user string, actor *Actor, notices []store.Notice) map[int]bool {
	partial := func(n store.Notice) bool {
		if !n.Exact || !actor.Scope.SeesChannel(n.Channel) {
			return false
		}
		if n.Kind == model.KindFolder {
			return !actor.Scope.WholeChannel(n.Channel)
		}
		return n.Kind == model.KindEvent && !actor.Scope.SeesWholeChannel(n.Channel)
	}
	if !slices.ContainsFunc(notices, partial) {
		return nil
	}
	out := map[int]bool{}
	err := s.st.View(user, func(tx *store.Tx) error {
		// Folders removed by these commits are gone from the tree: their
		// parents before the change stand in for them, so that events
		// removed with their folder are judged where they were.
		tree := removedTree{base: txTree{tx}, parents: map[string]string{}}
		for _, n := range notices {
			for _, f := range n.Gone {
				if len(f.Parents) > 0 {
					tree.parents[f.ID] = f.Parents[0]
				}
			}
		}
		for i, n := range notices {
			if partial(n) && !touchesScope(actor.Scope, n, tree) {
				out[i] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil // unreadable: tell rather than stay silent
	}
	return out
}

// removedTree is the folder tree with, for folders it no longer holds,
// the parents they had before the commits that removed them.
type removedTree struct {
	base    model.Tree
	parents map[string]string
}

func (t removedTree) FolderParent(f string) (string, bool) {
	if p, ok := t.base.FolderParent(f); ok {
		return p, true
	}
	p, ok := t.parents[f]
	return p, ok
}

// touchesScope reports whether an exact notice names an item the scope can
// see, as it was before or is after the change.
func touchesScope(sc model.Scope, n store.Notice, tree model.Tree) bool {
	for _, ef := range n.Events {
		if sc.EventLevel(ef, tree) > model.LevelNone {
			return true
		}
	}
	roots := sc.PermittedRoots(n.Channel)
	for _, f := range n.Folders {
		if roots[f.ID] || sc.FolderLevel(n.Channel, f.ID, tree) > model.LevelNone {
			return true
		}
		for _, p := range f.Parents {
			if p != "" && sc.FolderLevel(n.Channel, p, tree) > model.LevelNone {
				return true
			}
		}
	}
	return false
}
