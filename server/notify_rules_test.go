package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/syncproto"
)

// Removing a folder with mergeEventsWithParent=false deletes the events
// linked to it: a folder-limited token that saw them is told eventsChanged,
// though the folder their facts name is gone from the tree after the commit
// (the socket judges them where the folder was).
func TestSocketTellsAFolderLimitedTokenOfEventsRemovedWithTheirFolder(t *testing.T) {
	f := newNotifyFixture(t)
	f.folder(f.a, "fa", "Shared", "")
	f.folder(f.a, "kid", "Kid", "fa")
	f.event(f.a, map[string]any{"time": 1, "folderId": "kid"})
	f.event(f.a, map[string]any{"time": 2, "folderId": "fa"})
	folderOnly := f.token(model.Permission{ChannelID: f.a, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("fa"), Level: "read"}}},
		model.Permission{ChannelID: f.s, Level: "read"})
	clients := []*socketClient{
		dialSocket(t, f.testEnv, "personal", f.user, f.tok),
		dialSocket(t, f.testEnv, "folder fa", f.user, folderOnly),
	}
	f.settle("nothing written yet", clients, nil, nil)

	// A subfolder of the granted folder, with its event.
	f.must(200, "DELETE", "/"+f.a+"/folders/kid", nil)
	f.settle("kid trashed", clients, []notice{foldersChanged(f.a)}, []notice{foldersChanged(f.a)})
	f.must(200, "DELETE", "/"+f.a+"/folders/kid?mergeEventsWithParent=false", nil)
	f.settle("kid removed with its event", clients,
		[]notice{foldersChanged(f.a), eventsChanged(f.a)},
		[]notice{foldersChanged(f.a), eventsChanged(f.a)})

	// The granted folder itself, with its event.
	f.must(200, "DELETE", "/"+f.a+"/folders/fa", nil)
	f.settle("fa trashed", clients, []notice{foldersChanged(f.a)}, []notice{foldersChanged(f.a)})
	f.must(200, "DELETE", "/"+f.a+"/folders/fa?mergeEventsWithParent=false", nil)
	f.settle("fa removed with its event", clients,
		[]notice{foldersChanged(f.a), eventsChanged(f.a)},
		[]notice{foldersChanged(f.a), eventsChanged(f.a)})
}

// A change of a push refused after it wrote is rolled back with the facts
// it added to the push's notice: a token limited to tag "shared" hears
// nothing of a push whose only committed change touched a "private" event.
func TestSocketHearsNothingOfARolledBackChange(t *testing.T) {
	f := newNotifyFixture(t)
	tagged := f.token(model.Permission{ChannelID: f.a, Level: "read", Tags: []string{"shared"}},
		model.Permission{ChannelID: f.s, Level: "read"})
	c := openSyncSession(t, f.actFixture, f.tok, "r-notice")
	v := crdt.Version{Time: time.Now().UnixMilli(), Node: "r-notice"}
	private := cuid("private")
	res := pushAndWait(c, syncproto.Change{RSeq: 1, Kind: "event", ID: private, Create: true, Delta: crdt.Doc{
		Fields: map[string]crdt.Field{"channelId": field(v, `"`+f.a+`"`), "time": field(v, "1"),
			"type": field(v, `{"class":"note","format":"txt"}`)},
		Tags: map[string]crdt.Elem{"private": {V: v, Present: true}}}})
	if res[0].Status != syncproto.StatusOK {
		t.Fatalf("create the private event: %+v", res[0])
	}
	clients := []*socketClient{dialSocket(t, f.testEnv, "tag shared", f.user, tagged)}
	f.settle("nothing it sees written yet", clients, nil)

	v2 := crdt.Version{Time: time.Now().UnixMilli() + 1, Node: "r-notice"}
	never := strings.Repeat("ab", 32) // a digest no one uploaded
	res = pushAndWait(c,
		syncproto.Change{RSeq: 2, Kind: "event", ID: private, Delta: crdt.Doc{
			Fields: map[string]crdt.Field{"description": field(v2, `"private edit"`)}}},
		syncproto.Change{RSeq: 3, Kind: "event", ID: cuid("sharedx"), Create: true, Delta: crdt.Doc{
			Fields: map[string]crdt.Field{"channelId": field(v2, `"`+f.a+`"`), "time": field(v2, "2"),
				"type": field(v2, `{"class":"note","format":"txt"}`)},
			Tags:  map[string]crdt.Elem{"shared": {V: v2, Present: true}},
			Files: map[string]crdt.Field{"doc": field(v2, `{"fileName":"doc.txt","type":"text/plain","size":1,"digest":"`+never+`"}`)}}},
	)
	if res[0].Status != syncproto.StatusOK || res[1].Status != syncproto.StatusRejected {
		t.Fatalf("push: %+v / %+v, want ok then rejected", res[0], res[1])
	}
	f.settle("only the private event changed", clients, nil)
}
