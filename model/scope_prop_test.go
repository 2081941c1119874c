package model_test

import (
	"fmt"
	"testing"

	"pgregory.net/rapid"

	"github.com/pryvsync/pryvsync/model"
)

// The generators draw permissions over the fixture of scope_test.go (two
// channels, their folders, a missing folder "ghost"), three tags and a few
// times, so that entries overlap often.

var (
	genChannel = rapid.SampledFrom([]string{"diary", "health", "*"})
	genLevel   = rapid.SampledFrom([]string{"read", "contribute", "manage"})
	genFolder  = rapid.SampledFrom([]string{"", "work", "meetings", "standups", "home", "garden", "sport", "ghost"})
	genTag     = rapid.SampledFrom([]string{"a", "b", "c"})
	genBound   = rapid.SampledFrom([]float64{0, 100, 150, 200, 300})
)

func genPermission() *rapid.Generator[model.Permission] {
	return rapid.Custom(func(t *rapid.T) model.Permission {
		p := model.Permission{ChannelID: genChannel.Draw(t, "channel"), Level: genLevel.Draw(t, "level")}
		for range rapid.IntRange(0, 2).Draw(t, "folders") {
			f := model.FolderPermission{Level: genLevel.Draw(t, "folderLevel")}
			if id := genFolder.Draw(t, "folder"); id != "" {
				f.FolderID = &id
			}
			p.FolderPermissions = append(p.FolderPermissions, f)
		}
		if rapid.Bool().Draw(t, "hasTags") {
			p.Tags = rapid.SliceOfNDistinct(genTag, 1, 2, rapid.ID).Draw(t, "tags")
		}
		if rapid.Bool().Draw(t, "hasFrame") {
			tf := &model.TimeFrame{}
			if rapid.Bool().Draw(t, "hasFrom") {
				tf.From = ptr(genBound.Draw(t, "from"))
			}
			if rapid.Bool().Draw(t, "hasTo") {
				to := genBound.Draw(t, "to")
				if tf.From != nil && to < *tf.From {
					to = *tf.From
				}
				tf.To = &to
			}
			p.TimeFrame = tf
		}
		return p
	})
}

// genVariant draws a permission that keeps each part of one of base (channel,
// level, folders, tags, time frame) or redraws it, so that about half the
// requests are covered and the others differ from a covered one in one part.
func genVariant(base []model.Permission) *rapid.Generator[model.Permission] {
	return rapid.Custom(func(t *rapid.T) model.Permission {
		b := rapid.SampledFrom(base).Draw(t, "base")
		r := genPermission().Draw(t, "redrawn")
		if rapid.Bool().Draw(t, "keepChannel") {
			r.ChannelID = b.ChannelID
		}
		if rapid.Bool().Draw(t, "keepLevel") {
			r.Level = b.Level
		}
		if rapid.Bool().Draw(t, "keepFolders") {
			r.FolderPermissions = b.FolderPermissions
		}
		if rapid.Bool().Draw(t, "keepTags") {
			r.Tags = b.Tags
		}
		if rapid.Bool().Draw(t, "keepFrame") {
			r.TimeFrame = b.TimeFrame
		}
		return r
	})
}

// probes are the events and folders every scope is checked on.
func probes() (events []model.EventFacts, folderIDs []string) {
	folderIDs = []string{"work", "meetings", "standups", "home", "garden", "sport", "ghost"}
	for _, ch := range []string{"diary", "health", "new"} {
		for _, f := range append([]string{""}, folderIDs...) {
			for _, tags := range [][]string{nil, {"a"}, {"b", "c"}} {
				for _, tm := range []float64{50, 150, 250} {
					events = append(events, model.EventFacts{Channel: ch, Folder: f, Time: tm, Tags: tags})
				}
				events = append(events, model.EventFacts{Channel: ch, Folder: f, Time: 120, Period: true, Duration: 200, Tags: tags})
				events = append(events, model.EventFacts{Channel: ch, Folder: f, Time: 250, Period: true, Running: true, Tags: tags})
			}
		}
	}
	return events, folderIDs
}

func show(perms []model.Permission) string {
	s := ""
	for _, p := range perms {
		s += fmt.Sprintf("\n  {%s %s", p.ChannelID, p.Level)
		for _, f := range p.FolderPermissions {
			id := "null"
			if f.FolderID != nil {
				id = *f.FolderID
			}
			s += fmt.Sprintf(" %s:%s", id, f.Level)
		}
		if p.Tags != nil {
			s += fmt.Sprintf(" tags%v", p.Tags)
		}
		if p.TimeFrame != nil {
			from, to := p.TimeFrame.Bounds()
			s += fmt.Sprintf(" [%v, %v]", from, to)
		}
		s += "}"
	}
	return s
}

