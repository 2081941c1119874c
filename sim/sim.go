// Package sim is a deterministic simulator of pryvsync: one server, several
// replicas holding different tokens (personal, channel-, folder- and
// tag-restricted, read-only), and a seeded scheduler that interleaves local
// edits (create, update, tags, folder moves, trash, delete, folder moves
// that could form cycles), HTTP writes, access narrowing, widening and
// revocation, and network faults (cuts after n messages or bytes in either
// direction, a push result delivered after the next batch, partitions,
// crash-restart of a replica or of an on-disk server, a wiped replica).
//
// Checked after every sync round, on what crossed the wire: no item, and no
// id of an item, outside the token's scope at the time reached the replica
// (sync-anchors §7.8); cursors move forward; push results answer pushes;
// results of one push have increasing sequence numbers. Checked after every
// heal-and-quiesce: every replica equals the server's state within its scope
// (field by field, and the HTTP API agrees on the scope); nothing is pending
// and every cursor is at the head; no acknowledged change is lost (each
// field it set is on the server at a version at least as new, unless it
// lost a conflict or the item was deleted); every rejected change and lost
// conflict is in its replica's rejections; replays are answered like the
// original; sequence numbers are never reused; the feed is ordered and
// holds exactly the current entry of every item; the folder tree has no
// cycle; revoked replicas hold nothing.
//
// The scheduler runs on one goroutine: a replica only moves when the
// scheduler calls its Sync (one round), so the seed decides the order of
// everything. The server and the replicas still run their own goroutines
// inside a round, so a failing seed reproduces most of the time, not always.
//
// Replicas dial the server over loopback TCP through a tap (net.go) that
// records every websocket message both ways and injects the faults.
// Replays and duplicates come from reconnecting: a replica pushes again
// whatever it has no result for, and the server answers from its
// high-water marks.
//
// Running: `go test ./sim` runs 200 seeds of 40 ops (PRYVSYNC_SIM_SEEDS or
// -sim.seeds N for more, -sim.ops for longer runs; PRYVSYNC_LONG=1 runs
// 2000 seeds of 120 ops). A failing seed prints its replay command:
// `go test ./sim -run 'TestSim$' -seed N -v`.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
	"github.com/pryvsync/pryvsync/server"
	"github.com/pryvsync/pryvsync/server/store"
	"github.com/pryvsync/pryvsync/syncproto"
)

// TraceAll logs the trace of passing runs too.
var TraceAll bool

// Config sets the size of one simulated run.
type Config struct {
	Seed     int64
	Replicas int  // 2..5; the first is always personal
	Ops      int  // scheduler steps
	OnDisk   bool // on-disk server, crash-restarted sometimes
	// Cluster makes the server a cluster node over a log shared with the
	// nodes that replace it: a restart is then a node dying and its
	// replicas reconnecting to another, which has an empty directory and
	// rebuilds it from the log (store.MemLog).
	Cluster bool
	// Checkpoint is how many ops pass between heal-and-quiesce checks.
	Checkpoint int
}

// Role is the kind of token a replica holds.
type Role int

// Roles.
const (
	RolePersonal Role = iota
	RoleChannel
	RoleFolder
	RoleTag
	RoleRead
	numRoles
)

func (r Role) String() string {
	return [...]string{"personal", "channel", "folder", "tag", "read"}[r]
}

// Rep is one simulated replica.
type Rep struct {
	Name    string
	Role    Role
	Dir     string
	EP      *Endpoint
	R       *replica.Replica
	Token   string
	Perms   Perms
	Variant int
	// Revoked: the access was deleted on the server. Purged: the replica
	// learned it and purged its data.
	Revoked, Purged bool
	LastCursor      *syncproto.Cursor
	accessN         int
}

// pushRec follows one pushed change of one replica id.
type pushRec struct {
	rep     *Rep
	change  *syncproto.Change
	results []syncproto.Result
	// void: the replica purged or was wiped before it could record the
	// outcome, so no rejection entry is expected.
	void bool
}

type failure struct {
	class, detail string
}

