package server

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server/store"
)

// Actor is who writes: an access and its compiled scope.
type Actor struct {
	AccessID string
	Type     string
	Scope    model.Scope
}

// Change is one versioned change to an item, from HTTP or a replica's push.
type Change struct {
	Kind  model.Kind
	ID    string
	Delta crdt.Doc
	// Create says the writer means to create the item (HTTP create, or a
	// replica's first push of an item it made).
	Create bool
	// RenameOnClash keeps a folder whose name clashes with a sibling by
	// renaming it "<name> (2)"… (sync), instead of refusing it (HTTP).
	RenameOnClash bool
	// Local marks a change whose versions this server stamped (an HTTP
	// write): they are stamped again in the transaction, past every
	// version the item holds, so that a later write wins even when it
	// went through another node of a cluster whose clock lags, or when a
	// device stamped the item ahead of the server's clock.
	Local bool
	// Merge marks an event moved to a removed folder's parent
	// (mergeEventsWithParent): it may land in a trashed parent, where it
	// stays in the trash.
	Merge bool
	// Uploaded holds the digests of content the writer itself sent: with
	// this request (HTTP) or earlier in its sync session. An event may
	// name those in its attachments; any other digest it starts naming
	// must already be named by an event the writer can see, so a token
	// can neither reach nor probe content outside its scope.
	Uploaded map[string]bool
}

// Outcome is what applying a change did.
type Outcome struct {
	Seq       uint64
	Lost      crdt.Lost // entries of the delta that lost to newer values
	StoppedID string    // a running period stopped by this change
	Renamed   string    // the new name of a folder renamed on a clash
	Doc       crdt.Doc  // the item's state after the change
	// Orphans are attachment digests no event references any more: the
	// caller may remove their content once the transaction has committed.
	Orphans []string
	// touch holds an event's scope facts before and after the change, for
	// its notice (store.Tx.Touching).
	touch []model.EventFacts
}

// txTree answers folder ancestry from the transaction's current state.
type txTree struct{ tx *store.Tx }

func (t txTree) FolderParent(folder string) (string, bool) {
	r, ok, err := t.tx.Peek(model.KindFolder, folder)
	if err != nil || !ok || !model.Exists(r.Doc) {
		return "", false
	}
	return model.StringField(r.Doc, "parentId"), true
}

func unknownErr(kind model.Kind, id string) *model.Error {
	switch kind {
	case model.KindChannel:
		return model.Errorf(model.ErrUnknownChannel, "unknown channel %q", id)
	case model.KindFolder:
		return model.Errorf(model.ErrUnknownFolder, "unknown folder %q", id)
	}
	return model.Errorf(model.ErrUnknownEvent, "unknown event %q", id)
}

// visibleLevel is the actor's level on an existing item (LevelNone when it
// cannot see it).
func visibleLevel(tx *store.Tx, a *Actor, kind model.Kind, id string, d crdt.Doc) model.Level {
	tree := txTree{tx}
	switch kind {
	case model.KindChannel:
		if !a.Scope.SeesChannel(id) {
			return model.LevelNone
		}
		return max(model.LevelRead, a.Scope.ChannelLevel(id))
	case model.KindFolder:
		f := model.FolderFactsOf(d)
		return a.Scope.FolderLevel(f.Channel, id, tree)
	}
	return a.Scope.EventLevel(model.EventFactsOf(d), tree)
}

