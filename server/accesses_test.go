package server_test

import (
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
)

func accShared(channel, level string) *model.Access {
	return &model.Access{Type: model.AccessShared, Name: "share " + channel + " " + level,
		Permissions: []model.Permission{{ChannelID: channel, Level: level}}}
}

func accApp(name, channel, level string) *model.Access {
	return &model.Access{Type: model.AccessApp, Name: name,
		Permissions: []model.Permission{{ChannelID: channel, Level: level}}}
}

func accChannel(t *testing.T, e *testEnv, tok, id, name string) {
	t.Helper()
	st, v := e.doJSON("POST", "/alice01/channels", tok, map[string]any{"id": id, "name": name})
	mustStatus(t, "create channel "+id, st, v, 201)
}

// listAccesses lists accesses through path and indexes them by token.
func accList(t *testing.T, e *testEnv, path, tok string) map[string]map[string]any {
	t.Helper()
	st, v := e.doJSON("GET", path, tok, nil)
	mustStatus(t, "list accesses", st, v, 200)
	out := map[string]map[string]any{}
	for _, a := range v.([]any) {
		m := a.(map[string]any)
		out[m["token"].(string)] = m
	}
	return out
}

func accPerm(channel, level string) map[string]any {
	return map[string]any{"channelId": channel, "level": level}
}

func accCreate(t *testing.T, e *testEnv, tok string, body map[string]any) string {
	t.Helper()
	st, v := e.doJSON("POST", "/alice01/accesses", tok, body)
	mustStatus(t, "create access", st, v, 201)
	return v.(map[string]any)["token"].(string)
}

func TestAccessInfoDescribesTheCallingAccess(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	tok := accCreate(t, e, personal, map[string]any{
		"name": "Doctor", "expireAfter": 3600,
		"permissions": []any{map[string]any{"channelId": "diary", "level": "read", "tags": []any{"mood"}}},
	})
	st, v := e.doJSON("GET", "/alice01/access-info", tok, nil)
	mustStatus(t, "access-info", st, v, 200)
	m := v.(map[string]any)
	if m["name"] != "Doctor" || m["type"] != "shared" {
		t.Fatalf("access-info: got %v", m)
	}
	perms := m["permissions"].([]any)
	if len(perms) != 1 || perms[0].(map[string]any)["channelId"] != "diary" || perms[0].(map[string]any)["tags"].([]any)[0] != "mood" {
		t.Fatalf("permissions: got %v", perms)
	}
	if _, ok := m["expires"].(float64); !ok {
		t.Fatalf("expires missing: %v", m)
	}
	if _, ok := m["token"]; ok {
		t.Fatalf("access-info echoes the token: %v", m)
	}
	st, v = e.doJSON("GET", "/alice01/access-info", personal, nil)
	mustStatus(t, "personal access-info", st, v, 200)
	if _, ok := v.(map[string]any)["expires"]; ok {
		t.Fatalf("an access without expiry shows expires: %v", v)
	}
	st, v = e.doJSON("GET", "/alice01/access-info", "", nil)
	mustAPIError(t, "no token", st, v, 401, "invalid-access-token")
}

func TestSharedTokenIsForbiddenOnEveryAccessesCall(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	shared := e.storeAccess("alice01", accShared("*", "manage"))
	other := e.storeAccess("alice01", accShared("diary", "read"))
	for _, c := range []struct{ method, path string }{
		{"GET", "/alice01/accesses"}, {"POST", "/alice01/accesses"},
		{"PUT", "/alice01/accesses/" + other}, {"DELETE", "/alice01/accesses/" + other},
	} {
		st, v := e.doJSON(c.method, c.path, shared, map[string]any{"name": "x", "permissions": []any{accPerm("diary", "read")}})
		mustAPIError(t, c.method+" "+c.path, st, v, 403, "forbidden")
	}
}

