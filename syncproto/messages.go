package syncproto

import (
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
)

// Subprotocol is the websocket subprotocol of this version.
const Subprotocol = "pryvsync.v1"

// ProtocolVersion is sent in hello; the server refuses others with 4426.
const ProtocolVersion = 1

// Limits of SPEC §4.2.
const (
	MaxBatchItems  = 1000
	MaxBatchBytes  = 1 << 20
	MaxFrameBytes  = 4 << 20
	MaxChunkBytes  = 1 << 20
	MaxPushChanges = 1000
	MaxInFlight    = 4
)

// Close codes (SPEC §7).
const (
	CloseMalformed   = 4400
	CloseBadToken    = 4401
	CloseRevoked     = 4403
	CloseVersion     = 4426
	CloseTooBig      = 1009
	CloseGoingAway   = 1001
	CloseNormal      = 1000
	ClosePolicy      = 1008
	CloseInternalErr = 1011
	CloseTryAgain    = 1013 // a cluster node cannot serve the session for now
)

// Message types.
const (
	TypeHello          = "hello"
	TypeWelcome        = "welcome"
	TypePush           = "push"
	TypePushResult     = "pushResult"
	TypeChanges        = "changes"
	TypeAck            = "ack"
	TypeScope          = "scope"
	TypeAttachmentGet  = "attachmentGet"
	TypeAttachmentData = "attachmentData"
	TypeAttachmentPut  = "attachmentPut"
	TypeError          = "error"
)

// Message is one frame: T names the type and the matching field holds the body.
type Message struct {
	T              string          `msgpack:"t"`
	Hello          *Hello          `msgpack:"hello,omitempty"`
	Welcome        *Welcome        `msgpack:"welcome,omitempty"`
	Push           *Push           `msgpack:"push,omitempty"`
	PushResult     *PushResult     `msgpack:"pushResult,omitempty"`
	Changes        *Changes        `msgpack:"changes,omitempty"`
	Ack            *Ack            `msgpack:"ack,omitempty"`
	Scope          *Scope          `msgpack:"scope,omitempty"`
	AttachmentGet  *AttachmentGet  `msgpack:"attachmentGet,omitempty"`
	AttachmentData *AttachmentData `msgpack:"attachmentData,omitempty"`
	AttachmentPut  *AttachmentPut  `msgpack:"attachmentPut,omitempty"`
	Error          *Error          `msgpack:"error,omitempty"`
}

// Cursor is the replica's position in the user's change log.
type Cursor struct {
	Epoch string `msgpack:"epoch" json:"epoch"`
	Seq   uint64 `msgpack:"seq" json:"seq"`
}

// Hello opens a session (client).
type Hello struct {
	Version int     `msgpack:"version"`
	Replica string  `msgpack:"replica"`
	Cursor  *Cursor `msgpack:"cursor,omitempty"`
	Pending int     `msgpack:"pending"`
	Clock   int64   `msgpack:"clock"` // client wall clock, ms
	// PermVersion is the version of the permissions the replica last
	// received (0: none). A difference makes the server re-send the scope.
	PermVersion int64 `msgpack:"permVersion"`
	// MaxRSeq is the highest replica sequence this replica ever pushed (a
	// number it assigned but never pushed may legitimately equal one the
	// server saw from an older copy). Below the server's high-water mark for
	// the replica id, the directory was restored from an older copy: the
	// server answers Renew.
	MaxRSeq uint64 `msgpack:"maxRseq,omitempty"`
}

// Reset reasons.
const (
	ResetEpoch   = "epoch"   // the server was restored: new epoch
	ResetHorizon = "horizon" // the cursor is older than the tombstone horizon
	ResetScope   = "scope"   // the access's permissions changed
)

// Welcome answers hello (server).
type Welcome struct {
	ServerTime  int64              `msgpack:"serverTime"` // ms
	Epoch       string             `msgpack:"epoch"`
	AccessID    string             `msgpack:"accessId"`
	AccessType  string             `msgpack:"accessType"`
	Permissions []model.Permission `msgpack:"permissions"`
	PermVersion int64              `msgpack:"permVersion"`
	// Key blinds removals: a removal carries HMAC-SHA256(Key, kind ":" id)[:16].
	Key []byte `msgpack:"key"`
	// Resume is the sequence the server will send changes after.
	Resume uint64 `msgpack:"resume"`
	// Reset, when set, tells the replica to drop what it holds (keeping its
	// pending changes), push those, then download its scope again.
	Reset string `msgpack:"reset,omitempty"`
	// Rescan says the scope changed without a reset: the replica deletes what
	// the new permissions exclude; the server re-sends what they include.
	Rescan bool `msgpack:"rescan,omitempty"`
	// Renew tells the replica to take a new replica id before pushing: the
	// server has already seen its sequence numbers from another copy of it
	// (its directory was restored from an older copy), so a push under the
	// old id would be taken for a replay and silently dropped.
	Renew bool `msgpack:"renew,omitempty"`
}

// Change is one pushed change (client), in the replica's order.
type Change struct {
	RSeq   uint64   `msgpack:"rseq"` // replica sequence, strictly increasing
	Kind   string   `msgpack:"kind"`
	ID     string   `msgpack:"id"`
	Create bool     `msgpack:"create,omitempty"`
	Delta  crdt.Doc `msgpack:"delta"`
}

