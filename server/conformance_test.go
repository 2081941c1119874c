package server_test

// Conformance tests: the behaviours of the original Pryv test suite that
// docs/CONFORMANCE.md maps to this API (stream ≈ folder, root stream ≈
// channel) and that no other test checks in full, plus the scope checks on
// every path (SPEC §2: no item outside a token's scope, and no id of one,
// ever reaches that token; §7: an unknown and a forbidden item answer the
// same).

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
)

// Behaviour 1.
func TestEventsDefaultListIsTwentyNewestNotTrashed(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "old", "Old", "")
	f.folder(cid, "old-kid", "Old kid", "old")
	var live []string
	for i := 0; i < 25; i++ {
		live = append(live, f.event(cid, map[string]any{"time": 1000 + i}))
	}
	// Newer than every live event, but trashed or in a trashed folder.
	for i := 0; i < 3; i++ {
		id := f.event(cid, map[string]any{"time": 5000 + i})
		f.must(200, "DELETE", "/"+cid+"/events/"+id, nil)
		f.event(cid, map[string]any{"time": 6000 + i, "folderId": "old"})
		f.event(cid, map[string]any{"time": 7000 + i, "folderId": "old-kid"})
	}
	f.must(200, "DELETE", "/"+cid+"/folders/old", nil)
	var want []string
	for i := 24; i >= 5; i-- {
		want = append(want, live[i])
	}
	mustIDs(t, "GET events without parameters", idsOf(f.list("/"+cid+"/events")), want)
}

// Behaviour 5: 0 is a value, not "unset".
func TestZeroIsAValueForTimesAndModifiedSince(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	before := f.event(cid, map[string]any{"time": -10})
	after := f.event(cid, map[string]any{"time": 10})
	// toTime=0 alone is the day before 0: only the event at -10.
	mustIDs(t, "toTime=0", idsOf(f.list("/"+cid+"/events?toTime=0")), []string{before})
	mustIDs(t, "fromTime=0", idsOf(f.list("/"+cid+"/events?fromTime=0")), []string{after})
	// includeDeletions needs modifiedSince: 0 counts as given.
	out := f.must(200, "GET", "/"+cid+"/events?modifiedSince=0&includeDeletions=true", nil).(map[string]any)
	mustIDSet(t, "modifiedSince=0", idsOf(asList(t, out["events"])), []string{before, after})
}

// Behaviour 8: modifiedSince sees trashing with state=all (and trashed).
func TestModifiedSinceReturnsTrashedEventsWithStateAll(t *testing.T) {
	clock := newSteppedClock()
	f := newActFixture(t, withClock(clock))
	cid := f.channel("Diary")
	trashed := f.event(cid, map[string]any{"time": 1})
	f.event(cid, map[string]any{"time": 2}) // unchanged since
	clock.Advance(10 * time.Second)
	mark := float64(clock.Now().UnixMicro()) / 1e6
	clock.Advance(10 * time.Second)
	f.must(200, "DELETE", "/"+cid+"/events/"+trashed, nil)
	fresh := f.event(cid, map[string]any{"time": 3})
	since := fmt.Sprintf("/%s/events?modifiedSince=%f", cid, mark)
	mustIDSet(t, "default state", idsOf(f.list(since)), []string{fresh})
	mustIDSet(t, "state=all", idsOf(f.list(since+"&state=all")), []string{trashed, fresh})
	mustIDSet(t, "state=trashed", idsOf(f.list(since+"&state=trashed")), []string{trashed})
}

// Behaviour 12: on create, an explicit null for an optional field means
// "absent", for channels, folders and events alike.
func TestExplicitNullForOptionalFieldsOnCreateMeansAbsent(t *testing.T) {
	f := newActFixture(t)
	ch := f.must(201, "POST", "/channels", map[string]any{"name": "Nulls", "id": nil, "clientData": nil,
		"enforceNoEventsOverlap": nil, "trashed": nil}).(map[string]any)["id"].(string)
	if ch != "nulls" {
		t.Fatalf("channel id: got %q, want the slug of the name", ch)
	}
	for _, c := range f.list("/channels") {
		if c["id"] == ch && (c["trashed"] != false || c["enforceNoEventsOverlap"] != false) {
			t.Fatalf("channel defaults: %v", c)
		}
	}
	f.must(201, "POST", "/"+ch+"/folders", map[string]any{"id": "fnull", "name": "F", "parentId": nil,
		"clientData": nil, "hidden": nil, "trashed": nil})
	mustTree(t, "default tree", f.tree("/"+ch+"/folders"), "fnull")
	id := f.event(ch, map[string]any{"id": nil, "time": nil, "tags": nil, "description": nil, "folderId": nil,
		"value": nil, "clientData": nil, "trashed": nil})
	ev := f.must(200, "GET", "/"+ch+"/events/"+id, nil).(map[string]any)
	if ev["trashed"] != false || ev["folderId"] != nil || num(ev["time"]) == 0 {
		t.Fatalf("event defaults: %v", ev)
	}
	if tags, ok := ev["tags"].([]any); !ok || len(tags) != 0 {
		t.Fatalf("tags: got %v, want []", ev["tags"])
	}
}

