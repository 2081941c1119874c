package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pryvsync/pryvsync/model"
)

// treeShape renders a folder tree as "id(child,child)" for comparison.
func treeShape(v any) string {
	list, _ := v.([]any)
	parts := make([]string, len(list))
	for i, x := range list {
		m := x.(map[string]any)
		s := m["id"].(string)
		if kids, ok := m["children"]; ok {
			s += "(" + treeShape(kids) + ")"
		}
		parts[i] = s
	}
	return strings.Join(parts, ",")
}

func (f *actFixture) tree(p string, tok ...string) string {
	f.t.Helper()
	return treeShape(f.must(200, "GET", p, nil, tok...))
}

func mustTree(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %s, want %s", what, got, want)
	}
}

func TestFolderTreeIsNestedAndSortedByName(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "w", "work", "")
	f.folder(cid, "h", "Home", "")
	f.folder(cid, "b", "Beta", "w")
	f.folder(cid, "a", "alpha", "w")
	f.folder(cid, "z", "Zed", "a")
	f.folder(cid, "x", "home", "w") // same name as a root folder: another level
	mustTree(t, "tree", f.tree("/"+cid+"/folders"), "h,w(a(z),b,x)")
	list := asList(t, f.must(200, "GET", "/"+cid+"/folders", nil))
	if list[0]["parentId"] != nil || list[0]["channelId"] != cid || list[0]["name"] != "Home" {
		t.Fatalf("root folder: %v", list[0])
	}
	mustTree(t, "parentId=w", f.tree("/"+cid+"/folders?parentId=w"), "a(z),b,x")
	st, v := f.call("GET", "/"+cid+"/folders?parentId=nope", nil)
	f.wantErr("unknown parentId", st, v, 400, "unknown-folder")
	st, v = f.call("GET", "/"+cid+"/folders?depth=2", nil)
	f.wantErr("unknown parameter", st, v, 400, "invalid-parameters-format")
	st, v = f.call("GET", "/"+cid+"/folders?state=gone", nil)
	f.wantErr("bad state", st, v, 400, "invalid-parameters-format")
}

func TestFolderTreeStateAndHidden(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "a", "A", "")
	f.folder(cid, "a1", "A1", "a")
	f.folder(cid, "b", "B", "")
	f.folder(cid, "b1", "B1", "b")
	f.folder(cid, "c", "C", "")
	f.must(200, "DELETE", "/"+cid+"/folders/a", nil)
	f.must(200, "DELETE", "/"+cid+"/folders/b1", nil)
	f.must(200, "PUT", "/"+cid+"/folders/c", map[string]any{"hidden": true})
	mustTree(t, "default", f.tree("/"+cid+"/folders"), "b")
	mustTree(t, "includeHidden", f.tree("/"+cid+"/folders?includeHidden=true"), "b,c")
	mustTree(t, "all", f.tree("/"+cid+"/folders?state=all&includeHidden=true"), "a(a1),b(b1),c")
	mustTree(t, "trashed", f.tree("/"+cid+"/folders?state=trashed"), "a(a1),b1")
	mustTree(t, "subtree of a trashed folder", f.tree("/"+cid+"/folders?parentId=a"), "")
}

func TestCreateFolderChecksIDsNamesAndParents(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	other := f.channel("Other")
	f.folder(other, "elsewhere", "Elsewhere", "")
	out := f.must(201, "POST", "/"+cid+"/folders", map[string]any{"id": "Pas encodé de bleu!", "name": "Bleu", "children": []any{}})
	if got := out.(map[string]any)["id"]; got != "pas-encode-de-bleu" {
		t.Fatalf("id: got %v, want pas-encode-de-bleu", got)
	}
	gen := f.must(201, "POST", "/"+cid+"/folders", map[string]any{"name": "Generated"}).(map[string]any)["id"].(string)
	if gen == "" {
		t.Fatalf("no id generated")
	}
	f.folder(cid, "trash", "Trash", "")
	f.must(200, "DELETE", "/"+cid+"/folders/trash", nil)
	cases := []struct {
		name   string
		body   map[string]any
		status int
		id     string
	}{
		{"reserved id null", map[string]any{"id": "null", "name": "N"}, 400, "invalid-item-id"},
		{"reserved id star", map[string]any{"id": "*", "name": "S"}, 400, "invalid-item-id"},
		{"empty slug", map[string]any{"id": "!!!", "name": "S"}, 400, "invalid-item-id"},
		{"duplicate id", map[string]any{"id": "pas-encode-de-bleu", "name": "Other name"}, 400, "item-id-already-exists"},
		{"id used in another channel", map[string]any{"id": "elsewhere", "name": "Other name"}, 400, "item-id-already-exists"},
		{"sibling name", map[string]any{"name": "bleu"}, 400, "item-name-already-exists"},
		{"missing name", map[string]any{"id": "noname"}, 400, "invalid-parameters-format"},
		{"name not a string", map[string]any{"name": 3}, 400, "invalid-parameters-format"},
		{"unknown parent", map[string]any{"name": "Kid", "parentId": "nope"}, 400, "unknown-folder"},
		{"parent of another channel", map[string]any{"name": "Kid", "parentId": "elsewhere"}, 400, "unknown-folder"},
		{"trashed parent", map[string]any{"name": "Kid", "parentId": "trash"}, 400, "invalid-operation"},
		{"other channel in body", map[string]any{"name": "Kid", "channelId": other}, 400, "invalid-parameters-format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, v := f.call("POST", "/"+cid+"/folders", tc.body)
			f.wantErr(tc.name, st, v, tc.status, tc.id)
		})
	}
	// The same name under another parent is fine.
	f.folder(cid, "kid", "Bleu", "pas-encode-de-bleu")
	st, v := f.call("POST", "/nochannel/folders", map[string]any{"name": "X"})
	f.wantErr("unknown channel", st, v, 404, "unknown-channel")
}

