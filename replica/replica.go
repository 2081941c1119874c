package replica

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// Options tune a replica. The zero value is fine.
type Options struct {
	// Now is the wall clock (tests); time.Now when nil.
	Now func() time.Time
	// HTTPClient dials the server; http.DefaultClient when nil.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound Run's reconnect delay (defaults 500ms
	// and 30s).
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is Run's keep-alive period (default 30s).
	PingInterval time.Duration
}

// ErrInUse is wrapped by Open when another process (or another Open in this
// one) owns the directory.
var ErrInUse = errors.New("replica directory is in use")

// ErrNotConfigured is returned by Sync and Run before Configure.
var ErrNotConfigured = errors.New("replica: not configured (run `pryvsync replica init`)")

// ErrAccessRevoked is returned when the server says the token is invalid,
// expired or revoked; the replica has then purged the data it held.
var ErrAccessRevoked = errors.New("replica: access token invalid, expired or revoked: local data purged")

// ErrVersion is returned when the server does not speak this protocol.
var ErrVersion = errors.New("replica: protocol version not supported by the server")

// Replica is a local copy of what one token sees. It is safe for concurrent use.
type Replica struct {
	dir  string
	db   *badger.DB
	opts Options
	// id is the replica id and clk the clock stamping its versions; both
	// change together when the server asks for a new id (renewID).
	id  atomic.Pointer[string]
	clk atomic.Pointer[crdt.Clock]

	mu   sync.Mutex    // serialises every write transaction
	wake chan struct{} // signalled (coalescing) on local writes
	// acks (r.mu) are pushed changes the server acknowledged whose
	// outbox entries still read as pending: see heldAck.
	acks []heldAck

	subMu  sync.Mutex
	subs   map[chan Change]struct{}
	closed bool

	connected atomic.Bool
}

// Change tells subscribers that an item changed locally or from the server.
type Change struct {
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Source  string `json:"source"` // "local" or "server"
	Removed bool   `json:"removed,omitempty"`
}

// Open opens (creating if needed) the replica stored in dir.
func Open(dir string, opts Options) (*Replica, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 500 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 30 * time.Second
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("replica: %w", err)
	}
	db, err := badger.Open(badgerOptions(dir))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("replica: %s is in use by another process (is a watch running?): %w", dir, ErrInUse)
		}
		return nil, fmt.Errorf("replica: open %s: %w", dir, err)
	}
	r := &Replica{dir: dir, db: db, opts: opts, wake: make(chan struct{}, 1), subs: map[chan Change]struct{}{}}
	var cs clockState
	err = db.Update(func(txn *badger.Txn) error {
		raw, ok, err := getRaw(txn, keyReplica)
		if err != nil {
			return err
		}
		if !ok {
			raw = []byte(model.NewID())
			if err := txn.Set([]byte(keyReplica), raw); err != nil {
				return err
			}
		}
		id := string(raw)
		r.id.Store(&id)
		if raw, ok, err := getRaw(txn, keyClock); err != nil {
			return err
		} else if ok {
			return msgpack.Unmarshal(raw, &cs)
		}
		return nil
	})
	if err == nil {
		err = ensureOutboxIndex(db)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("replica: open %s: %w", dir, err)
	}
	c := crdt.NewClock(r.ID(), opts.Now, 0)
	c.SetOffset(cs.Offset)
	c.Restore(cs.Last)
	r.clk.Store(c)
	return r, nil
}

// Close closes the store and every subscription.
func (r *Replica) Close() error {
	r.subMu.Lock()
	if r.closed {
		r.subMu.Unlock()
		return nil
	}
	r.closed = true
	for ch := range r.subs {
		close(ch)
	}
	r.subs = nil
	r.subMu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.db.Close()
}

// Dir returns the replica's directory.
func (r *Replica) Dir() string { return r.dir }

// ID returns the stable replica id.
func (r *Replica) ID() string { return *r.id.Load() }

// clock returns the clock that stamps local versions.
func (r *Replica) clock() *crdt.Clock { return r.clk.Load() }