// Behaviour 13: a tag of 500 characters is fine, 501 is refused.
func TestEventTagsAreAtMost500Characters(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	ok := strings.Repeat("é", 500)
	id := f.event(cid, map[string]any{"tags": []any{ok}})
	ev := f.must(200, "GET", "/"+cid+"/events/"+id, nil).(map[string]any)
	if tags, _ := ev["tags"].([]any); len(tags) != 1 || tags[0] != ok {
		t.Fatalf("500-character tag not kept: %v", ev["tags"])
	}
	st, v := f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType, "tags": []any{ok + "x"}})
	f.wantErr("501 characters", st, v, 400, "invalid-parameters-format")
	st, v = f.call("PUT", "/"+cid+"/events/"+id, map[string]any{"tags": []any{ok + "x"}})
	f.wantErr("501 characters on update", st, v, 400, "invalid-parameters-format")
}

// Behaviour 14: recording into a trashed channel or folder names what is
// trashed in data.trashed.
func TestRecordingIntoATrashedChannelOrFolderSaysWhatIsTrashed(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "old", "Old", "")
	f.folder(cid, "kid", "Kid", "old")
	f.must(200, "DELETE", "/"+cid+"/folders/old", nil)
	check := func(what, path string, body any) {
		t.Helper()
		st, v := f.call("POST", path, body)
		f.wantErr(what, st, v, 400, "invalid-operation")
		if d, _ := v.(map[string]any)["data"].(map[string]any); d == nil || d["trashed"] == nil {
			t.Fatalf("%s: data.trashed missing: %v", what, v)
		}
	}
	check("event in a trashed folder", "/"+cid+"/events", map[string]any{"type": noteType, "folderId": "old"})
	check("start in a trashed folder", "/"+cid+"/events/start", map[string]any{"type": noteType, "folderId": "old"})
	check("folder under a trashed folder", "/"+cid+"/folders", map[string]any{"name": "New", "parentId": "old"})
	f.must(200, "DELETE", "/channels/"+cid, nil)
	check("event in a trashed channel", "/"+cid+"/events", map[string]any{"type": noteType})
	check("folder in a trashed channel", "/"+cid+"/folders", map[string]any{"name": "New"})
	if n := len(f.list("/" + cid + "/events?state=all")); n != 0 {
		t.Fatalf("refused creations stored %d events", n)
	}
}

// Behaviour 24: trashing bumps modified; removal takes the files along.
func TestTrashingBumpsModifiedAndRemovalDropsTheFiles(t *testing.T) {
	clock := newSteppedClock()
	f := newActFixture(t, withClock(clock))
	cid := f.channel("Diary")
	content := []byte("the only copy")
	st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type": {"class": "note", "format": "txt"}}`),
		mpPart{name: "doc", fileName: "doc.txt", body: content})
	mustStatus(t, "create", st, v, 201)
	id := v.(map[string]any)["id"].(string)
	before := f.must(200, "GET", "/"+cid+"/events/"+id, nil).(map[string]any)
	clock.Advance(3 * time.Second)
	trashed := f.must(200, "DELETE", "/"+cid+"/events/"+id, nil).(map[string]any)
	if trashed["trashed"] != true || num(trashed["modified"]) <= num(before["modified"]) {
		t.Fatalf("trash: got %v, want trashed with modified after %v", trashed, before["modified"])
	}
	if !f.srv.Store().HasFile(f.user, hexSum(content)) {
		t.Fatalf("trashing removed the file")
	}
	f.must(200, "DELETE", "/"+cid+"/events/"+id, nil)
	if f.srv.Store().HasFile(f.user, hexSum(content)) {
		t.Fatalf("the file outlived its event")
	}
	st, v = f.call("GET", "/"+cid+"/events/"+id+"/doc", nil)
	f.wantErr("attachment of a removed event", st, v, 404, "unknown-event")
}

// Behaviour 26: children sent on create are ignored.
func TestCreateFolderIgnoresChildrenInTheBody(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.must(201, "POST", "/"+cid+"/folders", map[string]any{"id": "top", "name": "Top",
		"children": []any{map[string]any{"id": "smuggled", "name": "Smuggled"}}})
	mustTree(t, "tree", f.tree("/"+cid+"/folders?state=all&includeHidden=true"), "top")
	f.folder(cid, "smuggled", "Now for real", "top")
}

