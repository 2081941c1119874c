package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// routeEvents serves /{user}/{cid}/events[/…] (SPEC §3.1).
func (s *Server) routeEvents(c *call, cid string, rest []string) {
	if err := s.channelSeen(c, cid); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	on := func(method string, h func()) {
		if c.method != method {
			s.methodNotAllowed(c)
			return
		}
		h()
	}
	switch {
	case len(rest) == 0:
		switch c.method {
		case "GET":
			s.listEvents(c, cid)
		case "POST":
			s.createEvent(c, cid)
		default:
			s.methodNotAllowed(c)
		}
	case len(rest) == 1 && rest[0] == "start":
		on("POST", func() { s.startEvent(c, cid) })
	case len(rest) == 1 && rest[0] == "stop":
		on("POST", func() { s.stopEvent(c, cid) })
	case len(rest) == 1 && rest[0] == "running":
		on("GET", func() { s.runningEvents(c, cid) })
	case len(rest) == 1 && rest[0] == "batch":
		on("POST", func() { s.batchEvents(c, cid) })
	case len(rest) == 1:
		switch c.method {
		case "GET":
			s.getEvent(c, cid, rest[0])
		case "PUT":
			s.updateEvent(c, cid, rest[0])
		case "DELETE":
			s.deleteEvent(c, cid, rest[0])
		case "POST":
			s.addAttachments(c, cid, rest[0])
		default:
			s.methodNotAllowed(c)
		}
	case len(rest) == 2:
		switch c.method {
		case "GET":
			s.getAttachment(c, cid, rest[0], rest[1])
		case "DELETE":
			s.deleteAttachment(c, cid, rest[0], rest[1])
		default:
			s.methodNotAllowed(c)
		}
	default:
		s.fail(c.w, c.r, unknownErr(model.KindEvent, rest[0]).Path())
	}
}

// channelSeen answers unknown-channel (404) unless the channel of the path
// exists and is in the token's scope.
func (s *Server) channelSeen(c *call, cid string) error {
	seen := false
	err := s.st.View(c.user, func(tx *store.Tx) error {
		r, ok, err := tx.Item(model.KindChannel, cid)
		seen = err == nil && ok && model.Exists(r.Doc) && c.actor.Scope.SeesChannel(cid)
		return err
	})
	if err != nil {
		return err
	}
	if !seen {
		return unknownErr(model.KindChannel, cid).Path()
	}
	return nil
}

// eventAt loads an event of the path: it must be in scope and belong to the
// path's channel, else unknown-event (404), the same answer whether the
// event does not exist or is out of scope.
func (s *Server) eventAt(c *call, cid, eid string) (crdt.Doc, map[string]json.RawMessage, error) {
	doc, m, err := s.currentItem(c, model.KindEvent, eid)
	if err != nil {
		return doc, nil, err
	}
	if model.StringField(doc, "channelId") != cid {
		return doc, nil, unknownErr(model.KindEvent, eid).Path()
	}
	return doc, m, nil
}

// eventPathErr marks an unknown-event error as concerning the path's event (the
// only event a single-event write touches), so it answers 404 when the
// event vanished between the read and the write.
func eventPathErr(err error) error {
	var me *model.Error
	if errors.As(err, &me) && me.ID == model.ErrUnknownEvent {
		return me.Path()
	}
	return err
}

func (s *Server) listEvents(c *call, cid string) {
	q, err := parseEventQuery(c.r.URL.Query())
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	s.streamEvents(c, cid, q, false)
}

// runningEvents lists the running periods in scope, newest first.
func (s *Server) runningEvents(c *call, cid string) {
	if _, err := newQueryParams(c.r.URL.Query(), nil, nil); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	// A running period spans to +Inf, so it is exactly what meets [+Inf, +Inf].
	q := &eventQuery{from: posInf, to: posInf, state: "default"}
	s.streamEvents(c, cid, q, true)
}