func TestCreatingPersonalAccessIsForbiddenEverywhere(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	app := e.storeAccess("alice01", accApp("tracker", "*", "manage"))
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	body := map[string]any{"name": "me", "type": "personal", "permissions": []any{}}
	for who, c := range map[string]struct{ path, tok string }{
		"personal token": {"/alice01/accesses", personal},
		"app token":      {"/alice01/accesses", app},
		"session":        {"/alice01/admin/accesses", ses},
		"personal admin": {"/alice01/admin/accesses", personal},
	} {
		st, v := e.doJSON("POST", c.path, c.tok, body)
		mustAPIError(t, who, st, v, 403, "forbidden")
	}
	// Nor can an update turn an access into a personal one.
	tok := accCreate(t, e, personal, map[string]any{"name": "s", "permissions": []any{}})
	st, v := e.doJSON("PUT", "/alice01/accesses/"+tok, personal, map[string]any{"type": "personal"})
	mustAPIError(t, "retype", st, v, 400, "invalid-parameters-format")
}

func TestPersonalTokenCreatesAccessesWithPredefinedSlugTokens(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	tok := accCreate(t, e, personal, map[string]any{"name": "Mine", "token": "Mon Jeton Été!", "permissions": []any{}})
	if got, want := tok, "mon-jeton-ete"; got != want {
		t.Fatalf("token: got %q, want %q", got, want)
	}
	st, v := e.doJSON("GET", "/alice01/access-info", "mon-jeton-ete", nil)
	mustStatus(t, "use predefined token", st, v, 200)
	st, v = e.doJSON("POST", "/alice01/accesses", personal, map[string]any{"name": "Other", "token": "mon-jeton-ete", "permissions": []any{}})
	mustAPIError(t, "taken token", st, v, 400, "item-id-already-exists")
	for _, bad := range []string{"null", "*", "", "!!!"} {
		st, v = e.doJSON("POST", "/alice01/accesses", personal, map[string]any{"name": "Bad " + bad, "token": bad, "permissions": []any{}})
		mustAPIError(t, "token "+bad, st, v, 400, "invalid-item-id")
	}
	app := accCreate(t, e, personal, map[string]any{"name": "tracker", "type": "app", "deviceName": "phone", "permissions": []any{}})
	if len(app) < 22 {
		t.Fatalf("a random token must carry at least 128 bits: %q", app)
	}
	list := accList(t, e, "/alice01/accesses", personal)
	if list[app]["deviceName"] != "phone" || list[app]["type"] != "app" {
		t.Fatalf("app access listed as %v", list[app])
	}
}

func TestAccessCreationValidatesItsFields(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	cases := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no name", map[string]any{"permissions": []any{}}, "name"},
		{"no permissions", map[string]any{"name": "x"}, "permissions"},
		{"permissions not an array", map[string]any{"name": "x", "permissions": "all"}, "permissions"},
		{"unknown level", map[string]any{"name": "x", "permissions": []any{accPerm("diary", "admin")}}, "permissions"},
		{"misspelt key", map[string]any{"name": "x", "permissions": []any{map[string]any{"channelId": "diary", "level": "read", "folderPermisions": []any{}}}}, "permissions"},
		{"deviceName on shared", map[string]any{"name": "x", "deviceName": "phone", "permissions": []any{}}, "deviceName"},
		{"unknown type", map[string]any{"name": "x", "type": "root", "permissions": []any{}}, "type"},
		{"negative expireAfter", map[string]any{"name": "x", "expireAfter": -1, "permissions": []any{}}, "expireAfter"},
		{"unknown field", map[string]any{"name": "x", "permissions": []any{}, "admin": true}, "admin"},
	}
	for _, tc := range cases {
		st, v := e.doJSON("POST", "/alice01/accesses", personal, tc.body)
		mustAPIError(t, tc.name, st, v, 400, "invalid-parameters-format")
		if got := errDataField(v); got != tc.field {
			t.Fatalf("%s: data.field %q, want %q", tc.name, got, tc.field)
		}
	}
	st, b, _ := e.do("POST", "/alice01/accesses", personal, []byte(`{"name": "x"} trailing`))
	if st != 400 {
		t.Fatalf("trailing garbage: status %d (%s)", st, b)
	}
	if got := len(accList(t, e, "/alice01/accesses", personal)); got != 1 {
		t.Fatalf("refused creations stored accesses: %d listed", got)
	}
}