// Behaviour 26 and 25 for root streams: channels.
func TestChannelIDsAndListStates(t *testing.T) {
	f := newActFixture(t)
	a := f.channel("Alpha", map[string]any{"id": "alpha"})
	f.channel("Beta", map[string]any{"id": "beta"})
	for _, bad := range []struct{ id, err string }{
		{"null", "invalid-item-id"}, {"*", "invalid-item-id"}, {"!!!", "invalid-item-id"}, {"sync", "invalid-item-id"},
		{"Alpha", "item-id-already-exists"},
	} {
		st, v := f.call("POST", "/channels", map[string]any{"id": bad.id, "name": "Other " + bad.id})
		f.wantErr("channel id "+bad.id, st, v, 400, bad.err)
	}
	f.must(200, "DELETE", "/channels/"+a, nil)
	names := func(q string) []string {
		var out []string
		for _, c := range f.list("/channels" + q) {
			out = append(out, c["id"].(string))
		}
		return out
	}
	mustIDs(t, "default", names(""), []string{"beta"})
	mustIDs(t, "trashed", names("?state=trashed"), []string{"alpha"})
	mustIDs(t, "all", names("?state=all"), []string{"alpha", "beta"})
	// Restore through an update.
	f.must(200, "PUT", "/channels/"+a, map[string]any{"trashed": false})
	mustIDs(t, "restored", names(""), []string{"alpha", "beta"})
}

// Behaviour 28 for root streams: a channel is trashed, then removed with
// its folders, events and files; its id stays reserved (SPEC §4.3).
func TestDeleteChannelTrashesThenRemovesEverythingInIt(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Doomed")
	other := f.channel("Kept")
	f.folder(cid, "f1", "F1", "")
	content := []byte("file of a doomed channel")
	st, v := f.upload("POST", "/"+cid+"/events", f.tok, eventPart(`{"type": {"class": "note", "format": "txt"}, "folderId": "f1"}`),
		mpPart{name: "doc", fileName: "doc.txt", body: content})
	mustStatus(t, "create", st, v, 201)
	ev := v.(map[string]any)["id"].(string)
	kept := f.event(other, map[string]any{})
	manage := f.token(model.Permission{ChannelID: cid, Level: "manage"})
	st, v = f.call("DELETE", "/channels/"+cid, nil, manage)
	f.wantErr("delete with a manage token", st, v, 403, "forbidden")

	out := f.must(200, "DELETE", "/channels/"+cid, nil).(map[string]any)
	if out["trashed"] != true {
		t.Fatalf("first delete: %v", out)
	}
	f.must(200, "GET", "/"+cid+"/events/"+ev, nil)
	out = f.must(200, "DELETE", "/channels/"+cid, nil).(map[string]any)
	if d, _ := out["channelDeletion"].(map[string]any); d["id"] != cid {
		t.Fatalf("second delete: %v", out)
	}
	for _, c := range f.list("/channels?state=all") {
		if c["id"] == cid {
			t.Fatalf("removed channel still listed")
		}
	}
	for _, p := range []string{"/" + cid + "/events", "/" + cid + "/folders", "/" + cid + "/events/" + ev} {
		st, v := f.call("GET", p, nil)
		f.wantErr(p, st, v, 404, "unknown-channel")
	}
	if f.srv.Store().HasFile(f.user, hexSum(content)) {
		t.Fatalf("files of the removed channel were kept")
	}
	f.must(200, "GET", "/"+other+"/events/"+kept, nil)
	st, v = f.call("POST", "/channels", map[string]any{"id": cid, "name": "Again"})
	f.wantErr("reuse the id", st, v, 400, "item-id-already-exists")
	st, v = f.call("POST", "/"+other+"/folders", map[string]any{"id": "f1", "name": "F1 again"})
	f.wantErr("reuse a removed folder id", st, v, 400, "item-id-already-exists")
}

// Permissions table: updating a channel needs manage on it.
func TestUpdatingAChannelNeedsManage(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	contrib := f.token(model.Permission{ChannelID: cid, Level: "contribute"})
	manage := f.token(model.Permission{ChannelID: cid, Level: "manage"})
	manageFolder := f.token(model.Permission{ChannelID: cid, Level: "manage",
		FolderPermissions: []model.FolderPermission{{FolderID: nil, Level: "manage"}}})
	for name, tok := range map[string]string{"contribute": contrib, "folder-restricted manage": manageFolder} {
		st, v := f.call("PUT", "/channels/"+cid, map[string]any{"name": "Renamed"}, tok)
		f.wantErr(name, st, v, 403, "forbidden")
	}
	got := f.must(200, "PUT", "/channels/"+cid, map[string]any{"name": "Renamed", "enforceNoEventsOverlap": true,
		"clientData": map[string]any{"app:k": 1}}, manage).(map[string]any)
	if got["name"] != "Renamed" || got["enforceNoEventsOverlap"] != true {
		t.Fatalf("update: %v", got)
	}
	st, v := f.call("POST", "/channels", map[string]any{"name": "New"}, manage)
	f.wantErr("create with a manage token", st, v, 403, "forbidden")
}