// Push carries a batch of changes (client).
type Push struct {
	Changes []Change `msgpack:"changes"`
}

// Result statuses.
const (
	StatusOK        = "ok"
	StatusDuplicate = "duplicate"
	StatusConflict  = "conflict"
	StatusRejected  = "rejected"
)

// Result is the outcome of one pushed change.
type Result struct {
	RSeq   uint64 `msgpack:"rseq"`
	Status string `msgpack:"status"`
	// Seq is the server sequence of the change (ok and conflict); for a
	// rejection, the head at which Current was read: a replica whose cursor
	// is already at or past it holds newer state and ignores Current.
	Seq uint64 `msgpack:"seq,omitempty"`
	// Lost names the delta's entries that lost to newer values (conflict).
	Lost []string `msgpack:"lost,omitempty"`
	// Error is the reason of a rejection.
	Error *model.Error `msgpack:"error,omitempty"`
	// Current is the server's item after the change (conflict: holds the
	// winning values) or, for a rejection, its current state; nil when the
	// item does not exist or is outside the scope.
	Current *Item `msgpack:"current,omitempty"`
	// Renamed is the new name of a folder renamed on a name clash.
	Renamed   string `msgpack:"renamed,omitempty"`
	StoppedID string `msgpack:"stoppedId,omitempty"`
}

// PushResult answers a push with one result per change, in order (server).
type PushResult struct {
	Results []Result `msgpack:"results"`
}

// Item is an item's whole current state with per-field versions.
type Item struct {
	Kind string   `msgpack:"kind"`
	ID   string   `msgpack:"id"`
	Doc  crdt.Doc `msgpack:"doc"`
	// RawDoc, when set, is Doc already encoded (as stored): it is sent
	// as it is and Doc is ignored. Never decoded into.
	RawDoc []byte `msgpack:"-" json:"-"`
}

// EncodeMsgpack writes the item as reflection would (a map of kind, id and
// doc), taking the document's bytes from RawDoc when it is set.
func (it Item) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeMapLen(3); err != nil {
		return err
	}
	for _, s := range [...]string{"kind", it.Kind, "id", it.ID, "doc"} {
		if err := enc.EncodeString(s); err != nil {
			return err
		}
	}
	if it.RawDoc != nil {
		_, err := enc.Writer().Write(it.RawDoc)
		return err
	}
	return it.Doc.EncodeMsgpack(enc)
}

// Changes is a batch of the feed (server). Apply it in one local
// transaction, then ack Cursor.
//
// Cursor and CaughtUp come first in the encoding (field order), and
// CaughtUp is always written, so that a client that needs only them can
// stop reading once it has both; a client must not assume the order (a
// missing caughtUp reads as false).
type Changes struct {
	Cursor Cursor `msgpack:"cursor"`
	// CaughtUp says the batch reaches the head the server saw.
	CaughtUp bool     `msgpack:"caughtUp"`
	Items    []Item   `msgpack:"items,omitempty"`
	Removals [][]byte `msgpack:"removals,omitempty"`
}

// Ack acknowledges the cursor the replica has durably applied (client).
type Ack struct {
	Cursor Cursor `msgpack:"cursor"`
}

// Scope announces new permissions while connected (server). The replica
// deletes what they exclude; items they newly include follow in changes.
type Scope struct {
	Permissions []model.Permission `msgpack:"permissions"`
	PermVersion int64              `msgpack:"permVersion"`
}

// AttachmentGet asks for attachment content by digest, for an event in
// scope (client).
type AttachmentGet struct {
	EventID string `msgpack:"eventId"`
	Digest  string `msgpack:"digest"`
	Offset  int64  `msgpack:"offset"`
}

// AttachmentData is one chunk of content (server).
type AttachmentData struct {
	Digest string       `msgpack:"digest"`
	Offset int64        `msgpack:"offset"`
	Data   []byte       `msgpack:"data"`
	EOF    bool         `msgpack:"eof,omitempty"`
	Error  *model.Error `msgpack:"error,omitempty"`
}

// AttachmentPut uploads content by digest in chunks (client), before the
// push that references it. The server answers the final chunk with an
// AttachmentData{Digest, EOF: true} (or its Error).
type AttachmentPut struct {
	Digest string `msgpack:"digest"`
	Offset int64  `msgpack:"offset"`
	Data   []byte `msgpack:"data"`
	Final  bool   `msgpack:"final,omitempty"`
}

// Error reports a protocol error before the server closes (server).
type Error struct {
	Code    int    `msgpack:"code"`
	ID      string `msgpack:"id"`
	Message string `msgpack:"message"`
}

// NeedsAck reports whether a client must acknowledge a changes batch
// (PROTOCOL.md §4): only a full one, that is one not caught up. Acks only
// pace the server, which holds back full batches while MaxInFlight are
// unacknowledged and never holds back a caught-up batch (live changes), so
// acknowledging those is optional: a replica that receives an occasional
// live change sends nothing back, which was about a third of a server's
// work when one write reaches thousands of replicas (W5). An ack frees
// every batch up to its cursor.
func NeedsAck(caughtUp bool) bool { return !caughtUp }