// ApplyChange checks one change against the actor's rights and the
// invariants of SPEC §1, as the state stands in tx (including earlier
// changes of the same request), then merges and stores it. It is the one
// write rule of the server: HTTP handlers and the sync endpoint both call it.
func ApplyChange(tx *store.Tx, a *Actor, ch Change, clock *crdt.Clock) (*Outcome, error) {
	if !ch.Kind.Valid() {
		return nil, model.Errorf(model.ErrInvalidParametersFormat, "unknown item kind %q", ch.Kind)
	}
	cur, exists, err := tx.Item(ch.Kind, ch.ID)
	if err != nil {
		return nil, err
	}
	var before crdt.Doc
	live := exists && model.Exists(cur.Doc)
	if exists {
		before = cur.Doc
	}
	if exists && cur.Doc.IsDeleted() {
		if ch.Create {
			return nil, model.Errorf(model.ErrItemIDAlreadyExists, "the id %q was used by a deleted item", ch.ID)
		}
		return nil, unknownErr(ch.Kind, ch.ID)
	}
	if live {
		lvl := visibleLevel(tx, a, ch.Kind, ch.ID, before)
		if lvl == model.LevelNone {
			if ch.Create {
				// Do not reveal that the id exists.
				return nil, model.Errorf(model.ErrItemIDAlreadyExists, "the id %q is already used", ch.ID)
			}
			return nil, unknownErr(ch.Kind, ch.ID)
		}
		// A create of a live id is a clash, unless it replays the stored
		// creation (a replica's retry carries the same created version).
		// An HTTP create carries no created field: always a clash.
		if ch.Create && !ch.Delta.IsDeleted() && !(ch.Delta.Has(model.FieldCreated) && sameCreation(before, ch.Delta)) {
			return nil, model.Errorf(model.ErrItemIDAlreadyExists, "the id %q is already used", ch.ID)
		}
	} else if !ch.Create || ch.Delta.IsDeleted() {
		return nil, unknownErr(ch.Kind, ch.ID)
	}

	now := tx.Now()
	// Stamp adds up to four fields: room for them avoids growing the map.
	delta := ch.Delta.CloneRoom(4)
	if ch.Local && exists {
		// Past the item's newest version, without moving the clock itself
		// (that version may be a device's, ahead by up to the skew
		// allowance: every later write of this server must not follow it).
		delta, _ = delta.Restamp(math.MinInt64, func() crdt.Version { return stampPast(clock, before) })
	} else {
		// A device clock far ahead must not win forever (SPEC §4.3).
		// (stampPast's versions need no such limit: they pass only
		// versions the item holds, which were within it.)
		limit := int64(now*1000) + crdt.DefaultSkew.Milliseconds()
		delta, _ = delta.Restamp(limit, clock.MustNow)
	}
	v := clock.MustNow()
	clientCreated, hasCreated := delta.Fields[model.FieldCreated]
	model.Stamp(&delta, crdt.Max(v, delta.MaxVersion()), now, a.AccessID, !live)
	switch {
	case live:
		// created/createdBy are fixed once set.
		delete(delta.Fields, model.FieldCreated)
		delete(delta.Fields, model.FieldCreatedBy)
	case hasCreated && len(clientCreated.Val) > 0:
		// (An empty value would be stored as no value: the server's
		// stamp stays instead.)
		// Keep the creator's own version, so a replayed creation is
		// recognised as the same one (sameCreation).
		delta.Fields[model.FieldCreated] = clientCreated
		delta.Fields[model.FieldCreatedBy] = crdt.Field{V: clientCreated.V, Val: model.JSONString(a.AccessID)}
	}
	var after crdt.Doc
	var lost crdt.Lost
	if exists {
		after, lost = crdt.Apply(before, delta)
	} else {
		after = crdt.Adopt(delta) // delta is this call's own copy
	}
	out := &Outcome{Lost: userLost(lost)}
	switch ch.Kind {
	case model.KindChannel:
		err = checkChannel(tx, a, ch, live, before, &after)
	case model.KindFolder:
		err = checkFolder(tx, a, ch, live, before, &after, out, clock)
	case model.KindEvent:
		err = checkEvent(tx, a, ch, live, before, &after, out, clock)
	}
	if err != nil {
		return nil, err
	}
	switch ch.Kind {
	case model.KindEvent:
		tx.Touching(out.touch...)
	case model.KindFolder:
		var parents []string
		if live {
			parents = append(parents, model.StringField(before, "parentId"))
		}
		if !after.IsDeleted() {
			parents = append(parents, model.StringField(after, "parentId"))
		}
		tx.TouchingFolder(ch.ID, parents...)
	}
	seq, err := tx.PutItem(ch.Kind, ch.ID, after)
	if err != nil {
		return nil, err
	}
	if ch.Kind == model.KindFolder && live &&
		(after.IsDeleted() || model.StringField(after, "parentId") != model.StringField(before, "parentId")) {
		if err := refeedSubtree(tx, model.StringField(before, "channelId"), ch.ID); err != nil {
			return nil, err
		}
	}
	if ch.Kind == model.KindEvent {
		if out.Orphans, err = keepFileRefs(tx, a, ch, before, after); err != nil {
			return nil, err
		}
	}
	out.Seq, out.Doc = seq, after
	return out, nil
}

