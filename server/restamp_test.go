package server_test

import (
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/syncproto"
)

// A device (clock ahead, within the skew allowance) edits a period; the
// period is then resumed over HTTP (duration null). Starting another
// period over HTTP in the no-overlap channel must stop it: the answer says
// it did (stoppedId), so the stored duration must say so too.
// A period resumed over HTTP after a device edited it with a version ahead
// of the server's clock is stopped by the next start: the server's stop is
// stamped past the item's versions.
func TestStartStopsAPeriodResumedOverHTTPAfterAnAheadEdit(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Work", map[string]any{"enforceNoEventsOverlap": true})
	e := f.event(cid, map[string]any{"time": 100, "duration": 50})
	c := openSyncSession(t, f, f.tok, "r-ahead")
	ahead := crdt.Version{Time: time.Now().Add(2 * time.Minute).UnixMilli(), Node: "r-ahead"}
	res := pushAndWait(c, syncproto.Change{RSeq: 1, Kind: "event", ID: e, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"description": field(ahead, `"from a fast clock"`)}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("push: %+v", res[0])
	}
	f.must(200, "PUT", "/"+cid+"/events/"+e, map[string]any{"duration": nil}) // resume
	out := f.must(201, "POST", "/"+cid+"/events/start", map[string]any{"type": noteType, "time": 200}).(map[string]any)
	if out["stoppedId"] != e {
		t.Fatalf("stoppedId %v, want %v", out["stoppedId"], e)
	}
	ev := f.must(200, "GET", "/"+cid+"/events/"+e, nil).(map[string]any)
	if ev["duration"] == nil {
		t.Errorf("the start answered stoppedId=%s, but that period is still running (duration null); running: %v",
			e, idsOf(f.list("/"+cid+"/events/running")))
	}
}

// An HTTP rename of folder S (whose item holds a device's ahead version)
// then a replica's offline creation of a sibling with that name, made
// later: one of the two must be renamed (sibling names are unique).
// A folder renamed over HTTP after a device stamped it ahead, then a
// sibling of the same name pushed: the names stay unique (the server's
// rename of either folder is stamped past its versions).
func TestFolderClashAfterAnHTTPRenameKeepsNamesUnique(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	s := f.folder(cid, "sfolder", "Old", "")
	c := openSyncSession(t, f, f.tok, "r-ahead")
	ahead := crdt.Version{Time: time.Now().Add(2 * time.Minute).UnixMilli(), Node: "r-ahead"}
	res := pushAndWait(c, syncproto.Change{RSeq: 1, Kind: "folder", ID: s, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"hidden": field(ahead, `false`)}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("push: %+v", res[0])
	}
	f.must(200, "PUT", "/"+cid+"/folders/"+s, map[string]any{"name": "Work"})
	// Another replica, clock right, creates "Work" after the rename.
	c2 := openSyncSession(t, f, f.tok, "r-right")
	v := crdt.Version{Time: time.Now().Add(time.Second).UnixMilli(), Node: "r-right"}
	res = pushAndWait(c2, syncproto.Change{RSeq: 1, Kind: "folder", ID: "wfolder", Create: true, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"channelId": field(v, `"`+cid+`"`), "name": field(v, `"Work"`)}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("push create: %+v", res[0])
	}
	t.Logf("push result: renamed=%q", res[0].Renamed)
	names := map[string]string{}
	for _, fo := range asList(t, f.must(200, "GET", "/"+cid+"/folders", nil)) {
		names[fo["id"].(string)], _ = fo["name"].(string)
	}
	t.Logf("names: %v", names)
	if names[s] == names["wfolder"] {
		t.Errorf("two sibling folders named %q (%s and wfolder); push result renamed=%q", names[s], s, res[0].Renamed)
	}
}