// Behaviour 31: moving a folder needs manage on the new parent too.
func TestManageTokenCannotMoveAFolderUnderAParentItDoesNotManage(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "top", "Top", "")
	f.folder(cid, "kid", "Kid", "top")
	f.folder(cid, "ro", "Read only", "")
	f.folder(cid, "co", "Contribute", "")
	tok := f.token(model.Permission{ChannelID: cid, Level: "read", FolderPermissions: []model.FolderPermission{
		{FolderID: ptr("top"), Level: "manage"}, {FolderID: ptr("ro"), Level: "read"}, {FolderID: ptr("co"), Level: "contribute"},
	}})
	for _, parent := range []string{"ro", "co"} {
		st, v := f.call("PUT", "/"+cid+"/folders/kid", map[string]any{"parentId": parent}, tok)
		f.wantErr("move under "+parent, st, v, 403, "forbidden")
		st, v = f.call("POST", "/"+cid+"/folders", map[string]any{"name": "New", "parentId": parent}, tok)
		f.wantErr("create under "+parent, st, v, 403, "forbidden")
	}
	mustTree(t, "unchanged", f.tree("/"+cid+"/folders"), "co,ro,top(kid)")
}

// Behaviour 32: a "*" grant covers every channel, including later ones.
func TestStarGrantSeesEveryChannelIncludingLaterOnes(t *testing.T) {
	f := newActFixture(t)
	a := f.channel("Alpha")
	inA := f.event(a, map[string]any{})
	star := f.token(model.Permission{ChannelID: "*", Level: "contribute"})
	b := f.channel("Beta") // created after the access
	inB := f.event(b, map[string]any{})
	var seen []string
	for _, c := range f.list("/channels", star) {
		seen = append(seen, c["id"].(string))
	}
	mustIDSet(t, "channels", seen, []string{a, b})
	mustIDs(t, "events of the later channel", idsOf(f.list("/"+b+"/events", star)), []string{inB})
	f.must(200, "GET", "/"+a+"/events/"+inA, nil, star)
	f.must(201, "POST", "/"+b+"/events", map[string]any{"type": noteType}, star)
	// The grant level still applies: contribute does not manage.
	st, v := f.call("POST", "/"+b+"/folders", map[string]any{"name": "X"}, star)
	f.wantErr("folder with contribute", st, v, 403, "forbidden")
	// auth= works like the header on every path.
	for _, p := range []string{"/channels", "/" + b + "/events/" + inB, "/" + b + "/folders", "/access-info"} {
		st, b, _ := f.do("GET", f.path(p)+"?auth="+url.QueryEscape(star), "", nil)
		mustStatus(t, "auth= on "+p, st, string(b), 200)
	}
}

// Behaviour 38: every answer carries API-Version and Server-Time.
func TestEveryResponseCarriesAPIVersionAndServerTime(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	version := regexp.MustCompile(`^\d+\.\d+\.\d+$`)
	reqs := []struct {
		method, path, token, body string
		status                    int
	}{
		{"GET", f.path("/channels"), f.tok, "", 200},
		{"POST", f.path("/" + cid + "/events"), f.tok, `{"type": {"class": "a", "format": "b"}}`, 201},
		{"GET", f.path("/" + cid + "/events?fromTime=0"), f.tok, "", 200},
		{"GET", f.path("/channels"), "", "", 401},
		{"GET", f.path("/channels"), "bad-token", "", 401},
		{"GET", "/nobody99/channels", f.tok, "", 404},
		{"GET", f.path("/nochannel/events"), f.tok, "", 404},
		{"GET", f.path("/" + cid + "/events?bogus=1"), f.tok, "", 400},
		{"POST", f.path("/" + cid + "/events"), f.tok, `{"type": `, 400},
		{"PATCH", f.path("/channels"), f.tok, "", 405},
		{"POST", f.path("/admin/login"), "", `{"username": "alice01", "password": "wrong-pw", "appId": "x"}`, 401},
		{"POST", "/system/users", "wrong-key", `{}`, 401},
		{"GET", "/system/nothing", "", "", 404},
		{"GET", "/healthz", "", "", 200},
		{"GET", f.path("/socket"), "", "", 401},
		{"GET", f.path("/sync"), "", "", 401},
	}
	for _, r := range reqs {
		var body []byte
		if r.body != "" {
			body = []byte(r.body)
		}
		st, b, h := f.do(r.method, r.path, r.token, body)
		what := r.method + " " + r.path
		if st != r.status {
			t.Fatalf("%s: status %d, want %d (%s)", what, st, r.status, b)
		}
		if !version.MatchString(h.Get("API-Version")) {
			t.Fatalf("%s: API-Version %q", what, h.Get("API-Version"))
		}
		ts, err := strconv.ParseFloat(h.Get("Server-Time"), 64)
		if err != nil || math.Abs(ts-float64(time.Now().UnixMilli())/1000) > 60 {
			t.Fatalf("%s: Server-Time %q is not the current time in seconds", what, h.Get("Server-Time"))
		}
	}
}

