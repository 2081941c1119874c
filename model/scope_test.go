package model_test

import (
	"math"
	"slices"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// tree is a map-backed model.Tree: folder id -> parent id ("" for a root).
type tree map[string]string

func (t tree) FolderParent(folder string) (string, bool) {
	p, ok := t[folder]
	return p, ok
}

// with returns a copy of t with more folders.
func (t tree) with(more tree) tree {
	out := tree{}
	for k, v := range t {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// folders of the fixture, all of channel "diary" except "sport" ("health"):
//
//	diary: work > meetings > standups; home > garden
//	health: sport
var folders = tree{
	"work": "", "meetings": "work", "standups": "meetings",
	"home": "", "garden": "home",
	"sport": "",
}

func ptr[T any](v T) *T { return &v }

func frame(from, to *float64) *model.TimeFrame { return &model.TimeFrame{From: from, To: to} }

func fp(folder, level string) model.FolderPermission {
	return model.FolderPermission{FolderID: &folder, Level: level}
}

func fpNull(level string) model.FolderPermission { return model.FolderPermission{Level: level} }

func shared(perms ...model.Permission) model.Scope { return model.Compile(model.AccessShared, perms) }

func mark(channel, folder string, t float64, tags ...string) model.EventFacts {
	return model.EventFacts{Channel: channel, Folder: folder, Time: t, Tags: tags}
}

func period(t, d float64) model.EventFacts {
	return model.EventFacts{Channel: "diary", Time: t, Duration: d, Period: true}
}

func running(t float64) model.EventFacts {
	return model.EventFacts{Channel: "diary", Time: t, Period: true, Running: true}
}

func TestScopeChannelEntryWithoutFolderPermissionsCoversWholeChannel(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "contribute"})
	for _, c := range []struct {
		name string
		ev   model.EventFacts
		want model.Level
	}{
		{"no folder", mark("diary", "", 1), model.LevelContribute},
		{"root folder", mark("diary", "work", 1), model.LevelContribute},
		{"deep folder", mark("diary", "standups", 1), model.LevelContribute},
		{"tagged", mark("diary", "home", 1, "x"), model.LevelContribute},
		{"other channel", mark("health", "", 1), model.LevelNone},
		{"other channel folder", mark("health", "sport", 1), model.LevelNone},
	} {
		if got, want := s.EventLevel(c.ev, folders), c.want; got != want {
			t.Fatalf("%s: EventLevel: got %v, want %v", c.name, got, want)
		}
		if got, want := s.SeesEvent(c.ev, folders), c.want > model.LevelNone; got != want {
			t.Fatalf("%s: SeesEvent: got %v, want %v", c.name, got, want)
		}
	}
	for _, f := range []string{"work", "meetings", "standups", "home", "garden"} {
		if got, want := s.FolderLevel("diary", f, folders), model.LevelContribute; got != want {
			t.Fatalf("FolderLevel(%s): got %v, want %v", f, got, want)
		}
	}
	if got, want := s.FolderLevel("health", "sport", folders), model.LevelNone; got != want {
		t.Fatalf("FolderLevel(health/sport): got %v, want %v", got, want)
	}
	if got, want := s.SeesChannel("diary"), true; got != want {
		t.Fatalf("SeesChannel(diary): got %v, want %v", got, want)
	}
	if got, want := s.SeesChannel("health"), false; got != want {
		t.Fatalf("SeesChannel(health): got %v, want %v", got, want)
	}
	if got, want := s.WholeChannel("diary"), true; got != want {
		t.Fatalf("WholeChannel(diary): got %v, want %v", got, want)
	}
	if got, want := s.WholeChannel("health"), false; got != want {
		t.Fatalf("WholeChannel(health): got %v, want %v", got, want)
	}
	if got := s.PermittedRoots("diary"); got != nil {
		t.Fatalf("PermittedRoots(diary): got %v, want nil (whole channel)", got)
	}
	if got, want := s.ChannelLevel("diary"), model.LevelContribute; got != want {
		t.Fatalf("ChannelLevel(diary): got %v, want %v", got, want)
	}
	if got, want := s.ChannelLevel("health"), model.LevelNone; got != want {
		t.Fatalf("ChannelLevel(health): got %v, want %v", got, want)
	}
	if got, want := s.IsPersonal(), false; got != want {
		t.Fatalf("IsPersonal: got %v, want %v", got, want)
	}
}

func TestScopeFolderPermissionsCoverOnlyListedFoldersAndDescendants(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "read",
		FolderPermissions: []model.FolderPermission{fp("meetings", "contribute"), fp("garden", "read")}})
	for _, c := range []struct {
		folder string
		want   model.Level
	}{
		{"work", model.LevelNone}, // the parent of a permitted folder stays hidden
		{"meetings", model.LevelContribute},
		{"standups", model.LevelContribute},
		{"home", model.LevelNone},
		{"garden", model.LevelRead},
	} {
		if got, want := s.FolderLevel("diary", c.folder, folders), c.want; got != want {
			t.Fatalf("FolderLevel(%s): got %v, want %v", c.folder, got, want)
		}
		ev := mark("diary", c.folder, 1)
		if got, want := s.EventLevel(ev, folders), c.want; got != want {
			t.Fatalf("EventLevel(event in %s): got %v, want %v", c.folder, got, want)
		}
	}
	if got, want := s.EventLevel(mark("diary", "", 1), folders), model.LevelNone; got != want {
		t.Fatalf("EventLevel(event without folder): got %v, want %v", got, want)
	}
	if got, want := s.SeesChannel("diary"), true; got != want {
		t.Fatalf("SeesChannel: got %v, want %v", got, want)
	}
	if got, want := s.WholeChannel("diary"), false; got != want {
		t.Fatalf("WholeChannel: got %v, want %v", got, want)
	}
	if got, want := s.ChannelLevel("diary"), model.LevelNone; got != want {
		t.Fatalf("ChannelLevel: got %v, want %v", got, want)
	}
	roots := s.PermittedRoots("diary")
	if got, want := len(roots), 2; got != want || !roots["meetings"] || !roots["garden"] {
		t.Fatalf("PermittedRoots: got %v, want {meetings, garden}", roots)
	}
	if got, want := len(s.PermittedRoots("health")), 0; got != want {
		t.Fatalf("PermittedRoots(health): got %d roots, want %d", got, want)
	}
}

