package server_test

import (
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/server"
)

// steppedClock is a clock that tests move forward by hand.
type steppedClock struct {
	mu sync.Mutex
	t  time.Time
}

func newSteppedClock() *steppedClock { return &steppedClock{t: time.Now()} }

func (c *steppedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *steppedClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func withClock(c *steppedClock) func(*server.Config) {
	return func(cfg *server.Config) { cfg.Now = c.Now }
}

// mustLogin opens a session and returns its id.
func mustAdminLogin(t *testing.T, e *testEnv, user, password string) string {
	t.Helper()
	st, v := e.doJSON("POST", "/"+user+"/admin/login", "", map[string]any{"username": user, "password": password, "appId": "test-app"})
	mustStatus(t, "login "+user, st, v, 200)
	id, _ := v.(map[string]any)["sessionID"].(string)
	if id == "" {
		t.Fatalf("login: no sessionID in %v", v)
	}
	return id
}

func adminLoginBody(user, password string) map[string]any {
	return map[string]any{"username": user, "password": password, "appId": "test-app"}
}

func TestLoginOpensSessionThatAdminCallsAccept(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	st, v := e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("Alice01", "secret-pw"))
	mustStatus(t, "login", st, v, 200)
	m := v.(map[string]any)
	if got, want := m["preferredLanguage"], "en"; got != want {
		t.Fatalf("preferredLanguage: got %v, want %v", got, want)
	}
	ses := m["sessionID"].(string)
	st, v = e.doJSON("GET", "/alice01/admin/user-info", ses, nil)
	mustStatus(t, "user-info", st, v, 200)
	want := map[string]any{"username": "alice01", "email": "alice01@example.com", "language": "en"}
	for k, w := range want {
		if got := v.(map[string]any)[k]; got != w {
			t.Fatalf("user-info %s: got %v, want %v", k, got, w)
		}
	}
	if got, want := len(v.(map[string]any)), 3; got != want {
		t.Fatalf("user-info has %d fields, want %d: %v", got, want, v)
	}
	// The session also works in the auth query parameter.
	st, v = e.doJSON("GET", "/alice01/admin/user-info?auth="+ses, "", nil)
	mustStatus(t, "user-info with auth=", st, v, 200)
}

func TestLoginRefusesWrongCredentialsAndBadBodies(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	e.createUser("bobby01")
	st, v := e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("alice01", "wrong-pw"))
	mustAPIError(t, "wrong password", st, v, 401, "invalid-credentials")
	st, v = e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("bobby01", "secret-pw"))
	mustAPIError(t, "another user's name", st, v, 401, "invalid-credentials")
	st, v = e.doJSON("POST", "/nobody01/admin/login", "", adminLoginBody("nobody01", "secret-pw"))
	mustAPIError(t, "unknown user", st, v, 404, "unknown-user")
	st, v = e.doJSON("POST", "/alice01/admin/login", "", map[string]any{"username": "alice01", "password": "secret-pw"})
	mustAPIError(t, "no appId", st, v, 400, "invalid-parameters-format")
	if got := errDataField(v); got != "appId" {
		t.Fatalf("data.field: got %q, want appId", got)
	}
	st, v = e.doJSON("GET", "/alice01/admin/login", "", nil)
	mustStatus(t, "GET login", st, v, 405)
}

func TestLoginLocksOutAfterFiveFailuresUntilTheMinutePasses(t *testing.T) {
	clock := newSteppedClock()
	e := newEnv(t, withClock(clock))
	e.createUser("alice01")
	for i := 0; i < 5; i++ {
		st, v := e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("alice01", "wrong-pw"))
		mustAPIError(t, "failure", st, v, 401, "invalid-credentials")
	}
	st, v := e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("alice01", "secret-pw"))
	mustAPIError(t, "correct password during lockout", st, v, 429, "too-many-requests")
	clock.Advance(30 * time.Second)
	st, v = e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("alice01", "secret-pw"))
	mustAPIError(t, "still within the minute", st, v, 429, "too-many-requests")
	clock.Advance(31 * time.Second)
	mustAdminLogin(t, e, "alice01", "secret-pw")
}