func TestAccessNamesAreUniquePerTypeAndDevice(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accCreate(t, e, personal, map[string]any{"name": "Doctor", "permissions": []any{}})
	st, v := e.doJSON("POST", "/alice01/accesses", personal, map[string]any{"name": "doctor", "permissions": []any{}})
	mustAPIError(t, "same shared name", st, v, 400, "item-name-already-exists")
	accCreate(t, e, personal, map[string]any{"name": "Doctor", "type": "app", "deviceName": "phone", "permissions": []any{}})
	accCreate(t, e, personal, map[string]any{"name": "Doctor", "type": "app", "deviceName": "laptop", "permissions": []any{}})
	st, v = e.doJSON("POST", "/alice01/accesses", personal, map[string]any{"name": "Doctor", "type": "app", "deviceName": "Phone", "permissions": []any{}})
	mustAPIError(t, "same app and device", st, v, 400, "item-name-already-exists")
}

func TestAppTokenManagesOnlySharedAccessesWithinItsOwnPermissions(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	accChannel(t, e, personal, "work", "Work")
	app := e.storeAccess("alice01", accApp("tracker", "diary", "contribute"))

	mine := accCreate(t, e, app, map[string]any{"name": "Read diary", "permissions": []any{accPerm("diary", "read")}})
	for name, body := range map[string]map[string]any{
		"other channel":  {"name": "w", "permissions": []any{accPerm("work", "read")}},
		"higher level":   {"name": "m", "permissions": []any{accPerm("diary", "manage")}},
		"every channel":  {"name": "a", "permissions": []any{accPerm("*", "read")}},
		"app type":       {"name": "t", "type": "app", "permissions": []any{accPerm("diary", "read")}},
		"mixed, one out": {"name": "x", "permissions": []any{accPerm("diary", "read"), accPerm("work", "read")}},
	} {
		st, v := e.doJSON("POST", "/alice01/accesses", app, body)
		mustAPIError(t, name, st, v, 403, "forbidden")
	}
	outside := accCreate(t, e, personal, map[string]any{"name": "Work share", "permissions": []any{accPerm("work", "read")}})
	inside := accCreate(t, e, personal, map[string]any{"name": "Diary share", "permissions": []any{accPerm("diary", "contribute")}})

	list := accList(t, e, "/alice01/accesses", app)
	if _, ok := list[outside]; ok || len(list) != 2 || list[mine] == nil || list[inside] == nil {
		t.Fatalf("app lists %v, want exactly its subset shares (%s, %s)", accSortedKeys(list), mine, inside)
	}
	if got := len(accList(t, e, "/alice01/accesses", personal)); got != 5 {
		t.Fatalf("personal lists %d accesses, want 5 (personal, app and 3 shared)", got)
	}
	st, v := e.doJSON("PUT", "/alice01/accesses/"+outside, app, map[string]any{"name": "mine now"})
	mustAPIError(t, "update outside", st, v, 404, "unknown-access")
	st, v = e.doJSON("DELETE", "/alice01/accesses/"+outside, app, nil)
	mustAPIError(t, "delete outside", st, v, 404, "unknown-access")
	st, v = e.doJSON("DELETE", "/alice01/accesses/"+app, app, nil)
	mustAPIError(t, "delete itself (an app access)", st, v, 404, "unknown-access")
	st, v = e.doJSON("PUT", "/alice01/accesses/"+mine, app, map[string]any{"permissions": []any{accPerm("diary", "manage")}})
	mustAPIError(t, "widen", st, v, 403, "forbidden")
	st, v = e.doJSON("PUT", "/alice01/accesses/"+mine, app, map[string]any{"name": "Diary (read)", "permissions": []any{accPerm("diary", "contribute")}})
	mustStatus(t, "update inside", st, v, 200)
	st, v = e.doJSON("DELETE", "/alice01/accesses/"+inside, app, nil)
	mustStatus(t, "delete inside", st, v, 200)
	st, v = e.doJSON("GET", "/alice01/access-info", outside, nil)
	mustStatus(t, "the outside share still works", st, v, 200)
}