func TestScopeNullFolderPermissionCoversEventsWithoutFolder(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "read",
		FolderPermissions: []model.FolderPermission{fpNull("contribute")}})
	for _, c := range []struct {
		name string
		ev   model.EventFacts
		want model.Level
	}{
		{"without folder", mark("diary", "", 1), model.LevelContribute},
		{"in root folder", mark("diary", "work", 1), model.LevelNone},
		{"in deep folder", mark("diary", "standups", 1), model.LevelNone},
		{"other channel without folder", mark("health", "", 1), model.LevelNone},
	} {
		if got, want := s.EventLevel(c.ev, folders), c.want; got != want {
			t.Fatalf("%s: got %v, want %v", c.name, got, want)
		}
	}
	if got, want := s.FolderLevel("diary", "work", folders), model.LevelNone; got != want {
		t.Fatalf("FolderLevel(work): got %v, want %v", got, want)
	}
	if got, want := len(s.PermittedRoots("diary")), 0; got != want {
		t.Fatalf("PermittedRoots: got %d roots, want %d", got, want)
	}
}

func TestScopeTagsAdmitEventsWithAtLeastOneTagAndLeaveFoldersAlone(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "contribute", Tags: []string{"run", "swim"}})
	for _, c := range []struct {
		name string
		ev   model.EventFacts
		want model.Level
	}{
		{"one of the tags", mark("diary", "", 1, "swim"), model.LevelContribute},
		{"both tags", mark("diary", "", 1, "run", "swim"), model.LevelContribute},
		{"a tag and others", mark("diary", "work", 1, "bike", "run"), model.LevelContribute},
		{"other tags only", mark("diary", "", 1, "bike"), model.LevelNone},
		{"no tags", mark("diary", "", 1), model.LevelNone},
		{"tag differs in case", mark("diary", "", 1, "Run"), model.LevelNone},
		{"other channel", mark("health", "", 1, "run"), model.LevelNone},
	} {
		if got, want := s.EventLevel(c.ev, folders), c.want; got != want {
			t.Fatalf("%s: got %v, want %v", c.name, got, want)
		}
	}
	for _, f := range []string{"work", "standups", "garden"} {
		if got, want := s.FolderLevel("diary", f, folders), model.LevelContribute; got != want {
			t.Fatalf("FolderLevel(%s): got %v, want %v", f, got, want)
		}
	}
	if got, want := s.WholeChannel("diary"), true; got != want {
		t.Fatalf("WholeChannel: got %v, want %v", got, want)
	}
	// The tag filter restricts events, so it grants nothing on the channel itself.
	if got, want := s.ChannelLevel("diary"), model.LevelNone; got != want {
		t.Fatalf("ChannelLevel: got %v, want %v", got, want)
	}
}

func TestScopeTagsCombineWithFolderPermissions(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "read", Tags: []string{"run"},
		FolderPermissions: []model.FolderPermission{fp("work", "contribute")}})
	for _, c := range []struct {
		name string
		ev   model.EventFacts
		want model.Level
	}{
		{"tagged in folder", mark("diary", "meetings", 1, "run"), model.LevelContribute},
		{"untagged in folder", mark("diary", "meetings", 1), model.LevelNone},
		{"tagged outside folder", mark("diary", "home", 1, "run"), model.LevelNone},
		{"tagged without folder", mark("diary", "", 1, "run"), model.LevelNone},
	} {
		if got, want := s.EventLevel(c.ev, folders), c.want; got != want {
			t.Fatalf("%s: got %v, want %v", c.name, got, want)
		}
	}
}