func TestUpdateFolderRenamesAndMovesWithoutCycles(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	other := f.channel("Other")
	f.folder(cid, "a", "A", "")
	f.folder(cid, "b", "B", "")
	f.folder(cid, "a1", "A1", "a")
	f.folder(cid, "a11", "A11", "a1")
	f.folder(cid, "b1", "Sibling", "b")
	ev := f.must(200, "PUT", "/"+cid+"/folders/a1", map[string]any{"parentId": "b", "name": "Moved"}).(map[string]any)
	if ev["parentId"] != "b" || ev["name"] != "Moved" {
		t.Fatalf("update: %v", ev)
	}
	mustTree(t, "after move", f.tree("/"+cid+"/folders"), "a,b(a1(a11),b1)")
	// Sending back unchanged values is fine.
	f.must(200, "PUT", "/"+cid+"/folders/a1", map[string]any{"parentId": "b", "name": "Moved", "channelId": cid, "id": "a1"})
	f.must(200, "PUT", "/"+cid+"/folders/a1", map[string]any{"parentId": nil})
	f.must(200, "PUT", "/"+cid+"/folders/a1", map[string]any{"parentId": "b"})
	cases := []struct {
		name   string
		fid    string
		body   map[string]any
		status int
		id     string
	}{
		{"own parent", "a1", map[string]any{"parentId": "a1"}, 400, "invalid-operation"},
		{"below a descendant", "a1", map[string]any{"parentId": "a11"}, 400, "invalid-operation"},
		{"unknown parent", "a1", map[string]any{"parentId": "nope"}, 400, "unknown-folder"},
		{"sibling name clash", "a1", map[string]any{"name": "SIBLING"}, 400, "item-name-already-exists"},
		{"clash after move", "b1", map[string]any{"parentId": nil, "name": "a"}, 400, "item-name-already-exists"},
		{"channelId", "a1", map[string]any{"channelId": other}, 400, "invalid-parameters-format"},
		{"children", "a1", map[string]any{"children": []any{}}, 400, "invalid-parameters-format"},
		{"empty name", "a1", map[string]any{"name": " "}, 400, "invalid-parameters-format"},
		{"unknown folder", "nope", map[string]any{"name": "X"}, 404, "unknown-folder"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, v := f.call("PUT", "/"+cid+"/folders/"+tc.fid, tc.body)
			f.wantErr(tc.name, st, v, tc.status, tc.id)
		})
	}
	st, v := f.call("PUT", "/"+other+"/folders/a1", map[string]any{"name": "X"})
	f.wantErr("folder of another channel", st, v, 404, "unknown-folder")
}

