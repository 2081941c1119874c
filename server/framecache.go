package server

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/pryvsync/pryvsync/syncproto"
)

// A write fans out to every live session of its user, and the sessions of
// one access that were caught up all send the same changes batch: the same
// feed entries, filtered by the same scope, removals blinded with the same
// key, under the same cursor. frameCache keeps the last few such frames, so
// the first session to wake reads the feed and encodes the batch and the
// others only write the frame.
//
// A frame is shared only between sessions of the same access (id, version
// and key: scope and blinding) at the same epoch, from the same cursor, up
// to the same committed head. The batch is everything the feed holds after
// from up to head, so two sessions with that key would build it alike; only
// caught-up batches of the steady state (no initial download, no rescan)
// are shared, since those modes leave removals out.

// frameCacheSize bounds the frames kept: one per access and position that
// wakes at the same time, which is few.
const frameCacheSize = 16

// maxSharedFrame bounds the size of a frame kept for sharing; a fan-out
// batch is a few items.
const maxSharedFrame = 64 << 10

type frameKey struct {
	user, access, key, epoch string
	version                  int64
	from, head               uint64
}

type sharedFrame struct {
	key   frameKey
	frame []byte
	items int // items and removals
}

type frameCache struct {
	mu     sync.Mutex
	frames [frameCacheSize]*sharedFrame
	next   int // the slot to replace
}

func (c *frameCache) get(k frameKey) *sharedFrame {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.frames {
		if f != nil && f.key == k {
			return f
		}
	}
	return nil
}

func (c *frameCache) put(f *sharedFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range c.frames {
		if g != nil && g.key == f.key {
			return
		}
	}
	c.frames[c.next] = f
	c.next = (c.next + 1) % frameCacheSize
}

// frameKey is the key of the session's steady-state batch from cursor from
// up to head. Called from the feed goroutine, the only writer of ss.access.
func (ss *syncSession) frameKey(from, head uint64) frameKey {
	ss.mu.Lock()
	a := ss.access
	ss.mu.Unlock()
	return frameKey{user: ss.user, access: a.ID, key: string(a.Key), epoch: ss.s.st.Epoch(),
		version: a.Version, from: from, head: head}
}

// sendShared sends, in place of sendBatch, the frame another session of the
// same access encoded from the same cursor up to the current head, and
// reports whether there was one. It keeps the session's state as sendBatch
// does for a caught-up batch. Called from feedLoop.
func (ss *syncSession) sendShared(ctx context.Context) (bool, error) {
	start := time.Now()
	ss.mu.Lock()
	from, steady := ss.cursor, ss.rescan == 0 && !ss.initial
	ss.mu.Unlock()
	if !steady {
		return false, nil
	}
	head, err := ss.s.st.Head(ss.user)
	if err != nil || head <= from {
		return false, nil
	}
	f := ss.s.hub.frames.get(ss.frameKey(from, head))
	if f == nil {
		return false, nil
	}
	ss.mu.Lock()
	ss.cursor = head
	ss.sentCaughtUp = true
	ss.mu.Unlock()
	ss.s.FeedSent(ss.user, from, head)
	if err := ss.conn.Write(connCtx, websocket.MessageBinary, f.frame); err != nil {
		return true, err
	}
	ss.itemsOut += f.items
	syncItemsOut.Add(float64(f.items))
	pullLatency.Observe(time.Since(start).Seconds())
	return true, nil
}

// sendChanges sends the changes batch that sendBatch read from cursor from;
// steady says it was read in the steady state, so that other sessions of
// the access may send the same frame (sendShared).
func (ss *syncSession) sendChanges(ctx context.Context, batch *syncproto.Changes, from uint64, steady bool) error {
	b, err := syncproto.Encode(&syncproto.Message{T: syncproto.TypeChanges, Changes: batch})
	if err != nil {
		return err
	}
	if steady && batch.CaughtUp && batch.Cursor.Seq > from && len(b) <= maxSharedFrame {
		ss.s.hub.frames.put(&sharedFrame{key: ss.frameKey(from, batch.Cursor.Seq), frame: b,
			items: len(batch.Items) + len(batch.Removals)})
	}
	return ss.conn.Write(connCtx, websocket.MessageBinary, b)
}