func TestScopeTimeFrameAdmitsEventsWhoseSpanMeetsIt(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "read", TimeFrame: frame(ptr(100.0), ptr(200.0))})
	for _, c := range []struct {
		name string
		ev   model.EventFacts
		want bool
	}{
		{"mark before", mark("diary", "", 99.999), false},
		{"mark on from", mark("diary", "", 100), true},
		{"mark inside", mark("diary", "", 150.5), true},
		{"mark on to", mark("diary", "", 200), true},
		{"mark after", mark("diary", "", 200.001), false},
		{"period ending before", period(50, 49.9), false},
		{"period ending on from", period(50, 50), true},
		{"period over from edge", period(90, 20), true},
		{"period inside", period(120, 10), true},
		{"period over to edge", period(190, 100), true},
		{"period starting on to", period(200, 10), true},
		{"period starting after", period(201, 10), false},
		{"period around the frame", period(0, 1000), true},
		{"zero period on to", period(200, 0), true},
		{"running since long before", running(1), true},
		{"running since inside", running(150), true},
		{"running since to", running(200), true},
		{"running since after", running(200.5), false},
	} {
		if got, want := s.SeesEvent(c.ev, folders), c.want; got != want {
			t.Fatalf("%s (end %v): got %v, want %v", c.name, c.ev.End(), got, want)
		}
	}
	if got, want := s.FolderLevel("diary", "work", folders), model.LevelRead; got != want {
		t.Fatalf("FolderLevel: got %v, want %v (folders are not time-filtered)", got, want)
	}
	if got, want := s.ChannelLevel("diary"), model.LevelNone; got != want {
		t.Fatalf("ChannelLevel: got %v, want %v", got, want)
	}
}

func TestScopeTimeFrameWithOpenBoundExtendsToInfinity(t *testing.T) {
	for _, c := range []struct {
		name  string
		frame *model.TimeFrame
		ev    model.EventFacts
		want  bool
	}{
		{"from only, far future", frame(ptr(100.0), nil), mark("diary", "", 1e12), true},
		{"from only, before", frame(ptr(100.0), nil), mark("diary", "", 99), false},
		{"from only, running since before", frame(ptr(100.0), nil), running(0), true},
		{"to only, far past", frame(nil, ptr(100.0)), mark("diary", "", -1e12), true},
		{"to only, after", frame(nil, ptr(100.0)), mark("diary", "", 101), false},
		{"to only, running since after", frame(nil, ptr(100.0)), running(101), false},
		{"both open", frame(nil, nil), mark("diary", "", -1e12), true},
	} {
		s := shared(model.Permission{ChannelID: "diary", Level: "read", TimeFrame: c.frame})
		if got, want := s.SeesEvent(c.ev, folders), c.want; got != want {
			t.Fatalf("%s: got %v, want %v", c.name, got, want)
		}
	}
}

func TestEventFactsEndAndMeets(t *testing.T) {
	for _, c := range []struct {
		name string
		ev   model.EventFacts
		end  float64
	}{
		{"mark", mark("diary", "", 10), 10},
		{"period", period(10, 5), 15},
		{"zero period", period(10, 0), 10},
		{"running", running(10), math.Inf(1)},
	} {
		if got, want := c.ev.End(), c.end; got != want {
			t.Fatalf("%s: End: got %v, want %v", c.name, got, want)
		}
		if got, want := c.ev.Meets(c.end, c.end), true; got != want {
			t.Fatalf("%s: Meets its own end: got %v, want %v", c.name, got, want)
		}
		if got, want := c.ev.Meets(math.Inf(-1), 9.5), false; got != want {
			t.Fatalf("%s: Meets a window ending before it: got %v, want %v", c.name, got, want)
		}
	}
	ev := mark("diary", "", 1, "a", "b")
	if got, want := ev.HasTag("b"), true; got != want {
		t.Fatalf("HasTag(b): got %v, want %v", got, want)
	}
	if got, want := ev.HasTag("c"), false; got != want {
		t.Fatalf("HasTag(c): got %v, want %v", got, want)
	}
}

