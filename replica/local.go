package replica

import (
	"encoding/json"
	"math"
	"sort"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
)

// view is the local state of one kind: base with the overlay merged on top.
type view map[string]crdt.Doc

// loadView reads every item of kind: base ⊔ overlay.
func loadView(txn *badger.Txn, kind model.Kind) (view, error) {
	v := view{}
	err := eachPrefix(txn, prefixBase+string(kind)+"/", func(k string, raw []byte) (bool, error) {
		var d crdt.Doc
		if err := msgpack.Unmarshal(raw, &d); err != nil {
			return false, err
		}
		v[strings.TrimPrefix(k, prefixBase+string(kind)+"/")] = d
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	es, err := kindEntries(txn, kind)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		v[e.ID] = crdt.Merge(v[e.ID], e.Delta)
	}
	return v, nil
}

// loadItem reads one item: base ⊔ overlay; found reports whether anything
// (even a tombstone) is known.
func loadItem(txn *badger.Txn, kind model.Kind, id string) (crdt.Doc, bool, error) {
	d, found, err := getBase(txn, string(kind), id)
	if err != nil {
		return d, false, err
	}
	es, err := itemEntries(txn, kind, id)
	if err != nil {
		return d, false, err
	}
	for _, e := range es {
		d = crdt.Merge(d, e.Delta)
		found = true
	}
	return d, found, nil
}

// tree answers folder ancestry from a view of folders. Lenient: a folder not
// known locally counts as an existing root folder, so a write into a folder
// the replica has not seen yet is judged by the permissions that name it.
type tree struct {
	folders view
	lenient bool
}

func (t tree) FolderParent(f string) (string, bool) {
	d, ok := t.folders[f]
	if !ok || !model.Exists(d) {
		return "", t.lenient
	}
	return model.StringField(d, "parentId"), true
}

// folderReader answers folder ancestry as tree does (lenient), reading each
// folder (base ⊔ overlay) when first asked: a write about one event reads
// its folder and that folder's ancestors, not every folder. A read error is
// kept in err.
type folderReader struct {
	txn  *badger.Txn
	seen map[string]folderSeen
	err  error
}

type folderSeen struct {
	d     crdt.Doc
	found bool
}

func newFolderReader(txn *badger.Txn) *folderReader {
	return &folderReader{txn: txn, seen: map[string]folderSeen{}}
}

func (f *folderReader) get(id string) (crdt.Doc, bool) {
	if s, ok := f.seen[id]; ok {
		return s.d, s.found
	}
	d, found, err := loadItem(f.txn, model.KindFolder, id)
	if err != nil && f.err == nil {
		f.err = err
	}
	f.seen[id] = folderSeen{d, found}
	return d, found
}

func (f *folderReader) FolderParent(id string) (string, bool) {
	d, ok := f.get(id)
	if !ok || !model.Exists(d) {
		return "", true
	}
	return model.StringField(d, "parentId"), true
}

// scopeOf returns the last known scope, or ok=false when none is known yet
// (never synced: the server decides).
func scopeOf(txn *badger.Txn) (model.Scope, *permState, bool, error) {
	p, err := loadPerms(txn)
	if err != nil || p == nil {
		return model.Scope{}, p, false, err
	}
	return model.Compile(p.AccessType, p.Permissions), p, true, nil
}

func forbidden(msg string) error { return model.Errorf(model.ErrForbidden, "%s", msg) }

func unknown(kind model.Kind, id string) error {
	switch kind {
	case model.KindChannel:
		return model.Errorf(model.ErrUnknownChannel, "unknown channel %q", id)
	case model.KindFolder:
		return model.Errorf(model.ErrUnknownFolder, "unknown folder %q", id)
	}
	return model.Errorf(model.ErrUnknownEvent, "unknown event %q", id)
}

func renderMap(kind model.Kind, id string, d crdt.Doc) map[string]json.RawMessage {
	raw, _ := json.Marshal(model.Render(kind, id, d))
	var m map[string]json.RawMessage
	_ = json.Unmarshal(raw, &m)
	return m
}

// write is the one path of local writes: in one transaction it loads the
// item, lets build validate and produce a patch (or a tombstone), stamps the
// delta with the replica clock and stores it in the outbox.
func (r *Replica) write(kind model.Kind, id string, create bool,
	build func(txn *badger.Txn, cur crdt.Doc, found bool, sc model.Scope, known bool) (*model.Patch, bool, error)) error {
	err := r.update(func(txn *badger.Txn) error {
		cur, found, err := loadItem(txn, kind, id)
		if err != nil {
			return err
		}
		if create && found {
			return model.Errorf(model.ErrItemIDAlreadyExists, "the id %q is already used", id)
		}
		if !create && (!found || !model.Exists(cur)) {
			return unknown(kind, id)
		}
		sc, perms, known, err := scopeOf(txn)
		if err != nil {
			return err
		}
		p, tomb, err := build(txn, cur, found, sc, known)
		if err != nil {
			return err
		}
		v, err := r.clock().Now()
		if err != nil {
			return err
		}
		var delta crdt.Doc
		if tomb {
			delta = crdt.Doc{Deleted: v}
		} else {
			delta = p.Delta(cur, v)
			by := ""
			if perms != nil {
				by = perms.AccessID
			}
			model.Stamp(&delta, v, float64(v.Time)/1000, by, create)
		}
		rseq, err := nextRSeq(txn)
		if err != nil {
			return err
		}
		if err := putEntry(txn, &entry{RSeq: rseq, Kind: string(kind), ID: id, Create: create, Delta: delta}); err != nil {
			return err
		}
		return r.saveClock(txn)
	})
	if err != nil {
		return err
	}
	r.notify(Change{Kind: string(kind), ID: id, Source: "local"})
	r.signal()
	return nil
}

// itemIDFor picks a channel or folder id as the server does: the body's
// "id" slugified, else the slug of the name unless an item this replica
// holds (deleted ones included) has that id, else a new id.
func (r *Replica) itemIDFor(kind model.Kind, body map[string]json.RawMessage, p *model.Patch) (string, error) {
	if raw, ok := body["id"]; ok {
		var sid string
		if json.Unmarshal(raw, &sid) != nil {
			return "", model.FieldError("id", "must be a string")
		}
		return model.ItemID(sid)
	}
	id := model.Slugify(model.StringFromPatch(p, "name"))
	if _, err := model.ItemID(id); err != nil || id == "" {
		return model.NewID(), nil
	}
	taken := false
	err := r.db.View(func(txn *badger.Txn) error {
		_, found, err := loadItem(txn, kind, id)
		taken = found
		return err
	})
	if err != nil {
		return "", err
	}
	if taken {
		return model.NewID(), nil
	}
	return id, nil
}

func nameClash(v view, self, name string, same func(crdt.Doc) bool) bool {
	for id, d := range v {
		if id != self && model.Exists(d) && same(d) && strings.EqualFold(model.StringField(d, "name"), name) {
			return true
		}
	}
	return false
}

// CreateChannel creates a channel from a JSON body (SPEC §1.1) and returns its id.
func (r *Replica) CreateChannel(body map[string]json.RawMessage) (string, error) {
	p, err := model.ParsePatch(model.KindChannel, body, true, nil)
	if err != nil {
		return "", err
	}
	id, err := r.itemIDFor(model.KindChannel, body, p)
	if err != nil {
		return "", err
	}
	return id, r.write(model.KindChannel, id, true, func(txn *badger.Txn, _ crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		if known && !sc.IsPersonal() {
			return nil, false, forbidden("only a personal access may create channels")
		}
		chs, err := loadView(txn, model.KindChannel)
		if err != nil {
			return nil, false, err
		}
		name := model.StringFromPatch(p, "name")
		if nameClash(chs, id, name, func(crdt.Doc) bool { return true }) {
			return nil, false, model.Errorf(model.ErrItemNameAlreadyExists, "a channel named %q already exists", name)
		}
		return p, false, nil
	})
}

// UpdateChannel changes a channel.
func (r *Replica) UpdateChannel(id string, body map[string]json.RawMessage) error {
	return r.write(model.KindChannel, id, false, func(txn *badger.Txn, cur crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		p, err := model.ParsePatch(model.KindChannel, body, false, renderMap(model.KindChannel, id, cur))
		if err != nil {
			return nil, false, err
		}
		if known && sc.ChannelLevel(id) < model.LevelManage {
			return nil, false, forbidden("updating a channel needs manage rights on it")
		}
		if name := model.StringFromPatch(p, "name"); name != "" {
			chs, err := loadView(txn, model.KindChannel)
			if err != nil {
				return nil, false, err
			}
			if nameClash(chs, id, name, func(crdt.Doc) bool { return true }) {
				return nil, false, model.Errorf(model.ErrItemNameAlreadyExists, "a channel named %q already exists", name)
			}
		}
		return p, false, nil
	})
}

// DeleteChannel trashes a channel; a second delete removes it for good.
func (r *Replica) DeleteChannel(id string) error {
	return r.write(model.KindChannel, id, false, func(_ *badger.Txn, cur crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		if known && !sc.IsPersonal() {
			return nil, false, forbidden("only a personal access may delete channels")
		}
		return trashPatch(model.KindChannel, cur)
	})
}

func trashPatch(kind model.Kind, cur crdt.Doc) (*model.Patch, bool, error) {
	if model.BoolField(cur, "trashed") {
		return nil, true, nil
	}
	p := &model.Patch{Kind: kind}
	p.Set("trashed", model.JSONBool(true))
	return p, false, nil
}

func stringParam(body map[string]json.RawMessage, name string) (string, bool, error) {
	raw, ok := body[name]
	if !ok || string(raw) == "null" {
		return "", false, nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false, model.FieldError(name, "must be a string")
	}
	return s, true, nil
}

// CreateFolder creates a folder from a JSON body with channelId, name and
// optional parentId, id, hidden, clientData; it returns the folder's id.
func (r *Replica) CreateFolder(body map[string]json.RawMessage) (string, error) {
	channel, ok, err := stringParam(body, "channelId")
	if err != nil {
		return "", err
	}
	if !ok || channel == "" {
		return "", model.FieldError("channelId", "is required")
	}
	p, err := model.ParsePatch(model.KindFolder, body, true, nil)
	if err != nil {
		return "", err
	}
	p.Set("channelId", model.JSONString(channel))
	if _, ok := p.Fields["parentId"]; !ok {
		p.Set("parentId", []byte("null"))
	}
	id, err := r.itemIDFor(model.KindFolder, body, p)
	if err != nil {
		return "", err
	}
	parent := model.StringFromPatch(p, "parentId")
	return id, r.write(model.KindFolder, id, true, func(txn *badger.Txn, _ crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		fs, err := loadView(txn, model.KindFolder)
		if err != nil {
			return nil, false, err
		}
		if parent != "" {
			if pd, ok := fs[parent]; ok && model.Exists(pd) && model.StringField(pd, "channelId") != channel {
				return nil, false, model.Errorf(model.ErrUnknownFolder, "unknown parent folder %q", parent)
			}
		}
		if known && !sc.CanCreateFolderUnder(channel, parent, tree{fs, true}) {
			return nil, false, forbidden("creating a folder here needs manage rights")
		}
		name := model.StringFromPatch(p, "name")
		if nameClash(fs, id, name, func(d crdt.Doc) bool {
			f := model.FolderFactsOf(d)
			return f.Channel == channel && f.Parent == parent
		}) {
			return nil, false, model.Errorf(model.ErrItemNameAlreadyExists, "a sibling folder named %q already exists", name)
		}
		return p, false, nil
	})
}

// UpdateFolder changes (or moves, with parentId) a folder.
func (r *Replica) UpdateFolder(id string, body map[string]json.RawMessage) error {
	return r.write(model.KindFolder, id, false, func(txn *badger.Txn, cur crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		p, err := model.ParsePatch(model.KindFolder, body, false, renderMap(model.KindFolder, id, cur))
		if err != nil {
			return nil, false, err
		}
		fs, err := loadView(txn, model.KindFolder)
		if err != nil {
			return nil, false, err
		}
		bf := model.FolderFactsOf(cur)
		t := tree{fs, true}
		if known && !sc.CanManageFolder(bf.Channel, id, t) {
			return nil, false, forbidden("managing this folder needs manage rights above it")
		}
		after := model.FolderFactsOf(crdt.Merge(cur, p.Delta(cur, crdt.Version{Time: math.MaxInt64})))
		if after.Parent != bf.Parent {
			for f, depth := after.Parent, 0; f != "" && depth < 1024; depth++ {
				if f == id {
					return nil, false, model.Errorf(model.ErrInvalidOperation, "a folder cannot move below itself")
				}
				f, _ = t.FolderParent(f)
			}
			if known && !sc.CanCreateFolderUnder(bf.Channel, after.Parent, t) {
				return nil, false, forbidden("moving the folder there needs manage rights")
			}
		}
		return p, false, nil
	})
}

// DeleteFolder trashes a folder; a second delete removes it for good.
func (r *Replica) DeleteFolder(id string) error {
	return r.write(model.KindFolder, id, false, func(txn *badger.Txn, cur crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		if known {
			fs, err := loadView(txn, model.KindFolder)
			if err != nil {
				return nil, false, err
			}
			if !sc.CanManageFolder(model.FolderFactsOf(cur).Channel, id, tree{fs, true}) {
				return nil, false, forbidden("managing this folder needs manage rights above it")
			}
		}
		return trashPatch(model.KindFolder, cur)
	})
}

// CreateEvent creates an event from a JSON body (SPEC §1.3, channelId
// required, id optional in cuid form) and returns its id. time defaults to now.
func (r *Replica) CreateEvent(body map[string]json.RawMessage) (string, error) {
	id := model.NewID()
	if sid, ok, err := stringParam(body, "id"); err != nil {
		return "", err
	} else if ok {
		if id, err = model.EventID(sid); err != nil {
			return "", err
		}
	}
	p, err := model.ParsePatch(model.KindEvent, body, true, nil)
	if err != nil {
		return "", err
	}
	if model.StringFromPatch(p, "channelId") == "" {
		return "", model.FieldError("channelId", "is required")
	}
	if _, ok := p.Fields["time"]; !ok {
		p.Set("time", model.JSONNumber(r.nowSeconds()))
	}
	if _, ok := p.Fields["folderId"]; !ok {
		p.Set("folderId", []byte("null"))
	}
	return id, r.write(model.KindEvent, id, true, func(txn *badger.Txn, _ crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		return p, false, checkEventWrite(txn, p, crdt.Doc{}, false, sc, known)
	})
}

// EventUpdate is an event change: Body as the HTTP API's update body, plus
// tags added or removed one by one (merged per tag).
type EventUpdate struct {
	Body       map[string]json.RawMessage
	AddTags    []string
	RemoveTags []string
}

// UpdateEvent changes an event.
func (r *Replica) UpdateEvent(id string, u EventUpdate) error {
	return r.write(model.KindEvent, id, false, func(txn *badger.Txn, cur crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		p, err := model.ParsePatch(model.KindEvent, u.Body, false, renderMap(model.KindEvent, id, cur))
		if err != nil {
			return nil, false, err
		}
		if p.AddTags, err = model.NormalizeTags(u.AddTags); err != nil {
			return nil, false, err
		}
		if p.RemoveTags, err = model.NormalizeTags(u.RemoveTags); err != nil {
			return nil, false, err
		}
		return p, false, checkEventWrite(txn, p, cur, true, sc, known)
	})
}

// DeleteEvent trashes an event; a second delete removes it for good.
func (r *Replica) DeleteEvent(id string) error {
	return r.write(model.KindEvent, id, false, func(txn *badger.Txn, cur crdt.Doc, _ bool, sc model.Scope, known bool) (*model.Patch, bool, error) {
		if known {
			t := newFolderReader(txn)
			lvl := sc.EventLevel(model.EventFactsOf(cur), t)
			if t.err != nil {
				return nil, false, t.err
			}
			if lvl < model.LevelContribute {
				return nil, false, forbidden("changing this event needs contribute rights")
			}
		}
		return trashPatch(model.KindEvent, cur)
	})
}

func checkEventWrite(txn *badger.Txn, p *model.Patch, cur crdt.Doc, live bool, sc model.Scope, known bool) error {
	t := newFolderReader(txn)
	err := checkEventRules(t, p, cur, live, sc, known)
	if t.err != nil {
		return t.err
	}
	return err
}

func checkEventRules(t *folderReader, p *model.Patch, cur crdt.Doc, live bool, sc model.Scope, known bool) error {
	after := crdt.Merge(cur, p.Delta(cur, crdt.Version{Time: math.MaxInt64}))
	ef := model.EventFactsOf(after)
	if ef.Folder != "" {
		if fd, ok := t.get(ef.Folder); ok && model.Exists(fd) && model.StringField(fd, "channelId") != ef.Channel {
			return model.Errorf(model.ErrUnknownFolder, "unknown folder %q", ef.Folder)
		}
	}
	if !known {
		return nil
	}
	if live && sc.EventLevel(model.EventFactsOf(cur), t) < model.LevelContribute {
		return forbidden("changing this event needs contribute rights")
	}
	if sc.EventLevel(ef, t) < model.LevelContribute {
		if !live && sc.SeesChannel(ef.Channel) && sc.EventLevel(ef, t) == model.LevelNone {
			return forbidden("the event would be outside this access's scope")
		}
		return forbidden("writing this event needs contribute rights")
	}
	return nil
}

// GetEvent returns one event (trashed ones included).
func (r *Replica) GetEvent(id string) (*model.Event, error) {
	var ev *model.Event
	err := r.db.View(func(txn *badger.Txn) error {
		d, found, err := loadItem(txn, model.KindEvent, id)
		if err != nil {
			return err
		}
		if !found || !model.Exists(d) {
			return unknown(model.KindEvent, id).(*model.Error).Path()
		}
		ev = model.RenderEvent(id, d)
		return nil
	})
	return ev, err
}

// Filter selects events. Zero fields do not filter.
type Filter struct {
	Channel string
	Folder  string // events of this folder (not its subfolders)
	Tags    []string
	From    *float64
	To      *float64
	State   string // "default" (or ""), "trashed", "all"
	Limit   int
}

// ListEvents returns matching events, newest first.
func (r *Replica) ListEvents(f Filter) ([]*model.Event, error) {
	out := []*model.Event{}
	err := r.db.View(func(txn *badger.Txn) error {
		evs, err := loadView(txn, model.KindEvent)
		if err != nil {
			return err
		}
		chs, err := loadView(txn, model.KindChannel)
		if err != nil {
			return err
		}
		fs, err := loadView(txn, model.KindFolder)
		if err != nil {
			return err
		}
		folderTrashed := func(fid string) bool {
			for depth := 0; fid != "" && depth < 1024; depth++ {
				d, ok := fs[fid]
				if !ok {
					return false
				}
				if model.BoolField(d, "trashed") {
					return true
				}
				fid = model.StringField(d, "parentId")
			}
			return false
		}
		from, to := math.Inf(-1), math.Inf(1)
		if f.From != nil {
			from = *f.From
		}
		if f.To != nil {
			to = *f.To
		}
		for id, d := range evs {
			if !model.Exists(d) {
				continue
			}
			ef := model.EventFactsOf(d)
			if f.Channel != "" && ef.Channel != f.Channel || f.Folder != "" && ef.Folder != f.Folder {
				continue
			}
			hit := true
			for _, t := range f.Tags {
				hit = hit && ef.HasTag(t)
			}
			if !hit || !ef.Meets(from, to) {
				continue
			}
			trashed := ef.Trashed || model.BoolField(chs[ef.Channel], "trashed") || folderTrashed(ef.Folder)
			switch f.State {
			case "all":
			case "trashed":
				if !trashed {
					continue
				}
			default:
				if trashed {
					continue
				}
			}
			out = append(out, model.RenderEvent(id, d))
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time != out[j].Time {
			return out[i].Time > out[j].Time
		}
		return out[i].ID > out[j].ID
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, err
}

// ListChannels returns the channels (trashed ones too), sorted by name.
func (r *Replica) ListChannels() ([]*model.Channel, error) {
	out := []*model.Channel{}
	err := r.db.View(func(txn *badger.Txn) error {
		v, err := loadView(txn, model.KindChannel)
		for id, d := range v {
			if model.Exists(d) {
				out = append(out, model.RenderChannel(id, d))
			}
		}
		return err
	})
	model.SortByName(out, func(c *model.Channel) string { return c.Name }, func(c *model.Channel) string { return c.ID })
	return out, err
}

// ListFolders returns the folders of a channel ("" = all), flat, sorted by name.
func (r *Replica) ListFolders(channel string) ([]*model.Folder, error) {
	out := []*model.Folder{}
	err := r.db.View(func(txn *badger.Txn) error {
		v, err := loadView(txn, model.KindFolder)
		for id, d := range v {
			if model.Exists(d) && (channel == "" || model.StringField(d, "channelId") == channel) {
				out = append(out, model.RenderFolder(id, d))
			}
		}
		return err
	})
	model.SortByName(out, func(c *model.Folder) string { return c.Name }, func(c *model.Folder) string { return c.ID })
	return out, err
}
