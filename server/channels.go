package server

import (
	"encoding/json"
	"math"
	"net/http"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

var negInf, posInf = math.Inf(-1), math.Inf(1)

// stateFilter parses state=default|trashed|all.
func stateFilter(r *http.Request) (string, error) {
	st := r.URL.Query().Get("state")
	switch st {
	case "":
		return "default", nil
	case "default", "trashed", "all":
		return st, nil
	}
	return "", model.FieldError("state", "must be default, trashed or all")
}

func stateKeeps(state string, trashed bool) bool {
	switch state {
	case "trashed":
		return trashed
	case "all":
		return true
	}
	return !trashed
}

func (s *Server) listChannels(c *call) {
	if err := allowOnly(c.r, "state"); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	state, err := stateFilter(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	out := []*model.Channel{}
	err = s.st.View(c.user, func(tx *store.Tx) error {
		return tx.Items(model.KindChannel, func(id string, r *store.Record) (bool, error) {
			if model.Exists(r.Doc) && c.actor.Scope.SeesChannel(id) && stateKeeps(state, model.BoolField(r.Doc, "trashed")) {
				out = append(out, model.RenderChannel(id, r.Doc))
			}
			return true, nil
		})
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	model.SortByName(out, func(c *model.Channel) string { return c.Name }, func(c *model.Channel) string { return c.ID })
	writeJSON(c.w, 200, out)
}

// applyOne runs one change through ApplyChange in the committer.
func (s *Server) applyOne(c *call, ch Change) (*Outcome, error) {
	var out *Outcome
	err := s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		var err error
		out, err = ApplyChange(tx, c.actor, ch, s.clock)
		return err
	})
	return out, err
}

// patchChange builds a Change from a validated patch, stamped with the
// server clock.
func (s *Server) patchChange(kind model.Kind, id string, p *model.Patch, cur crdt.Doc, create bool) Change {
	return Change{Kind: kind, ID: id, Delta: p.Delta(cur, s.clock.MustNow()), Create: create, Local: true}
}

// currentRendering loads an item and renders it as a JSON map, for read-only
// field comparison on update. It answers unknown-* (404) when the actor
// cannot see the item.
func (s *Server) currentItem(c *call, kind model.Kind, id string) (crdt.Doc, map[string]json.RawMessage, error) {
	var doc crdt.Doc
	var found bool
	err := s.st.View(c.user, func(tx *store.Tx) error {
		r, ok, err := tx.Item(kind, id)
		if err != nil || !ok || !model.Exists(r.Doc) {
			return err
		}
		if visibleLevel(tx, c.actor, kind, id, r.Doc) == model.LevelNone {
			return nil
		}
		doc, found = r.Doc, true
		return nil
	})
	if err != nil {
		return doc, nil, err
	}
	if !found {
		return doc, nil, unknownErr(kind, id).Path()
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(jsonRaw(model.Render(kind, id, doc)), &m)
	return doc, m, nil
}

func (s *Server) createChannel(c *call) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	dropNulls(body, "id", "clientData", "enforceNoEventsOverlap", "trashed")
	p, err := model.ParsePatch(model.KindChannel, body, true, nil)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	id := model.Slugify(model.StringFromPatch(p, "name"))
	if raw, ok := body["id"]; ok {
		var sid string
		if json.Unmarshal(raw, &sid) != nil {
			s.fail(c.w, c.r, model.FieldError("id", "must be a string"))
			return
		}
		if id, err = model.ItemID(sid); err != nil {
			s.fail(c.w, c.r, err)
			return
		}
	} else if _, err := model.ItemID(id); err != nil || id == "" || s.idTaken(c.user, model.KindChannel, id) {
		// The id the name gives is used only while free: a channel
		// renamed since, or one removed (its id stays reserved), has it.
		id = model.NewID()
	}
	if !c.actor.Scope.IsPersonal() {
		s.fail(c.w, c.r, model.Errorf(model.ErrForbidden, "only a personal access may create channels"))
		return
	}
	_, err = s.applyOne(c, s.patchChange(model.KindChannel, id, p, crdt.Doc{}, true))
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusCreated, map[string]string{"id": id})
}

// idTaken reports whether an item of the user, deleted ones included, has
// the id.
func (s *Server) idTaken(user string, kind model.Kind, id string) bool {
	taken := false
	_ = s.st.View(user, func(tx *store.Tx) error {
		_, ok, err := tx.Item(kind, id)
		taken = ok || err != nil
		return err
	})
	return taken
}

func (s *Server) updateChannel(c *call, id string) {
	cur, m, err := s.currentItem(c, model.KindChannel, id)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	s.updateItem(c, model.KindChannel, id, cur, m, nil)
}

// updateItem is the one update path of channels, folders and events: parse
// the body against the item's current rendering m, apply it through
// ApplyChange, answer the new state. mapErr, when set, adjusts the error of
// the apply (events answer unknown ids in the path as 404).
func (s *Server) updateItem(c *call, kind model.Kind, id string, cur crdt.Doc, m map[string]json.RawMessage, mapErr func(error) error) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	p, err := model.ParsePatch(kind, body, false, m)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if _, err := s.applyOne(c, s.patchChange(kind, id, p, cur, false)); err != nil {
		if mapErr != nil {
			err = mapErr(err)
		}
		s.fail(c.w, c.r, err)
		return
	}
	s.answerItem(c, kind, id)
}

