package server

import (
	"encoding/json"
	"net/http"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// routeFolders serves /{user}/{cid}/folders[/{fid}] (SPEC §3.1).
func (s *Server) routeFolders(c *call, cid string, rest []string) {
	if err := s.channelSeen(c, cid); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	switch {
	case len(rest) == 0:
		switch c.method {
		case "GET":
			s.listFolders(c, cid)
		case "POST":
			s.createFolder(c, cid)
		default:
			s.methodNotAllowed(c)
		}
	case len(rest) == 1:
		switch c.method {
		case "PUT":
			s.updateFolder(c, cid, rest[0])
		case "DELETE":
			s.deleteFolder(c, cid, rest[0])
		default:
			s.methodNotAllowed(c)
		}
	default:
		s.fail(c.w, c.r, unknownErr(model.KindFolder, rest[0]).Path())
	}
}

// listFolders answers the channel's folder tree as the token sees it:
// children nested and sorted by name at each level. A folder whose parent
// is not shown (out of scope, filtered out by state, or above parentId)
// appears at the top; its parentId is kept only when the token may see the
// parent, so a folder-restricted token never learns the ids above its
// grant. A trashed (with state=default) or hidden (without includeHidden)
// folder hides its whole subtree.
func (s *Server) listFolders(c *call, cid string) {
	p, err := newQueryParams(c.r.URL.Query(), []string{"parentId", "state", "includeHidden"}, nil)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	state, err := p.state()
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	includeHidden, _, err := p.boolean("includeHidden")
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	parent, byParent, err := p.scalar("parentId")
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	out := []*model.Folder{}
	err = s.st.View(c.user, func(tx *store.Tx) error {
		fx, err := loadFolders(tx, cid)
		if err != nil {
			return err
		}
		scope := c.actor.Scope
		visible := func(id string) bool {
			_, ok := fx.nodes[id]
			return ok && scope.FolderLevel(cid, id, fx) > model.LevelNone
		}
		top := fx.roots
		if byParent && parent != "" && parent != "null" {
			if !visible(parent) {
				return model.Errorf(model.ErrUnknownFolder, "unknown folder %q", parent)
			}
			top = fx.nodes[parent].children
		}
		keep := func(n *folderNode) bool {
			if !visible(n.id) || (!includeHidden && fx.upward(n.id, folderHidden)) {
				return false
			}
			return stateKeeps(state, fx.trashed(n.id))
		}
		seen := map[string]bool{}
		var walk func(nodes []*folderNode, into *[]*model.Folder)
		walk = func(nodes []*folderNode, into *[]*model.Folder) {
			for _, n := range nodes {
				if seen[n.id] {
					continue // a corrupt tree with a cycle
				}
				seen[n.id] = true
				if !keep(n) {
					walk(n.children, into)
					continue
				}
				f := model.RenderFolder(n.id, n.doc)
				if f.ParentID != nil && !visible(*f.ParentID) {
					f.ParentID = nil
				}
				*into = append(*into, f)
				walk(n.children, &f.Children)
			}
		}
		walk(top, &out)
		return nil
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	sortTree(out)
	writeJSON(c.w, http.StatusOK, out)
}

// sortTree sorts each level by name, case-insensitively, ties by id: lifted
// folders join a level out of order.
func sortTree(list []*model.Folder) {
	model.SortByName(list, func(f *model.Folder) string { return f.Name }, func(f *model.Folder) string { return f.ID })
	for _, f := range list {
		sortTree(f.Children)
	}
}

// createFolder creates a folder in channel cid (manage rights on the
// parent). A client id is slugified; else the server makes one.
func (s *Server) createFolder(c *call, cid string) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	id := ""
	if raw, ok := body["id"]; ok && !isJSONNull(raw) {
		var sid string
		if json.Unmarshal(raw, &sid) != nil {
			s.fail(c.w, c.r, model.FieldError("id", "must be a string"))
			return
		}
		if id, err = model.ItemID(sid); err != nil {
			s.fail(c.w, c.r, err)
			return
		}
	}
	if raw, ok := body["channelId"]; ok {
		var ch string
		if json.Unmarshal(raw, &ch) != nil || ch != cid {
			s.fail(c.w, c.r, model.FieldError("channelId", "must be the channel of the URL"))
			return
		}
	}
	dropNulls(body, "clientData", "hidden", "trashed")
	p, err := model.ParsePatch(model.KindFolder, body, true, nil)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	p.Set("channelId", model.JSONString(cid))
	if _, ok := p.Fields["parentId"]; !ok {
		p.Set("parentId", []byte("null"))
	}
	if id == "" {
		id = model.NewID()
	}
	if _, err := s.applyOne(c, s.patchChange(model.KindFolder, id, p, crdt.Doc{}, true)); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusCreated, map[string]string{"id": id})
}

// folderAt loads a folder of the path: in scope and of the path's channel,
// else unknown-folder (404).
func (s *Server) folderAt(c *call, cid, fid string) (crdt.Doc, map[string]json.RawMessage, error) {
	doc, m, err := s.currentItem(c, model.KindFolder, fid)
	if err != nil {
		return doc, nil, err
	}
	if model.StringField(doc, "channelId") != cid {
		return doc, nil, unknownErr(model.KindFolder, fid).Path()
	}
	return doc, m, nil
}

// updateFolder renames, moves (parentId), hides, trashes or restores a
// folder; its channel is fixed.
func (s *Server) updateFolder(c *call, cid, fid string) {
	cur, m, err := s.folderAt(c, cid, fid)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	s.updateItem(c, model.KindFolder, fid, cur, m, nil)
}

// deleteFolder trashes a folder; on a trashed one it removes the folder and
// its descendants. Events linked to any of them need mergeEventsWithParent:
// true moves them to the folder's parent (no folder for a root folder),
// false deletes them with their files.
func (s *Server) deleteFolder(c *call, cid, fid string) {
	p, err := newQueryParams(c.r.URL.Query(), []string{"mergeEventsWithParent"}, nil)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	merge, hasMerge, err := p.boolean("mergeEventsWithParent")
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	cur, _, err := s.folderAt(c, cid, fid)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if !model.BoolField(cur, "trashed") {
		tp := &model.Patch{Kind: model.KindFolder}
		tp.Set("trashed", model.JSONBool(true))
		if _, err := s.applyOne(c, s.patchChange(model.KindFolder, fid, tp, cur, false)); err != nil {
			s.fail(c.w, c.r, err)
			return
		}
		s.answerItem(c, model.KindFolder, fid)
		return
	}
	var orphans []string
	var mergeP *bool
	if hasMerge {
		mergeP = &merge
	}
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		var err error
		orphans, err = s.removeFolderTree(tx, c.actor, cid, fid, model.StringField(cur, "parentId"), mergeP, false)
		return err
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	s.removeContent(c.user, orphans)
	writeJSON(c.w, http.StatusOK, map[string]any{"folderDeletion": map[string]string{"id": fid}})
}

// removeFolderTree deletes a folder for good with its subfolders (HTTP, or
// a replica's push of the folder's tombstone; then keepRoot leaves the
// folder itself to the pushed change). Events linked to the subtree need
// merge: nil refuses (missing-parameter), true moves them to the folder's
// parent, false deletes them. It returns the content digests left without
// a reference.
func (s *Server) removeFolderTree(tx *store.Tx, a *Actor, cid, fid, parent string, merge *bool, keepRoot bool) ([]string, error) {
	var orphans []string
	fx, err := loadFolders(tx, cid)
	if err != nil {
		return nil, err
	}
	if _, ok := fx.nodes[fid]; !ok {
		return nil, unknownErr(model.KindFolder, fid).Path()
	}
	// Manage rights on the folder cover its subtree; checking them
	// first keeps the answer the same whatever the subtree holds.
	if !a.Scope.CanManageFolder(cid, fid, fx) {
		return nil, model.Errorf(model.ErrForbidden, "removing this folder needs manage rights above it")
	}
	doomed := fx.subtree(fid) // children first, fid last
	inTree := make(map[string]bool, len(doomed))
	for _, id := range doomed {
		inTree[id] = true
	}
	var linked []string
	err = tx.EventsByTime(cid, negInf, posInf, true, func(id string, r *store.Record) (bool, error) {
		if inTree[model.StringField(r.Doc, "folderId")] {
			linked = append(linked, id)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(linked) > 0 && merge == nil {
		return nil, model.Errorf(model.ErrMissingParameter, "mergeEventsWithParent: the folder has events")
	}
	for _, id := range linked {
		// An event the token may not change blocks the removal;
		// its id is not told.
		r, _, err := tx.Item(model.KindEvent, id)
		if err != nil {
			return nil, err
		}
		if a.Scope.EventLevel(model.EventFactsOf(r.Doc), fx) < model.LevelContribute {
			return nil, model.Errorf(model.ErrForbidden, "the folder holds events this access may not change")
		}
		var ch Change
		if *merge {
			ep := &model.Patch{Kind: model.KindEvent}
			if parent == "" {
				ep.Set("folderId", []byte("null"))
			} else {
				ep.Set("folderId", model.JSONString(parent))
			}
			ch = s.patchChange(model.KindEvent, id, ep, r.Doc, false)
			ch.Merge = true
		} else {
			ch = Change{Kind: model.KindEvent, ID: id, Delta: crdt.Doc{Deleted: s.clock.MustNow()}, Local: true}
		}
		out, err := ApplyChange(tx, a, ch, s.clock)
		if err != nil {
			return nil, err
		}
		orphans = append(orphans, out.Orphans...)
	}
	if keepRoot {
		doomed = doomed[:len(doomed)-1]
	}
	for _, id := range doomed {
		if _, err := ApplyChange(tx, a, Change{Kind: model.KindFolder, ID: id, Delta: crdt.Doc{Deleted: s.clock.MustNow()}, Local: true}, s.clock); err != nil {
			return nil, err
		}
	}
	return orphans, nil
}