// streamEvents answers the events of channel cid that q selects, writing
// each as it is read from one snapshot: memory does not grow with the
// result. Errors found before the first byte answer normally; a failure
// after that cuts the connection, so a client never takes a truncated list
// for a complete one.
func (s *Server) streamEvents(c *call, cid string, q *eventQuery, runningOnly bool) {
	started := false
	err := s.st.View(c.user, func(tx *store.Tx) error {
		cr, ok, err := tx.Item(model.KindChannel, cid)
		if err != nil {
			return err
		}
		if !ok || !model.Exists(cr.Doc) {
			return unknownErr(model.KindChannel, cid).Path()
		}
		fx, err := loadFolders(tx, cid)
		if err != nil {
			return err
		}
		f, err := newEventFilter(q, c.actor.Scope, cid, model.BoolField(cr.Doc, "trashed"), fx)
		if err != nil {
			return err
		}
		started = true
		w := c.w
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if q.includeDeletions {
			io.WriteString(w, `{"events":[`)
		} else {
			io.WriteString(w, "[")
		}
		enc := json.NewEncoder(w)
		n, skipped := 0, 0
		err = tx.EventsByTime(cid, q.from, q.to, q.asc, func(id string, r *store.Record) (bool, error) {
			ef := model.EventFactsOf(r.Doc)
			if (runningOnly && !ef.Running) || !f.keeps(ef, r.Doc) {
				return true, nil
			}
			if skipped < q.skip {
				skipped++
				return true, nil
			}
			if n > 0 {
				io.WriteString(w, ",")
			}
			if err := enc.Encode(model.RenderEvent(id, r.Doc)); err != nil {
				return false, err
			}
			n++
			return q.limit == 0 || n < q.limit, nil
		})
		if err != nil {
			return err
		}
		if !q.includeDeletions {
			_, err = io.WriteString(w, "]\n")
			return err
		}
		io.WriteString(w, `],"eventDeletions":[`)
		if err := s.writeDeletions(tx, c.actor, cid, q.modifiedSince, enc, w); err != nil {
			return err
		}
		_, err = io.WriteString(w, "]}\n")
		return err
	})
	if err == nil {
		return
	}
	if !started {
		s.fail(c.w, c.r, err)
		return
	}
	s.log.Warn("event list cut short", "user", c.user, "error", err)
	panic(http.ErrAbortHandler)
}

// writeDeletions writes the ids and deletion times of the channel's events
// deleted after since. A tombstone keeps nothing of the event's folder, tags
// or time, so only an access that sees the whole channel unfiltered can be
// told of deletions: anyone else would learn ids that may never have been in
// its scope (SPEC §2). Others get an empty list.
func (s *Server) writeDeletions(tx *store.Tx, a *Actor, cid string, since float64, enc *json.Encoder, w io.Writer) error {
	if a.Scope.ChannelLevel(cid) < model.LevelRead {
		return nil
	}
	n := 0
	return tx.ReadFeed([]string{cid}, 0, func(e store.FeedEntry) (bool, error) {
		if e.Kind != model.KindEvent || e.Exit {
			return true, nil
		}
		r, ok, err := tx.FeedRecord(e)
		if err != nil || !ok || !r.Doc.IsDeleted() {
			return err == nil, err
		}
		deleted := float64(r.Doc.Deleted.Time) / 1000
		if deleted <= since {
			return true, nil
		}
		if n > 0 {
			io.WriteString(w, ",")
		}
		n++
		return true, enc.Encode(map[string]any{"id": e.ID, "deleted": deleted})
	})
}

func (s *Server) getEvent(c *call, cid, eid string) {
	if _, err := newQueryParams(c.r.URL.Query(), nil, nil); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	doc, _, err := s.eventAt(c, cid, eid)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, model.RenderEvent(eid, doc))
}

// newEventChange validates a JSON body creating an event in channel cid and
// returns the change. The channel comes from the URL; a client id must be in
// cuid form; time defaults to now; running makes the event a running period.
func (s *Server) newEventChange(cid string, body map[string]json.RawMessage, running bool) (Change, error) {
	id := ""
	if raw, ok := body["id"]; ok && !isJSONNull(raw) {
		var sid string
		if json.Unmarshal(raw, &sid) != nil {
			return Change{}, model.FieldError("id", "must be a string")
		}
		var err error
		if id, err = model.EventID(sid); err != nil {
			return Change{}, err
		}
	}
	if raw, ok := body["channelId"]; ok {
		var ch string
		if json.Unmarshal(raw, &ch) != nil || ch != cid {
			return Change{}, model.FieldError("channelId", "must be the channel of the URL")
		}
	}
	// Explicit null for an optional field means "absent" on create.
	dropNulls(body, "time", "clientData", "trashed")
	if running {
		delete(body, "duration")
	}
	p, err := model.ParsePatch(model.KindEvent, body, true, nil)
	if err != nil {
		return Change{}, err
	}
	p.Set("channelId", model.JSONString(cid))
	if _, ok := p.Fields["time"]; !ok {
		p.Set("time", model.JSONNumber(s.now()))
	}
	if running {
		p.Set("duration", []byte("null"))
	}
	if id == "" {
		id = model.NewID()
	}
	return s.patchChange(model.KindEvent, id, p, crdt.Doc{}, true), nil
}