func TestDefaultNameCreatesMissingChannelAndFolder(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	tok := accCreate(t, e, personal, map[string]any{
		"name": "Sleep share",
		"permissions": []any{map[string]any{
			"channelId": "sleep", "level": "read", "defaultName": "Sleep",
			"folderPermissions": []any{map[string]any{"folderId": "naps", "level": "contribute", "defaultName": "Naps"}},
		}},
	})
	st, v := e.doJSON("GET", "/alice01/channels", personal, nil)
	mustStatus(t, "channels", st, v, 200)
	chs := v.([]any)
	if len(chs) != 1 || chs[0].(map[string]any)["id"] != "sleep" || chs[0].(map[string]any)["name"] != "Sleep" {
		t.Fatalf("channels: got %v, want the created sleep channel", chs)
	}
	st, v = e.doJSON("GET", "/alice01/sleep/folders", personal, nil)
	mustStatus(t, "folders", st, v, 200)
	fs := v.([]any)
	if len(fs) != 1 {
		t.Fatalf("folders: got %v, want the created naps folder", fs)
	}
	if f := fs[0].(map[string]any); f["id"] != "naps" || f["name"] != "Naps" || f["parentId"] != nil {
		t.Fatalf("folder: got %v, want root folder naps named Naps", f)
	}
	// The new token reaches the new folder.
	st, v = e.doJSON("GET", "/alice01/sleep/folders", tok, nil)
	mustStatus(t, "folders through the new token", st, v, 200)
	if len(v.([]any)) != 1 {
		t.Fatalf("the new token does not see its folder: %v", v)
	}
	st, v = e.doJSON("GET", "/alice01/access-info", tok, nil)
	mustStatus(t, "access-info", st, v, 200)
	p := v.(map[string]any)["permissions"].([]any)[0].(map[string]any)
	if _, ok := p["defaultName"]; ok {
		t.Fatalf("defaultName is stored in the grant: %v", p)
	}
	if _, ok := p["folderPermissions"].([]any)[0].(map[string]any)["defaultName"]; ok {
		t.Fatalf("folder defaultName is stored in the grant: %v", p)
	}
}

func TestDefaultNameRestoresTrashedChannelAndFolder(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	st, v := e.doJSON("POST", "/alice01/diary/folders", personal, map[string]any{"id": "notes", "name": "Notes"})
	mustStatus(t, "create folder", st, v, 201)
	st, v = e.doJSON("DELETE", "/alice01/diary/folders/notes", personal, nil)
	mustStatus(t, "trash folder", st, v, 200)
	st, v = e.doJSON("DELETE", "/alice01/channels/diary", personal, nil)
	mustStatus(t, "trash channel", st, v, 200)
	accCreate(t, e, personal, map[string]any{
		"name": "Diary share", "permissions": []any{map[string]any{"channelId": "diary", "level": "read", "defaultName": "Other name",
			"folderPermissions": []any{map[string]any{"folderId": "notes", "level": "read", "defaultName": "Other notes"}}}},
	})
	st, v = e.doJSON("GET", "/alice01/channels", personal, nil)
	mustStatus(t, "channels", st, v, 200)
	chs := v.([]any)
	if len(chs) != 1 || chs[0].(map[string]any)["trashed"] != false || chs[0].(map[string]any)["name"] != "Diary" {
		t.Fatalf("channels: got %v, want diary restored with its own name", chs)
	}
	st, v = e.doJSON("GET", "/alice01/diary/folders", personal, nil)
	mustStatus(t, "folders", st, v, 200)
	fs := v.([]any)
	if len(fs) != 1 || fs[0].(map[string]any)["trashed"] != false || fs[0].(map[string]any)["name"] != "Notes" {
		t.Fatalf("folders: got %v, want notes restored with its own name", fs)
	}
}