// stampPast is a fresh version of this server for a write to doc: the
// clock's next one, or, when doc holds a newer version (a device's, ahead
// by up to the skew allowance), the one just past it, without moving the
// clock. Every server write to an existing item is stamped with it, so
// that it wins over what the item holds.
func stampPast(clock *crdt.Clock, doc crdt.Doc) crdt.Version {
	newest := doc.MaxVersion()
	v := clock.MustNow()
	if !newest.Less(v) {
		v = crdt.Version{Time: newest.Time, Counter: newest.Counter + 1, Node: clock.Node()}
		if v.Counter == 0 { // wrapped: the next millisecond
			v.Time++
		}
	}
	return v
}

// keepFileRefs keeps the store's attachment references in step with an
// event's attachments, whoever changed them (HTTP or a replica's push), and
// returns the digests left without any reference. A digest the event starts
// naming must be content the writer sent (ch.Uploaded) or content an event
// it can see names already; otherwise it is unknown, whether or not the
// account holds it (the answer tells nothing of content out of scope).
func keepFileRefs(tx *store.Tx, a *Actor, ch Change, before, after crdt.Doc) ([]string, error) {
	event := ch.ID
	old, cur := fileDigests(before), fileDigests(after)
	for d := range cur {
		if !old[d] {
			// A replica uploads content before the push that names it.
			ok := tx.Store().HasFile(tx.User(), d)
			if ok && !ch.Uploaded[d] {
				var err error
				if ok, err = namedInScope(tx, a, d, event); err != nil {
					return nil, err
				}
			}
			if !ok {
				return nil, model.Errorf(model.ErrUnknownAttachment, "no content with digest %s was uploaded", d)
			}
			tx.AddRef(d, event)
		}
	}
	var orphans []string
	for d := range old {
		if cur[d] {
			continue
		}
		left, err := tx.DropRef(d, event)
		if err != nil {
			return nil, err
		}
		if !left {
			orphans = append(orphans, d)
		}
	}
	return orphans, nil
}

// namedInScope reports whether an event other than except, which a can
// see, names the content digest in its attachments.
func namedInScope(tx *store.Tx, a *Actor, digest, except string) (bool, error) {
	found := false
	err := tx.Refs(digest, func(event string) (bool, error) {
		if event == "" || event == except {
			return true, nil
		}
		r, ok, err := tx.Item(model.KindEvent, event)
		if err != nil {
			return false, err
		}
		if ok && model.Exists(r.Doc) && visibleLevel(tx, a, model.KindEvent, event, r.Doc) > model.LevelNone {
			found = true
			return false, nil
		}
		return true, nil
	})
	return found, err
}

// fileDigests is the set of content digests an event's attachments name.
// (nil when it names none: most events have no attachment).
func fileDigests(d crdt.Doc) map[string]bool {
	if d.IsDeleted() || len(d.Files) == 0 {
		return nil
	}
	out := map[string]bool{}
	for _, raw := range d.FileMap() {
		var a model.Attachment
		if json.Unmarshal(raw, &a) == nil && store.ValidDigest(a.Digest) {
			out[a.Digest] = true
		}
	}
	return out
}

// sameCreation reports whether a create delta is a replay of the creation
// already stored (same created version): idempotent offline creation.
func sameCreation(cur, delta crdt.Doc) bool {
	return cur.Fields[model.FieldCreated].V == delta.Fields[model.FieldCreated].V
}

func userLost(l crdt.Lost) crdt.Lost {
	out := l[:0:0]
	for _, f := range l {
		switch f {
		case model.FieldModified, model.FieldModifiedBy, model.FieldCreated, model.FieldCreatedBy:
			continue
		}
		out = append(out, f)
	}
	return out
}