func TestScopeStarCoversEveryChannelIncludingUnnamedOnes(t *testing.T) {
	s := shared(model.Permission{ChannelID: "*", Level: "read"}, model.Permission{ChannelID: "diary", Level: "contribute"})
	for _, c := range []struct {
		channel string
		want    model.Level
	}{
		{"diary", model.LevelContribute},
		{"health", model.LevelRead},
		{"created-tomorrow", model.LevelRead},
	} {
		if got, want := s.SeesChannel(c.channel), true; got != want {
			t.Fatalf("SeesChannel(%s): got %v, want %v", c.channel, got, want)
		}
		if got, want := s.WholeChannel(c.channel), true; got != want {
			t.Fatalf("WholeChannel(%s): got %v, want %v", c.channel, got, want)
		}
		if got, want := s.ChannelLevel(c.channel), c.want; got != want {
			t.Fatalf("ChannelLevel(%s): got %v, want %v", c.channel, got, want)
		}
		if got, want := s.EventLevel(mark(c.channel, "", 1), folders), c.want; got != want {
			t.Fatalf("EventLevel(event in %s): got %v, want %v", c.channel, got, want)
		}
	}
	if got, want := s.FolderLevel("health", "sport", folders), model.LevelRead; got != want {
		t.Fatalf("FolderLevel(health/sport): got %v, want %v", got, want)
	}
	ids, all := s.Channels()
	if got, want := all, true; got != want {
		t.Fatalf("Channels: all: got %v, want %v", got, want)
	}
	if got, want := ids, []string{"diary"}; !slices.Equal(got, want) {
		t.Fatalf("Channels: ids: got %v, want %v", got, want)
	}
}

func TestScopeChannelsListsNamedChannelsOnce(t *testing.T) {
	s := shared(
		model.Permission{ChannelID: "diary", Level: "read"},
		model.Permission{ChannelID: "health", Level: "read"},
		model.Permission{ChannelID: "diary", Level: "manage", Tags: []string{"x"}},
	)
	ids, all := s.Channels()
	slices.Sort(ids)
	if got, want := ids, []string{"diary", "health"}; !slices.Equal(got, want) {
		t.Fatalf("ids: got %v, want %v", got, want)
	}
	if got, want := all, false; got != want {
		t.Fatalf("all: got %v, want %v", got, want)
	}
}

func TestScopeGrantOnMissingFolderAppliesOnceTheFolderExists(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "read",
		FolderPermissions: []model.FolderPermission{fp("later", "manage")}})

	// Before: no folder "later" in the tree.
	if got, want := s.FolderLevel("diary", "later", folders), model.LevelNone; got != want {
		t.Fatalf("before: FolderLevel(later): got %v, want %v", got, want)
	}
	if got, want := s.SeesEvent(mark("diary", "later", 1), folders), false; got != want {
		t.Fatalf("before: SeesEvent(event in later): got %v, want %v", got, want)
	}
	if got, want := s.CanCreateFolderUnder("diary", "later", folders), false; got != want {
		t.Fatalf("before: CanCreateFolderUnder(later): got %v, want %v", got, want)
	}
	for _, f := range []string{"work", "standups", "home"} {
		if got, want := s.FolderLevel("diary", f, folders), model.LevelNone; got != want {
			t.Fatalf("before: FolderLevel(%s): got %v, want %v", f, got, want)
		}
	}

	// After: "later" is created under home, with a child.
	after := folders.with(tree{"later": "home", "inside": "later"})
	if got, want := s.FolderLevel("diary", "later", after), model.LevelManage; got != want {
		t.Fatalf("after: FolderLevel(later): got %v, want %v", got, want)
	}
	if got, want := s.FolderLevel("diary", "inside", after), model.LevelManage; got != want {
		t.Fatalf("after: FolderLevel(inside): got %v, want %v", got, want)
	}
	if got, want := s.FolderLevel("diary", "home", after), model.LevelNone; got != want {
		t.Fatalf("after: FolderLevel(home): got %v, want %v", got, want)
	}
	if got, want := s.EventLevel(mark("diary", "inside", 1), after), model.LevelManage; got != want {
		t.Fatalf("after: EventLevel(event in inside): got %v, want %v", got, want)
	}
	if got, want := s.CanCreateFolderUnder("diary", "later", after), true; got != want {
		t.Fatalf("after: CanCreateFolderUnder(later): got %v, want %v", got, want)
	}
	if got, want := s.CanManageFolder("diary", "inside", after), true; got != want {
		t.Fatalf("after: CanManageFolder(inside): got %v, want %v", got, want)
	}
}

func TestScopeGrantOnChannelAppliesToChannelCreatedLater(t *testing.T) {
	s := shared(model.Permission{ChannelID: "future", Level: "contribute"})
	if got, want := s.EventLevel(mark("future", "", 1), folders), model.LevelContribute; got != want {
		t.Fatalf("EventLevel(future): got %v, want %v", got, want)
	}
	if got, want := s.SeesChannel("diary"), false; got != want {
		t.Fatalf("SeesChannel(diary): got %v, want %v", got, want)
	}
}