func TestDefaultNameClashRefusesTheWholeCreation(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	accCreate(t, e, personal, map[string]any{
		"name": "first", "permissions": []any{map[string]any{"channelId": "diary", "level": "read",
			"folderPermissions": []any{map[string]any{"folderId": "notes", "level": "read", "defaultName": "Notes"}}}},
	})
	before := len(accList(t, e, "/alice01/accesses", personal))
	st, v := e.doJSON("POST", "/alice01/accesses", personal, map[string]any{
		"name": "clash channel", "permissions": []any{map[string]any{"channelId": "journal", "level": "read", "defaultName": "diary"}},
	})
	mustAPIError(t, "channel name taken", st, v, 400, "item-name-already-exists")
	st, v = e.doJSON("POST", "/alice01/accesses", personal, map[string]any{
		"name": "clash folder", "permissions": []any{map[string]any{"channelId": "diary", "level": "read",
			"folderPermissions": []any{map[string]any{"folderId": "notes-2", "level": "read", "defaultName": "NOTES"}}}},
	})
	mustAPIError(t, "folder name taken", st, v, 400, "item-name-already-exists")
	if got := len(accList(t, e, "/alice01/accesses", personal)); got != before {
		t.Fatalf("refused creations stored accesses: %d, want %d", got, before)
	}
	st, v = e.doJSON("GET", "/alice01/channels", personal, nil)
	mustStatus(t, "channels", st, v, 200)
	if len(v.([]any)) != 1 {
		t.Fatalf("a refused creation left channels behind: %v", v)
	}
}

func TestDefaultNameFromAnAppTokenCreatesNothing(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	app := e.storeAccess("alice01", accApp("tracker", "*", "manage"))
	accCreate(t, e, app, map[string]any{
		"name": "share", "permissions": []any{map[string]any{"channelId": "sleep", "level": "read", "defaultName": "Sleep"}},
	})
	st, v := e.doJSON("GET", "/alice01/channels", personal, nil)
	mustStatus(t, "channels", st, v, 200)
	if len(v.([]any)) != 0 {
		t.Fatalf("an app token created channels: %v", v)
	}
}

func TestExpiredAccessAnswersInvalidAccessToken(t *testing.T) {
	clock := newSteppedClock()
	e := newEnv(t, withClock(clock))
	personal := e.createUser("alice01")
	tok := accCreate(t, e, personal, map[string]any{"name": "brief", "expireAfter": 60, "permissions": []any{accPerm("*", "read")}})
	st, v := e.doJSON("GET", "/alice01/channels", tok, nil)
	mustStatus(t, "before expiry", st, v, 200)
	clock.Advance(61 * time.Second)
	st, v = e.doJSON("GET", "/alice01/channels", tok, nil)
	mustAPIError(t, "after expiry", st, v, 401, "invalid-access-token")
	st, v = e.doJSON("GET", "/alice01/access-info", tok, nil)
	mustAPIError(t, "access-info after expiry", st, v, 401, "invalid-access-token")
	list := accList(t, e, "/alice01/accesses", personal)
	if exp, _ := list[tok]["expires"].(float64); exp == 0 || exp > float64(clock.Now().Unix()) {
		t.Fatalf("listing shows expires %v, want a past time", list[tok]["expires"])
	}
}