// renewID takes a new replica id, persisted, and a clock stamping versions
// with it (continuing from the old clock's last version). Pending changes
// stay in the outbox and are pushed under the new id; their rseqs continue.
func (r *Replica) renewID() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := model.NewID()
	if err := r.db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyReplica), []byte(id)) }); err != nil {
		return err
	}
	old := r.clock()
	c := crdt.NewClock(id, r.opts.Now, 0)
	c.SetOffset(old.Offset())
	c.Restore(old.Last())
	r.id.Store(&id)
	r.clk.Store(c)
	return nil
}

// Subscribe returns a channel of changes (local and from the server). It is
// closed by Close. A subscriber that does not keep up loses notifications
// beyond a buffer of 4096.
func (r *Replica) Subscribe() <-chan Change {
	ch := make(chan Change, 4096)
	r.subMu.Lock()
	defer r.subMu.Unlock()
	if r.closed {
		close(ch)
		return ch
	}
	r.subs[ch] = struct{}{}
	return ch
}

func (r *Replica) notify(cs ...Change) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for ch := range r.subs {
		for _, c := range cs {
			select {
			case ch <- c:
			default:
			}
		}
	}
}

func (r *Replica) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Replica) update(fn func(txn *badger.Txn) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.db.Update(fn)
}

// Configure records the server's root URL, the username and the token.
//
// What the replica holds was received through the previous token, with
// that token's scope, cursor and blinding key; the server cannot tell that
// another token now speaks for the same replica (two accesses may well
// have the same permissions version). So another token drops it:
//   - with another server or user as well: everything, pending changes
//     included (they were made for another account and must not be pushed
//     to this one);
//   - with the same server and user: the items, the removal index, the
//     cursor and the permissions, but the pending changes and the
//     rejections stay: they are the user's own writes (and the record of
//     those refused, which the application has not cleared yet), pushed
//     under the new token, which refuses them (into Rejections) if it may
//     not make them.
//     Acknowledged changes kept until the cursor passed them go: the
//     server holds them, and the new token's download brings back what
//     the new token may see.
//
// Usernames compare without case (the server's are lower-case), URLs by
// scheme and host without case.
//
// The same token with another URL or username keeps everything: a token
// belongs to one access of one server, so that is the same server reached
// at another address (a server from another history would answer with a
// new epoch and the replica would start over anyway).
func (r *Replica) Configure(serverURL, username, token string) error {
	if !strings.HasPrefix(serverURL, "http://") && !strings.HasPrefix(serverURL, "https://") {
		return fmt.Errorf("replica: server URL must start with http:// or https://, got %q", serverURL)
	}
	if username == "" || token == "" {
		return errors.New("replica: username and token are required")
	}
	server, err := normalServer(serverURL)
	if err != nil {
		return err
	}
	next := Settings{Server: server, Username: strings.ToLower(username), Token: token}
	prev, err := r.Settings()
	if err != nil {
		return err
	}
	if prev.Server != "" {
		// Settings recorded before they were normalised compare as such.
		if s, err := normalServer(prev.Server); err == nil {
			prev.Server = s
		}
		prev.Username = strings.ToLower(prev.Username)
	}
	switch {
	case prev.Server == "" || prev.Token == next.Token:
	case prev.Server != next.Server || prev.Username != next.Username:
		if err := r.Purge(); err != nil {
			return err
		}
	default:
		if err := r.purgeTokenState(); err != nil {
			return err
		}
	}
	return r.update(func(txn *badger.Txn) error {
		return setJSON(txn, keySettings, next)
	})
}

// normalServer is the server URL with its scheme and host in lower case
// and no trailing slash.
func normalServer(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("replica: server URL %q has no host", serverURL)
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	return strings.TrimRight(u.String(), "/"), nil
}