func TestScopeHighestCoveringLevelWins(t *testing.T) {
	s := shared(
		model.Permission{ChannelID: "diary", Level: "read"},
		model.Permission{ChannelID: "diary", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("work", "read"), fp("meetings", "manage"), fp("home", "contribute"), fp("garden", "read")}},
		model.Permission{ChannelID: "*", Level: "contribute", Tags: []string{"shared"}},
		model.Permission{ChannelID: "diary", Level: "manage", TimeFrame: frame(ptr(1000.0), nil)},
	)
	for _, c := range []struct {
		name string
		ev   model.EventFacts
		want model.Level
	}{
		{"no folder", mark("diary", "", 1), model.LevelRead},
		{"work: folder read", mark("diary", "work", 1), model.LevelRead},
		{"meetings: folder manage", mark("diary", "meetings", 1), model.LevelManage},
		{"standups: inherits manage", mark("diary", "standups", 1), model.LevelManage},
		{"garden: home's contribute beats own read", mark("diary", "garden", 1), model.LevelContribute},
		{"tag lifts read to contribute", mark("diary", "work", 1, "shared"), model.LevelContribute},
		{"tag in other channel", mark("health", "", 1, "shared"), model.LevelContribute},
		{"time frame lifts to manage", mark("diary", "work", 1000), model.LevelManage},
		{"time frame and tag", mark("diary", "", 5000, "shared"), model.LevelManage},
		{"nothing in other channel", mark("health", "", 5000), model.LevelNone},
	} {
		if got, want := s.EventLevel(c.ev, folders), c.want; got != want {
			t.Fatalf("%s: got %v, want %v", c.name, got, want)
		}
	}
	for _, c := range []struct {
		folder string
		want   model.Level
	}{
		{"work", model.LevelManage}, // the time-framed entry is channel-wide for folders
		{"garden", model.LevelManage},
	} {
		if got, want := s.FolderLevel("diary", c.folder, folders), c.want; got != want {
			t.Fatalf("FolderLevel(%s): got %v, want %v", c.folder, got, want)
		}
	}
	if got, want := s.ChannelLevel("diary"), model.LevelRead; got != want {
		t.Fatalf("ChannelLevel: got %v, want %v", got, want)
	}
}

func TestScopeOverlappingFolderPermissionsTakeTheHighest(t *testing.T) {
	for _, c := range []struct {
		name   string
		perms  []model.FolderPermission
		folder string
		want   model.Level
	}{
		{"child higher than parent", []model.FolderPermission{fp("work", "read"), fp("meetings", "manage")}, "standups", model.LevelManage},
		{"child higher, parent itself", []model.FolderPermission{fp("work", "read"), fp("meetings", "manage")}, "work", model.LevelRead},
		{"parent higher than child", []model.FolderPermission{fp("meetings", "read"), fp("work", "contribute")}, "meetings", model.LevelContribute},
		{"same folder twice", []model.FolderPermission{fp("work", "contribute"), fp("work", "read")}, "work", model.LevelContribute},
	} {
		s := shared(model.Permission{ChannelID: "diary", Level: "read", FolderPermissions: c.perms})
		if got, want := s.FolderLevel("diary", c.folder, folders), c.want; got != want {
			t.Fatalf("%s: FolderLevel(%s): got %v, want %v", c.name, c.folder, got, want)
		}
		if got, want := s.EventLevel(mark("diary", c.folder, 1), folders), c.want; got != want {
			t.Fatalf("%s: EventLevel(event in %s): got %v, want %v", c.name, c.folder, got, want)
		}
	}
}

func TestScopePersonalManagesEverything(t *testing.T) {
	for name, s := range map[string]model.Scope{
		"Personal()":         model.Personal(),
		"Compile(personal)":  model.Compile(model.AccessPersonal, nil),
		"personal with perm": model.Compile(model.AccessPersonal, []model.Permission{{ChannelID: "diary", Level: "read"}}),
	} {
		if got, want := s.IsPersonal(), true; got != want {
			t.Fatalf("%s: IsPersonal: got %v, want %v", name, got, want)
		}
		for _, ch := range []string{"diary", "health", "anything"} {
			if got, want := s.SeesChannel(ch), true; got != want {
				t.Fatalf("%s: SeesChannel(%s): got %v, want %v", name, ch, got, want)
			}
			if got, want := s.ChannelLevel(ch), model.LevelManage; got != want {
				t.Fatalf("%s: ChannelLevel(%s): got %v, want %v", name, ch, got, want)
			}
			if got, want := s.WholeChannel(ch), true; got != want {
				t.Fatalf("%s: WholeChannel(%s): got %v, want %v", name, ch, got, want)
			}
			if got := s.PermittedRoots(ch); got != nil {
				t.Fatalf("%s: PermittedRoots(%s): got %v, want nil", name, ch, got)
			}
			if got, want := s.CanCreateFolderUnder(ch, "", folders), true; got != want {
				t.Fatalf("%s: CanCreateFolderUnder(%s, root): got %v, want %v", name, ch, got, want)
			}
		}
		for _, f := range []string{"work", "standups"} {
			if got, want := s.FolderLevel("diary", f, folders), model.LevelManage; got != want {
				t.Fatalf("%s: FolderLevel(%s): got %v, want %v", name, f, got, want)
			}
			if got, want := s.CanManageFolder("diary", f, folders), true; got != want {
				t.Fatalf("%s: CanManageFolder(%s): got %v, want %v", name, f, got, want)
			}
		}
		if got, want := s.EventLevel(mark("x", "", 1), folders), model.LevelManage; got != want {
			t.Fatalf("%s: EventLevel: got %v, want %v", name, got, want)
		}
		if got, want := s.Covers([]model.Permission{{ChannelID: "*", Level: "manage"}}, nil), true; got != want {
			t.Fatalf("%s: Covers(*): got %v, want %v", name, got, want)
		}
		ids, all := s.Channels()
		if got, want := all, true; got != want || ids != nil {
			t.Fatalf("%s: Channels: got %v, %v, want nil, %v", name, ids, got, want)
		}
	}
}