// Sim is one seeded run.
type Sim struct {
	T   testing.TB
	Cfg Config
	W   *World
	rng *rand.Rand

	Reps  []*Rep
	trace []string

	pushes      map[string]map[uint64]*pushRec // replica id → rseq
	httpCreated []Key
	failures    []failure
	classes     map[string]int

	nextName int
	stats    Stats
	base     string
	started  time.Time
	snap     *State // the server's state, while nothing changed it
}

// Stats count what a run did.
type Stats struct {
	Ops, LocalOK, LocalRefused, HTTPWrites, Syncs, Faults, Cuts, Restarts, Checks int
	Pushed, Rejected, Conflicts, Replays                                          int
}

// New prepares a run: the server, the initial data and the replicas.
func New(t testing.TB, cfg Config) *Sim {
	if cfg.Replicas < 2 {
		cfg.Replicas = 2
	}
	if cfg.Checkpoint <= 0 {
		cfg.Checkpoint = 20
	}
	s := &Sim{T: t, Cfg: cfg, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed)),
		pushes: map[string]map[uint64]*pushRec{}, classes: map[string]int{}, started: time.Now()}
	// Directories first: t.Cleanup runs last-in first-out, so the world
	// (and its replicas) closes before its directories are removed.
	s.base = t.TempDir()
	dir := ""
	if cfg.OnDisk || cfg.Cluster {
		dir = filepath.Join(s.base, "server")
	}
	if cfg.Cluster {
		log := store.NewMemLog()
		s.W = NewWorld(t, dir, func(c *server.Config) { c.Log = log })
	} else {
		s.W = NewWorld(t, dir)
	}
	s.setup()
	return s
}

// Tracef records a step of the run.
func (s *Sim) Tracef(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("%3d %6.2fs ", s.stats.Ops, time.Since(s.started).Seconds())+fmt.Sprintf(format, args...))
}

// Fail records an invariant failure of a class; each class is reported once
// per run (with how many times it happened).
func (s *Sim) Fail(class, format string, args ...any) {
	s.classes[class]++
	if s.classes[class] == 1 {
		d := fmt.Sprintf(format, args...)
		s.failures = append(s.failures, failure{class, d})
		s.Tracef("!! %s: %s", class, d)
	}
}

// Failed reports whether any invariant failed.
func (s *Sim) Failed() bool { return len(s.failures) > 0 }

// Classes returns the failed classes.
func (s *Sim) Classes() []string {
	var out []string
	for _, f := range s.failures {
		out = append(out, f.class)
	}
	return out
}

// TraceBudget, when set, says whether a failing run prints its trace
// (given its failed classes); otherwise it prints one line per class.
var TraceBudget func(classes []string) bool

// Report fails the test with every failure, the seed and the trace.
func (s *Sim) Report() {
	if !s.Failed() {
		if TraceAll {
			s.T.Log("trace:\n    " + strings.Join(s.trace, "\n    "))
		}
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d (replay: go test ./sim -run 'TestSim$' -seed %d -sim.ops %d -v): %d invariant classes failed\n",
		s.Cfg.Seed, s.Cfg.Seed, s.Cfg.Ops, len(s.failures))
	for _, f := range s.failures {
		fmt.Fprintf(&b, "  [%s] x%d: %s\n", f.class, s.classes[f.class], f.detail)
	}
	if TraceBudget != nil && !TraceBudget(s.Classes()) && !testing.Verbose() {
		b.WriteString("  (trace omitted: these classes were already traced; replay with -v)\n")
		s.T.Error(b.String())
		return
	}
	tr := s.trace
	if !testing.Verbose() && len(tr) > 80 {
		tr = tr[len(tr)-80:]
		b.WriteString("  trace (last 80 steps; -v for all):\n")
	} else {
		b.WriteString("  trace:\n")
	}
	for _, l := range tr {
		b.WriteString("    " + l + "\n")
	}
	s.T.Error(b.String())
}

// Run runs the configured number of ops with checkpoints, then a final
// heal-and-quiesce check.
func (s *Sim) Run() {
	for s.stats.Ops = 1; s.stats.Ops <= s.Cfg.Ops; s.stats.Ops++ {
		s.Step()
		if s.stats.Ops%s.Cfg.Checkpoint == 0 {
			s.HealAndCheck()
		}
	}
	s.HealAndCheck()
}

// Stats returns the counters of the run.
func (s *Sim) Stats() Stats { return s.stats }