// dropNulls removes the keys whose value is an explicit null: on create, a
// null optional field means "absent" (its default applies).
func dropNulls(body map[string]json.RawMessage, keys ...string) {
	for _, k := range keys {
		if raw, ok := body[k]; ok && isJSONNull(raw) {
			delete(body, k)
		}
	}
}

// created is the answer to an event creation.
func createdAnswer(id string, out *Outcome) map[string]string {
	m := map[string]string{"id": id}
	if out != nil && out.StoppedID != "" {
		m["stoppedId"] = out.StoppedID
	}
	return m
}

func (s *Server) createEvent(c *call, cid string) {
	if isMultipart(c.r) {
		s.createEventWithFiles(c, cid)
		return
	}
	s.createFromBody(c, cid, false)
}

// startEvent creates a running period (SPEC §1.6).
func (s *Server) startEvent(c *call, cid string) { s.createFromBody(c, cid, true) }

func (s *Server) createFromBody(c *call, cid string, running bool) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	ch, err := s.newEventChange(cid, body, running)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	out, err := s.applyOne(c, ch)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusCreated, createdAnswer(ch.ID, out))
}

// stopEvent ends a running period: the one named by id, or in a no-overlap
// channel the running one. Time defaults to now.
func (s *Server) stopEvent(c *call, cid string) {
	body, err := s.readObject(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	var id string
	at := s.now()
	for k, raw := range body {
		switch k {
		case "id":
			if !isJSONNull(raw) && json.Unmarshal(raw, &id) != nil {
				s.fail(c.w, c.r, model.FieldError("id", "must be a string"))
				return
			}
		case "time":
			if !isJSONNull(raw) && json.Unmarshal(raw, &at) != nil {
				s.fail(c.w, c.r, model.FieldError("time", "must be a number"))
				return
			}
		default:
			s.fail(c.w, c.r, model.FieldError(k, "unknown field"))
			return
		}
	}
	var stopped string
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		stopped = ""
		target, doc, err := s.stopTarget(tx, c.actor, cid, id)
		if err != nil {
			return err
		}
		ef := model.EventFactsOf(doc)
		if !ef.Running {
			return model.Errorf(model.ErrInvalidOperation, "the event %q is not running", target)
		}
		if at < ef.Time {
			return model.Errorf(model.ErrInvalidOperation, "a period cannot stop before it started")
		}
		if math.IsInf(at-ef.Time, 0) {
			return model.FieldError("time", "is too far from the start of the period")
		}
		p := &model.Patch{Kind: model.KindEvent}
		p.Set("duration", model.JSONNumber(at-ef.Time))
		if _, err := ApplyChange(tx, c.actor, s.patchChange(model.KindEvent, target, p, doc, false), s.clock); err != nil {
			return err
		}
		stopped = target
		return nil
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]string{"stoppedId": stopped})
}