func TestZeroScopeGrantsNothing(t *testing.T) {
	for name, s := range map[string]model.Scope{
		"zero":               {},
		"no permissions":     shared(),
		"unknown level only": shared(model.Permission{ChannelID: "diary", Level: "admin"}),
	} {
		if got, want := s.SeesChannel("diary"), false; got != want {
			t.Fatalf("%s: SeesChannel: got %v, want %v", name, got, want)
		}
		if got, want := s.SeesEvent(mark("diary", "", 1), folders), false; got != want {
			t.Fatalf("%s: SeesEvent: got %v, want %v", name, got, want)
		}
		if got, want := s.FolderLevel("diary", "work", folders), model.LevelNone; got != want {
			t.Fatalf("%s: FolderLevel: got %v, want %v", name, got, want)
		}
		if got, want := s.CanCreateFolderUnder("diary", "", folders), false; got != want {
			t.Fatalf("%s: CanCreateFolderUnder: got %v, want %v", name, got, want)
		}
		if got, want := s.Covers([]model.Permission{{ChannelID: "diary", Level: "read"}}, nil), false; got != want {
			t.Fatalf("%s: Covers: got %v, want %v", name, got, want)
		}
		if got, want := s.Covers(nil, nil), true; got != want {
			t.Fatalf("%s: Covers(nothing): got %v, want %v", name, got, want)
		}
		ids, all := s.Channels()
		if len(ids) != 0 || all {
			t.Fatalf("%s: Channels: got %v, %v, want none", name, ids, all)
		}
	}
}

func TestScopeFolderManagementRules(t *testing.T) {
	folderManager := shared(model.Permission{ChannelID: "diary", Level: "read",
		FolderPermissions: []model.FolderPermission{fp("work", "manage")}})
	channelManager := shared(model.Permission{ChannelID: "diary", Level: "manage"})
	starManager := shared(model.Permission{ChannelID: "*", Level: "manage"})
	contributor := shared(model.Permission{ChannelID: "diary", Level: "contribute"})
	folderContributor := shared(model.Permission{ChannelID: "diary", Level: "manage",
		FolderPermissions: []model.FolderPermission{fp("work", "contribute")}})
	// Tags and time frames filter events only: folders are unaffected, so a
	// channel entry with manage manages every folder of the channel.
	taggedManager := shared(model.Permission{ChannelID: "diary", Level: "manage", Tags: []string{"x"}})
	framedManager := shared(model.Permission{ChannelID: "diary", Level: "manage", TimeFrame: frame(ptr(0.0), ptr(1.0))})

	type want struct{ work, meetings, standups, home, createRoot, createUnderWork, createUnderStandups, createUnderHome bool }
	for _, c := range []struct {
		name  string
		s     model.Scope
		want  want
		other bool // may manage folders of channel "health"
	}{
		{"folder-restricted manage", folderManager,
			want{work: false, meetings: true, standups: true, home: false, createRoot: false, createUnderWork: true, createUnderStandups: true, createUnderHome: false}, false},
		{"channel-wide manage", channelManager,
			want{true, true, true, true, true, true, true, true}, false},
		{"star manage", starManager,
			want{true, true, true, true, true, true, true, true}, true},
		{"channel-wide contribute", contributor, want{}, false},
		{"folder-restricted contribute", folderContributor, want{}, false},
		{"tag-filtered manage", taggedManager,
			want{true, true, true, true, true, true, true, true}, false},
		{"time-framed manage", framedManager,
			want{true, true, true, true, true, true, true, true}, false},
	} {
		manage := map[string]bool{"work": c.want.work, "meetings": c.want.meetings, "standups": c.want.standups, "home": c.want.home}
		for f, w := range manage {
			if got, want := c.s.CanManageFolder("diary", f, folders), w; got != want {
				t.Fatalf("%s: CanManageFolder(%s): got %v, want %v", c.name, f, got, want)
			}
		}
		create := map[string]bool{"": c.want.createRoot, "work": c.want.createUnderWork, "standups": c.want.createUnderStandups, "home": c.want.createUnderHome}
		for parent, w := range create {
			if got, want := c.s.CanCreateFolderUnder("diary", parent, folders), w; got != want {
				t.Fatalf("%s: CanCreateFolderUnder(%q): got %v, want %v", c.name, parent, got, want)
			}
		}
		if got, want := c.s.CanManageFolder("health", "sport", folders), c.other; got != want {
			t.Fatalf("%s: CanManageFolder(health/sport): got %v, want %v", c.name, got, want)
		}
		if got, want := c.s.CanCreateFolderUnder("health", "", folders), c.other; got != want {
			t.Fatalf("%s: CanCreateFolderUnder(health, root): got %v, want %v", c.name, got, want)
		}
	}
}