// Behaviour 38: a browser form can create (POST), update and delete.
func TestBrowserFormCreatesEventsWithAuthAndJSONFields(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	form := func(path string, vals url.Values) (int, any) {
		st, b, _ := f.do("POST", f.path(path), "", []byte(vals.Encode()), "Content-Type", "application/x-www-form-urlencoded")
		return st, decodeAnswer(t, b)
	}
	st, v := form("/"+cid+"/events", url.Values{"_auth": {f.tok}, "_json": {`{"type": {"class": "note", "format": "txt"}, "description": "from a form"}`}})
	mustStatus(t, "form POST", st, v, 201)
	id := v.(map[string]any)["id"].(string)
	if ev := f.must(200, "GET", "/"+cid+"/events/"+id, nil).(map[string]any); ev["description"] != "from a form" {
		t.Fatalf("created from a form: %v", ev)
	}
	st, v = form("/channels", url.Values{"_auth": {f.tok}, "_json": {`{"name": "Form channel"}`}})
	mustStatus(t, "form POST channel", st, v, 201)
	st, v = form("/"+cid+"/events", url.Values{"_json": {`{"type": {"class": "note", "format": "txt"}}`}})
	f.wantErr("form without _auth", st, v, 401, "invalid-access-token")
	st, v = form("/"+cid+"/events", url.Values{"_auth": {f.tok}, "_json": {`[1]`}})
	f.wantErr("form with an array", st, v, 400, "invalid-parameters-format")
}

// ---- Scope on every path -------------------------------------------------

// rawReq is a request with a raw body and content type.
type rawReq struct {
	method, path string
	body         []byte
	ctype        string
}

// send sends r with tok and returns the status and body.
func (f *actFixture) send(r rawReq, tok string) (int, []byte) {
	f.t.Helper()
	var hdr []string
	if r.ctype != "" {
		hdr = []string{"Content-Type", r.ctype}
	}
	st, b, _ := f.do(r.method, f.path(r.path), tok, r.body, hdr...)
	return st, b
}

func jsonReq(method, path, body string) rawReq {
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	return rawReq{method: method, path: path, body: b}
}