// stopTarget finds the event a stop call concerns. Without an id, only a
// no-overlap channel has one obvious running period.
func (s *Server) stopTarget(tx *store.Tx, a *Actor, cid, id string) (string, crdt.Doc, error) {
	tree := txTree{tx}
	if id != "" {
		r, ok, err := tx.Item(model.KindEvent, id)
		if err != nil {
			return "", crdt.Doc{}, err
		}
		if !ok || !model.Exists(r.Doc) || model.StringField(r.Doc, "channelId") != cid ||
			a.Scope.EventLevel(model.EventFactsOf(r.Doc), tree) == model.LevelNone {
			return "", crdt.Doc{}, unknownErr(model.KindEvent, id)
		}
		return id, r.Doc, nil
	}
	cr, _, err := tx.Item(model.KindChannel, cid)
	if err != nil {
		return "", crdt.Doc{}, err
	}
	if cr == nil || !model.BoolField(cr.Doc, "enforceNoEventsOverlap") {
		return "", crdt.Doc{}, model.Errorf(model.ErrMissingParameter, "id: which running period to stop")
	}
	var found string
	var doc crdt.Doc
	err = tx.EventsByTime(cid, posInf, posInf, false, func(eid string, r *store.Record) (bool, error) {
		ef := model.EventFactsOf(r.Doc)
		if ef.Running && !ef.Trashed && a.Scope.EventLevel(ef, tree) > model.LevelNone {
			found, doc = eid, r.Doc
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return "", crdt.Doc{}, err
	}
	if found == "" {
		return "", crdt.Doc{}, model.Errorf(model.ErrInvalidOperation, "no period is running in channel %q", cid)
	}
	return found, doc, nil
}

func (s *Server) updateEvent(c *call, cid, eid string) {
	cur, m, err := s.eventAt(c, cid, eid)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	s.updateItem(c, model.KindEvent, eid, cur, m, eventPathErr)
}

// deleteEvent trashes an event; on a trashed one it removes the event and
// its files for good, leaving a tombstone that keeps the id reserved.
func (s *Server) deleteEvent(c *call, cid, eid string) {
	if _, err := newQueryParams(c.r.URL.Query(), nil, nil); err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	cur, _, err := s.eventAt(c, cid, eid)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	if !model.BoolField(cur, "trashed") {
		p := &model.Patch{Kind: model.KindEvent}
		p.Set("trashed", model.JSONBool(true))
		if _, err := s.applyOne(c, s.patchChange(model.KindEvent, eid, p, cur, false)); err != nil {
			s.fail(c.w, c.r, eventPathErr(err))
			return
		}
		s.answerItem(c, model.KindEvent, eid)
		return
	}
	out, err := s.applyOne(c, Change{Kind: model.KindEvent, ID: eid, Delta: crdt.Doc{Deleted: s.clock.MustNow()}, Local: true})
	if err != nil {
		s.fail(c.w, c.r, eventPathErr(err))
		return
	}
	s.removeContent(c.user, out.Orphans)
	writeJSON(c.w, http.StatusOK, map[string]any{"eventDeletion": map[string]string{"id": eid}})
}

// removeContent deletes attachment content no event references any more
// (after the commit that dropped the last reference).
func (s *Server) removeContent(user string, digests []string) {
	for _, d := range digests {
		s.st.RemoveFile(user, d)
	}
}

// batchEvents creates the events of a JSON array in order, in one commit,
// each checked against the state the earlier ones left. Each item carries a
// tempRefId under which its result is answered: {id, stoppedId?} or {error}.
// An item that is refused never stops the others.
func (s *Server) batchEvents(c *call, cid string) {
	raw, err := s.body(c.r)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	items, err := decodeArray(raw)
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	type prepared struct {
		ref string
		ch  Change
		err error
	}
	list := make([]prepared, 0, len(items))
	refs := map[string]bool{}
	for i, item := range items {
		var obj map[string]json.RawMessage
		if json.Unmarshal(item, &obj) != nil || obj == nil {
			s.fail(c.w, c.r, model.FieldError(fmt.Sprintf("[%d]", i), "must be an object"))
			return
		}
		var ref string
		if json.Unmarshal(obj["tempRefId"], &ref) != nil || ref == "" {
			s.fail(c.w, c.r, model.FieldError("tempRefId", "item %d needs a non-empty string tempRefId", i))
			return
		}
		if refs[ref] {
			s.fail(c.w, c.r, model.FieldError("tempRefId", "%q is used by two items", ref))
			return
		}
		refs[ref] = true
		delete(obj, "tempRefId")
		ch, err := s.newEventChange(cid, obj, false)
		list = append(list, prepared{ref: ref, ch: ch, err: err})
	}
	results := map[string]any{}
	err = s.commit(c.r.Context(), c.user, func(tx *store.Tx) error {
		results = make(map[string]any, len(list))
		for _, it := range list {
			err := it.err
			var out *Outcome
			if err == nil {
				sp := tx.Savepoint()
				if out, err = ApplyChange(tx, c.actor, it.ch, s.clock); err != nil {
					tx.RollbackTo(sp) // the item is refused whole
				}
			}
			var me *model.Error
			switch {
			case errors.As(err, &me):
				results[it.ref] = map[string]any{"error": me}
			case err != nil:
				return err
			default:
				results[it.ref] = createdAnswer(it.ch.ID, out)
			}
		}
		return nil
	})
	if err != nil {
		s.fail(c.w, c.r, err)
		return
	}
	writeJSON(c.w, http.StatusOK, results)
}

// decodeArray decodes a body that must be exactly one JSON array.
func decodeArray(raw []byte) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return nil, model.Errorf(model.ErrInvalidRequestStructure, "malformed JSON: %v", err)
	}
	var tail json.RawMessage
	if err := dec.Decode(&tail); err != io.EOF {
		return nil, model.Errorf(model.ErrInvalidRequestStructure, "trailing data after the JSON value")
	}
	var items []json.RawMessage
	if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &items) != nil {
		return nil, model.Errorf(model.ErrInvalidParametersFormat, "the body must be a JSON array")
	}
	return items, nil
}