func TestScopeCannotManageUnknownFolderWithoutChannelWideGrant(t *testing.T) {
	s := shared(model.Permission{ChannelID: "diary", Level: "read",
		FolderPermissions: []model.FolderPermission{fp("work", "manage")}})
	if got, want := s.CanManageFolder("diary", "ghost", folders), false; got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestScopeCoversOnlyNarrowerPermissions(t *testing.T) {
	app := shared(
		model.Permission{ChannelID: "diary", Level: "contribute"},
		model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("sport", "contribute"), fpNull("read")}},
		model.Permission{ChannelID: "tagged", Level: "manage", Tags: []string{"a", "b"}},
		model.Permission{ChannelID: "framed", Level: "contribute", TimeFrame: frame(ptr(100.0), ptr(200.0))},
	)
	for _, c := range []struct {
		name string
		req  model.Permission
		want bool
	}{
		{"same channel and level", model.Permission{ChannelID: "diary", Level: "contribute"}, true},
		{"lower level", model.Permission{ChannelID: "diary", Level: "read"}, true},
		{"higher level", model.Permission{ChannelID: "diary", Level: "manage"}, false},
		{"channel not granted", model.Permission{ChannelID: "other", Level: "read"}, false},
		{"every channel", model.Permission{ChannelID: "*", Level: "read"}, false},
		{"folder of whole channel", model.Permission{ChannelID: "diary", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("work", "contribute")}}, true},
		{"folder above channel level", model.Permission{ChannelID: "diary", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("work", "manage")}}, false},
		{"tags on whole channel", model.Permission{ChannelID: "diary", Level: "read", Tags: []string{"x"}}, true},
		{"time frame on whole channel", model.Permission{ChannelID: "diary", Level: "read",
			TimeFrame: frame(ptr(1.0), ptr(2.0))}, true},
		{"permitted folder, same level", model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("sport", "contribute")}}, true},
		{"permitted folder, lower level", model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("sport", "read")}}, true},
		{"permitted folder, higher level", model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("sport", "manage")}}, false},
		{"permitted null folder", model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fpNull("read")}}, true},
		{"null folder above its level", model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fpNull("contribute")}}, false},
		{"folder subset", model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("sport", "read"), fpNull("read")}}, true},
		{"folder not permitted", model.Permission{ChannelID: "health", Level: "read",
			FolderPermissions: []model.FolderPermission{fp("sport", "read"), fp("sleep", "read")}}, false},
		{"whole folder-restricted channel", model.Permission{ChannelID: "health", Level: "read"}, false},
		{"tag subset", model.Permission{ChannelID: "tagged", Level: "manage", Tags: []string{"b"}}, true},
		{"same tags", model.Permission{ChannelID: "tagged", Level: "read", Tags: []string{"b", "a"}}, true},
		{"tag outside", model.Permission{ChannelID: "tagged", Level: "read", Tags: []string{"a", "c"}}, false},
		{"no tag filter", model.Permission{ChannelID: "tagged", Level: "read"}, false},
		{"frame inside", model.Permission{ChannelID: "framed", Level: "read", TimeFrame: frame(ptr(120.0), ptr(180.0))}, true},
		{"same frame", model.Permission{ChannelID: "framed", Level: "read", TimeFrame: frame(ptr(100.0), ptr(200.0))}, true},
		{"frame starting before", model.Permission{ChannelID: "framed", Level: "read", TimeFrame: frame(ptr(99.0), ptr(150.0))}, false},
		{"frame ending after", model.Permission{ChannelID: "framed", Level: "read", TimeFrame: frame(ptr(150.0), ptr(201.0))}, false},
		{"frame open at the end", model.Permission{ChannelID: "framed", Level: "read", TimeFrame: frame(ptr(150.0), nil)}, false},
		{"no frame", model.Permission{ChannelID: "framed", Level: "read"}, false},
		{"frame inside, level above", model.Permission{ChannelID: "framed", Level: "manage", TimeFrame: frame(ptr(120.0), ptr(180.0))}, false},
	} {
		if got, want := app.Covers([]model.Permission{c.req}, nil), c.want; got != want {
			t.Fatalf("%s: got %v, want %v", c.name, got, want)
		}
	}
	if got, want := app.Covers([]model.Permission{{ChannelID: "diary", Level: "read"}, {ChannelID: "tagged", Level: "read", Tags: []string{"a"}}}, nil), true; got != want {
		t.Fatalf("all covered: got %v, want %v", got, want)
	}
	if got, want := app.Covers([]model.Permission{{ChannelID: "diary", Level: "read"}, {ChannelID: "other", Level: "read"}}, nil), false; got != want {
		t.Fatalf("one not covered: got %v, want %v", got, want)
	}
}

