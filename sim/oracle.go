package sim

import (
	"sort"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// Key names an item.
type Key struct {
	Kind model.Kind
	ID   string
}

func (k Key) String() string { return string(k.Kind) + "/" + k.ID }

// State is a snapshot of every item record of the user on the server,
// tombstones included.
type State struct {
	Docs map[Key]crdt.Doc
	Head uint64
}

// Snapshot reads the server's state.
func (w *World) Snapshot() *State {
	w.T.Helper()
	st := &State{Docs: map[Key]crdt.Doc{}}
	err := w.Server().Store().View(User, func(tx *store.Tx) error {
		var err error
		if st.Head, err = tx.Head(); err != nil {
			return err
		}
		for _, k := range []model.Kind{model.KindChannel, model.KindFolder, model.KindEvent} {
			if err := tx.Items(k, func(id string, r *store.Record) (bool, error) {
				st.Docs[Key{k, id}] = r.Doc
				return true, nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		w.T.Fatalf("snapshot: %v", err)
	}
	return st
}

// Live reports whether the item exists (created and not deleted).
func (s *State) Live(k Key) bool {
	d, ok := s.Docs[k]
	return ok && model.Exists(d)
}

// Keys returns the live keys of kind, sorted.
func (s *State) Keys(kind model.Kind) []Key {
	var out []Key
	for k, d := range s.Docs {
		if k.Kind == kind && model.Exists(d) {
			out = append(out, k)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Perms is what a token may see: personal, or a list of permissions.
type Perms struct {
	Personal bool
	List     []model.Permission
}

// parentOf is the live parent of a live folder ("" for a root); ok is false
// when the folder is not live. It is the oracle's own reading of the tree.
func (s *State) parentOf(f string) (string, bool) {
	d, ok := s.Docs[Key{model.KindFolder, f}]
	if !ok || !model.Exists(d) {
		return "", false
	}
	return model.StringField(d, "parentId"), true
}

// underGrant reports whether folder (a live folder, or one whose doc says
// its parent is parent) is one of granted or below one, walking live
// ancestors only: a permission naming a missing folder grants nothing.
func (s *State) underGrant(folder string, granted map[string]bool) bool {
	f := folder
	for depth := 0; f != "" && depth < 1100; depth++ {
		parent, ok := s.parentOf(f)
		if !ok {
			return false
		}
		if granted[f] {
			return true
		}
		f = parent
	}
	return false
}

func grantSet(p model.Permission) (map[string]bool, bool) {
	if len(p.FolderPermissions) == 0 {
		return nil, false
	}
	g := map[string]bool{}
	null := false
	for _, fp := range p.FolderPermissions {
		if fp.FolderID == nil {
			null = true
		} else {
			g[*fp.FolderID] = true
		}
	}
	return g, null
}

func covers(p model.Permission, channel string) bool {
	return p.ChannelID == "*" || p.ChannelID == channel
}

// Sees reports whether perms see the item k whose state is d (d may differ
// from the snapshot: an item as sent on the wire), judged against the
// folder tree of s. Deleted items are never seen.
func (s *State) Sees(p Perms, k Key, d crdt.Doc) bool {
	if !model.Exists(d) {
		return false
	}
	if p.Personal {
		return true
	}
	switch k.Kind {
	case model.KindChannel:
		for _, e := range p.List {
			if covers(e, k.ID) {
				return true
			}
		}
		return false
	case model.KindFolder:
		ch := model.StringField(d, "channelId")
		parent := model.StringField(d, "parentId")
		for _, e := range p.List {
			if !covers(e, ch) {
				continue
			}
			g, _ := grantSet(e)
			if g == nil || g[k.ID] || parent != "" && s.underGrant(parent, g) {
				return true
			}
		}
		return false
	}
	ef := model.EventFactsOf(d)
	for _, e := range p.List {
		if !covers(e, ef.Channel) {
			continue
		}
		g, null := grantSet(e)
		switch {
		case g == nil:
		case ef.Folder == "":
			if !null {
				continue
			}
		default:
			if !s.underGrant(ef.Folder, g) {
				continue
			}
		}
		if len(e.Tags) > 0 {
			hit := false
			for _, t := range e.Tags {
				hit = hit || ef.HasTag(t)
			}
			if !hit {
				continue
			}
		}
		from, to := e.TimeFrame.Bounds()
		if !ef.Meets(from, to) {
			continue
		}
		return true
	}
	return false
}

// Visible returns the live items perms see in s.
func (s *State) Visible(p Perms) map[Key]bool {
	out := map[Key]bool{}
	for k, d := range s.Docs {
		if s.Sees(p, k, d) {
			out[k] = true
		}
	}
	return out
}

// AllIDs returns the id of every item ever stored (tombstones included).
func (s *State) AllIDs() map[string]Key {
	out := map[string]Key{}
	for k := range s.Docs {
		out[k.ID] = k
	}
	return out
}