// answerItem answers 200 with the item's current rendering.
func (s *Server) answerItem(c *call, kind model.Kind, id string) {
	var v any
	_ = s.st.View(c.user, func(tx *store.Tx) error {
		r, ok, err := tx.Item(kind, id)
		if err == nil && ok {
			v = model.Render(kind, id, r.Doc)
		}
		return err
	})
	writeJSON(c.w, 200, v)
}

// deleteChannel trashes a channel, then on a second call removes it with
// its folders, events and files.
func (s *Server) deleteChannel(c *call, id string) {
	cur, _, err := s.currentItem(c, model.KindChannel, id)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if !c.actor.Scope.IsPersonal() {
		s.fail(c.w, c.r, model.Errorf(model.ErrForbidden, "only a personal access may delete channels"))
		return
	}
	if !model.BoolField(cur, "trashed") {
		p := &model.Patch{Kind: model.KindChannel}
		p.Set("trashed", model.JSONBool(true))
		if _, err := s.applyOne(c, s.patchChange(model.KindChannel, id, p, cur, false)); err != nil {
			s.fail(c.w, c.r, err)
			return
		}
		s.answerItem(c, model.KindChannel, id)
		return
	}
	var orphans []string
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		var err error
		orphans, err = s.removeChannel(tx, c.actor, id, false)
		return err
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	for _, d := range orphans {
		s.st.RemoveFile(c.user, d)
	}
	writeJSON(c.w, 200, map[string]any{"channelDeletion": map[string]string{"id": id}})
}

// removeChannel deletes a channel for good with its folders and events
// (HTTP, or a replica's push of the channel's tombstone; then keepRoot
// leaves the channel itself to the pushed change). Only a personal access
// may. It returns the content digests left without a reference.
func (s *Server) removeChannel(tx *store.Tx, a *Actor, id string, keepRoot bool) ([]string, error) {
	if !a.Scope.IsPersonal() {
		return nil, model.Errorf(model.ErrForbidden, "only a personal access may delete channels")
	}
	var orphans, folders, events []string
	if err := tx.Items(model.KindFolder, func(fid string, r *store.Record) (bool, error) {
		if model.Exists(r.Doc) && r.Channel == id {
			folders = append(folders, fid)
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := tx.EventsByTime(id, negInf, posInf, true, func(eid string, r *store.Record) (bool, error) {
		events = append(events, eid)
		return true, nil
	}); err != nil {
		return nil, err
	}
	for _, eid := range events {
		gone, err := s.deleteEventTx(tx, a, eid)
		if err != nil {
			return nil, err
		}
		orphans = append(orphans, gone...)
	}
	for _, fid := range folders {
		if err := s.tombstone(tx, a, model.KindFolder, fid); err != nil {
			return nil, err
		}
	}
	if keepRoot {
		return orphans, nil
	}
	return orphans, s.tombstone(tx, a, model.KindChannel, id)
}

// tombstone deletes an item for good (internal: rights already checked by
// the caller at the level of the whole operation).
func (s *Server) tombstone(tx *store.Tx, a *Actor, kind model.Kind, id string) error {
	r, ok, err := tx.Item(kind, id)
	if err != nil || !ok || r.Doc.IsDeleted() {
		return err
	}
	merged := crdt.Merge(r.Doc, crdt.Doc{Deleted: s.clock.MustNow()})
	_, err = tx.PutItem(kind, id, merged)
	return err
}

// deleteEventTx tombstones an event and drops its attachment references,
// returning digests no longer referenced (to delete after commit).
func (s *Server) deleteEventTx(tx *store.Tx, a *Actor, id string) ([]string, error) {
	r, ok, err := tx.Item(model.KindEvent, id)
	if err != nil || !ok || r.Doc.IsDeleted() {
		return nil, err
	}
	var orphans []string
	for _, raw := range r.Doc.FileMap() {
		var att model.Attachment
		if json.Unmarshal(raw, &att) == nil && att.Digest != "" {
			left, err := tx.DropRef(att.Digest, id)
			if err != nil {
				return nil, err
			}
			if !left {
				orphans = append(orphans, att.Digest)
			}
		}
	}
	return orphans, s.tombstone(tx, a, model.KindEvent, id)
}

// allowOnly refuses query parameters other than the listed ones.
func allowOnly(r *http.Request, names ...string) error {
	q := r.URL.Query()
	for k := range q {
		if k == "auth" {
			continue
		}
		ok := false
		for _, n := range names {
			if k == n || k == n+"[]" {
				ok = true
			}
		}
		if !ok {
			return model.Errorf(model.ErrInvalidParametersFormat, "unknown parameter %q", k).WithData(map[string]any{"field": k})
		}
	}
	return nil
}