func TestScopeWithStarCoversAnyChannelAndStar(t *testing.T) {
	app := shared(model.Permission{ChannelID: "*", Level: "contribute"})
	for _, c := range []struct {
		name string
		req  model.Permission
		want bool
	}{
		{"named channel", model.Permission{ChannelID: "diary", Level: "contribute"}, true},
		{"star", model.Permission{ChannelID: "*", Level: "read"}, true},
		{"star, higher level", model.Permission{ChannelID: "*", Level: "manage"}, false},
		{"named channel, higher level", model.Permission{ChannelID: "diary", Level: "manage"}, false},
	} {
		if got, want := app.Covers([]model.Permission{c.req}, nil), c.want; got != want {
			t.Fatalf("%s: got %v, want %v", c.name, got, want)
		}
	}
}

func TestParseLevelAndString(t *testing.T) {
	for _, c := range []struct {
		in   string
		want model.Level
		ok   bool
	}{
		{"read", model.LevelRead, true},
		{"contribute", model.LevelContribute, true},
		{"manage", model.LevelManage, true},
		{"personal", model.LevelNone, false},
		{"Read", model.LevelNone, false},
		{"", model.LevelNone, false},
	} {
		got, ok := model.ParseLevel(c.in)
		if got != c.want || ok != c.ok {
			t.Fatalf("ParseLevel(%q): got %v, %v, want %v, %v", c.in, got, ok, c.want, c.ok)
		}
		if c.ok {
			if got, want := got.String(), c.in; got != want {
				t.Fatalf("String: got %q, want %q", got, want)
			}
		}
	}
	if !(model.LevelNone < model.LevelRead && model.LevelRead < model.LevelContribute && model.LevelContribute < model.LevelManage) {
		t.Fatalf("levels are not ordered none < read < contribute < manage")
	}
	if got, want := model.LevelNone.String(), "none"; got != want {
		t.Fatalf("LevelNone.String: got %q, want %q", got, want)
	}
}

// TestScopeSeesWholeChannelOnlyWithoutRestrictions: only a permission on the
// channel (or on all channels) without folders, tags or time frame makes
// the whole channel visible, and then every item of it is: the channel,
// any folder and any event, whatever its facts.
func TestScopeSeesWholeChannelOnlyWithoutRestrictions(t *testing.T) {
	lo := 10.0
	cases := []struct {
		name  string
		scope model.Scope
		whole bool
	}{
		{"personal", model.Personal(), true},
		{"channel read", shared(model.Permission{ChannelID: "diary", Level: "read"}), true},
		{"all channels", shared(model.Permission{ChannelID: "*", Level: "contribute"}), true},
		{"another channel", shared(model.Permission{ChannelID: "health", Level: "manage"}), false},
		{"folders", shared(model.Permission{ChannelID: "diary", Level: "read", FolderPermissions: []model.FolderPermission{fp("work", "read")}}), false},
		{"tags", shared(model.Permission{ChannelID: "diary", Level: "read", Tags: []string{"a"}}), false},
		{"time frame", shared(model.Permission{ChannelID: "diary", Level: "read", TimeFrame: frame(&lo, nil)}), false},
		{"restricted and whole", shared(model.Permission{ChannelID: "diary", Level: "read", Tags: []string{"a"}}, model.Permission{ChannelID: "diary", Level: "read"}), true},
		{"level none", shared(model.Permission{ChannelID: "diary", Level: "none"}), false},
	}
	events := []model.EventFacts{mark("diary", "", 1), mark("diary", "garden", 5, "x"), period(-100, 3), running(1e9), mark("diary", "standups", 20, "a")}
	for _, c := range cases {
		if got := c.scope.SeesWholeChannel("diary"); got != c.whole {
			t.Errorf("%s: SeesWholeChannel = %v, want %v", c.name, got, c.whole)
			continue
		}
		if !c.whole {
			continue
		}
		if !c.scope.SeesChannel("diary") {
			t.Errorf("%s: whole channel but the channel is hidden", c.name)
		}
		for f := range folders {
			if f != "sport" && c.scope.FolderLevel("diary", f, folders) == model.LevelNone {
				t.Errorf("%s: whole channel but folder %s is hidden", c.name, f)
			}
		}
		for _, ev := range events {
			if !c.scope.SeesEvent(ev, folders) {
				t.Errorf("%s: whole channel but event %+v is hidden", c.name, ev)
			}
		}
	}
}