func TestUpdateAccessChangesNameAndPermissionsAndRefusesReadOnlyFields(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	tok := accCreate(t, e, personal, map[string]any{"name": "Doctor", "expireAfter": 3600, "permissions": []any{accPerm("diary", "read")}})
	cur := accList(t, e, "/alice01/accesses", personal)[tok]
	st, v := e.doJSON("PUT", "/alice01/accesses/"+tok, personal, map[string]any{
		"name": "Dr. Who", "permissions": []any{accPerm("diary", "contribute")},
		// read-only fields sent back unchanged are accepted
		"token": tok, "type": "shared", "id": cur["id"], "created": cur["created"], "createdBy": cur["createdBy"], "expires": cur["expires"],
	})
	mustStatus(t, "update", st, v, 200)
	m := v.(map[string]any)
	if m["name"] != "Dr. Who" || m["permissions"].([]any)[0].(map[string]any)["level"] != "contribute" {
		t.Fatalf("updated access: got %v", m)
	}
	if m["token"] != tok || m["expires"] != cur["expires"] {
		t.Fatalf("update changed fixed fields: %v", m)
	}
	for name, body := range map[string]map[string]any{
		"token":       {"token": "other"},
		"type":        {"type": "app"},
		"id":          {"id": "other"},
		"created":     {"created": 1},
		"createdBy":   {"createdBy": "someone"},
		"lastUsed":    {"lastUsed": 12},
		"expires":     {"expires": 1},
		"expireAfter": {"expireAfter": 10},
		"deviceName":  {"deviceName": "phone"},
		"unknown":     {"colour": "red"},
		"empty name":  {"name": ""},
	} {
		st, v := e.doJSON("PUT", "/alice01/accesses/"+tok, personal, body)
		mustAPIError(t, name, st, v, 400, "invalid-parameters-format")
	}
	st, v = e.doJSON("PUT", "/alice01/accesses/no-such-token", personal, map[string]any{"name": "x"})
	mustAPIError(t, "unknown token", st, v, 404, "unknown-access")
	other := accCreate(t, e, personal, map[string]any{"name": "Nurse", "permissions": []any{}})
	st, v = e.doJSON("PUT", "/alice01/accesses/"+other, personal, map[string]any{"name": "dr. who"})
	mustAPIError(t, "rename onto a taken name", st, v, 400, "item-name-already-exists")
}