// ---- setup ----

const (
	ch1, ch2       = "ch-1-z", "ch-2-z"
	fo1, fo2, fo3  = "fo-1-z", "fo-2-z", "fo-3-z"
	fo4            = "fo-4-z"
	tagWork        = "work"
	tagHome        = "home"
	tagSport       = "sport"
	noteClass      = "note"
	initialEvents  = 6
	baseEventTime  = 1_700_000_000
	syncTimeout    = 30 * time.Second
	maxQuiescePass = 8
)

var allTags = []string{tagWork, tagHome, tagSport}

func sp(s string) *string { return &s }

// permsFor returns the permissions of a role's variant.
func permsFor(role Role, variant int) Perms {
	switch role {
	case RoleChannel:
		return Perms{List: [][]model.Permission{
			{{ChannelID: ch1, Level: "contribute"}},
			{{ChannelID: ch1, Level: "manage"}, {ChannelID: ch2, Level: "read"}},
			{{ChannelID: ch2, Level: "manage"}},
		}[variant%3]}
	case RoleFolder:
		return Perms{List: [][]model.Permission{
			{{ChannelID: ch1, Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: sp(fo1), Level: "manage"}}}},
			{{ChannelID: ch1, Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: sp(fo3), Level: "manage"}, {FolderID: nil, Level: "contribute"}}}},
			{{ChannelID: ch1, Level: "read", FolderPermissions: []model.FolderPermission{{FolderID: sp(fo2), Level: "contribute"}, {FolderID: sp(fo3), Level: "read"}}}},
		}[variant%3]}
	case RoleTag:
		return Perms{List: [][]model.Permission{
			{{ChannelID: ch1, Level: "contribute", Tags: []string{tagWork}}},
			{{ChannelID: "*", Level: "contribute", Tags: []string{tagWork, tagHome}}},
		}[variant%2]}
	case RoleRead:
		return Perms{List: [][]model.Permission{
			{{ChannelID: "*", Level: "read"}},
			{{ChannelID: ch2, Level: "read"}},
		}[variant%2]}
	}
	return Perms{Personal: true}
}

func variants(role Role) int {
	switch role {
	case RoleChannel, RoleFolder:
		return 3
	case RoleTag, RoleRead:
		return 2
	}
	return 1
}

func (s *Sim) setup() {
	w := s.W
	w.MustDo("POST", "/channels", w.Owner, map[string]any{"id": ch1, "name": "Diary"}, 201)
	w.MustDo("POST", "/channels", w.Owner, map[string]any{"id": ch2, "name": "Work"}, 201)
	w.MustDo("POST", "/"+ch1+"/folders", w.Owner, map[string]any{"id": fo1, "name": "One"}, 201)
	w.MustDo("POST", "/"+ch1+"/folders", w.Owner, map[string]any{"id": fo2, "name": "Two"}, 201)
	w.MustDo("POST", "/"+ch1+"/folders", w.Owner, map[string]any{"id": fo3, "name": "Three", "parentId": fo1}, 201)
	w.MustDo("POST", "/"+ch2+"/folders", w.Owner, map[string]any{"id": fo4, "name": "Four"}, 201)
	s.httpCreated = append(s.httpCreated, Key{model.KindChannel, ch1}, Key{model.KindChannel, ch2}, Key{model.KindFolder, fo1},
		Key{model.KindFolder, fo2}, Key{model.KindFolder, fo3}, Key{model.KindFolder, fo4})
	for i := 0; i < initialEvents; i++ {
		s.httpCreateEvent()
	}
	roles := []Role{RolePersonal}
	others := []Role{RoleChannel, RoleFolder, RoleTag, RoleRead}
	s.rng.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	for i := 1; i < s.Cfg.Replicas; i++ {
		if i-1 < len(others) {
			roles = append(roles, others[i-1])
		} else {
			roles = append(roles, RolePersonal)
		}
	}
	for i, role := range roles {
		rep := &Rep{Name: fmt.Sprintf("r%d-%s", i, role), Role: role, Dir: filepath.Join(s.base, fmt.Sprintf("r%d", i))}
		rep.EP = w.Endpoint(rep.Name)
		rep.Variant = s.rng.IntN(variants(role))
		s.grant(rep)
		r, err := w.OpenReplica(rep.Dir, rep.EP, nil)
		if err != nil {
			s.T.Fatalf("open replica: %v", err)
		}
		rep.R = r
		if err := r.Configure(w.URL, User, rep.Token); err != nil {
			s.T.Fatalf("configure: %v", err)
		}
		s.Reps = append(s.Reps, rep)
		s.Tracef("replica %s (id %s) perms %s", rep.Name, r.ID(), permString(rep.Perms))
	}
	s.HealAndCheck()
}