// An app access may create a shared access only if it is narrower: whatever
// Covers accepts must never see or do more than the app itself, on any
// event or folder.
func TestScopeCoversNeverGrantsMoreThanTheCoveringScope(t *testing.T) {
	events, folderIDs := probes()
	accepted := 0
	rapid.Check(t, func(t *rapid.T) {
		appPerms := rapid.SliceOfN(genPermission(), 1, 3).Draw(t, "app")
		req := rapid.SliceOfN(genVariant(appPerms), 1, 2).Draw(t, "requested")
		app := shared(appPerms...)
		if !app.Covers(req, nil) {
			return
		}
		accepted++
		got := shared(req...)
		for _, ev := range events {
			if g, a := got.EventLevel(ev, folders), app.EventLevel(ev, folders); g > a {
				t.Fatalf("event %+v: requested level %v > app level %v\napp:%s\nrequested:%s", ev, g, a, show(appPerms), show(req))
			}
		}
		for _, ch := range []string{"diary", "health", "new"} {
			if got.SeesChannel(ch) && !app.SeesChannel(ch) {
				t.Fatalf("channel %s: seen by requested, not by app\napp:%s\nrequested:%s", ch, show(appPerms), show(req))
			}
			if got.ChannelLevel(ch) > app.ChannelLevel(ch) {
				t.Fatalf("channel %s: requested level above app\napp:%s\nrequested:%s", ch, show(appPerms), show(req))
			}
			if got.CanCreateFolderUnder(ch, "", folders) && !app.CanCreateFolderUnder(ch, "", folders) {
				t.Fatalf("channel %s: requested may create root folders, app may not\napp:%s\nrequested:%s", ch, show(appPerms), show(req))
			}
			for _, f := range folderIDs {
				if g, a := got.FolderLevel(ch, f, folders), app.FolderLevel(ch, f, folders); g > a {
					t.Fatalf("folder %s/%s: requested level %v > app level %v\napp:%s\nrequested:%s", ch, f, g, a, show(appPerms), show(req))
				}
				if got.CanManageFolder(ch, f, folders) && !app.CanManageFolder(ch, f, folders) {
					t.Fatalf("folder %s/%s: requested may manage, app may not\napp:%s\nrequested:%s", ch, f, show(appPerms), show(req))
				}
				if got.CanCreateFolderUnder(ch, f, folders) && !app.CanCreateFolderUnder(ch, f, folders) {
					t.Fatalf("folder %s/%s: requested may create under, app may not\napp:%s\nrequested:%s", ch, f, show(appPerms), show(req))
				}
			}
		}
	})
	t.Logf("%d covered requests checked", accepted)
}

// Every access covers its own permissions, so an app can always hand out a
// shared access equal to itself.
func TestScopeCoversItsOwnPermissions(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		perms := rapid.SliceOfN(genPermission(), 1, 3).Draw(t, "perms")
		if !shared(perms...).Covers(perms, nil) {
			t.Fatalf("a scope does not cover its own permissions:%s", show(perms))
		}
	})
}

// Adding an entry never takes anything away: the highest level wins.
func TestScopeAddingAnEntryNeverLowersALevel(t *testing.T) {
	events, folderIDs := probes()
	rapid.Check(t, func(t *rapid.T) {
		perms := rapid.SliceOfN(genPermission(), 0, 3).Draw(t, "perms")
		extra := genPermission().Draw(t, "extra")
		before, after := shared(perms...), shared(append(perms, extra)...)
		for _, ev := range events {
			if b, a := before.EventLevel(ev, folders), after.EventLevel(ev, folders); a < b {
				t.Fatalf("event %+v: %v before, %v after adding%s\nto:%s", ev, b, a, show([]model.Permission{extra}), show(perms))
			}
		}
		for _, f := range folderIDs {
			if b, a := before.FolderLevel("diary", f, folders), after.FolderLevel("diary", f, folders); a < b {
				t.Fatalf("folder %s: %v before, %v after adding%s\nto:%s", f, b, a, show([]model.Permission{extra}), show(perms))
			}
			if before.CanManageFolder("diary", f, folders) && !after.CanManageFolder("diary", f, folders) {
				t.Fatalf("folder %s: manageable before, not after adding%s\nto:%s", f, show([]model.Permission{extra}), show(perms))
			}
		}
	})
}

func TestScopeFolderWalkStopsOnCyclesAndDanglingParents(t *testing.T) {
	broken := tree{"a": "b", "b": "a", "orphan": "ghost"}
	s := shared(model.Permission{ChannelID: "diary", Level: "read",
		FolderPermissions: []model.FolderPermission{fp("c", "manage"), fp("ghost", "manage")}})
	for _, f := range []string{"a", "b", "orphan", "ghost"} {
		if got, want := s.FolderLevel("diary", f, broken), model.LevelNone; got != want {
			t.Fatalf("FolderLevel(%s): got %v, want %v", f, got, want)
		}
	}
	s = shared(model.Permission{ChannelID: "diary", Level: "read",
		FolderPermissions: []model.FolderPermission{fp("a", "contribute")}})
	if got, want := s.FolderLevel("diary", "b", broken), model.LevelContribute; got != want {
		t.Fatalf("FolderLevel(b) in a cycle with a: got %v, want %v", got, want)
	}
}