// TestOutOfScopeItemsAnswerExactlyLikeUnknownOnes sends each request twice
// through a restricted token: once naming an item that exists outside its
// scope, once naming an id that does not exist. Status and body must be
// the same (with the id itself swapped), on every path.
func TestOutOfScopeItemsAnswerExactlyLikeUnknownOnes(t *testing.T) {
	s := newScopeFixture(t)
	cid := s.cid
	for _, id := range []string{s.eWork, s.eHome} {
		st, v := s.upload("POST", "/"+cid+"/events/"+id, s.tok, mpPart{name: "doc", fileName: "doc.txt", body: []byte("doc of " + id)})
		mustStatus(t, "attach to "+id, st, v, 200)
	}
	priv := s.channel("Private", map[string]any{"id": "private"})
	s.folder(priv, "privf", "Private folder", "")
	ePriv := s.event(priv, map[string]any{"folderId": "privf"})
	// Manage below work, nothing else: home, no-folder events and the
	// private channel are out of scope.
	tok := s.token(model.Permission{ChannelID: cid, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("work"), Level: "manage"}}})
	mp, mpType := multipartBody(t, mpPart{name: "more", fileName: "more.txt", body: []byte("more")})

	type pair struct {
		name         string
		oos, unknown string // the ids swapped between the two requests
		build        func(id string) rawReq
		wantStatus   int
		wantID       string
	}
	pairs := []pair{
		{"list events of a channel", priv, "nochan", func(id string) rawReq { return jsonReq("GET", "/"+id+"/events", "") }, 404, "unknown-channel"},
		{"list folders of a channel", priv, "nochan", func(id string) rawReq { return jsonReq("GET", "/"+id+"/folders", "") }, 404, "unknown-channel"},
		{"create in a channel", priv, "nochan", func(id string) rawReq {
			return jsonReq("POST", "/"+id+"/events", `{"type": {"class": "a", "format": "b"}}`)
		}, 404, "unknown-channel"},
		{"running of a channel", priv, "nochan", func(id string) rawReq { return jsonReq("GET", "/"+id+"/events/running", "") }, 404, "unknown-channel"},
		{"update a channel", priv, "nochan", func(id string) rawReq { return jsonReq("PUT", "/channels/"+id, `{"name": "X"}`) }, 404, "unknown-channel"},
		{"delete a channel", priv, "nochan", func(id string) rawReq { return jsonReq("DELETE", "/channels/"+id, "") }, 404, "unknown-channel"},
		{"read an event", s.eHome, s.unknown, func(id string) rawReq { return jsonReq("GET", "/"+cid+"/events/"+id, "") }, 404, "unknown-event"},
		{"read an event without folder", s.eLoose, s.unknown, func(id string) rawReq { return jsonReq("GET", "/"+cid+"/events/"+id, "") }, 404, "unknown-event"},
		{"read an event of another channel", ePriv, s.unknown, func(id string) rawReq { return jsonReq("GET", "/"+cid+"/events/"+id, "") }, 404, "unknown-event"},
		{"update an event", s.eHome, s.unknown, func(id string) rawReq {
			return jsonReq("PUT", "/"+cid+"/events/"+id, `{"description": "x"}`)
		}, 404, "unknown-event"},
		{"delete an event", s.eHome, s.unknown, func(id string) rawReq { return jsonReq("DELETE", "/"+cid+"/events/"+id, "") }, 404, "unknown-event"},
		{"read an attachment", s.eHome, s.unknown, func(id string) rawReq { return jsonReq("GET", "/"+cid+"/events/"+id+"/doc", "") }, 404, "unknown-event"},
		{"delete an attachment", s.eHome, s.unknown, func(id string) rawReq { return jsonReq("DELETE", "/"+cid+"/events/"+id+"/doc", "") }, 404, "unknown-event"},
		{"add an attachment", s.eHome, s.unknown, func(id string) rawReq {
			return rawReq{method: "POST", path: "/" + cid + "/events/" + id, body: mp, ctype: mpType}
		}, 404, "unknown-event"},
		{"stop an event", s.eHome, s.unknown, func(id string) rawReq {
			return jsonReq("POST", "/"+cid+"/events/stop", `{"id": "`+id+`"}`)
		}, 400, "unknown-event"},
		{"update a folder", "home", "nofolder", func(id string) rawReq {
			return jsonReq("PUT", "/"+cid+"/folders/"+id, `{"name": "X"}`)
		}, 404, "unknown-folder"},
		{"delete a folder", "home", "nofolder", func(id string) rawReq { return jsonReq("DELETE", "/"+cid+"/folders/"+id, "") }, 404, "unknown-folder"},
		{"folder of another channel in the path", "privf", "nofolder", func(id string) rawReq {
			return jsonReq("PUT", "/"+cid+"/folders/"+id, `{"name": "X"}`)
		}, 404, "unknown-folder"},
		{"subtree of a folder", "home", "nofolder", func(id string) rawReq { return jsonReq("GET", "/"+cid+"/folders?parentId="+id, "") }, 400, "unknown-folder"},
		{"onlyFolders", "home", "nofolder", func(id string) rawReq {
			return jsonReq("GET", "/"+cid+"/events?onlyFolders=work&onlyFolders="+id, "")
		}, 400, "unknown-folder"},
		{"create an event in a folder", "home", "nofolder", func(id string) rawReq {
			return jsonReq("POST", "/"+cid+"/events", `{"type": {"class": "a", "format": "b"}, "folderId": "`+id+`"}`)
		}, 400, "unknown-folder"},
		{"start in a folder", "home", "nofolder", func(id string) rawReq {
			return jsonReq("POST", "/"+cid+"/events/start", `{"type": {"class": "a", "format": "b"}, "folderId": "`+id+`"}`)
		}, 400, "unknown-folder"},
		{"move an event to a folder", "home", "nofolder", func(id string) rawReq {
			return jsonReq("PUT", "/"+cid+"/events/"+s.eWork, `{"folderId": "`+id+`"}`)
		}, 400, "unknown-folder"},
		{"move an event to a folder of another channel", "privf", "nofolder", func(id string) rawReq {
			return jsonReq("PUT", "/"+cid+"/events/"+s.eWork, `{"folderId": "`+id+`"}`)
		}, 400, "unknown-folder"},
		{"create a folder under a parent", "home", "nofolder", func(id string) rawReq {
			return jsonReq("POST", "/"+cid+"/folders", `{"name": "New", "parentId": "`+id+`"}`)
		}, 400, "unknown-folder"},
		{"move a folder under a parent", "home", "nofolder", func(id string) rawReq {
			return jsonReq("PUT", "/"+cid+"/folders/proj", `{"parentId": "`+id+`"}`)
		}, 400, "unknown-folder"},
		{"batch item in a folder", "home", "nofolder", func(id string) rawReq {
			return jsonReq("POST", "/"+cid+"/events/batch", `[{"tempRefId": "r", "type": {"class": "a", "format": "b"}, "folderId": "`+id+`"}]`)
		}, 200, ""},
		{"move an event to a channel", priv, "nochan", func(id string) rawReq {
			return jsonReq("PUT", "/"+cid+"/events/"+s.eWork, `{"channelId": "`+id+`"}`)
		}, 400, "unknown-channel"},
	}
	for _, p := range pairs {
		stO, bO := s.send(p.build(p.oos), tok)
		stU, bU := s.send(p.build(p.unknown), tok)
		if stO != p.wantStatus || (p.wantID != "" && errID(decodeAnswer(t, bO)) != p.wantID) {
			t.Fatalf("%s: out-of-scope answer %d %s, want %d %s", p.name, stO, bO, p.wantStatus, p.wantID)
		}
		if stO != stU || !bytes.Equal(bytes.ReplaceAll(bO, []byte(p.oos), []byte("X")), bytes.ReplaceAll(bU, []byte(p.unknown), []byte("X"))) {
			t.Fatalf("%s: out of scope answers %d %s; unknown answers %d %s", p.name, stO, bO, stU, bU)
		}
	}
	// Nothing of the above changed anything.
	ev := s.must(200, "GET", "/"+cid+"/events/"+s.eHome, nil).(map[string]any)
	if ev["trashed"] == true || ev["description"] != nil || len(attachmentsOf(t, ev)) != 1 {
		t.Fatalf("a refused request changed an out-of-scope event: %v", ev)
	}
	mustTree(t, "folders", s.tree("/"+cid+"/folders"), "home,work(proj)")
}