// grant gives rep a fresh access for its role and variant.
func (s *Sim) grant(rep *Rep) {
	s.snap = nil
	rep.Perms = permsFor(rep.Role, rep.Variant)
	rep.accessN++
	if rep.Role == RolePersonal {
		rep.Token = s.W.StoreAccess(&model.Access{Type: model.AccessPersonal, Name: fmt.Sprintf("%s-%d", rep.Name, rep.accessN)})
		return
	}
	tok, err := s.W.CreateShared(fmt.Sprintf("%s-%d", rep.Name, rep.accessN), rep.Perms.List, nil)
	if err != nil {
		s.T.Fatalf("grant %s: %v", rep.Name, err)
	}
	rep.Token = tok
}

func permString(p Perms) string {
	if p.Personal {
		return "personal"
	}
	var parts []string
	for _, e := range p.List {
		x := e.ChannelID + ":" + e.Level
		for _, fp := range e.FolderPermissions {
			f := "null"
			if fp.FolderID != nil {
				f = *fp.FolderID
			}
			x += fmt.Sprintf(" [%s %s]", f, fp.Level)
		}
		if len(e.Tags) > 0 {
			x += " tags=" + strings.Join(e.Tags, ",")
		}
		parts = append(parts, x)
	}
	return strings.Join(parts, "; ")
}

// ---- the scheduler ----

// Step runs one seeded op.
func (s *Sim) Step() {
	x := s.rng.IntN(100)
	switch {
	case x < 45:
		s.localOp(s.pickRep())
	case x < 72:
		rep := s.pickRep()
		var f *Fault
		pending := false
		if st, err := rep.R.Status(); err == nil && st.Pending > 0 {
			pending = true
		}
		switch x := s.rng.IntN(100); {
		case pending && x < 15:
			// The push reaches the server, its result never comes back:
			// the next round pushes it again (a replay).
			s.stats.Faults++
			f = &Fault{Dir: C2S, AfterMsgs: 2}
		case x < 40:
			f = s.randomFault()
		}
		s.SyncStep(rep, f)
	case x < 84:
		s.httpOp()
	case x < 88:
		s.accessOp()
	case x < 92:
		rep := s.pickRep()
		if rep.EP.Partitioned() {
			rep.EP.Heal()
			s.Tracef("%s: heal", rep.Name)
		} else {
			rep.EP.Partition()
			s.Tracef("%s: partition", rep.Name)
		}
	case x < 95:
		s.restartReplica(s.pickRep())
	case x < 97:
		if s.Cfg.OnDisk || s.Cfg.Cluster {
			s.restartServer()
		} else {
			s.SyncStep(s.pickRep(), nil)
		}
	case x < 98:
		s.wipeReplica(s.pickRep())
	default:
		s.SyncStep(s.pickRep(), nil)
	}
}

func (s *Sim) pickRep() *Rep { return s.Reps[s.rng.IntN(len(s.Reps))] }

func (s *Sim) randomFault() *Fault {
	s.stats.Faults++
	f := &Fault{Dir: Dir(s.rng.IntN(2))}
	switch x := s.rng.IntN(8); {
	case x < 2:
		f.Reorder = true
		return f
	case x < 4:
		f.AfterBytes = 20 + s.rng.IntN(600)
	default:
		f.AfterMsgs = 1 + s.rng.IntN(4)
	}
	return f
}