func TestLoginLocksOutAClientAddressAcrossUsers(t *testing.T) {
	clock := newSteppedClock()
	e := newEnv(t, withClock(clock), func(c *server.Config) { c.LoginFailuresPerAddr = 3 })
	for _, u := range []string{"alice01", "bobby01", "carol01", "david01"} {
		e.createUser(u)
	}
	for _, u := range []string{"alice01", "bobby01", "carol01"} {
		st, v := e.doJSON("POST", "/"+u+"/admin/login", "", adminLoginBody(u, "wrong-pw"))
		mustAPIError(t, "failure "+u, st, v, 401, "invalid-credentials")
	}
	st, v := e.doJSON("POST", "/david01/admin/login", "", adminLoginBody("david01", "secret-pw"))
	mustAPIError(t, "other user, same address", st, v, 429, "too-many-requests")
	clock.Advance(61 * time.Second)
	mustAdminLogin(t, e, "david01", "secret-pw")
}

func TestSessionSlidesAndExpiresAfterTTLWithoutUse(t *testing.T) {
	clock := newSteppedClock()
	e := newEnv(t, withClock(clock), func(c *server.Config) { c.SessionTTL = time.Hour })
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	for i := 0; i < 3; i++ {
		clock.Advance(50 * time.Minute)
		st, v := e.doJSON("GET", "/alice01/admin/user-info", ses, nil)
		mustStatus(t, "used within the TTL", st, v, 200)
	}
	clock.Advance(61 * time.Minute)
	st, v := e.doJSON("GET", "/alice01/admin/user-info", ses, nil)
	mustAPIError(t, "after the TTL", st, v, 401, "invalid-access-token")
}

func TestLogoutEndsTheSessionButNotPersonalAccesses(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v := e.doJSON("POST", "/alice01/admin/get-app-token", ses, map[string]any{"appId": "my-app"})
	mustStatus(t, "get-app-token", st, v, 200)
	tok := v.(map[string]any)["id"].(string)
	st, v = e.doJSON("POST", "/alice01/admin/logout", ses, map[string]any{})
	mustStatus(t, "logout", st, v, 200)
	st, v = e.doJSON("GET", "/alice01/admin/user-info", ses, nil)
	mustAPIError(t, "session after logout", st, v, 401, "invalid-access-token")
	st, v = e.doJSON("GET", "/alice01/channels", tok, nil)
	mustStatus(t, "personal token after logout", st, v, 200)
	st, v = e.doJSON("GET", "/alice01/admin/user-info", tok, nil)
	mustStatus(t, "admin call with the personal token", st, v, 200)
}

func TestGetAppTokenCreatesOnePersonalAccessPerApp(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	get := func(app string) string {
		st, v := e.doJSON("POST", "/alice01/admin/get-app-token", ses, map[string]any{"appId": app})
		mustStatus(t, "get-app-token "+app, st, v, 200)
		return v.(map[string]any)["id"].(string)
	}
	a1, a2, b := get("app-a"), get("app-a"), get("app-b")
	if a1 != a2 {
		t.Fatalf("second call for the same app gave another token")
	}
	if a1 == b {
		t.Fatalf("two apps share a token")
	}
	st, v := e.doJSON("GET", "/alice01/access-info", a1, nil)
	mustStatus(t, "access-info", st, v, 200)
	if got, want := v.(map[string]any)["type"], "personal"; got != want {
		t.Fatalf("type: got %v, want %v", got, want)
	}
	// A new session gets the same token for the same app.
	ses2 := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v = e.doJSON("POST", "/alice01/admin/get-app-token", ses2, map[string]any{"appId": "app-a"})
	mustStatus(t, "second session", st, v, 200)
	if v.(map[string]any)["id"] != a1 {
		t.Fatalf("a new session got another token for the same app")
	}
	st, v = e.doJSON("POST", "/alice01/admin/get-app-token", ses, map[string]any{})
	mustAPIError(t, "no appId", st, v, 400, "invalid-parameters-format")
}