func trashedErr(what, id string) *model.Error {
	return model.Errorf(model.ErrInvalidOperation, "the %s %q is trashed", what, id).
		WithData(map[string]any{"trashed": what}) // "channel" or "folder"
}

func checkChannel(tx *store.Tx, a *Actor, ch Change, live bool, before crdt.Doc, after *crdt.Doc) error {
	if !live || after.IsDeleted() {
		if !a.Scope.IsPersonal() {
			return model.Errorf(model.ErrForbidden, "only a personal access may create or delete channels")
		}
	} else if a.Scope.ChannelLevel(ch.ID) < model.LevelManage {
		return model.Errorf(model.ErrForbidden, "updating a channel needs manage rights on it")
	}
	if after.IsDeleted() {
		return nil
	}
	name := model.StringField(*after, "name")
	if name == "" {
		return model.FieldError("name", "is required")
	}
	if !live || model.StringField(before, "name") != name {
		clash := false
		err := tx.Items(model.KindChannel, func(id string, r *store.Record) (bool, error) {
			if id != ch.ID && model.Exists(r.Doc) && strings.EqualFold(model.StringField(r.Doc, "name"), name) {
				clash = true
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if clash {
			return model.Errorf(model.ErrItemNameAlreadyExists, "a channel named %q already exists", name)
		}
	}
	return checkSize(*after)
}

func checkSize(d crdt.Doc) error {
	n := model.ItemSize(d)
	if n > model.MaxItemSize {
		return model.Errorf(model.ErrPayloadTooLarge, "an item is at most %d bytes encoded", model.MaxItemSize)
	}
	return nil
}

// channelState checks the channel of a folder or event exists for the
// actor and is not trashed.
func channelState(tx *store.Tx, a *Actor, channel string) (crdt.Doc, error) {
	r, ok, err := tx.Peek(model.KindChannel, channel)
	if err != nil {
		return crdt.Doc{}, err
	}
	if !ok || !model.Exists(r.Doc) || !a.Scope.SeesChannel(channel) {
		return crdt.Doc{}, model.Errorf(model.ErrUnknownChannel, "unknown channel %q", channel)
	}
	return r.Doc, nil
}

func checkFolder(tx *store.Tx, a *Actor, ch Change, live bool, before crdt.Doc, after *crdt.Doc, out *Outcome, clock *crdt.Clock) error {
	tree := txTree{tx}
	bf := model.FolderFactsOf(before)
	if live && !after.IsDeleted() && model.StringField(*after, "channelId") != bf.Channel {
		return model.FieldError("channelId", "a folder never changes channel")
	}
	af := model.FolderFactsOf(*after)
	if live && !a.Scope.CanManageFolder(bf.Channel, ch.ID, tree) {
		return model.Errorf(model.ErrForbidden, "managing this folder needs manage rights above it")
	}
	if after.IsDeleted() {
		return nil
	}
	cdoc, err := channelState(tx, a, af.Channel)
	if err != nil {
		return err
	}
	if !live && model.BoolField(cdoc, "trashed") {
		return trashedErr("channel", af.Channel)
	}
	if !live || af.Parent != bf.Parent {
		if af.Parent != "" {
			pr, ok, err := tx.Peek(model.KindFolder, af.Parent)
			if err != nil {
				return err
			}
			if !ok || !model.Exists(pr.Doc) || model.StringField(pr.Doc, "channelId") != af.Channel ||
				a.Scope.FolderLevel(af.Channel, af.Parent, tree) == model.LevelNone {
				return model.Errorf(model.ErrUnknownFolder, "unknown parent folder %q", af.Parent)
			}
			if !live && model.BoolField(pr.Doc, "trashed") {
				return trashedErr("folder", af.Parent)
			}
			// A move under one of its own descendants would make a cycle.
			for f, depth := af.Parent, 0; f != "" && depth < 1024; depth++ {
				if f == ch.ID {
					return model.Errorf(model.ErrInvalidOperation, "a folder cannot move below itself")
				}
				f, _ = tree.FolderParent(f)
			}
		}
		if !a.Scope.CanCreateFolderUnder(af.Channel, af.Parent, tree) {
			if !live {
				return model.Errorf(model.ErrForbidden, "creating a folder here needs manage rights")
			}
			return model.Errorf(model.ErrForbidden, "moving the folder there needs manage rights")
		}
	}
	if af.Name == "" {
		return model.FieldError("name", "is required")
	}
	if !live || af.Name != bf.Name || af.Parent != bf.Parent {
		name, err := uniqueFolderName(tx, ch, af, ch.RenameOnClash)
		if err != nil {
			return err
		}
		if name != af.Name && !live && ch.RenameOnClash {
			// Two folders created offline with one name: the later one by
			// version is renamed (SPEC §4.3), whichever reached the server
			// first.
			renamed, err := renameLaterSibling(tx, a, ch, af, after.Fields["name"].V, clock)
			if err != nil {
				return err
			}
			if renamed {
				name = af.Name
			}
		}
		if name != af.Name {
			// A fresh version: the clashing name may sit at the same version
			// on replicas, and must lose to the new one everywhere.
			after.Fields["name"] = crdt.Field{V: stampPast(clock, *after), Val: model.JSONString(name)}
			out.Renamed = name
		}
	}
	return checkSize(*after)
}

func uniqueFolderName(tx *store.Tx, ch Change, af model.FolderFacts, rename bool) (string, error) {
	taken := map[string]bool{}
	err := tx.Items(model.KindFolder, func(id string, r *store.Record) (bool, error) {
		if id == ch.ID || !model.Exists(r.Doc) {
			return true, nil
		}
		f := model.FolderFactsOf(r.Doc)
		if f.Channel == af.Channel && f.Parent == af.Parent {
			taken[strings.ToLower(f.Name)] = true
		}
		return true, nil
	})
	if err != nil {
		return "", err
	}
	if !taken[strings.ToLower(af.Name)] {
		return af.Name, nil
	}
	if !rename {
		return "", model.Errorf(model.ErrItemNameAlreadyExists, "a sibling folder named %q already exists", af.Name)
	}
	for i := 2; ; i++ {
		n := fmt.Sprintf("%s (%d)", af.Name, i)
		if !taken[strings.ToLower(n)] {
			return n, nil
		}
	}
}

// renameLaterSibling renames, when a pushed folder's creation clashes with
// a sibling whose name is newer by version than v, that sibling "<name>
// (2)"… at a fresh version, so that the creation keeps its name. It reports
// whether it did; with more than one clashing sibling, or an older one, the
// pushed folder is renamed instead.
func renameLaterSibling(tx *store.Tx, a *Actor, ch Change, af model.FolderFacts, v crdt.Version, clock *crdt.Clock) (bool, error) {
	var sib string
	var sdoc crdt.Doc
	clashes := 0
	taken := map[string]bool{strings.ToLower(af.Name): true}
	err := tx.Items(model.KindFolder, func(id string, r *store.Record) (bool, error) {
		if id == ch.ID || !model.Exists(r.Doc) {
			return true, nil
		}
		if f := model.FolderFactsOf(r.Doc); f.Channel == af.Channel && f.Parent == af.Parent {
			taken[strings.ToLower(f.Name)] = true
			if strings.EqualFold(f.Name, af.Name) {
				clashes++
				sib, sdoc = id, r.Doc
			}
		}
		return true, nil
	})
	if err != nil || clashes != 1 || sdoc.Fields["name"].V.Compare(v) <= 0 {
		return false, err
	}
	sf := model.FolderFactsOf(sdoc)
	name := ""
	for i := 2; name == ""; i++ {
		if n := fmt.Sprintf("%s (%d)", sf.Name, i); !taken[strings.ToLower(n)] {
			name = n
		}
	}
	nv := stampPast(clock, sdoc)
	d := crdt.Doc{Fields: map[string]crdt.Field{"name": {V: nv, Val: model.JSONString(name)}}}
	model.Stamp(&d, nv, tx.Now(), a.AccessID, false)
	merged := crdt.Merge(sdoc, d)
	tx.TouchingFolder(sib, sf.Parent, sf.Parent)
	_, err = tx.PutItem(model.KindFolder, sib, merged)
	return err == nil, err
}

func checkEvent(tx *store.Tx, a *Actor, ch Change, live bool, before crdt.Doc, after *crdt.Doc, out *Outcome, clock *crdt.Clock) error {
	tree := txTree{tx}
	out.touch = out.touch[:0]
	if live {
		bf := model.EventFactsOf(before)
		if a.Scope.EventLevel(bf, tree) < model.LevelContribute {
			return model.Errorf(model.ErrForbidden, "changing this event needs contribute rights")
		}
		out.touch = append(out.touch, bf)
	}
	if after.IsDeleted() {
		return nil
	}
	ef := model.EventFactsOf(*after)
	out.touch = append(out.touch, ef)
	if !after.Has("type") {
		return model.FieldError("type", "is required")
	}
	if !after.Has("time") {
		return model.FieldError("time", "is required")
	}
	cdoc, err := channelState(tx, a, ef.Channel)
	if err != nil {
		return err
	}
	// Recording into a trashed channel is refused: a new event, or one
	// moved there (an event of a channel trashed since stays editable).
	if model.BoolField(cdoc, "trashed") && (!live || model.EventFactsOf(before).Channel != ef.Channel) {
		return trashedErr("channel", ef.Channel)
	}
	if ef.Folder != "" {
		fr, ok, err := tx.Peek(model.KindFolder, ef.Folder)
		if err != nil {
			return err
		}
		if !ok || !model.Exists(fr.Doc) || model.StringField(fr.Doc, "channelId") != ef.Channel ||
			a.Scope.FolderLevel(ef.Channel, ef.Folder, tree) == model.LevelNone && !a.Scope.WholeChannel(ef.Channel) {
			return model.Errorf(model.ErrUnknownFolder, "unknown folder %q", ef.Folder)
		}
		if model.BoolField(fr.Doc, "trashed") && (!live || model.EventFactsOf(before).Folder != ef.Folder) && !ch.Merge {
			return trashedErr("folder", ef.Folder)
		}
	}
	if a.Scope.EventLevel(ef, tree) < model.LevelContribute {
		if a.Scope.SeesChannel(ef.Channel) && a.Scope.EventLevel(ef, tree) == model.LevelNone && !live {
			return model.Errorf(model.ErrForbidden, "the event would be outside this access's scope")
		}
		return model.Errorf(model.ErrForbidden, "writing this event needs contribute rights")
	}
	if err := checkSize(*after); err != nil {
		return err
	}
	if model.BoolField(cdoc, "enforceNoEventsOverlap") && ef.Period && !ef.Trashed {
		return checkPeriods(tx, a, ch, live, before, ef, out, clock)
	}
	return nil
}

// checkPeriods applies SPEC §1.6 in a no-overlap channel: creating a running
// period stops the running one (when the writer may change it); a running
// period may not start before a later period; otherwise a period may not
// overlap another (periods that only touch do not overlap). Only a change of
// the event's span, channel or trashed state is checked, so an event that
// overlapped before the channel enforced the rule stays editable. Ids the
// writer cannot see are never reported.
func checkPeriods(tx *store.Tx, a *Actor, ch Change, live bool, before crdt.Doc, ef model.EventFacts, out *Outcome, clock *crdt.Clock) error {
	if live {
		bf := model.EventFactsOf(before)
		if bf.Period && !bf.Trashed && bf.Channel == ef.Channel && bf.Time == ef.Time &&
			bf.Running == ef.Running && bf.Duration == ef.Duration {
			return nil
		}
	}
	tree := txTree{tx}
	from, end := ef.Time, ef.End()
	starting := ef.Running && !live
	var overlapped, stops []string
	hidden, later := false, false
	// Every period that can matter meets [from, end].
	err := tx.EventsByTime(ef.Channel, from, end, true, func(id string, r *store.Record) (bool, error) {
		if id == ch.ID {
			return true, nil
		}
		o := model.EventFactsOf(r.Doc)
		if !o.Period || o.Trashed {
			return true, nil
		}
		lvl := a.Scope.EventLevel(o, tree)
		switch {
		case ef.Running && o.Time > from:
			later = true
		case starting && o.Running && lvl >= model.LevelContribute:
			stops = append(stops, id)
		case o.Time < end && o.End() > from:
			if lvl > model.LevelNone {
				overlapped = append(overlapped, id)
			} else {
				hidden = true
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if later {
		return model.Errorf(model.ErrInvalidOperation, "a running period cannot start before a later period")
	}
	if len(overlapped) > 0 || hidden {
		if overlapped == nil {
			overlapped = []string{}
		}
		return model.Errorf(model.ErrPeriodsOverlap, "the period overlaps other periods").
			WithData(map[string]any{"overlappedIds": overlapped})
	}
	for _, id := range stops {
		r, _, err := tx.Item(model.KindEvent, id)
		if err != nil {
			return err
		}
		o := model.EventFactsOf(r.Doc)
		if math.IsInf(from-o.Time, 0) {
			return model.FieldError("time", "is too far from the start of the running period")
		}
		v := stampPast(clock, r.Doc)
		d := crdt.Doc{Fields: map[string]crdt.Field{"duration": {V: v, Val: model.JSONNumber(from - o.Time)}}}
		model.Stamp(&d, v, tx.Now(), a.AccessID, false)
		merged := crdt.Merge(r.Doc, d)
		tx.Touching(o, model.EventFactsOf(merged))
		if _, err := tx.PutItem(model.KindEvent, id, merged); err != nil {
			return err
		}
		out.StoppedID = id
	}
	return nil
}

// jsonRaw is a helper for handlers that need a field's raw JSON.
func jsonRaw(v any) json.RawMessage {
	b, _ := json.Marshal(v)
	return b
}

// refeedSubtree gives every folder below folder, and every event in the
// subtree (folder included), a new feed entry with its unchanged state: a
// move or a deletion of the folder can take them in or out of a token's
// scope, and sessions learn of scope changes from the feed.
func refeedSubtree(tx *store.Tx, channel, folder string) error {
	children := map[string][]string{}
	err := tx.Items(model.KindFolder, func(id string, r *store.Record) (bool, error) {
		if model.Exists(r.Doc) && r.Channel == channel {
			p := model.StringField(r.Doc, "parentId")
			children[p] = append(children[p], id)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	subtree := map[string]bool{folder: true}
	queue := []string{folder}
	var below []string
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		for _, c := range children[f] {
			if !subtree[c] {
				subtree[c] = true
				below = append(below, c)
				queue = append(queue, c)
			}
		}
	}
	var events []string
	err = tx.EventsByTime(channel, negInf, posInf, true, func(id string, r *store.Record) (bool, error) {
		if f := model.StringField(r.Doc, "folderId"); f != "" && subtree[f] {
			events = append(events, id)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, ids := range []struct {
		kind model.Kind
		ids  []string
	}{{model.KindFolder, below}, {model.KindEvent, events}} {
		for _, id := range ids.ids {
			r, ok, err := tx.Item(ids.kind, id)
			if err != nil {
				return err
			}
			if ok {
				if _, err := tx.PutItem(ids.kind, id, r.Doc); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// wireDoc is an item's state as a token may see it: a folder whose parent
// the token cannot see shows no parent, as in the HTTP folder tree (the
// parent's id must not reach the token).
//
// The hidden parent is sent as null at the field's own version, and a
// visible parent at that version's immediate successor (same time and
// counter, node suffixed): on a replica, the truth beats a redaction of the
// same write once the parent becomes visible, the redaction beats any older
// parent the replica held, and any genuinely newer write beats both.
func wireDoc(tx *store.Tx, a *Actor, kind model.Kind, d crdt.Doc) crdt.Doc {
	if kind != model.KindFolder || a.Scope.IsPersonal() {
		return d
	}
	f := model.FolderFactsOf(d)
	if f.Parent == "" {
		return d
	}
	out := d.Clone()
	pf := out.Fields["parentId"]
	if a.Scope.FolderLevel(f.Channel, f.Parent, txTree{tx}) > model.LevelNone {
		pf.V.Node += "+"
	} else {
		pf.Val = []byte("null")
	}
	out.Fields["parentId"] = pf
	return out
}