func (s *Sim) restartReplica(rep *Rep) {
	id := rep.R.ID()
	if err := s.W.CloseReplica(rep.R); err != nil {
		s.Fail("replica-close", "%s: close: %v", rep.Name, err)
	}
	r, err := s.W.OpenReplica(rep.Dir, rep.EP, nil)
	if err != nil {
		s.T.Fatalf("seed %d: reopen %s: %v", s.Cfg.Seed, rep.Name, err)
	}
	rep.R = r
	s.stats.Restarts++
	s.Tracef("%s: crash-restart", rep.Name)
	if r.ID() != id {
		s.Fail("replica-id-changed", "%s: replica id %s became %s after a restart", rep.Name, id, r.ID())
	}
}

func (s *Sim) restartServer() {
	s.snap = nil
	s.W.RestartServer()
	s.stats.Restarts++
	s.Tracef("server: crash-restart")
}

// wipeReplica deletes a replica's directory and starts it again with the
// same token: whatever it had not pushed is gone (the user wiped it).
func (s *Sim) wipeReplica(rep *Rep) {
	if rep.Revoked {
		return
	}
	old := rep.R.ID()
	if err := s.W.CloseReplica(rep.R); err != nil {
		s.Fail("replica-close", "%s: close: %v", rep.Name, err)
	}
	if err := RemoveDir(rep.Dir); err != nil {
		s.T.Fatalf("wipe: %v", err)
	}
	r, err := s.W.OpenReplica(rep.Dir, rep.EP, nil)
	if err != nil {
		s.T.Fatalf("seed %d: reopen wiped %s: %v", s.Cfg.Seed, rep.Name, err)
	}
	if err := r.Configure(s.W.URL, User, rep.Token); err != nil {
		s.T.Fatalf("configure: %v", err)
	}
	rep.R = r
	rep.LastCursor = nil
	s.voidPushes(old)
	s.Tracef("%s: wiped, new replica id %s", rep.Name, r.ID())
}

func (s *Sim) voidPushes(replicaID string) {
	for _, rec := range s.pushes[replicaID] {
		if len(rec.results) == 0 || s.finalStatus(rec) == syncproto.StatusRejected || s.finalStatus(rec) == syncproto.StatusConflict {
			rec.void = true
		}
	}
}

// ---- sync steps and wire checks ----