// Live sync sessions learn of a permission change through the access-change
// record, which takes a place in the user's change log.
func TestOnlyPermissionChangesAreRecordedForSyncSessions(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	tok := accCreate(t, e, personal, map[string]any{"name": "Doctor", "permissions": []any{accPerm("diary", "read"), accPerm("work", "read")}})
	head := func() uint64 {
		h, err := e.srv.Store().Head("alice01")
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	put := func(body map[string]any) {
		t.Helper()
		st, v := e.doJSON("PUT", "/alice01/accesses/"+tok, personal, body)
		mustStatus(t, "update", st, v, 200)
	}
	h0 := head()
	put(map[string]any{"name": "Doctor Who"})
	put(map[string]any{"permissions": []any{accPerm("work", "read"), accPerm("diary", "read")}})
	if got := head(); got != h0 {
		t.Fatalf("a rename or a reordering was recorded as a scope change (head %d → %d)", h0, got)
	}
	put(map[string]any{"permissions": []any{accPerm("diary", "read")}})
	if got := head(); got != h0+1 {
		t.Fatalf("narrowing was not recorded: head %d → %d", h0, got)
	}
	st, v := e.doJSON("DELETE", "/alice01/accesses/"+tok, personal, nil)
	mustStatus(t, "delete", st, v, 200)
	if got := head(); got != h0+2 {
		t.Fatalf("deletion was not recorded: head %d → %d", h0, got)
	}
}

func TestDeleteAccessRevokesTheTokenAtOnce(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	tok := accCreate(t, e, personal, map[string]any{"name": "Doctor", "permissions": []any{accPerm("*", "read")}})
	st, v := e.doJSON("GET", "/alice01/channels", tok, nil)
	mustStatus(t, "before", st, v, 200)
	st, v = e.doJSON("DELETE", "/alice01/accesses/"+tok, personal, nil)
	mustStatus(t, "delete", st, v, 200)
	st, v = e.doJSON("GET", "/alice01/channels", tok, nil)
	mustAPIError(t, "after", st, v, 401, "invalid-access-token")
	st, v = e.doJSON("DELETE", "/alice01/accesses/"+tok, personal, nil)
	mustAPIError(t, "delete again", st, v, 404, "unknown-access")
	if _, ok := accList(t, e, "/alice01/accesses", personal)[tok]; ok {
		t.Fatalf("deleted access still listed")
	}
}

func TestAccessListingShowsLastUse(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	tok := accCreate(t, e, personal, map[string]any{"name": "Doctor", "permissions": []any{accPerm("*", "read")}})
	if lu, ok := accList(t, e, "/alice01/accesses", personal)[tok]["lastUsed"]; ok && lu != 0.0 {
		t.Fatalf("unused access shows lastUsed %v", lu)
	}
	st, v := e.doJSON("GET", "/alice01/channels", tok, nil)
	mustStatus(t, "use", st, v, 200)
	// lastUsed is recorded off the request path.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if lu, _ := accList(t, e, "/alice01/accesses", personal)[tok]["lastUsed"].(float64); lu > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lastUsed never shown")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAccessesCallsAnswerMethodAndPathErrors(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	st, v := e.doJSON("PATCH", "/alice01/accesses", personal, nil)
	mustStatus(t, "PATCH", st, v, 405)
	st, v = e.doJSON("GET", "/alice01/accesses/a/b", personal, nil)
	mustStatus(t, "deep path", st, v, 404)
	st, v = e.doJSON("POST", "/alice01/access-info", personal, nil)
	mustStatus(t, "POST access-info", st, v, 405)
}

func TestAppProfileIsAnObjectMergedKeyByKey(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	app := e.storeAccess("alice01", accApp("tracker", "*", "read"))
	app2 := e.storeAccess("alice01", accApp("other", "*", "read"))
	shared := e.storeAccess("alice01", accShared("*", "read"))
	st, v := e.doJSON("GET", "/alice01/profile/app", app, nil)
	mustStatus(t, "empty profile", st, v, 200)
	if m, ok := v.(map[string]any); !ok || len(m) != 0 {
		t.Fatalf("empty profile: got %v, want {}", v)
	}
	st, v = e.doJSON("PUT", "/alice01/profile/app", app, map[string]any{"theme": "dark", "units": map[string]any{"weight": "kg"}, "n": 1})
	mustStatus(t, "set", st, v, 200)
	st, v = e.doJSON("PUT", "/alice01/profile/app", app, map[string]any{"theme": nil, "n": 2})
	mustStatus(t, "merge", st, v, 200)
	st, v = e.doJSON("GET", "/alice01/profile/app", app, nil)
	mustStatus(t, "read", st, v, 200)
	m := v.(map[string]any)
	if _, ok := m["theme"]; ok || m["n"] != 2.0 || m["units"].(map[string]any)["weight"] != "kg" || len(m) != 2 {
		t.Fatalf("profile: got %v, want {n: 2, units: {weight: kg}}", m)
	}
	st, v = e.doJSON("GET", "/alice01/profile/app", app2, nil)
	mustStatus(t, "other app", st, v, 200)
	if len(v.(map[string]any)) != 0 {
		t.Fatalf("profiles leak between apps: %v", v)
	}
	for who, tok := range map[string]string{"shared": shared, "personal": personal} {
		st, v = e.doJSON("GET", "/alice01/profile/app", tok, nil)
		mustAPIError(t, who, st, v, 403, "forbidden")
	}
	st, v = e.doJSON("PUT", "/alice01/profile/app", app, []any{1})
	mustAPIError(t, "array body", st, v, 400, "invalid-parameters-format")
	st, v = e.doJSON("GET", "/alice01/profile/public", app, nil)
	mustStatus(t, "unknown profile", st, v, 404)
}
