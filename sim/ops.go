package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/replica"
)

// Obj turns a Go map into a replica body.
func Obj(m map[string]any) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(m))
	for k, v := range m {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		out[k] = b
	}
	return out
}

// NewEventID returns a seeded event id in cuid form.
func (s *Sim) NewEventID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 25)
	b[0] = 'c'
	for i := 1; i < len(b); i++ {
		b[i] = alphabet[s.rng.IntN(len(alphabet))]
	}
	return string(b)
}

func docString(d crdt.Doc) string {
	keys := make([]string, 0, len(d.Fields))
	for k := range d.Fields {
		switch k {
		case model.FieldCreated, model.FieldCreatedBy, model.FieldModified, model.FieldModifiedBy, "type":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%s", k, d.Fields[k].Val)
	}
	if tags := d.TagList(); len(tags) > 0 {
		fmt.Fprintf(&b, " tags=%v", tags)
	}
	if d.IsDeleted() {
		b.WriteString(" DELETED")
	}
	b.WriteString("}")
	return b.String()
}

func (s *Sim) pick(n int) int { return s.rng.IntN(n) }

// pickEvent picks an event, half the time among the first three (the same
// few events on every replica that sees them, so edits collide).
func (s *Sim) pickEvent(evs []*model.Event) *model.Event {
	if s.rng.IntN(2) == 0 {
		return evs[s.rng.IntN(min(3, len(evs)))]
	}
	return evs[s.rng.IntN(len(evs))]
}

func (s *Sim) randomTags() []string {
	var out []string
	for _, t := range allTags {
		if s.rng.IntN(3) == 0 {
			out = append(out, t)
		}
	}
	return out
}

func (s *Sim) folderName() string {
	names := []string{"Alpha", "Beta", "Gamma", "Delta"}
	if s.rng.IntN(3) == 0 {
		s.nextName++
		return fmt.Sprintf("Named %d", s.nextName)
	}
	return names[s.rng.IntN(len(names))]
}

// localResult records the outcome of a local write.
func (s *Sim) localResult(rep *Rep, what string, err error) bool {
	if err == nil {
		s.stats.LocalOK++
		s.Tracef("%s: %s", rep.Name, what)
		return true
	}
	var me *model.Error
	if !errors.As(err, &me) {
		s.Fail("local-write-error", "%s: %s: not a model error: %v", rep.Name, what, err)
		return false
	}
	s.stats.LocalRefused++
	s.Tracef("%s: %s refused locally: %s", rep.Name, what, me.ID)
	return false
}

type localView struct {
	channels []*model.Channel
	folders  []*model.Folder
	events   []*model.Event
}

func (s *Sim) view(rep *Rep) localView {
	var v localView
	var err1, err2, err3 error
	v.channels, err1 = rep.R.ListChannels()
	v.folders, err2 = rep.R.ListFolders("")
	v.events, err3 = rep.R.ListEvents(replica.Filter{State: "all"})
	if err := errors.Join(err1, err2, err3); err != nil {
		s.Fail("local-read-error", "%s: %v", rep.Name, err)
	}
	return v
}

func (v localView) foldersOf(ch string) []*model.Folder {
	var out []*model.Folder
	for _, f := range v.folders {
		if f.ChannelID == ch {
			out = append(out, f)
		}
	}
	return out
}

// localOp makes one local edit on rep.
func (s *Sim) localOp(rep *Rep) {
	if rep.Purged && rep.Revoked {
		return
	}
	v := s.view(rep)
	x := s.pick(100)
	switch {
	case x < 25 || len(v.events) == 0:
		s.localCreateEvent(rep, v)
	case x < 40:
		ev := s.pickEvent(v.events)
		val := fmt.Sprintf("v%d", s.pick(1000))
		err := rep.R.UpdateEvent(ev.ID, replica.EventUpdate{Body: Obj(map[string]any{"value": val})})
		if s.localResult(rep, "update value of "+ev.ID+" to "+val, err) {
			s.checkLocalValue(rep, ev.ID, `"`+val+`"`)
		}
	case x < 45:
		ev := s.pickEvent(v.events)
		d := fmt.Sprintf("d%d", s.pick(1000))
		s.localResult(rep, "describe "+ev.ID, rep.R.UpdateEvent(ev.ID, replica.EventUpdate{Body: Obj(map[string]any{"description": d})}))
	case x < 55:
		ev := s.pickEvent(v.events)
		t := allTags[s.pick(len(allTags))]
		u := replica.EventUpdate{AddTags: []string{t}}
		what := "add tag " + t + " to " + ev.ID
		if s.pick(2) == 0 {
			u = replica.EventUpdate{RemoveTags: []string{t}}
			what = "remove tag " + t + " from " + ev.ID
		}
		s.localResult(rep, what, rep.R.UpdateEvent(ev.ID, u))
	case x < 63:
		ev := s.pickEvent(v.events)
		fs := v.foldersOf(ev.ChannelID)
		var target any
		name := "null"
		if len(fs) > 0 && s.pick(4) != 0 {
			f := fs[s.pick(len(fs))]
			target, name = f.ID, f.ID
		}
		s.localResult(rep, "move "+ev.ID+" to folder "+name, rep.R.UpdateEvent(ev.ID, replica.EventUpdate{Body: Obj(map[string]any{"folderId": target})}))
	case x < 65:
		ev := s.pickEvent(v.events)
		if len(v.channels) > 1 {
			ch := v.channels[s.pick(len(v.channels))]
			s.localResult(rep, "move "+ev.ID+" to channel "+ch.ID, rep.R.UpdateEvent(ev.ID,
				replica.EventUpdate{Body: Obj(map[string]any{"channelId": ch.ID, "folderId": nil})}))
		}
	case x < 71:
		ev := s.pickEvent(v.events)
		what := "trash " + ev.ID
		if ev.Trashed {
			what = "delete " + ev.ID
		}
		s.localResult(rep, what, rep.R.DeleteEvent(ev.ID))
	case x < 73:
		ev := s.pickEvent(v.events)
		s.localResult(rep, "restore "+ev.ID, rep.R.UpdateEvent(ev.ID, replica.EventUpdate{Body: Obj(map[string]any{"trashed": false})}))
	case x < 81:
		if len(v.channels) == 0 {
			return
		}
		ch := v.channels[s.pick(len(v.channels))]
		fs := v.foldersOf(ch.ID)
		body := map[string]any{"channelId": ch.ID, "name": s.folderName()}
		parent := "root"
		if len(fs) > 0 && s.pick(3) != 0 {
			p := fs[s.pick(len(fs))]
			body["parentId"], parent = p.ID, p.ID
		}
		s.nextName++
		id := fmt.Sprintf("fo-%d-z", 100+s.nextName)
		body["id"] = id
		_, err := rep.R.CreateFolder(Obj(body))
		s.localResult(rep, fmt.Sprintf("create folder %s %q in %s under %s", id, body["name"], ch.ID, parent), err)
	case x < 89:
		if len(v.folders) == 0 {
			return
		}
		f := v.folders[s.pick(len(v.folders))]
		fs := v.foldersOf(f.ChannelID)
		var target any
		name := "root"
		if s.pick(4) != 0 {
			p := fs[s.pick(len(fs))]
			target, name = p.ID, p.ID
		}
		s.localResult(rep, "move folder "+f.ID+" under "+name, rep.R.UpdateFolder(f.ID, Obj(map[string]any{"parentId": target})))
	case x < 91:
		if len(v.folders) == 0 {
			return
		}
		f := v.folders[s.pick(len(v.folders))]
		n := s.folderName()
		s.localResult(rep, fmt.Sprintf("rename folder %s to %q", f.ID, n), rep.R.UpdateFolder(f.ID, Obj(map[string]any{"name": n})))
	case x < 95:
		if len(v.folders) == 0 {
			return
		}
		f := v.folders[s.pick(len(v.folders))]
		what := "trash folder " + f.ID
		if f.Trashed {
			if s.pick(3) != 0 {
				return
			}
			what = "delete folder " + f.ID
		}
		s.localResult(rep, what, rep.R.DeleteFolder(f.ID))
	case x < 97:
		s.nextName++
		id := fmt.Sprintf("ch-%d-z", 100+s.nextName)
		_, err := rep.R.CreateChannel(Obj(map[string]any{"id": id, "name": fmt.Sprintf("Chan %d", s.nextName)}))
		s.localResult(rep, "create channel "+id, err)
	default:
		if len(v.channels) == 0 {
			return
		}
		ch := v.channels[s.pick(len(v.channels))]
		s.localResult(rep, "trash/untrash channel "+ch.ID, rep.R.UpdateChannel(ch.ID, Obj(map[string]any{"trashed": !ch.Trashed})))
	}
}

func (s *Sim) localCreateEvent(rep *Rep, v localView) {
	var ch string
	switch {
	case len(v.channels) > 0 && s.pick(10) != 0:
		ch = v.channels[s.pick(len(v.channels))].ID
	default:
		ch = []string{ch1, ch2}[s.pick(2)]
	}
	var folder any
	fname := "null"
	if fs := v.foldersOf(ch); len(fs) > 0 && s.pick(3) != 0 {
		f := fs[s.pick(len(fs))]
		folder, fname = f.ID, f.ID
	}
	id := s.NewEventID()
	val := fmt.Sprintf("v%d", s.pick(1000))
	tags := s.randomTags()
	if rep.Role == RoleTag && s.pick(4) != 0 {
		tags = append(tags, tagWork)
	}
	body := map[string]any{"id": id, "channelId": ch, "folderId": folder, "type": map[string]string{"class": noteClass, "format": "txt"},
		"value": val, "time": float64(baseEventTime + s.pick(1000)), "tags": tags}
	_, err := rep.R.CreateEvent(Obj(body))
	if s.localResult(rep, fmt.Sprintf("create event %s in %s/%s tags %v", id, ch, fname, tags), err) {
		s.checkLocalValue(rep, id, `"`+val+`"`)
	}
}

// checkLocalValue checks a local write shows at once (SPEC §4.1.2).
func (s *Sim) checkLocalValue(rep *Rep, id, want string) {
	ev, err := rep.R.GetEvent(id)
	if err != nil || string(ev.Value) != want {
		got := ""
		if ev != nil {
			got = string(ev.Value)
		}
		s.Fail("local-write-not-visible", "%s: event %s reads %s (%v) right after writing %s", rep.Name, id, got, err, want)
	}
}

// ---- HTTP writes by the owner ----

func (s *Sim) httpDo(method, path string, body any) (int, []byte) {
	st, b, err := s.W.Do(method, path, s.W.Owner, body)
	s.stats.HTTPWrites++
	s.snap = nil
	if err != nil {
		s.Fail("http-error", "%s %s: %v", method, path, err)
		return 0, nil
	}
	if st >= 500 {
		s.Fail("http-500", "%s %s: %d %s", method, path, st, b)
	}
	short := string(b)
	if len(short) > 120 {
		short = short[:120] + "…"
	}
	if st >= 400 {
		s.Tracef("http: %s %s → %d %s", method, path, st, short)
	} else {
		s.Tracef("http: %s %s %v → %d", method, path, body, st)
	}
	return st, b
}

func (s *Sim) httpCreateEvent() {
	ch := []string{ch1, ch2}[s.pick(2)]
	st := s.snapshot()
	var folder any
	var fs []string
	for _, k := range st.Keys(model.KindFolder) {
		if model.StringField(st.Docs[k], "channelId") == ch {
			fs = append(fs, k.ID)
		}
	}
	if len(fs) > 0 && s.pick(3) != 0 {
		folder = fs[s.pick(len(fs))]
	}
	id := s.NewEventID()
	body := map[string]any{"id": id, "folderId": folder, "type": map[string]string{"class": noteClass, "format": "txt"},
		"value": fmt.Sprintf("h%d", s.pick(1000)), "time": float64(baseEventTime + s.pick(1000)), "tags": s.randomTags()}
	if code, _ := s.httpDo("POST", "/"+ch+"/events", body); code == 201 {
		s.httpCreated = append(s.httpCreated, Key{model.KindEvent, id})
	}
}

// httpOp makes one write through the HTTP API with the owner's token.
func (s *Sim) httpOp() {
	st := s.snapshot()
	evs, fos, chs := st.Keys(model.KindEvent), st.Keys(model.KindFolder), st.Keys(model.KindChannel)
	x := s.pick(100)
	switch {
	case x < 25 || len(evs) == 0:
		s.httpCreateEvent()
	case x < 45:
		k := evs[s.pick(len(evs))]
		d := st.Docs[k]
		ch := model.StringField(d, "channelId")
		body := map[string]any{}
		switch s.pick(4) {
		case 0:
			body["value"] = fmt.Sprintf("h%d", s.pick(1000))
		case 1:
			body["tags"] = s.randomTags()
		case 2:
			var fs []string
			for _, f := range fos {
				if model.StringField(st.Docs[f], "channelId") == ch {
					fs = append(fs, f.ID)
				}
			}
			if len(fs) > 0 && s.pick(3) != 0 {
				body["folderId"] = fs[s.pick(len(fs))]
			} else {
				body["folderId"] = nil
			}
		default:
			other := chs[s.pick(len(chs))].ID
			body["channelId"] = other
			body["folderId"] = nil
		}
		s.httpDo("PUT", "/"+ch+"/events/"+k.ID, body)
	case x < 55:
		k := evs[s.pick(len(evs))]
		s.httpDo("DELETE", "/"+model.StringField(st.Docs[k], "channelId")+"/events/"+k.ID, nil)
	case x < 65:
		ch := []string{ch1, ch2}[s.pick(2)]
		s.nextName++
		id := fmt.Sprintf("fo-%d-z", 100+s.nextName)
		body := map[string]any{"id": id, "name": s.folderName()}
		var fs []string
		for _, f := range fos {
			if model.StringField(st.Docs[f], "channelId") == ch {
				fs = append(fs, f.ID)
			}
		}
		if len(fs) > 0 && s.pick(2) == 0 {
			body["parentId"] = fs[s.pick(len(fs))]
		}
		if code, _ := s.httpDo("POST", "/"+ch+"/folders", body); code == 201 {
			s.httpCreated = append(s.httpCreated, Key{model.KindFolder, id})
		}
	case x < 85:
		if len(fos) == 0 {
			return
		}
		k := fos[s.pick(len(fos))]
		ch := model.StringField(st.Docs[k], "channelId")
		var fs []string
		for _, f := range fos {
			if model.StringField(st.Docs[f], "channelId") == ch {
				fs = append(fs, f.ID)
			}
		}
		var target any
		if s.pick(4) != 0 {
			target = fs[s.pick(len(fs))]
		}
		s.httpDo("PUT", "/"+ch+"/folders/"+k.ID, map[string]any{"parentId": target})
	case x < 93:
		if len(fos) == 0 {
			return
		}
		k := fos[s.pick(len(fos))]
		ch := model.StringField(st.Docs[k], "channelId")
		q := ""
		if model.BoolField(st.Docs[k], "trashed") {
			q = "?mergeEventsWithParent=" + []string{"true", "false"}[s.pick(2)]
		}
		s.httpDo("DELETE", "/"+ch+"/folders/"+k.ID+q, nil)
	default:
		if len(evs) == 0 {
			return
		}
		k := evs[s.pick(len(evs))]
		ch := model.StringField(st.Docs[k], "channelId")
		s.httpDo("PUT", "/"+ch+"/events/"+k.ID, map[string]any{"trashed": !model.BoolField(st.Docs[k], "trashed")})
	}
}

// ---- access changes ----

func (s *Sim) accessOp() {
	defer func() { s.snap = nil }()
	var shared []*Rep
	for _, r := range s.Reps {
		if r.Role != RolePersonal {
			shared = append(shared, r)
		}
	}
	if len(shared) == 0 {
		s.SyncStep(s.pickRep(), nil)
		return
	}
	rep := shared[s.pick(len(shared))]
	switch {
	case rep.Revoked && !rep.Purged:
		// Let it learn first (a new token on a replica that still holds
		// the old token's data is TestReconfiguringWithAnotherToken…).
		s.SyncStep(rep, nil)
	case rep.Revoked:
		// Give it a new access; the replica is told its new token.
		rep.Variant = s.pick(variants(rep.Role))
		s.grant(rep)
		if err := rep.R.Configure(s.W.URL, User, rep.Token); err != nil {
			s.T.Fatalf("configure: %v", err)
		}
		rep.Revoked, rep.Purged = false, false
		s.Tracef("%s: new access: %s", rep.Name, permString(rep.Perms))
	case s.pick(6) == 0:
		s.httpDo("DELETE", "/accesses/"+rep.Token, nil)
		rep.Revoked = true
		s.Tracef("%s: access revoked", rep.Name)
	default:
		rep.Variant = (rep.Variant + 1 + s.pick(variants(rep.Role))) % variants(rep.Role)
		p := permsFor(rep.Role, rep.Variant)
		if code, _ := s.httpDo("PUT", "/accesses/"+rep.Token, map[string]any{"permissions": p.List}); code == 200 {
			rep.Perms = p
			s.Tracef("%s: access now %s", rep.Name, permString(p))
		}
	}
}