// purgeTokenState drops what was received through the token (see
// Configure), keeping the pending changes and the rejections.
func (r *Replica) purgeTokenState() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.deletePrefixes(prefixBase, prefixBlind); err != nil {
		return err
	}
	var acked []entryHead
	for _, a := range r.acks {
		acked = append(acked, entryHead{RSeq: a.rseq, Kind: a.kind, ID: a.id})
	}
	r.acks = nil
	if err := r.db.View(func(txn *badger.Txn) error {
		return eachEntry(txn, 0, func(raw []byte) (bool, error) {
			h, err := headOf(raw)
			if err == nil && h.Acked {
				acked = append(acked, h)
			}
			return err == nil, err
		})
	}); err != nil {
		return err
	}
	for len(acked) > 0 {
		n := min(len(acked), 1000)
		if err := r.db.Update(func(txn *badger.Txn) error {
			for _, h := range acked[:n] {
				if err := deleteEntry(txn, h.Kind, h.ID, h.RSeq); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
		acked = acked[n:]
	}
	return r.forgetSession()
}

// Settings returns what Configure recorded.
func (r *Replica) Settings() (Settings, error) {
	var s Settings
	err := r.db.View(func(txn *badger.Txn) error {
		_, err := getJSON(txn, keySettings, &s)
		return err
	})
	return s, err
}

// Status is the replica's state, as `replica status --json` shows it.
type Status struct {
	Pending    int               `json:"pending"`
	Rejections int               `json:"rejections"`
	Cursor     *syncproto.Cursor `json:"cursor"`
	LastSync   *float64          `json:"lastSync"`
	Server     string            `json:"server"`
	Username   string            `json:"username"`
	Connected  bool              `json:"connected"`
	ReplicaID  string            `json:"replicaId"`
}

// Status reports pending changes, rejections, cursor and settings.
func (r *Replica) Status() (Status, error) {
	st := Status{Connected: r.connected.Load(), ReplicaID: r.ID()}
	r.mu.Lock()
	held := make(map[uint64]bool, len(r.acks))
	for _, a := range r.acks {
		held[a.rseq] = true
	}
	r.mu.Unlock()
	err := r.db.View(func(txn *badger.Txn) error {
		var s Settings
		if _, err := getJSON(txn, keySettings, &s); err != nil {
			return err
		}
		st.Server, st.Username = s.Server, s.Username
		var c syncproto.Cursor
		if ok, err := getJSON(txn, keyCursor, &c); err != nil {
			return err
		} else if ok {
			st.Cursor = &c
		}
		var ls float64
		if ok, err := getJSON(txn, keyLastSync, &ls); err != nil {
			return err
		} else if ok {
			st.LastSync = &ls
		}
		es, err := loadEntries(txn)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !e.Acked && !held[e.RSeq] {
				st.Pending++
			}
		}
		return eachPrefix(txn, prefixRej, func(string, []byte) (bool, error) { st.Rejections++; return true, nil })
	})
	return st, err
}

// RejectionError is the reason of a rejection.
type RejectionError struct {
	ID      string `json:"id"`
	Message string `json:"message"`
}

// Rejection is a refused local write, or a conflict the local write lost.
type Rejection struct {
	ID       string         `json:"id"`
	ItemID   string         `json:"itemId"`
	ItemKind string         `json:"itemKind"`
	Kind     string         `json:"kind"` // "rejected" or "conflict"
	Error    RejectionError `json:"error"`
	// Change is the local change, with its content.
	Change json.RawMessage `json:"change"`
	// Lost and Winning: for a conflict, the fields that lost and the
	// server's winning values.
	Lost    []string                   `json:"lost,omitempty"`
	Winning map[string]json.RawMessage `json:"winning,omitempty"`
	At      float64                    `json:"at"`
}

// Rejections lists the rejections and conflicts, oldest first.
func (r *Replica) Rejections() ([]Rejection, error) {
	out := []Rejection{}
	err := r.db.View(func(txn *badger.Txn) error {
		return eachPrefix(txn, prefixRej, func(_ string, v []byte) (bool, error) {
			var rj Rejection
			if err := json.Unmarshal(v, &rj); err != nil {
				return false, err
			}
			out = append(out, rj)
			return true, nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].At < out[j].At })
	return out, err
}

// DiscardRejection removes one rejection from the list.
func (r *Replica) DiscardRejection(id string) error {
	return r.update(func(txn *badger.Txn) error {
		if _, ok, err := getRaw(txn, prefixRej+id); err != nil {
			return err
		} else if !ok {
			return model.Errorf(model.ErrUnknownEvent, "unknown rejection %q", id)
		}
		return txn.Delete([]byte(prefixRej + id))
	})
}

func (r *Replica) nowSeconds() float64 {
	return float64(r.opts.Now().UnixMilli()+r.clock().Offset()) / 1000
}

func (r *Replica) saveClock(txn *badger.Txn) error {
	raw, err := msgpack.Marshal(&clockState{Last: r.clock().Last(), Offset: r.clock().Offset()})
	if err != nil {
		return err
	}
	return txn.Set([]byte(keyClock), raw)
}

// maxRSeq returns what hello announces as MaxRSeq: the highest rseq this
// replica ever pushed. The server compares it with the highest it applied
// for the replica id, and finds a directory restored from an older copy by
// that mark being higher. The highest rseq assigned would not do: a write
// made after the restore takes the next number, which the later copy may
// have pushed already, and hides the gap. A store written before the mark
// existed announces the highest rseq assigned (never too low).
func maxRSeq(txn *badger.Txn) (uint64, error) {
	raw, ok, err := getRaw(txn, keyPushed)
	if err != nil {
		return 0, err
	}
	if !ok || len(raw) != 8 {
		if raw, ok, err = getRaw(txn, keyRSeq); err != nil || !ok || len(raw) != 8 {
			return 0, err
		}
		return max(binary.BigEndian.Uint64(raw), 1) - 1, nil
	}
	return binary.BigEndian.Uint64(raw), nil
}

// markPushed records rseq as pushed (before the push is sent), keeping the
// highest.
func (r *Replica) markPushed(rseq uint64) error {
	return r.update(func(txn *badger.Txn) error {
		raw, ok, err := getRaw(txn, keyPushed)
		if err != nil {
			return err
		}
		if ok && len(raw) == 8 && binary.BigEndian.Uint64(raw) >= rseq {
			return nil
		}
		return txn.Set([]byte(keyPushed), binary.BigEndian.AppendUint64(nil, rseq))
	})
}

func nextRSeq(txn *badger.Txn) (uint64, error) {
	raw, ok, err := getRaw(txn, keyRSeq)
	if err != nil {
		return 0, err
	}
	n := uint64(1)
	if ok && len(raw) == 8 {
		n = binary.BigEndian.Uint64(raw)
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n+1)
	return n, txn.Set([]byte(keyRSeq), b[:])
}

func loadPerms(txn *badger.Txn) (*permState, error) {
	var p permState
	ok, err := getJSON(txn, keyPerms, &p)
	if err != nil || !ok {
		return nil, err
	}
	return &p, nil
}

// changeJSON renders a local change for the rejections list.
func changeJSON(e entry) json.RawMessage {
	fields := map[string]json.RawMessage{}
	for k, f := range e.Delta.Fields {
		switch k {
		case model.FieldCreated, model.FieldCreatedBy, model.FieldModified, model.FieldModifiedBy:
			continue
		}
		fields[k] = rawOrNull(f.Val)
	}
	out := map[string]any{"kind": e.Kind, "id": e.ID, "create": e.Create, "fields": fields}
	if len(e.Delta.Tags) > 0 {
		tags := map[string]bool{}
		for t, el := range e.Delta.Tags {
			tags[t] = el.Present
		}
		out["tags"] = tags
	}
	if len(e.Delta.Data) > 0 {
		cd := map[string]json.RawMessage{}
		for k, f := range e.Delta.Data {
			cd[k] = rawOrNull(f.Val)
		}
		out["clientData"] = cd
	}
	if e.Delta.IsDeleted() {
		out["deleted"] = true
	}
	raw, _ := json.Marshal(out)
	return raw
}

func rawOrNull(v []byte) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	return json.RawMessage(v)
}

func winningValues(lost []string, cur crdt.Doc) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for _, name := range lost {
		switch {
		case strings.HasPrefix(name, "tags:"):
			out[name] = json.RawMessage(model.JSONBool(cur.Tags[strings.TrimPrefix(name, "tags:")].Present))
		case strings.HasPrefix(name, "clientData:"):
			out[name] = rawOrNull(cur.Data[strings.TrimPrefix(name, "clientData:")].Val)
		case strings.HasPrefix(name, "attachments:"):
			out[name] = rawOrNull(cur.Files[strings.TrimPrefix(name, "attachments:")].Val)
		default:
			out[name] = rawOrNull(cur.Fields[name].Val)
		}
	}
	return out
}