func TestDeleteFolderTrashesThenRemovesWithDescendants(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "a", "A", "")
	f.folder(cid, "a1", "A1", "a")
	f.folder(cid, "b", "B", "")
	out := f.must(200, "DELETE", "/"+cid+"/folders/a", nil).(map[string]any)
	if out["trashed"] != true {
		t.Fatalf("first delete: %v", out)
	}
	out = f.must(200, "DELETE", "/"+cid+"/folders/a", nil).(map[string]any)
	if d, _ := out["folderDeletion"].(map[string]any); d["id"] != "a" {
		t.Fatalf("second delete: %v", out)
	}
	mustTree(t, "after removal", f.tree("/"+cid+"/folders?state=all"), "b")
	st, v := f.call("DELETE", "/"+cid+"/folders/a1", nil)
	f.wantErr("descendant removed too", st, v, 404, "unknown-folder")
	st, v = f.call("DELETE", "/"+cid+"/folders/nope", nil)
	f.wantErr("unknown folder", st, v, 404, "unknown-folder")
	// Tombstones keep ids reserved, as for events (SPEC §4.3).
	st, v = f.call("POST", "/"+cid+"/folders", map[string]any{"id": "a", "name": "A again"})
	f.wantErr("reuse a removed id", st, v, 400, "item-id-already-exists")
	f.folder(cid, "a2", "A", "") // the name is free again
}

func TestDeleteFolderWithEventsNeedsMergeEventsWithParent(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "p", "Parent", "")
	f.folder(cid, "c", "Child", "p")
	f.folder(cid, "g", "Grandchild", "c")
	f.folder(cid, "r", "Root", "")
	inC := f.event(cid, map[string]any{"folderId": "c", "time": 1})
	inG := f.event(cid, map[string]any{"folderId": "g", "time": 2})
	inR := f.event(cid, map[string]any{"folderId": "r", "time": 3})
	st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type": {"class": "note", "format": "txt"}, "folderId": "r", "time": 4}`),
		mpPart{name: "file", fileName: "f", body: []byte("file of a doomed event")})
	mustStatus(t, "create with file", st, v, 201)
	withFile := v.(map[string]any)["id"].(string)

	// The first delete only trashes: no parameter needed.
	f.must(200, "DELETE", "/"+cid+"/folders/c", nil)
	code, v := f.call("DELETE", "/"+cid+"/folders/c", nil)
	f.wantErr("linked events", code, v, 400, "missing-parameter")
	code, v = f.call("DELETE", "/"+cid+"/folders/c?mergeEventsWithParent=perhaps", nil)
	f.wantErr("bad value", code, v, 400, "invalid-parameters-format")
	f.must(200, "DELETE", "/"+cid+"/folders/c?mergeEventsWithParent=true", nil)
	for _, id := range []string{inC, inG} {
		ev := f.must(200, "GET", "/"+cid+"/events/"+id, nil).(map[string]any)
		if ev["folderId"] != "p" {
			t.Fatalf("event %s: folderId %v, want p", id, ev["folderId"])
		}
	}
	mustTree(t, "after merge", f.tree("/"+cid+"/folders?state=all"), "p,r")

	// A root folder merges its events to no folder.
	f.folder(cid, "r2", "Root 2", "")
	inR2 := f.event(cid, map[string]any{"folderId": "r2", "time": 5})
	f.must(200, "DELETE", "/"+cid+"/folders/r2", nil)
	f.must(200, "DELETE", "/"+cid+"/folders/r2?mergeEventsWithParent=true", nil)
	if ev := f.must(200, "GET", "/"+cid+"/events/"+inR2, nil).(map[string]any); ev["folderId"] != nil {
		t.Fatalf("event of a removed root folder: folderId %v, want null", ev["folderId"])
	}

	// false deletes the events and their files.
	f.must(200, "DELETE", "/"+cid+"/folders/r", nil)
	f.must(200, "DELETE", "/"+cid+"/folders/r?mergeEventsWithParent=false", nil)
	for _, id := range []string{inR, withFile} {
		code, v := f.call("GET", "/"+cid+"/events/"+id, nil)
		f.wantErr("event of a removed folder", code, v, 404, "unknown-event")
	}
	if f.srv.Store().HasFile(f.user, hexSum([]byte("file of a doomed event"))) {
		t.Fatalf("files of deleted events were kept")
	}
}

func TestFolderRestrictedTokenSeesPermittedFoldersAtTheTop(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "top", "Top", "")
	f.folder(cid, "mid", "Mid", "top")
	f.folder(cid, "leaf", "Leaf", "mid")
	f.folder(cid, "other", "Other", "top")
	f.folder(cid, "side", "Side", "")
	tok := f.token(model.Permission{ChannelID: cid, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("mid"), Level: "read"}, {FolderID: ptr("side"), Level: "read"}}})
	v := f.must(200, "GET", "/"+cid+"/folders", nil, tok)
	mustTree(t, "restricted tree", treeShape(v), "mid(leaf),side")
	mid := asList(t, v)[0]
	if pid, ok := mid["parentId"]; !ok || pid != nil {
		t.Fatalf("the parent of a permitted folder leaked: parentId %v", pid)
	}
	st, out := f.call("GET", "/"+cid+"/folders?parentId=top", nil, tok)
	f.wantErr("parent out of scope", st, out, 400, "unknown-folder")
	mustTree(t, "parentId=mid", f.tree("/"+cid+"/folders?parentId=mid", tok), "leaf")
	st, out = f.call("PUT", "/"+cid+"/folders/other", map[string]any{"name": "X"}, tok)
	f.wantErr("update out of scope", st, out, 404, "unknown-folder")
}