func TestAdminCallsNeedASessionOrPersonalToken(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	shared := e.storeAccess("alice01", accShared("diary", "read"))
	app := e.storeAccess("alice01", accApp("my-app", "diary", "manage"))
	for _, path := range []string{"/alice01/admin/user-info", "/alice01/admin/accesses", "/alice01/admin/bookmarks"} {
		st, v := e.doJSON("GET", path, "", nil)
		mustAPIError(t, path+" without token", st, v, 401, "invalid-access-token")
		st, v = e.doJSON("GET", path, "not-a-token", nil)
		mustAPIError(t, path+" with a bad token", st, v, 401, "invalid-access-token")
		st, v = e.doJSON("GET", path, shared, nil)
		mustAPIError(t, path+" with a shared token", st, v, 403, "forbidden")
		st, v = e.doJSON("GET", path, app, nil)
		mustAPIError(t, path+" with an app token", st, v, 403, "forbidden")
	}
	// Another user's session is no session here.
	e.createUser("bobby01")
	bob := mustAdminLogin(t, e, "bobby01", "secret-pw")
	st, v := e.doJSON("GET", "/alice01/admin/user-info", bob, nil)
	mustAPIError(t, "other user's session", st, v, 401, "invalid-access-token")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v = e.doJSON("GET", "/alice01/admin/nothing-here", ses, nil)
	mustStatus(t, "unknown admin call", st, v, 404)
}

func TestUserInfoUpdateChangesEmailAndLanguageOnly(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v := e.doJSON("PUT", "/alice01/admin/user-info", ses, map[string]any{"email": "new@example.org", "language": "fr", "username": "alice01"})
	mustStatus(t, "update", st, v, 200)
	if got := v.(map[string]any)["email"]; got != "new@example.org" {
		t.Fatalf("email: got %v", got)
	}
	st, v = e.doJSON("GET", "/alice01/admin/user-info", ses, nil)
	mustStatus(t, "read back", st, v, 200)
	if got := v.(map[string]any)["language"]; got != "fr" {
		t.Fatalf("language: got %v, want fr", got)
	}
	st, v = e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("alice01", "secret-pw"))
	mustStatus(t, "login", st, v, 200)
	if got := v.(map[string]any)["preferredLanguage"]; got != "fr" {
		t.Fatalf("preferredLanguage: got %v, want fr", got)
	}
	for name, body := range map[string]map[string]any{
		"username":  {"username": "bobby01"},
		"email":     {"email": "not-an-address"},
		"language":  {"language": "FRA"},
		"password":  {"password": "other-pw"},
		"emailType": {"email": nil},
	} {
		st, v = e.doJSON("PUT", "/alice01/admin/user-info", ses, body)
		mustAPIError(t, name, st, v, 400, "invalid-parameters-format")
	}
}

func TestChangePasswordNeedsTheOldPassword(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v := e.doJSON("POST", "/alice01/admin/change-password", ses, map[string]any{"oldPassword": "wrong-pw", "newPassword": "next-secret"})
	mustAPIError(t, "wrong old password", st, v, 401, "invalid-credentials")
	st, v = e.doJSON("POST", "/alice01/admin/change-password", ses, map[string]any{"oldPassword": "secret-pw", "newPassword": "short"})
	mustAPIError(t, "short new password", st, v, 400, "invalid-parameters-format")
	if got := errDataField(v); got != "newPassword" {
		t.Fatalf("data.field: got %q, want newPassword", got)
	}
	st, v = e.doJSON("POST", "/alice01/admin/change-password", ses, map[string]any{"oldPassword": "secret-pw"})
	mustAPIError(t, "no new password", st, v, 400, "invalid-parameters-format")
	st, v = e.doJSON("POST", "/alice01/admin/change-password", ses, map[string]any{"oldPassword": "secret-pw", "newPassword": "next-secret"})
	mustStatus(t, "change", st, v, 200)
	st, v = e.doJSON("POST", "/alice01/admin/login", "", adminLoginBody("alice01", "secret-pw"))
	mustAPIError(t, "old password", st, v, 401, "invalid-credentials")
	mustAdminLogin(t, e, "alice01", "next-secret")
}

