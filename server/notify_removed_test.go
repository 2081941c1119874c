package server_test

import (
	"fmt"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// A folder removed with 64 subfolders and its event in one commit: its
// folder notice is no longer exact, yet the event is judged where its folder
// was, so a token limited to an unrelated folder hears no eventsChanged.
func TestSocketDoesNotTellAFolderLimitedTokenOfEventsRemovedElsewhere(t *testing.T) {
	f := newNotifyFixture(t)
	f.folder(f.a, "fa", "Shared", "")
	f.folder(f.a, "sec", "Secret", "")
	for i := 0; i < 64; i++ {
		f.folder(f.a, fmt.Sprintf("sub%d", i), fmt.Sprintf("Sub %d", i), "sec")
	}
	f.event(f.a, map[string]any{"time": 1, "folderId": "sec"})
	folderOnly := f.token(model.Permission{ChannelID: f.a, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("fa"), Level: "read"}}},
		model.Permission{ChannelID: f.s, Level: "read"})
	clients := []*socketClient{
		dialSocket(t, f.testEnv, "personal", f.user, f.tok),
		dialSocket(t, f.testEnv, "folder fa", f.user, folderOnly),
	}
	f.settle("nothing written yet", clients, nil, nil)
	f.must(200, "DELETE", "/"+f.a+"/folders/sec", nil)
	f.settle("sec trashed", clients, []notice{foldersChanged(f.a)}, nil)
	f.must(200, "DELETE", "/"+f.a+"/folders/sec?mergeEventsWithParent=false", nil)
	// The folder token hears foldersChanged (the folder notice is inexact:
	// documented), but no event it could ever see changed.
	f.settle("sec removed with 64 subfolders and its event", clients,
		[]notice{foldersChanged(f.a), eventsChanged(f.a)},
		[]notice{foldersChanged(f.a)})
}