// TestAppTokenOutsideAccessesAnswerLikeUnknownOnes: an access outside an app
// token's reach is answered as if it did not exist.
func TestAppTokenOutsideAccessesAnswerLikeUnknownOnes(t *testing.T) {
	f := newActFixture(t)
	a := f.channel("Alpha")
	b := f.channel("Beta")
	app := f.storeAccess(f.user, accApp("tracker", a, "contribute"))
	outside := f.must(201, "POST", "/accesses", map[string]any{"name": "Beta share", "permissions": []any{accPerm(b, "read")}}).(map[string]any)["token"].(string)
	unknown := strings.Repeat("z", len(outside))
	for _, r := range []struct{ method, body string }{{"PUT", `{"name": "mine"}`}, {"DELETE", ""}} {
		stO, bO := f.send(jsonReq(r.method, "/accesses/"+outside, r.body), app)
		stU, bU := f.send(jsonReq(r.method, "/accesses/"+unknown, r.body), app)
		if stO != 404 || stO != stU || !bytes.Equal(bytes.ReplaceAll(bO, []byte(outside), []byte("X")), bytes.ReplaceAll(bU, []byte(unknown), []byte("X"))) {
			t.Fatalf("%s: outside access answers %d %s; unknown answers %d %s", r.method, stO, bO, stU, bU)
		}
		if bytes.Contains(bO, []byte("Beta share")) {
			t.Fatalf("%s: the answer names the outside access: %s", r.method, bO)
		}
	}
	for _, acc := range f.list("/accesses", app) {
		if acc["token"] == outside || acc["name"] == "Beta share" {
			t.Fatalf("the app token lists an access outside its reach: %v", acc)
		}
	}
}

