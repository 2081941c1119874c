package model

import "math"

// Tree answers folder ancestry: the parent of a folder ("" for a root
// folder), and whether the folder is known at all.
type Tree interface {
	FolderParent(folder string) (parent string, ok bool)
}

// maxDepth bounds ancestor walks, so a corrupt tree with a cycle cannot loop.
const maxDepth = 1024

type scopeEntry struct {
	channel  string // "*" for every channel
	level    Level
	folders  map[string]Level // nil: the whole channel
	noFolder Level            // level on events without a folder (folderId: null entries)
	tags     map[string]bool  // nil: no tag filter
	from, to float64
}

// Scope is the compiled form of an access's permissions: it answers what the
// token may see and change. The zero Scope grants nothing.
type Scope struct {
	personal bool
	entries  []scopeEntry
}

// Personal is the scope of a personal access: manage on everything.
func Personal() Scope { return Scope{personal: true} }

// Compile builds the scope of an access of the given type.
func Compile(accessType string, perms []Permission) Scope {
	if accessType == AccessPersonal {
		return Personal()
	}
	var s Scope
	for _, p := range perms {
		lvl, ok := ParseLevel(p.Level)
		if !ok {
			continue
		}
		e := scopeEntry{channel: p.ChannelID, level: lvl, from: math.Inf(-1), to: math.Inf(1)}
		if len(p.FolderPermissions) > 0 {
			e.folders = map[string]Level{}
			for _, fp := range p.FolderPermissions {
				fl, ok := ParseLevel(fp.Level)
				if !ok {
					continue
				}
				if fp.FolderID == nil {
					e.noFolder = max(e.noFolder, fl)
				} else {
					e.folders[*fp.FolderID] = max(e.folders[*fp.FolderID], fl)
				}
			}
		}
		if len(p.Tags) > 0 {
			e.tags = map[string]bool{}
			for _, t := range p.Tags {
				e.tags[t] = true
			}
		}
		e.from, e.to = p.TimeFrame.Bounds()
		s.entries = append(s.entries, e)
	}
	return s
}

// IsPersonal reports whether the scope is a personal access's.
func (s Scope) IsPersonal() bool { return s.personal }

// SeesWholeChannel reports whether every item of the channel is in scope
// whatever its facts: a personal scope, or a permission on the channel
// (or on every channel) without folder, tag or time-frame restriction.
func (s Scope) SeesWholeChannel(channel string) bool {
	if s.personal {
		return true
	}
	for i := range s.entries {
		e := &s.entries[i]
		if e.covers(channel) && e.level > LevelNone && e.folders == nil && e.tags == nil && math.IsInf(e.from, -1) && math.IsInf(e.to, 1) {
			return true
		}
	}
	return false
}

func (e *scopeEntry) covers(channel string) bool { return e.channel == "*" || e.channel == channel }

// SeesChannel reports whether the channel is visible at all.
func (s Scope) SeesChannel(channel string) bool {
	if s.personal {
		return true
	}
	for i := range s.entries {
		if s.entries[i].covers(channel) {
			return true
		}
	}
	return false
}

// ChannelLevel is the level granted on the channel as a whole: by entries
// without folder restrictions (tag and time filters still restrict events,
// so they grant no channel-wide management).
func (s Scope) ChannelLevel(channel string) Level {
	if s.personal {
		return LevelManage
	}
	var l Level
	for i := range s.entries {
		e := &s.entries[i]
		if e.covers(channel) && e.folders == nil && e.tags == nil && math.IsInf(e.from, -1) && math.IsInf(e.to, 1) {
			l = max(l, e.level)
		}
	}
	return l
}

// WholeChannel reports whether every folder of the channel is visible (some
// entry covers the channel without folder restriction).
func (s Scope) WholeChannel(channel string) bool {
	if s.personal {
		return true
	}
	for i := range s.entries {
		if s.entries[i].covers(channel) && s.entries[i].folders == nil {
			return true
		}
	}
	return false
}

// folderLevel is the level an entry grants on folder (its nearest permitted
// ancestor-or-self), or LevelNone.
func (e *scopeEntry) folderLevel(folder string, tree Tree) Level {
	if e.folders == nil {
		return e.level
	}
	var l Level
	f := folder
	for depth := 0; f != "" && depth < maxDepth; depth++ {
		// A folder the tree does not know grants nothing: a permission
		// naming a missing folder applies only once the folder exists.
		parent, ok := tree.FolderParent(f)
		if !ok {
			break
		}
		if fl, ok := e.folders[f]; ok {
			l = max(l, fl)
		}
		f = parent
	}
	return l
}

// FolderLevel is the level on a folder: visible when > LevelNone.
func (s Scope) FolderLevel(channel, folder string, tree Tree) Level {
	if s.personal {
		return LevelManage
	}
	var l Level
	for i := range s.entries {
		if e := &s.entries[i]; e.covers(channel) {
			l = max(l, e.folderLevel(folder, tree))
		}
	}
	return l
}

// PermittedRoots returns, for a folder-restricted view of the channel, the
// folder ids named by the permissions (the tops of the visible tree). It
// returns nil when the whole channel is visible.
func (s Scope) PermittedRoots(channel string) map[string]bool {
	if s.WholeChannel(channel) {
		return nil
	}
	out := map[string]bool{}
	for i := range s.entries {
		if e := &s.entries[i]; e.covers(channel) {
			for f := range e.folders {
				out[f] = true
			}
		}
	}
	return out
}