func TestChangePasswordGuessesCountTowardsTheLoginLockout(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	for i := 0; i < 5; i++ {
		st, v := e.doJSON("POST", "/alice01/admin/change-password", ses, map[string]any{"oldPassword": "guess-pw", "newPassword": "next-secret"})
		mustAPIError(t, "guess", st, v, 401, "invalid-credentials")
	}
	st, v := e.doJSON("POST", "/alice01/admin/change-password", ses, map[string]any{"oldPassword": "secret-pw", "newPassword": "next-secret"})
	mustAPIError(t, "right password during lockout", st, v, 429, "too-many-requests")
}

func bookmarkNames(t *testing.T, e *testEnv, ses string) []string {
	t.Helper()
	st, v := e.doJSON("GET", "/alice01/admin/bookmarks", ses, nil)
	mustStatus(t, "list bookmarks", st, v, 200)
	var names []string
	for _, b := range v.([]any) {
		names = append(names, b.(map[string]any)["name"].(string))
	}
	return names
}

func TestBookmarksCreateListUpdateAndDelete(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	if got := bookmarkNames(t, e, ses); len(got) != 0 {
		t.Fatalf("new account has bookmarks: %v", got)
	}
	st, v := e.doJSON("POST", "/alice01/admin/bookmarks", ses, map[string]any{"name": "Zoe's diary", "url": "https://example.org/zoe", "accessToken": "tok-1"})
	mustStatus(t, "create", st, v, 201)
	id := v.(map[string]any)["id"].(string)
	st, v = e.doJSON("POST", "/alice01/admin/bookmarks", ses, map[string]any{"name": "bob's", "url": "https://example.org/bob", "accessToken": "tok-2"})
	mustStatus(t, "create second", st, v, 201)
	if got := bookmarkNames(t, e, ses); len(got) != 2 || got[0] != "bob's" || got[1] != "Zoe's diary" {
		t.Fatalf("list: got %v, want sorted by name case-insensitively", got)
	}
	st, v = e.doJSON("PUT", "/alice01/admin/bookmarks/"+id, ses, map[string]any{"name": "Zoe", "url": "https://example.org/zoe", "id": id})
	mustStatus(t, "rename (fixed fields sent back unchanged)", st, v, 200)
	if got := v.(map[string]any)["name"]; got != "Zoe" {
		t.Fatalf("renamed: got %v", got)
	}
	st, v = e.doJSON("PUT", "/alice01/admin/bookmarks/"+id, ses, map[string]any{"url": "https://example.org/other"})
	mustAPIError(t, "change url", st, v, 400, "invalid-parameters-format")
	st, v = e.doJSON("PUT", "/alice01/admin/bookmarks/"+id, ses, map[string]any{"accessToken": "tok-9"})
	mustAPIError(t, "change accessToken", st, v, 400, "invalid-parameters-format")
	st, v = e.doJSON("DELETE", "/alice01/admin/bookmarks/"+id, ses, nil)
	mustStatus(t, "delete", st, v, 200)
	st, v = e.doJSON("DELETE", "/alice01/admin/bookmarks/"+id, ses, nil)
	mustAPIError(t, "delete again", st, v, 404, "unknown-bookmark")
	st, v = e.doJSON("PUT", "/alice01/admin/bookmarks/"+id, ses, map[string]any{"name": "X"})
	mustAPIError(t, "update deleted", st, v, 404, "unknown-bookmark")
	if got := bookmarkNames(t, e, ses); len(got) != 1 {
		t.Fatalf("after delete: %v", got)
	}
}