// SyncStep runs one Sync round of rep, with an optional fault on its
// connection, and checks every message that crossed the wire.
func (s *Sim) SyncStep(rep *Rep, f *Fault) (replica.RoundResult, error) {
	s.stats.Syncs++
	before := s.snapshot()
	rep.EP.Take()
	if f != nil {
		rep.EP.Arm(f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	t0 := time.Now()
	res, err := rep.R.Sync(ctx)
	took := time.Since(t0)
	cancel()
	rep.EP.Arm(nil)
	frames := rep.EP.Take()
	s.snap = nil
	after := s.snapshot()
	fs := ""
	if f != nil {
		fs = " [" + f.String() + "]"
	}
	partitioned := rep.EP.Partitioned()
	if partitioned {
		fs += " [partitioned]"
	}
	s.Tracef("%s: sync%s → pushed %d rejected %d conflicts %d applied %d, %d frames, %v, err=%v",
		rep.Name, fs, res.Pushed, res.Rejected, res.Conflicts, res.Applied, len(frames), took.Round(time.Millisecond), err)
	s.stats.Pushed += res.Pushed
	s.stats.Rejected += res.Rejected
	s.stats.Conflicts += res.Conflicts
	s.checkFrames(rep, frames, before, after)

	switch {
	case errors.Is(err, replica.ErrAccessRevoked):
		if !rep.Revoked {
			s.Fail("revoked-without-revocation", "%s: Sync said the access is revoked, but it is not: %v", rep.Name, err)
		}
		rep.Purged = true
		rep.LastCursor = nil
		s.voidPushes(rep.R.ID())
		s.checkPurged(rep)
		return res, err
	case rep.Revoked && !partitioned && err == nil:
		s.Fail("revoked-token-synced", "%s: a round with a revoked token succeeded", rep.Name)
	case err != nil && f == nil && !partitioned && !rep.Revoked:
		s.Fail("sync-error", "%s: Sync failed with no fault injected: %v", rep.Name, err)
	case err != nil && f != nil && errors.Is(err, context.DeadlineExceeded):
		s.Fail("sync-hang", "%s: Sync hung after a fault (%v): %v", rep.Name, f, err)
	}
	if f != nil && err != nil {
		s.stats.Cuts++
	}
	st, serr := rep.R.Status()
	if serr != nil {
		s.Fail("status-error", "%s: %v", rep.Name, serr)
		return res, err
	}
	if st.Cursor != nil && rep.LastCursor != nil && st.Cursor.Epoch == rep.LastCursor.Epoch && st.Cursor.Seq < rep.LastCursor.Seq {
		s.Fail("cursor-regressed", "%s: cursor went from %d to %d", rep.Name, rep.LastCursor.Seq, st.Cursor.Seq)
	}
	if st.Cursor != nil {
		c := *st.Cursor
		rep.LastCursor = &c
	}
	return res, err
}

// snapshot returns the server's state, read again only after something may
// have changed it.
func (s *Sim) snapshot() *State {
	if s.snap == nil {
		s.snap = s.W.Snapshot()
	}
	return s.snap
}

func (s *Sim) rec(replicaID string, rseq uint64) *pushRec {
	m := s.pushes[replicaID]
	if m == nil {
		m = map[uint64]*pushRec{}
		s.pushes[replicaID] = m
	}
	r := m[rseq]
	if r == nil {
		r = &pushRec{}
		m[rseq] = r
	}
	return r
}

// checkFrames checks what crossed rep's connections during one step:
// every item and every item id sent to the replica was in its scope
// before or after the step, cursors move forward within a connection, and
// results answer changes the replica pushed.
func (s *Sim) checkFrames(rep *Rep, frames []Frame, before, after *State) {
	visB, visA := before.Visible(rep.Perms), after.Visible(rep.Perms)
	allowed := map[string]bool{}
	for k := range visB {
		allowed[k.ID] = true
	}
	for k := range visA {
		allowed[k.ID] = true
	}
	// Ids of live items the token could not see, before or after. (A
	// deleted item's id may be known from before its deletion.)
	ids := map[string]bool{}
	for _, st := range []*State{before, after} {
		for k, d := range st.Docs {
			if model.Exists(d) && !allowed[k.ID] && len(k.ID) >= 5 {
				ids[k.ID] = true
			}
		}
	}
	var forbidden []string
	for id := range ids {
		forbidden = append(forbidden, id)
	}
	sort.Strings(forbidden)
	sees := func(k Key, it syncproto.Item) bool {
		return before.Sees(rep.Perms, k, it.Doc) || after.Sees(rep.Perms, k, it.Doc)
	}
	type connState struct {
		replicaID string
		resume    uint64
		welcomed  bool
		reset     bool
		last      uint64
	}
	conns := map[int]*connState{}
	for _, f := range frames {
		cs := conns[f.Conn]
		if cs == nil {
			cs = &connState{}
			conns[f.Conn] = cs
		}
		if f.Err != nil {
			s.Fail("undecodable-frame", "%s: conn %d %s: %v", rep.Name, f.Conn, f.Dir, f.Err)
			continue
		}
		if f.Msg == nil {
			continue
		}
		m := f.Msg
		if f.Dir == C2S {
			switch m.T {
			case syncproto.TypeHello:
				cs.replicaID = m.Hello.Replica
			case syncproto.TypePush:
				for i := range m.Push.Changes {
					ch := m.Push.Changes[i]
					r := s.rec(cs.replicaID, ch.RSeq)
					r.rep = rep
					if r.change == nil {
						r.change = &ch
					} else {
						s.stats.Replays++ // pushed again: the server must answer it as before, not apply it twice
					}
				}
			}
			continue
		}
		switch m.T {
		case syncproto.TypeWelcome:
			cs.welcomed, cs.resume, cs.reset, cs.last = true, m.Welcome.Resume, m.Welcome.Reset != "", m.Welcome.Resume
			if m.Welcome.Reset != "" || m.Welcome.Rescan {
				s.Tracef("%s: welcome resume %d reset %q rescan %v", rep.Name, m.Welcome.Resume, m.Welcome.Reset, m.Welcome.Rescan)
			}
		case syncproto.TypeChanges:
			c := m.Changes
			if c.Cursor.Seq < cs.last {
				s.Fail("cursor-backwards-on-wire", "%s: conn %d: changes cursor %d after %d", rep.Name, f.Conn, c.Cursor.Seq, cs.last)
			}
			cs.last = c.Cursor.Seq
			if c.Cursor.Seq > after.Head {
				s.Fail("cursor-beyond-head", "%s: changes cursor %d beyond the head %d", rep.Name, c.Cursor.Seq, after.Head)
			}
			for _, it := range c.Items {
				k := Key{model.Kind(it.Kind), it.ID}
				if !k.Kind.Valid() {
					s.Fail("bad-item-kind", "%s: item of kind %q", rep.Name, it.Kind)
					continue
				}
				if !sees(k, it) {
					s.Fail("out-of-scope-item", "%s (%s): received %s, outside its scope before and after the step (doc %s)",
						rep.Name, permString(rep.Perms), k, docString(it.Doc))
				}
			}
			for _, id := range forbidden {
				if strings.Contains(string(f.Raw), id) {
					s.Fail("out-of-scope-id", "%s (%s): a changes frame carries the id %q of an item outside its scope (%s)",
						rep.Name, permString(rep.Perms), id, whereID(c, id))
				}
			}
		case syncproto.TypePushResult:
			var lastSeq uint64
			for _, res := range m.PushResult.Results {
				if res.Status == syncproto.StatusOK || res.Status == syncproto.StatusConflict {
					if res.Seq <= lastSeq {
						s.Fail("push-seq-order", "%s: results of one push at seq %d after %d", rep.Name, res.Seq, lastSeq)
					}
					lastSeq = res.Seq
				}
				r := s.rec(cs.replicaID, res.RSeq)
				if r.change == nil {
					s.Fail("result-without-push", "%s: result for rseq %d that was never pushed", rep.Name, res.RSeq)
				}
				r.results = append(r.results, res)
				if res.Current != nil {
					k := Key{model.Kind(res.Current.Kind), res.Current.ID}
					if !sees(k, *res.Current) {
						s.Fail("out-of-scope-current", "%s: a push result carries %s, outside its scope", rep.Name, k)
					}
					raw, _ := syncproto.Encode(&syncproto.Message{T: "x", Changes: &syncproto.Changes{Items: []syncproto.Item{*res.Current}}})
					for _, id := range forbidden {
						if strings.Contains(string(raw), id) {
							s.Fail("out-of-scope-id", "%s (%s): a push result's current item carries the id %q of an item outside its scope",
								rep.Name, permString(rep.Perms), id)
						}
					}
				}
			}
		case syncproto.TypeError:
			s.Tracef("%s: server error %d %s: %s", rep.Name, m.Error.Code, m.Error.ID, m.Error.Message)
		}
	}
}

// whereID says which item of a changes batch mentions id.
func whereID(c *syncproto.Changes, id string) string {
	for _, it := range c.Items {
		raw, _ := syncproto.Encode(&syncproto.Message{T: "x", Changes: &syncproto.Changes{Items: []syncproto.Item{it}}})
		if strings.Contains(string(raw), id) {
			return "in " + it.Kind + "/" + it.ID + ": " + docString(it.Doc)
		}
	}
	return "outside the items"
}

func (s *Sim) finalStatus(r *pushRec) string {
	st := ""
	for _, res := range r.results {
		if res.Status != syncproto.StatusDuplicate || st == "" {
			st = res.Status
		}
	}
	return st
}

// checkPurged checks a replica that learned its access was revoked holds
// nothing any more.
func (s *Sim) checkPurged(rep *Rep) {
	chs, _ := rep.R.ListChannels()
	fs, _ := rep.R.ListFolders("")
	evs, _ := rep.R.ListEvents(replica.Filter{State: "all"})
	rj, _ := rep.R.Rejections()
	st, _ := rep.R.Status()
	if len(chs)+len(fs)+len(evs)+len(rj) > 0 || st.Pending > 0 || st.Cursor != nil {
		s.Fail("revoked-not-purged", "%s: after revocation it still holds %d channels, %d folders, %d events, %d rejections, %d pending, cursor %v",
			rep.Name, len(chs), len(fs), len(evs), len(rj), st.Pending, st.Cursor)
	}
}

// Env reads an integer environment variable.
func Env(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var n int
	if _, err := fmt.Sscan(v, &n); err != nil {
		return def
	}
	return n
}