// foldersLevel is the level granted on every folder of the channel: by
// entries without folder restrictions. Tag and time filters restrict events
// only (SPEC §2: folders are unaffected), so unlike ChannelLevel they count.
func (s Scope) foldersLevel(channel string) Level {
	if s.personal {
		return LevelManage
	}
	var l Level
	for i := range s.entries {
		if e := &s.entries[i]; e.covers(channel) && e.folders == nil {
			l = max(l, e.level)
		}
	}
	return l
}

// CanManageFolder reports whether the token may update, move, trash or
// delete the folder: manage on every folder of the channel, or manage on a
// strict ancestor.
func (s Scope) CanManageFolder(channel, folder string, tree Tree) bool {
	if s.foldersLevel(channel) >= LevelManage {
		return true
	}
	parent, ok := tree.FolderParent(folder)
	return ok && parent != "" && s.FolderLevel(channel, parent, tree) >= LevelManage
}

// CanCreateFolderUnder reports whether the token may create a folder under
// parent ("" = at the root of the channel).
func (s Scope) CanCreateFolderUnder(channel, parent string, tree Tree) bool {
	if s.foldersLevel(channel) >= LevelManage {
		return true
	}
	return parent != "" && s.FolderLevel(channel, parent, tree) >= LevelManage
}

// EventLevel is the level the token has on an event with these facts: the
// highest among entries whose channel, folders, tags and time frame cover
// it. LevelNone means the event is outside the scope.
func (s Scope) EventLevel(ev EventFacts, tree Tree) Level {
	if s.personal {
		return LevelManage
	}
	var l Level
	for i := range s.entries {
		e := &s.entries[i]
		if !e.covers(ev.Channel) {
			continue
		}
		var el Level
		switch {
		case e.folders == nil:
			el = e.level
		case ev.Folder == "":
			el = e.noFolder
		default:
			el = e.folderLevel(ev.Folder, tree)
		}
		if el == LevelNone || el <= l {
			continue
		}
		if e.tags != nil {
			hit := false
			for _, t := range ev.Tags {
				if e.tags[t] {
					hit = true
					break
				}
			}
			if !hit {
				continue
			}
		}
		if !ev.Meets(e.from, e.to) {
			continue
		}
		l = el
	}
	return l
}

// SeesEvent reports whether the event is in scope.
func (s Scope) SeesEvent(ev EventFacts, tree Tree) bool { return s.EventLevel(ev, tree) > LevelNone }

// Covers reports whether every permission of perms stays within this scope
// (an app access may only create shared accesses narrower than itself). A
// folder grant covers the folder's descendants in tree (nil: the named
// folders only).
func (s Scope) Covers(perms []Permission, tree Tree) bool {
	if s.personal {
		return true
	}
	for _, p := range perms {
		want, _ := ParseLevel(p.Level)
		if !s.coversOne(p, want, tree) {
			return false
		}
	}
	return true
}

func (s Scope) coversOne(p Permission, want Level, tree Tree) bool {
	pf, pt := p.TimeFrame.Bounds()
	for i := range s.entries {
		e := &s.entries[i]
		if e.channel != "*" && e.channel != p.ChannelID {
			continue
		}
		if e.tags != nil {
			if len(p.Tags) == 0 {
				continue
			}
			ok := true
			for _, t := range p.Tags {
				ok = ok && e.tags[t]
			}
			if !ok {
				continue
			}
		}
		if pf < e.from || pt > e.to {
			continue
		}
		if e.folders == nil {
			if e.level >= want && p.folderMax() <= e.level {
				return true
			}
			continue
		}
		if len(p.FolderPermissions) == 0 {
			continue // the request wants the whole channel; e grants only folders
		}
		ok := true
		for _, fp := range p.FolderPermissions {
			fl, _ := ParseLevel(fp.Level)
			var have Level
			if fp.FolderID == nil {
				have = e.noFolder
			} else {
				have = e.folders[*fp.FolderID]
				if tree != nil {
					have = max(have, e.folderLevel(*fp.FolderID, tree))
				}
			}
			ok = ok && have >= fl
		}
		if ok {
			return true
		}
	}
	return false
}

func (p Permission) folderMax() Level {
	l, _ := ParseLevel(p.Level)
	for _, fp := range p.FolderPermissions {
		if fl, _ := ParseLevel(fp.Level); fl > l {
			l = fl
		}
	}
	return l
}

// Channels returns the channel ids named by the scope's entries, and whether
// it covers every channel ("*" or personal).
func (s Scope) Channels() (ids []string, all bool) {
	if s.personal {
		return nil, true
	}
	seen := map[string]bool{}
	for i := range s.entries {
		c := s.entries[i].channel
		if c == "*" {
			all = true
		} else if !seen[c] {
			seen[c] = true
			ids = append(ids, c)
		}
	}
	return ids, all
}

// ContributesAnywhere reports whether some entry grants at least contribute
// (uploads of attachment content need it).
func (s Scope) ContributesAnywhere() bool {
	if s.personal {
		return true
	}
	for i := range s.entries {
		e := &s.entries[i]
		if e.level >= LevelContribute || e.noFolder >= LevelContribute {
			return true
		}
		for _, l := range e.folders {
			if l >= LevelContribute {
				return true
			}
		}
	}
	return false
}