// TestRestrictedTokenAnswersNeverNameOutOfScopeItems runs reads, writes and
// refused writes (overlaps, stops, starts) through a folder-restricted token
// and checks that no answer carries the id, name or content of anything
// outside its scope that the request did not name itself.
func TestRestrictedTokenAnswersNeverNameOutOfScopeItems(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Public", map[string]any{"id": "pubchan", "enforceNoEventsOverlap": true})
	f.channel("Secret-Channel-Name", map[string]any{"id": "secretchan"})
	f.folder(cid, "hidtop", "Hidden-Top-Name", "")
	f.folder(cid, "visf", "Visible", "hidtop")
	f.folder(cid, "hidf", "Hidden-Folder-Name", "")
	secretEvent := func(body map[string]any) string {
		body["description"] = "hidden-description"
		body["clientData"] = map[string]any{"hidden-key": "hidden-value"}
		return f.event(cid, body)
	}
	hidPeriod := secretEvent(map[string]any{"folderId": "hidf", "time": 100, "duration": 100}) // 100–200
	hidLoose := secretEvent(map[string]any{"time": 300, "duration": 50, "tags": []any{"hidden-tag"}})
	hidRunning := secretEvent(map[string]any{"folderId": "hidf", "time": 1000, "duration": nil})
	hidGone := secretEvent(map[string]any{"folderId": "hidf", "time": 10})
	secretChanEvent := f.event("secretchan", map[string]any{"description": "hidden-description"})
	st, v := f.upload("POST", "/"+cid+"/events/"+hidPeriod, f.tok, mpPart{name: "hidden-key-file", fileName: "hidden-file.txt", body: []byte("hidden-content")})
	mustStatus(t, "attach", st, v, 200)
	visible := f.event(cid, map[string]any{"folderId": "visf", "time": 210, "duration": 10}) // 210–220
	tok := f.token(model.Permission{ChannelID: cid, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("visf"), Level: "contribute"}}})
	st, v = f.upload("POST", "/"+cid+"/events/"+visible, tok, mpPart{name: "doc", fileName: "doc.txt", body: []byte("visible")})
	mustStatus(t, "attach visible", st, v, 200)
	clockMark := float64(time.Now().UnixMilli())/1000 - 1
	f.must(200, "DELETE", "/"+cid+"/events/"+hidGone, nil)
	f.must(200, "DELETE", "/"+cid+"/events/"+hidGone, nil)
	secrets := []string{hidPeriod, hidLoose, hidRunning, hidGone, secretChanEvent, "hidtop", "hidf", "secretchan",
		"Secret-Channel-Name", "Hidden-Top-Name", "Hidden-Folder-Name", "hidden-description", "hidden-key",
		"hidden-value", "hidden-tag", "hidden-file", "hidden-content"}

	type req struct {
		method, path, body string
		status             int
	}
	vf := `"folderId": "visf"`
	reqs := []req{
		{"GET", "/channels?state=all", "", 200},
		{"GET", "/access-info", "", 200},
		{"GET", "/" + cid + "/folders?state=all&includeHidden=true", "", 200},
		{"GET", "/" + cid + "/events?fromTime=-1e9&state=all", "", 200},
		{"GET", "/" + cid + "/events", "", 200},
		{"GET", "/" + cid + "/events/running", "", 200},
		{"GET", fmt.Sprintf("/%s/events?modifiedSince=%f&includeDeletions=true&state=all", cid, clockMark), "", 200},
		{"GET", "/" + cid + "/events/" + visible, "", 200},
		{"GET", "/" + cid + "/events/" + visible + "/doc", "", 200},
		// A period overlapping a visible and a hidden one.
		{"POST", "/" + cid + "/events", `{"type": {"class": "a", "format": "b"}, ` + vf + `, "time": 190, "duration": 25}`, 400},
		// Overlapping only hidden periods.
		{"POST", "/" + cid + "/events", `{"type": {"class": "a", "format": "b"}, ` + vf + `, "time": 290, "duration": 100}`, 400},
		{"PUT", "/" + cid + "/events/" + visible, `{"duration": 500}`, 400},
		{"PUT", "/" + cid + "/events/" + visible, `{"time": 320}`, 400},
		// Starting while a hidden period runs; a running period before it.
		{"POST", "/" + cid + "/events/start", `{"type": {"class": "a", "format": "b"}, ` + vf + `, "time": 2000}`, 400},
		{"POST", "/" + cid + "/events/start", `{"type": {"class": "a", "format": "b"}, ` + vf + `, "time": 500}`, 400},
		{"PUT", "/" + cid + "/events/" + visible, `{"duration": null}`, 400},
		{"POST", "/" + cid + "/events/stop", `{}`, 400},
		{"POST", "/" + cid + "/events/stop", `{"id": "` + visible + `"}`, 400},
		{"POST", "/" + cid + "/events/batch", `[{"tempRefId": "a", "type": {"class": "a", "format": "b"}, ` + vf + `, "time": 150, "duration": 100},
			{"tempRefId": "b", "type": {"class": "a", "format": "b"}, ` + vf + `, "time": 3000, "duration": null},
			{"tempRefId": "c", "type": {"class": "a", "format": "b"}, "time": 5}]`, 200},
		{"POST", "/" + cid + "/folders", `{"name": "Visible", "parentId": "visf"}`, 403},
		{"PUT", "/" + cid + "/folders/visf", `{"name": "Renamed"}`, 403},
		{"DELETE", "/" + cid + "/folders/visf", "", 403},
		{"PUT", "/channels/" + cid, `{"name": "Renamed"}`, 403},
		{"DELETE", "/channels/" + cid, "", 403},
		{"GET", "/accesses", "", 403},
		{"POST", "/" + cid + "/events", `{"type": {"class": "a", "format": "b"}}`, 403},
	}
	for _, r := range reqs {
		st, b := f.send(jsonReq(r.method, r.path, r.body), tok)
		if st != r.status {
			t.Fatalf("%s %s: status %d, want %d (%s)", r.method, r.path, st, r.status, b)
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("%s %s %s: the answer carries %q, which is outside the scope: %s", r.method, r.path, r.body, s, b)
			}
		}
	}
	// The overlap answer lists the visible period it overlaps, and only it.
	st, v = f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType, "folderId": "visf", "time": 190, "duration": 25}, tok)
	f.wantErr("overlap", st, v, 400, "periods-overlap")
	if ids := v.(map[string]any)["data"].(map[string]any)["overlappedIds"]; fmt.Sprint(ids) != fmt.Sprint([]any{visible}) {
		t.Fatalf("overlappedIds: got %v, want [%s]", ids, visible)
	}
	// The hidden running period is still running: a refused start stopped nothing.
	if ev := f.must(200, "GET", "/"+cid+"/events/"+hidRunning, nil).(map[string]any); ev["duration"] != nil {
		t.Fatalf("a restricted token's start stopped a hidden period: %v", ev)
	}
}