func TestBookmarkNamesAndUrlTokenPairsAreUnique(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	post := func(name, url, tok string) (int, any) {
		return e.doJSON("POST", "/alice01/admin/bookmarks", ses, map[string]any{"name": name, "url": url, "accessToken": tok})
	}
	st, v := post("Zoe", "https://example.org/zoe", "tok-1")
	mustStatus(t, "first", st, v, 201)
	st, v = post("zoe", "https://example.org/zoe2", "tok-2")
	mustAPIError(t, "same name, other case", st, v, 400, "item-name-already-exists")
	st, v = post("Other", "https://example.org/zoe", "tok-1")
	mustAPIError(t, "same url and token", st, v, 400, "item-name-already-exists")
	st, v = post("Other", "https://example.org/zoe", "tok-3")
	mustStatus(t, "same url, other token", st, v, 201)
	id := v.(map[string]any)["id"].(string)
	st, v = e.doJSON("PUT", "/alice01/admin/bookmarks/"+id, ses, map[string]any{"name": "ZOE"})
	mustAPIError(t, "rename onto another's name", st, v, 400, "item-name-already-exists")
}

func TestBookmarkFieldsAreValidated(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	cases := []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"url": "https://example.org/zoe", "accessToken": "t"}, "name"},
		{map[string]any{"name": "Z", "accessToken": "t"}, "url"},
		{map[string]any{"name": "Z", "url": "ftp://example.org/zoe", "accessToken": "t"}, "url"},
		{map[string]any{"name": "Z", "url": "https://example.org/zoe"}, "accessToken"},
		{map[string]any{"name": "Z", "url": "https://example.org/zoe", "accessToken": 5}, "accessToken"},
		{map[string]any{"name": "  ", "url": "https://example.org/zoe", "accessToken": "t"}, "name"},
		{map[string]any{"name": "Z", "url": "https://example.org/zoe", "accessToken": "t", "color": "red"}, "color"},
	}
	for _, tc := range cases {
		st, v := e.doJSON("POST", "/alice01/admin/bookmarks", ses, tc.body)
		mustAPIError(t, "missing or bad "+tc.field, st, v, 400, "invalid-parameters-format")
		if got := errDataField(v); got != tc.field {
			t.Fatalf("data.field: got %q, want %q", got, tc.field)
		}
	}
	if got := bookmarkNames(t, e, ses); len(got) != 0 {
		t.Fatalf("refused bookmarks were stored: %v", got)
	}
}

func TestAdminAccessesWithASession(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v := e.doJSON("POST", "/alice01/admin/accesses", ses, map[string]any{
		"name": "Doctor", "permissions": []any{map[string]any{"channelId": "diary", "level": "read"}},
	})
	mustStatus(t, "create", st, v, 201)
	tok := v.(map[string]any)["token"].(string)
	st, v = e.doJSON("GET", "/alice01/access-info", tok, nil)
	mustStatus(t, "use the new token", st, v, 200)
	if got := v.(map[string]any)["type"]; got != "shared" {
		t.Fatalf("default type: got %v, want shared", got)
	}
	list := accList(t, e, "/alice01/admin/accesses", ses)
	if _, ok := list[tok]; !ok {
		t.Fatalf("list misses the new access: %v", list)
	}
	st, v = e.doJSON("PUT", "/alice01/admin/accesses/"+tok, ses, map[string]any{"name": "Doctor Who"})
	mustStatus(t, "update", st, v, 200)
	st, v = e.doJSON("POST", "/alice01/admin/accesses", ses, map[string]any{"name": "Me", "type": "personal", "permissions": []any{}})
	mustAPIError(t, "create personal", st, v, 403, "forbidden")
	st, v = e.doJSON("DELETE", "/alice01/admin/accesses/"+tok, ses, nil)
	mustStatus(t, "delete", st, v, 200)
	st, v = e.doJSON("GET", "/alice01/access-info", tok, nil)
	mustAPIError(t, "deleted token", st, v, 401, "invalid-access-token")
}

func accCheckApp(t *testing.T, e *testEnv, ses string, body map[string]any) map[string]any {
	t.Helper()
	st, v := e.doJSON("POST", "/alice01/admin/accesses/check-app", ses, body)
	mustStatus(t, "check-app", st, v, 200)
	return v.(map[string]any)
}