func TestFolderWritesNeedManageOnTheParent(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "top", "Top", "")
	f.folder(cid, "kid", "Kid", "top")
	f.folder(cid, "free", "Free", "")
	contrib := f.token(model.Permission{ChannelID: cid, Level: "contribute"})
	manageTop := f.token(model.Permission{ChannelID: cid, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("top"), Level: "manage"}}})
	manageAll := f.token(model.Permission{ChannelID: cid, Level: "manage"})

	// Contribute: events yes, folders no.
	f.must(201, "POST", "/"+cid+"/events", map[string]any{"type": noteType, "folderId": "kid"}, contrib)
	for _, w := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/" + cid + "/folders", map[string]any{"name": "New", "parentId": "kid"}},
		{"PUT", "/" + cid + "/folders/kid", map[string]any{"name": "Renamed"}},
		{"DELETE", "/" + cid + "/folders/kid", nil},
	} {
		st, v := f.call(w.method, w.path, w.body, contrib)
		f.wantErr("contribute: "+w.method+" "+w.path, st, v, 403, "forbidden")
	}

	// Manage on top: anywhere below it, at any depth; not at the root, not top itself.
	f.must(201, "POST", "/"+cid+"/folders", map[string]any{"id": "deep", "name": "Deep", "parentId": "kid"}, manageTop)
	f.must(201, "POST", "/"+cid+"/folders", map[string]any{"id": "deeper", "name": "Deeper", "parentId": "deep"}, manageTop)
	f.must(200, "PUT", "/"+cid+"/folders/deeper", map[string]any{"parentId": "kid"}, manageTop)
	f.must(200, "DELETE", "/"+cid+"/folders/deeper", nil, manageTop)
	f.must(200, "DELETE", "/"+cid+"/folders/deeper", nil, manageTop)
	st, v := f.call("POST", "/"+cid+"/folders", map[string]any{"name": "Rootish"}, manageTop)
	f.wantErr("create at the root", st, v, 403, "forbidden")
	st, v = f.call("PUT", "/"+cid+"/folders/top", map[string]any{"name": "Renamed"}, manageTop)
	f.wantErr("update the permitted folder itself", st, v, 403, "forbidden")
	st, v = f.call("PUT", "/"+cid+"/folders/kid", map[string]any{"parentId": nil}, manageTop)
	f.wantErr("move to the root", st, v, 403, "forbidden")
	st, v = f.call("PUT", "/"+cid+"/folders/kid", map[string]any{"parentId": "free"}, manageTop)
	f.wantErr("move under an unseen folder", st, v, 400, "unknown-folder")
	f.must(200, "DELETE", "/"+cid+"/folders/deep", nil, manageTop)
	st, v = f.call("POST", "/"+cid+"/folders", map[string]any{"name": "In trash", "parentId": "deep"}, manageTop)
	f.wantErr("create in a trashed folder", st, v, 400, "invalid-operation")

	// Channel-wide manage: anywhere.
	f.must(201, "POST", "/"+cid+"/folders", map[string]any{"name": "Rootish"}, manageAll)
	f.must(200, "PUT", "/"+cid+"/folders/kid", map[string]any{"parentId": "free"}, manageAll)
}

func TestDeleteFolderRefusesWhenAnEventIsOutOfReach(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "top", "Top", "")
	f.folder(cid, "kid", "Kid", "top")
	hidden := f.event(cid, map[string]any{"folderId": "kid", "tags": []any{"private"}, "time": 1})
	tok := f.token(model.Permission{ChannelID: cid, Level: "manage", Tags: []string{"public"}})
	f.must(200, "DELETE", "/"+cid+"/folders/kid", nil, tok)
	st, v := f.call("DELETE", "/"+cid+"/folders/kid?mergeEventsWithParent=false", nil, tok)
	f.wantErr("event out of reach", st, v, 403, "forbidden")
	if strings.Contains(jsonOf(t, v), hidden) {
		t.Fatalf("the answer names an event out of scope: %v", v)
	}
	f.must(200, "GET", "/"+cid+"/events/"+hidden, nil)
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