func TestCheckAppFindsTheMatchingAppAccess(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	perms := []any{map[string]any{"channelId": "diary", "level": "contribute", "defaultName": "My diary"}}
	st, v := e.doJSON("POST", "/alice01/admin/accesses", ses, map[string]any{"name": "tracker", "type": "app", "deviceName": "phone", "permissions": perms})
	mustStatus(t, "create app access", st, v, 201)
	tok := v.(map[string]any)["token"].(string)
	got := accCheckApp(t, e, ses, map[string]any{"requestingAppId": "tracker", "deviceName": "phone", "requestedPermissions": perms})
	if got["matchingAccessToken"] != tok {
		t.Fatalf("check-app: got %v, want matchingAccessToken %s", got, tok)
	}
	if _, ok := got["checkedPermissions"]; ok {
		t.Fatalf("a match also answers checkedPermissions: %v", got)
	}
	// Another device has no access yet.
	got = accCheckApp(t, e, ses, map[string]any{"requestingAppId": "tracker", "deviceName": "laptop", "requestedPermissions": perms})
	if _, ok := got["matchingAccessToken"]; ok {
		t.Fatalf("other device matched: %v", got)
	}
	if _, ok := got["mismatchingAccessToken"]; ok {
		t.Fatalf("other device has a mismatching token: %v", got)
	}
}

func TestCheckAppProposesRealNamesAndTheMismatchingToken(t *testing.T) {
	e := newEnv(t)
	personal := e.createUser("alice01")
	accChannel(t, e, personal, "diary", "Diary")
	accChannel(t, e, personal, "work", "Work")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v := e.doJSON("POST", "/alice01/admin/accesses", ses, map[string]any{
		"name": "tracker", "type": "app",
		"permissions": []any{map[string]any{"channelId": "diary", "level": "read"}},
	})
	mustStatus(t, "create app access", st, v, 201)
	old := v.(map[string]any)["token"].(string)
	got := accCheckApp(t, e, ses, map[string]any{
		"requestingAppId": "tracker",
		"requestedPermissions": []any{
			map[string]any{"channelId": "diary", "level": "contribute", "defaultName": "Journal"},
			map[string]any{"channelId": "sleep", "level": "manage", "defaultName": "Sleep"},
			map[string]any{"channelId": "jobs", "level": "read", "defaultName": "work"},
		},
	})
	if got["mismatchingAccessToken"] != old {
		t.Fatalf("mismatchingAccessToken: got %v, want %s", got["mismatchingAccessToken"], old)
	}
	if _, ok := got["matchingAccessToken"]; ok {
		t.Fatalf("different permissions matched: %v", got)
	}
	checked := got["checkedPermissions"].([]any)
	names := map[string]string{}
	for _, p := range checked {
		m := p.(map[string]any)
		names[m["channelId"].(string)] = m["defaultName"].(string)
	}
	want := map[string]string{"diary": "Diary", "sleep": "Sleep", "jobs": "work (2)"}
	for k, w := range want {
		if names[k] != w {
			t.Fatalf("checkedPermissions defaultName of %s: got %q, want %q (all: %v)", k, names[k], w, checked)
		}
	}
	if errID(got["error"]) != "item-name-already-exists" {
		t.Fatalf("a taken default name should be flagged: %v", got)
	}
	// check-app only reports: nothing was created.
	st, v = e.doJSON("GET", "/alice01/channels", personal, nil)
	mustStatus(t, "channels", st, v, 200)
	if n := len(v.([]any)); n != 2 {
		t.Fatalf("check-app created channels: %v", v)
	}
}

func TestCheckAppIsRefusedToAppTokens(t *testing.T) {
	e := newEnv(t)
	e.createUser("alice01")
	app := e.storeAccess("alice01", accApp("tracker", "*", "manage"))
	st, v := e.doJSON("POST", "/alice01/admin/accesses/check-app", app, map[string]any{"requestingAppId": "x", "requestedPermissions": []any{}})
	mustAPIError(t, "app token", st, v, 403, "forbidden")
	ses := mustAdminLogin(t, e, "alice01", "secret-pw")
	st, v = e.doJSON("POST", "/alice01/admin/accesses/check-app", ses, map[string]any{"requestingAppId": "x"})
	mustAPIError(t, "no requestedPermissions", st, v, 400, "invalid-parameters-format")
}

func accSortedKeys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
