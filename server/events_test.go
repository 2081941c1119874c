package server_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
)

// actFixture is one account with a personal token, for the activity-data
// tests (events, folders, attachments).
type actFixture struct {
	*testEnv
	t    *testing.T
	user string
	tok  string
}

func newActFixture(t *testing.T, cfg ...func(*server.Config)) *actFixture {
	t.Helper()
	e := newEnv(t, cfg...)
	return &actFixture{testEnv: e, t: t, user: "alice01", tok: e.createUser("alice01")}
}

func (f *actFixture) path(p string) string { return "/" + f.user + p }

// call sends v as JSON with the personal token unless tok is given.
func (f *actFixture) call(method, p string, v any, tok ...string) (int, any) {
	f.t.Helper()
	t := f.tok
	if len(tok) > 0 {
		t = tok[0]
	}
	return f.doJSON(method, f.path(p), t, v)
}

// must sends a request and fails unless it answers want.
func (f *actFixture) must(want int, method, p string, v any, tok ...string) any {
	f.t.Helper()
	st, out := f.call(method, p, v, tok...)
	mustStatus(f.t, method+" "+p, st, out, want)
	return out
}

// wantErr fails unless the answer is the error id with the status.
func (f *actFixture) wantErr(what string, st int, v any, status int, id string) {
	f.t.Helper()
	if st != status || errID(v) != id {
		f.t.Fatalf("%s: got %d %q, want %d %q; answer %v", what, st, errID(v), status, id, v)
	}
}

// channel creates a channel (id = slug of name unless extra sets one).
func (f *actFixture) channel(name string, extra ...map[string]any) string {
	f.t.Helper()
	body := map[string]any{"name": name}
	for _, m := range extra {
		for k, v := range m {
			body[k] = v
		}
	}
	out := f.must(201, "POST", "/channels", body)
	return out.(map[string]any)["id"].(string)
}

// folder creates a folder with a client id; parent "" is the root.
func (f *actFixture) folder(cid, id, name, parent string) string {
	f.t.Helper()
	body := map[string]any{"id": id, "name": name}
	if parent != "" {
		body["parentId"] = parent
	}
	out := f.must(201, "POST", "/"+cid+"/folders", body)
	return out.(map[string]any)["id"].(string)
}

// event creates an event; body gets a default type.
func (f *actFixture) event(cid string, body map[string]any) string {
	f.t.Helper()
	if _, ok := body["type"]; !ok {
		body["type"] = map[string]any{"class": "note", "format": "txt"}
	}
	out := f.must(201, "POST", "/"+cid+"/events", body)
	return out.(map[string]any)["id"].(string)
}

// list reads events and returns them.
func (f *actFixture) list(p string, tok ...string) []map[string]any {
	f.t.Helper()
	return asList(f.t, f.must(200, "GET", p, nil, tok...))
}

func asList(t *testing.T, v any) []map[string]any {
	t.Helper()
	arr, ok := v.([]any)
	if !ok {
		t.Fatalf("answer is not an array: %v", v)
	}
	out := make([]map[string]any, len(arr))
	for i, x := range arr {
		out[i] = x.(map[string]any)
	}
	return out
}

func idsOf(list []map[string]any) []string {
	out := make([]string, len(list))
	for i, m := range list {
		out[i], _ = m["id"].(string)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return reflect.DeepEqual(a, b)
}

func mustIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func mustIDSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !sameSet(got, want) {
		t.Fatalf("%s: got %v, want %v (any order)", what, got, want)
	}
}

// token stores a shared access with the permissions.
func (f *actFixture) token(perms ...model.Permission) string {
	f.t.Helper()
	return f.storeAccess(f.user, &model.Access{Type: model.AccessShared, Name: fmt.Sprintf("shared-%d", time.Now().UnixNano()), Permissions: perms})
}

func ptr[T any](v T) *T { return &v }

// cuid builds a valid client event id from a short tag.
func cuid(tag string) string {
	s := "c" + tag + strings.Repeat("0", 24)
	return s[:25]
}

// decodeAnswer decodes a JSON answer body.
func decodeAnswer(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer is not JSON: %s", b)
	}
	return v
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

var noteType = map[string]any{"class": "note", "format": "txt"}

func TestCreateEventFillsDefaultsAndIgnoresServerFields(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	before := float64(time.Now().Unix()) - 1
	id := f.event(cid, map[string]any{"type": noteType, "tags": []any{" a ", "", "a", "b"},
		"modified": 5, "created": 5, "createdBy": "x", "value": 42})
	if !model.IsCuid(id) {
		t.Fatalf("id %q is not in cuid form", id)
	}
	ev := f.must(200, "GET", "/"+cid+"/events/"+id, nil).(map[string]any)
	if tm := num(ev["time"]); tm < before || tm > before+60 {
		t.Fatalf("time: got %v, want about now", tm)
	}
	if got, want := ev["tags"], []any{"a", "b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tags: got %v, want %v", got, want)
	}
	if v, ok := ev["folderId"]; !ok || v != nil {
		t.Fatalf("folderId: got %v (present %v), want null", v, ok)
	}
	if num(ev["modified"]) < before || num(ev["created"]) < before || ev["createdBy"] == "x" {
		t.Fatalf("server-managed fields taken from the client: %v", ev)
	}
	if got, want := ev["channelId"], cid; got != want {
		t.Fatalf("channelId: got %v, want %v", got, want)
	}
	// No tags at all reads as [].
	id2 := f.event(cid, map[string]any{"description": nil, "folderId": nil, "time": nil})
	ev = f.must(200, "GET", "/"+cid+"/events/"+id2, nil).(map[string]any)
	if tags, ok := ev["tags"].([]any); !ok || len(tags) != 0 {
		t.Fatalf("tags: got %v, want []", ev["tags"])
	}
}

func TestCreateEventRefusesBadInput(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	other := f.channel("Other")
	f.folder(other, "elsewhere", "Elsewhere", "")
	f.folder(cid, "old", "Old", "")
	f.must(200, "DELETE", "/"+cid+"/folders/old", nil)
	trashedCh := f.channel("Bin")
	f.must(200, "DELETE", "/channels/"+trashedCh, nil)
	long := strings.Repeat("x", 501)
	cases := []struct {
		name   string
		path   string
		body   string
		status int
		id     string
	}{
		{"missing type", "/" + cid + "/events", `{"time": 1}`, 400, "invalid-parameters-format"},
		{"bad type class", "/" + cid + "/events", `{"type": {"class": "A B", "format": "x"}}`, 400, "invalid-parameters-format"},
		{"type not an object", "/" + cid + "/events", `{"type": "note/txt"}`, 400, "invalid-parameters-format"},
		{"tag too long", "/" + cid + "/events", `{"type": {"class":"a","format":"b"}, "tags": ["` + long + `"]}`, 400, "invalid-parameters-format"},
		{"time not a number", "/" + cid + "/events", `{"type": {"class":"a","format":"b"}, "time": "soon"}`, 400, "invalid-parameters-format"},
		{"negative duration", "/" + cid + "/events", `{"type": {"class":"a","format":"b"}, "duration": -1}`, 400, "invalid-parameters-format"},
		{"unknown field", "/" + cid + "/events", `{"type": {"class":"a","format":"b"}, "colour": 1}`, 400, "invalid-parameters-format"},
		{"array body", "/" + cid + "/events", `[{"type": {"class":"a","format":"b"}}]`, 400, "invalid-parameters-format"},
		{"malformed JSON", "/" + cid + "/events", `{"type": `, 400, "invalid-request-structure"},
		{"trailing garbage", "/" + cid + "/events", `{"type": {"class":"a","format":"b"}} x`, 400, "invalid-request-structure"},
		{"malformed client id", "/" + cid + "/events", `{"id": "my-event", "type": {"class":"a","format":"b"}}`, 400, "invalid-item-id"},
		{"client id not a string", "/" + cid + "/events", `{"id": 7, "type": {"class":"a","format":"b"}}`, 400, "invalid-parameters-format"},
		{"other channel in body", "/" + cid + "/events", `{"channelId": "` + other + `", "type": {"class":"a","format":"b"}}`, 400, "invalid-parameters-format"},
		{"unknown folder", "/" + cid + "/events", `{"folderId": "nope", "type": {"class":"a","format":"b"}}`, 400, "unknown-folder"},
		{"folder of another channel", "/" + cid + "/events", `{"folderId": "elsewhere", "type": {"class":"a","format":"b"}}`, 400, "unknown-folder"},
		{"trashed folder", "/" + cid + "/events", `{"folderId": "old", "type": {"class":"a","format":"b"}}`, 400, "invalid-operation"},
		{"trashed channel", "/" + trashedCh + "/events", `{"type": {"class":"a","format":"b"}}`, 400, "invalid-operation"},
		{"unknown channel", "/nochannel/events", `{"type": {"class":"a","format":"b"}}`, 404, "unknown-channel"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, b, _ := f.do("POST", f.path(tc.path), f.tok, []byte(tc.body))
			v := decodeAnswer(t, b)
			f.wantErr(tc.name, st, v, tc.status, tc.id)
		})
	}
	if n := len(f.list("/" + cid + "/events?state=all")); n != 0 {
		t.Fatalf("refused creations stored %d events", n)
	}
}

func TestTrashedErrorNamesWhatIsTrashed(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "old", "Old", "")
	f.must(200, "DELETE", "/"+cid+"/folders/old", nil)
	st, v := f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType, "folderId": "old"})
	f.wantErr("trashed folder", st, v, 400, "invalid-operation")
	if d, _ := v.(map[string]any)["data"].(map[string]any); d == nil || d["trashed"] == nil {
		t.Fatalf("data.trashed missing: %v", v)
	}
}

func TestClientEventIDIsReservedForever(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	id := cuid("abc")
	if got := f.event(cid, map[string]any{"id": id}); got != id {
		t.Fatalf("id: got %q, want %q", got, id)
	}
	st, v := f.call("POST", "/"+cid+"/events", map[string]any{"id": id, "type": noteType})
	f.wantErr("duplicate id", st, v, 400, "item-id-already-exists")
	f.must(200, "DELETE", "/"+cid+"/events/"+id, nil)
	f.must(200, "DELETE", "/"+cid+"/events/"+id, nil)
	st, v = f.call("POST", "/"+cid+"/events", map[string]any{"id": id, "type": noteType})
	f.wantErr("id of a deleted event", st, v, 400, "item-id-already-exists")
}

func TestListEventsNewestFirstWithDefaultLimit(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	var ids []string
	for i := 0; i < 25; i++ {
		ids = append(ids, f.event(cid, map[string]any{"time": 1000 + i}))
	}
	got := idsOf(f.list("/" + cid + "/events"))
	var want []string
	for i := 24; i >= 5; i-- {
		want = append(want, ids[i])
	}
	mustIDs(t, "default list", got, want)
	got = idsOf(f.list("/" + cid + "/events?sortAscending=true&limit=3&skip=2"))
	mustIDs(t, "ascending page", got, ids[2:5])
	got = idsOf(f.list("/" + cid + "/events?skip=23&limit=5"))
	mustIDs(t, "last page", got, []string{ids[1], ids[0]})
	// A time bound lifts the default limit.
	if n := len(f.list("/" + cid + "/events?fromTime=0")); n != 25 {
		t.Fatalf("with fromTime: got %d events, want 25", n)
	}
}

func TestListEventsUsesOverlapForTimeWindows(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	startedBefore := f.event(cid, map[string]any{"time": 900, "duration": 200}) // 900–1100
	endedBefore := f.event(cid, map[string]any{"time": 800, "duration": 100})   // 800–900
	inside := f.event(cid, map[string]any{"time": 1500})                        // mark
	running := f.event(cid, map[string]any{"time": 500, "duration": nil})       // 500–∞
	after := f.event(cid, map[string]any{"time": 2500})                         // mark
	touching := f.event(cid, map[string]any{"time": 2000})                      // on the bound
	got := idsOf(f.list("/" + cid + "/events?fromTime=1000&toTime=2000&sortAscending=true"))
	mustIDs(t, "window", got, []string{running, startedBefore, inside, touching})
	_ = endedBefore
	_ = after
	// Only toTime: the 24 hours before it.
	day := 24 * 3600.0
	old := f.event(cid, map[string]any{"time": 100000 - day - 10})
	recent := f.event(cid, map[string]any{"time": 100000 - day + 10})
	got = idsOf(f.list("/" + cid + "/events?toTime=100000"))
	mustIDSet(t, "toTime only", got, []string{recent, running})
	_ = old
	// Zero is a value.
	zero := f.event(cid, map[string]any{"time": 0})
	got = idsOf(f.list("/" + cid + "/events?fromTime=0&toTime=0"))
	mustIDs(t, "fromTime=0&toTime=0", got, []string{zero})
}

func TestListEventsOnlyFoldersIncludesDescendants(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "work", "Work", "")
	f.folder(cid, "proj", "Project", "work")
	f.folder(cid, "home", "Home", "")
	inWork := f.event(cid, map[string]any{"folderId": "work", "time": 1})
	inProj := f.event(cid, map[string]any{"folderId": "proj", "time": 2})
	inHome := f.event(cid, map[string]any{"folderId": "home", "time": 3})
	loose := f.event(cid, map[string]any{"time": 4})
	for _, q := range []string{"onlyFolders=work", "onlyFolders[]=work"} {
		mustIDSet(t, q, idsOf(f.list("/"+cid+"/events?"+q)), []string{inWork, inProj})
	}
	mustIDSet(t, "repeated keys", idsOf(f.list("/"+cid+"/events?onlyFolders=proj&onlyFolders=home")), []string{inProj, inHome})
	mustIDSet(t, "mixed forms", idsOf(f.list("/"+cid+"/events?onlyFolders=proj&onlyFolders[]=null")), []string{inProj, loose})
	st, v := f.call("GET", "/"+cid+"/events?onlyFolders=work&onlyFolders=nope&onlyFolders=zzz", nil)
	f.wantErr("unknown folder", st, v, 400, "unknown-folder")
	data, _ := v.(map[string]any)["data"].(map[string]any)
	if got, want := data["unknownIds"], []any{"nope", "zzz"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("unknownIds: got %v, want %v", got, want)
	}
}

func TestListEventsTagsKeepsEventsWithAllOfThem(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	both := f.event(cid, map[string]any{"tags": []any{"a", "b", "c"}, "time": 1})
	f.event(cid, map[string]any{"tags": []any{"a"}, "time": 2})
	f.event(cid, map[string]any{"tags": []any{"b"}, "time": 3})
	mustIDs(t, "tags a and b", idsOf(f.list("/"+cid+"/events?tags=a&tags[]=b")), []string{both})
}

func TestListEventsStateHidesTrashedEventsFoldersAndChannels(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	f.folder(cid, "top", "Top", "")
	f.folder(cid, "sub", "Sub", "top")
	f.folder(cid, "keep", "Keep", "")
	live := f.event(cid, map[string]any{"time": 1, "folderId": "keep"})
	trashedEv := f.event(cid, map[string]any{"time": 2})
	inSub := f.event(cid, map[string]any{"time": 3, "folderId": "sub"})
	inTop := f.event(cid, map[string]any{"time": 4, "folderId": "top"})
	f.must(200, "DELETE", "/"+cid+"/events/"+trashedEv, nil)
	f.must(200, "DELETE", "/"+cid+"/folders/top", nil)
	base := "/" + cid + "/events?fromTime=0"
	mustIDSet(t, "default", idsOf(f.list(base)), []string{live})
	mustIDSet(t, "trashed", idsOf(f.list(base+"&state=trashed")), []string{trashedEv, inSub, inTop})
	mustIDSet(t, "all", idsOf(f.list(base+"&state=all")), []string{live, trashedEv, inSub, inTop})
	f.must(200, "DELETE", "/channels/"+cid, nil)
	mustIDSet(t, "default in trashed channel", idsOf(f.list(base)), nil)
	mustIDSet(t, "trashed in trashed channel", idsOf(f.list(base+"&state=trashed")), []string{live, trashedEv, inSub, inTop})
}

func TestListEventsModifiedSinceAndDeletions(t *testing.T) {
	clock := newSteppedClock()
	f := newActFixture(t, withClock(clock))
	cid := f.channel("Diary")
	old := f.event(cid, map[string]any{"time": 1})
	gone := f.event(cid, map[string]any{"time": 2})
	clock.Advance(10 * time.Second)
	mark := float64(clock.Now().UnixMicro()) / 1e6
	clock.Advance(10 * time.Second)
	fresh := f.event(cid, map[string]any{"time": 3})
	f.must(200, "DELETE", "/"+cid+"/events/"+gone, nil)
	f.must(200, "DELETE", "/"+cid+"/events/"+gone, nil)
	since := fmt.Sprintf("/%s/events?modifiedSince=%f", cid, mark)
	mustIDSet(t, "modifiedSince", idsOf(f.list(since)), []string{fresh})
	mustIDSet(t, "modifiedSince=0", idsOf(f.list("/"+cid+"/events?modifiedSince=0")), []string{old, fresh})
	out := f.must(200, "GET", since+"&includeDeletions=true", nil).(map[string]any)
	mustIDSet(t, "events with deletions", idsOf(asList(t, out["events"])), []string{fresh})
	dels := asList(t, out["eventDeletions"])
	if len(dels) != 1 || dels[0]["id"] != gone || num(dels[0]["deleted"]) <= mark {
		t.Fatalf("eventDeletions: got %v, want [{%s, >%f}]", dels, gone, mark)
	}
	// A token that does not see the whole channel is told of no deletion:
	// it could not tell whether the event was ever in its scope.
	tagTok := f.token(model.Permission{ChannelID: cid, Level: "read", Tags: []string{"x"}})
	out = f.must(200, "GET", since+"&includeDeletions=true", nil, tagTok).(map[string]any)
	if d := asList(t, out["eventDeletions"]); len(d) != 0 {
		t.Fatalf("filtered token got deletions %v", d)
	}
	st, v := f.call("GET", "/"+cid+"/events?includeDeletions=true", nil)
	f.wantErr("includeDeletions without modifiedSince", st, v, 400, "invalid-parameters-format")
}

func TestListEventsRefusesBadParameters(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	for _, q := range []string{
		"withDeletions=true", "fromTime=soon", "fromTime=NaN", "toTime=Inf", "limit=0", "limit=-3",
		"skip=-1", "skip=1.5", "state=gone", "sortAscending=maybe", "fromTime=1&fromTime=2",
		"fromTime[]=1", "includeDeletions=yes&modifiedSince=0",
	} {
		st, v := f.call("GET", "/"+cid+"/events?"+q, nil)
		f.wantErr(q, st, v, 400, "invalid-parameters-format")
	}
	st, v := f.call("GET", "/"+cid+"/events?zeta=1&limit=2&alpha=3", nil)
	f.wantErr("two unknown parameters", st, v, 400, "invalid-parameters-format")
	data, _ := v.(map[string]any)["data"].(map[string]any)
	if got, want := data["fields"], []any{"alpha", "zeta"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("data.fields: got %v, want %v", got, want)
	}
}

func TestEventCallsNeedAValidToken(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	id := f.event(cid, map[string]any{})
	for _, tok := range []string{"", "not-a-token"} {
		for _, p := range []string{"/" + cid + "/events", "/" + cid + "/events/" + id, "/" + cid + "/folders"} {
			st, v := f.doJSON("GET", f.path(p), tok, nil)
			f.wantErr("GET "+p+" with token "+tok, st, v, 401, "invalid-access-token")
		}
	}
	// The auth query parameter works like the header.
	st, b, _ := f.do("GET", f.path("/"+cid+"/events?auth="+url.QueryEscape(f.tok)), "", nil)
	mustStatus(t, "auth query", st, string(b), 200)
}

func TestUpdateEventChangesFieldsAndMergesClientData(t *testing.T) {
	clock := newSteppedClock()
	f := newActFixture(t, withClock(clock))
	cid := f.channel("Diary")
	f.folder(cid, "work", "Work", "")
	id := f.event(cid, map[string]any{"tags": []any{"a", "b"}, "clientData": map[string]any{"k1": 1, "k2": 2}, "time": 10})
	before := f.must(200, "GET", "/"+cid+"/events/"+id, nil).(map[string]any)
	clock.Advance(2 * time.Second)
	ev := f.must(200, "PUT", "/"+cid+"/events/"+id, map[string]any{
		"description": "hello", "tags": []any{"c"}, "folderId": "work", "value": map[string]any{"x": 1},
		"clientData": map[string]any{"k1": nil, "k3": 3},
		// Read-only fields sent back unchanged are fine.
		"id": id, "created": before["created"],
	}).(map[string]any)
	if ev["description"] != "hello" || ev["folderId"] != "work" || !reflect.DeepEqual(ev["tags"], []any{"c"}) {
		t.Fatalf("update not applied: %v", ev)
	}
	if got, want := ev["clientData"], map[string]any{"k2": 2.0, "k3": 3.0}; !reflect.DeepEqual(got, want) {
		t.Fatalf("clientData: got %v, want %v", got, want)
	}
	if num(ev["modified"]) <= num(before["modified"]) {
		t.Fatalf("modified not bumped: %v then %v", before["modified"], ev["modified"])
	}
	cases := []struct {
		name   string
		path   string
		body   map[string]any
		status int
		id     string
	}{
		{"changed id", "/" + cid + "/events/" + id, map[string]any{"id": cuid("zz")}, 400, "invalid-parameters-format"},
		{"attachments", "/" + cid + "/events/" + id, map[string]any{"attachments": map[string]any{"f": map[string]any{}}}, 400, "invalid-parameters-format"},
		{"modified", "/" + cid + "/events/" + id, map[string]any{"modified": 1}, 400, "invalid-parameters-format"},
		{"unknown folder", "/" + cid + "/events/" + id, map[string]any{"folderId": "nope"}, 400, "unknown-folder"},
		{"unknown channel", "/" + cid + "/events/" + id, map[string]any{"channelId": "nope"}, 400, "unknown-channel"},
		{"unknown event", "/" + cid + "/events/" + cuid("nope"), map[string]any{"description": "x"}, 404, "unknown-event"},
		{"event of another channel", "/nochan/events/" + id, map[string]any{"description": "x"}, 404, "unknown-channel"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, v := f.call("PUT", tc.path, tc.body)
			f.wantErr(tc.name, st, v, tc.status, tc.id)
		})
	}
}

func TestMoveEventToAnotherChannel(t *testing.T) {
	f := newActFixture(t)
	a, b := f.channel("A"), f.channel("B")
	id := f.event(a, map[string]any{"time": 1})
	ev := f.must(200, "PUT", "/"+a+"/events/"+id, map[string]any{"channelId": b}).(map[string]any)
	if ev["channelId"] != b {
		t.Fatalf("channelId: got %v, want %v", ev["channelId"], b)
	}
	st, v := f.call("GET", "/"+a+"/events/"+id, nil)
	f.wantErr("old channel path", st, v, 404, "unknown-event")
	f.must(200, "GET", "/"+b+"/events/"+id, nil)
	// Moving needs contribute on both channels.
	tok := f.token(model.Permission{ChannelID: b, Level: "contribute"}, model.Permission{ChannelID: a, Level: "read"})
	st, v = f.call("PUT", "/"+b+"/events/"+id, map[string]any{"channelId": a}, tok)
	f.wantErr("move into a read-only channel", st, v, 403, "forbidden")
}

func TestDeleteEventTrashesThenRemoves(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	id := f.event(cid, map[string]any{"time": 1})
	ev := f.must(200, "DELETE", "/"+cid+"/events/"+id, nil).(map[string]any)
	if ev["trashed"] != true {
		t.Fatalf("first delete: trashed = %v", ev["trashed"])
	}
	f.must(200, "GET", "/"+cid+"/events/"+id, nil)
	// Restore, trash again, then remove.
	f.must(200, "PUT", "/"+cid+"/events/"+id, map[string]any{"trashed": false})
	f.must(200, "DELETE", "/"+cid+"/events/"+id, nil)
	out := f.must(200, "DELETE", "/"+cid+"/events/"+id, nil).(map[string]any)
	if d, _ := out["eventDeletion"].(map[string]any); d["id"] != id {
		t.Fatalf("second delete: got %v", out)
	}
	st, v := f.call("GET", "/"+cid+"/events/"+id, nil)
	f.wantErr("removed event", st, v, 404, "unknown-event")
	st, v = f.call("DELETE", "/"+cid+"/events/"+id, nil)
	f.wantErr("third delete", st, v, 404, "unknown-event")
	if n := len(f.list("/" + cid + "/events?state=all")); n != 0 {
		t.Fatalf("removed event still listed (%d)", n)
	}
}

func TestRunningListsOnlyRunningPeriods(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	r1 := f.event(cid, map[string]any{"time": 10, "duration": nil})
	f.event(cid, map[string]any{"time": 20, "duration": 5})
	f.event(cid, map[string]any{"time": 30})
	r2 := f.event(cid, map[string]any{"time": 40, "duration": nil})
	mustIDs(t, "running", idsOf(f.list("/"+cid+"/events/running")), []string{r2, r1})
	st, v := f.call("GET", "/"+cid+"/events/running?limit=1", nil)
	f.wantErr("unknown parameter", st, v, 400, "invalid-parameters-format")
}

func TestNoOverlapChannelStopsRunningPeriodOnStart(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Work", map[string]any{"enforceNoEventsOverlap": true})
	first := f.must(201, "POST", "/"+cid+"/events/start", map[string]any{"type": noteType, "time": 100}).(map[string]any)
	if _, ok := first["stoppedId"]; ok {
		t.Fatalf("first start stopped something: %v", first)
	}
	// A mark never stops anything.
	mark := f.must(201, "POST", "/"+cid+"/events", map[string]any{"type": noteType, "time": 150}).(map[string]any)
	if _, ok := mark["stoppedId"]; ok {
		t.Fatalf("a mark stopped a period: %v", mark)
	}
	second := f.must(201, "POST", "/"+cid+"/events/start", map[string]any{"type": noteType, "time": 200}).(map[string]any)
	if second["stoppedId"] != first["id"] {
		t.Fatalf("stoppedId: got %v, want %v", second["stoppedId"], first["id"])
	}
	ev := f.must(200, "GET", "/"+cid+"/events/"+first["id"].(string), nil).(map[string]any)
	if num(ev["duration"]) != 100 {
		t.Fatalf("stopped duration: got %v, want 100", ev["duration"])
	}
	// Creating a running period (duration null) starts it the same way.
	third := f.must(201, "POST", "/"+cid+"/events", map[string]any{"type": noteType, "time": 300, "duration": nil}).(map[string]any)
	if third["stoppedId"] != second["id"] {
		t.Fatalf("create running: stoppedId %v, want %v", third["stoppedId"], second["id"])
	}
	// A running period cannot start before a later period.
	st, v := f.call("POST", "/"+cid+"/events/start", map[string]any{"type": noteType, "time": 250})
	f.wantErr("start before a later period", st, v, 400, "invalid-operation")
	mustIDs(t, "running", idsOf(f.list("/"+cid+"/events/running")), []string{third["id"].(string)})
}

func TestNoOverlapChannelRefusesOverlappingPeriods(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Work", map[string]any{"enforceNoEventsOverlap": true})
	a := f.event(cid, map[string]any{"time": 100, "duration": 100}) // 100–200
	b := f.event(cid, map[string]any{"time": 300, "duration": 100}) // 300–400
	f.event(cid, map[string]any{"time": 200, "duration": 100})      // touches both: fine
	f.event(cid, map[string]any{"time": 150})                       // a mark: fine
	st, v := f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType, "time": 50, "duration": 400})
	f.wantErr("overlap", st, v, 400, "periods-overlap")
	data, _ := v.(map[string]any)["data"].(map[string]any)
	ids, _ := data["overlappedIds"].([]any)
	got := map[string]bool{}
	for _, x := range ids {
		got[x.(string)] = true
	}
	if !got[a] || !got[b] || len(ids) != 3 {
		t.Fatalf("overlappedIds: got %v, want a, b and the touching one", ids)
	}
	// An update that would overlap is refused too.
	st, v = f.call("PUT", "/"+cid+"/events/"+a, map[string]any{"duration": 250})
	f.wantErr("update overlap", st, v, 400, "periods-overlap")
	// Making a period running while later periods exist is refused.
	st, v = f.call("PUT", "/"+cid+"/events/"+a, map[string]any{"duration": nil})
	f.wantErr("update to running", st, v, 400, "invalid-operation")
	// Editing other fields of a period is not an overlap check.
	f.must(200, "PUT", "/"+cid+"/events/"+a, map[string]any{"description": "fine"})
}

func TestTolerantChannelAllowsOverlapsAndStopsNothing(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Free")
	f.event(cid, map[string]any{"time": 100, "duration": 100})
	f.event(cid, map[string]any{"time": 150, "duration": 100})
	r1 := f.must(201, "POST", "/"+cid+"/events/start", map[string]any{"type": noteType, "time": 300}).(map[string]any)
	r2 := f.must(201, "POST", "/"+cid+"/events/start", map[string]any{"type": noteType, "time": 400}).(map[string]any)
	if _, ok := r2["stoppedId"]; ok {
		t.Fatalf("tolerant channel stopped %v", r2["stoppedId"])
	}
	mustIDs(t, "running", idsOf(f.list("/"+cid+"/events/running")), []string{r2["id"].(string), r1["id"].(string)})
}

func TestStopEndsARunningPeriod(t *testing.T) {
	f := newActFixture(t)
	free := f.channel("Free")
	strict := f.channel("Strict", map[string]any{"enforceNoEventsOverlap": true})
	run := f.event(free, map[string]any{"time": 100, "duration": nil})
	mark := f.event(free, map[string]any{"time": 100})
	out := f.must(200, "POST", "/"+free+"/events/stop", map[string]any{"id": run, "time": 130}).(map[string]any)
	if out["stoppedId"] != run {
		t.Fatalf("stoppedId: got %v, want %v", out["stoppedId"], run)
	}
	ev := f.must(200, "GET", "/"+free+"/events/"+run, nil).(map[string]any)
	if num(ev["duration"]) != 30 {
		t.Fatalf("duration: got %v, want 30", ev["duration"])
	}
	strictRun := f.event(strict, map[string]any{"time": 100, "duration": nil})
	early := f.event(free, map[string]any{"time": 500, "duration": nil})
	cases := []struct {
		name   string
		cid    string
		body   map[string]any
		status int
		id     string
	}{
		{"unknown id", free, map[string]any{"id": cuid("nope")}, 400, "unknown-event"},
		{"event of another channel", strict, map[string]any{"id": run}, 400, "unknown-event"},
		{"not running", free, map[string]any{"id": run}, 400, "invalid-operation"},
		{"a mark", free, map[string]any{"id": mark}, 400, "invalid-operation"},
		{"no id in a tolerant channel", free, map[string]any{}, 400, "missing-parameter"},
		{"before its start", free, map[string]any{"id": early, "time": 400}, 400, "invalid-operation"},
		{"id not a string", free, map[string]any{"id": 3}, 400, "invalid-parameters-format"},
		{"unknown field", free, map[string]any{"id": early, "at": 3}, 400, "invalid-parameters-format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, v := f.call("POST", "/"+tc.cid+"/events/stop", tc.body)
			f.wantErr(tc.name, st, v, tc.status, tc.id)
		})
	}
	// Without an id, a no-overlap channel stops its running period.
	out = f.must(200, "POST", "/"+strict+"/events/stop", map[string]any{"time": 160}).(map[string]any)
	if out["stoppedId"] != strictRun {
		t.Fatalf("stoppedId: got %v, want %v", out["stoppedId"], strictRun)
	}
	st, v := f.call("POST", "/"+strict+"/events/stop", map[string]any{})
	f.wantErr("nothing running", st, v, 400, "invalid-operation")
}

func TestBatchAppliesItemsInOrderWithPerItemResults(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Work", map[string]any{"enforceNoEventsOverlap": true})
	id := cuid("batch1")
	body := []map[string]any{
		{"tempRefId": "r1", "id": id, "type": noteType, "time": 100, "duration": nil},
		{"tempRefId": "r2", "time": 5},
		{"tempRefId": "r3", "type": noteType, "time": 200, "duration": nil},
		{"tempRefId": "r4", "id": id, "type": noteType},
		{"tempRefId": "r5", "type": noteType, "folderId": "nope"},
	}
	out := f.must(200, "POST", "/"+cid+"/events/batch", body).(map[string]any)
	res := func(ref string) map[string]any { m, _ := out[ref].(map[string]any); return m }
	if res("r1")["id"] != id {
		t.Fatalf("r1: got %v", res("r1"))
	}
	errOf := func(ref string) string {
		e, _ := res(ref)["error"].(map[string]any)
		s, _ := e["id"].(string)
		return s
	}
	if got, want := errOf("r2"), "invalid-parameters-format"; got != want {
		t.Fatalf("r2: got %q, want %q (%v)", got, want, out)
	}
	if res("r3")["stoppedId"] != id {
		t.Fatalf("r3 must stop r1 (applied before it): got %v", res("r3"))
	}
	if got, want := errOf("r4"), "item-id-already-exists"; got != want {
		t.Fatalf("r4: got %q, want %q", got, want)
	}
	if got, want := errOf("r5"), "unknown-folder"; got != want {
		t.Fatalf("r5: got %q, want %q", got, want)
	}
	if n := len(f.list("/" + cid + "/events?fromTime=0")); n != 2 {
		t.Fatalf("stored %d events, want 2", n)
	}
	// A read-only token gets forbidden on every item.
	ro := f.token(model.Permission{ChannelID: cid, Level: "read"})
	out = f.must(200, "POST", "/"+cid+"/events/batch", []map[string]any{
		{"tempRefId": "a", "type": noteType, "time": 1}, {"tempRefId": "b", "type": noteType, "time": 2},
	}, ro).(map[string]any)
	for _, ref := range []string{"a", "b"} {
		if got := errOf(ref); got != "forbidden" {
			t.Fatalf("read-only %s: got %q (%v)", ref, got, out)
		}
	}
	for _, bad := range []struct{ body, id string }{
		{`{"tempRefId": "x"}`, "invalid-parameters-format"},
		{`[{"type": {"class":"a","format":"b"}}]`, "invalid-parameters-format"},
		{`[{"tempRefId": "x"}, {"tempRefId": "x"}]`, "invalid-parameters-format"},
		{`[1]`, "invalid-parameters-format"},
		{`[{"tempRefId": "x"`, "invalid-request-structure"},
	} {
		st, b, _ := f.do("POST", f.path("/"+cid+"/events/batch"), f.tok, []byte(bad.body))
		f.wantErr(bad.body, st, decodeAnswer(t, b), 400, bad.id)
	}
}

func TestWrongMethodOnEventPaths(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	for _, c := range []struct{ method, path string }{
		{"PUT", "/" + cid + "/events"}, {"GET", "/" + cid + "/events/start"}, {"GET", "/" + cid + "/events/batch"},
		{"POST", "/" + cid + "/events/running"}, {"PATCH", "/" + cid + "/events/" + cuid("x")},
	} {
		st, v := f.call(c.method, c.path, nil)
		if st != 405 {
			t.Fatalf("%s %s: got %d, want 405 (%v)", c.method, c.path, st, v)
		}
	}
	st, v := f.call("GET", "/"+cid+"/events/a/b/c", nil)
	f.wantErr("too deep", st, v, 404, "unknown-event")
}

// scopeFixture is a channel with folders and events that the scope tests
// read through restricted tokens:
//
//	work (folder) ─ proj (folder)     home (folder)     (no folder)
//	  eWork t=100 tags a               eHome t=300 b     eLoose t=400 a,b
//	  eProj t=200 tags b
type scopeFixture struct {
	*actFixture
	cid                         string
	eWork, eProj, eHome, eLoose string
	all                         []string
	unknown                     string
}

func newScopeFixture(t *testing.T) *scopeFixture {
	f := newActFixture(t)
	s := &scopeFixture{actFixture: f, cid: f.channel("Shared")}
	f.folder(s.cid, "work", "Work", "")
	f.folder(s.cid, "proj", "Proj", "work")
	f.folder(s.cid, "home", "Home", "")
	s.eWork = f.event(s.cid, map[string]any{"folderId": "work", "time": 100, "tags": []any{"a"}})
	s.eProj = f.event(s.cid, map[string]any{"folderId": "proj", "time": 200, "tags": []any{"b"}})
	s.eHome = f.event(s.cid, map[string]any{"folderId": "home", "time": 300, "tags": []any{"b"}})
	s.eLoose = f.event(s.cid, map[string]any{"time": 400, "tags": []any{"a", "b"}})
	s.all = []string{s.eWork, s.eProj, s.eHome, s.eLoose}
	s.unknown = cuid("unknown")
	return s
}

// checkSees verifies that tok lists exactly want, reads each of them, and
// gets for every other event the very answer an unknown id gets.
func (s *scopeFixture) checkSees(tok string, want []string) {
	t := s.t
	t.Helper()
	mustIDSet(t, "listed", idsOf(s.list("/"+s.cid+"/events?fromTime=0", tok)), want)
	stU, bU, _ := s.do("GET", s.path("/"+s.cid+"/events/"+s.unknown), tok, nil)
	for _, id := range s.all {
		st, b, _ := s.do("GET", s.path("/"+s.cid+"/events/"+id), tok, nil)
		if hasID(want, id) {
			mustStatus(t, "read "+id, st, string(b), 200)
			continue
		}
		if st != stU || strings.ReplaceAll(string(b), id, "X") != strings.ReplaceAll(string(bU), s.unknown, "X") {
			t.Fatalf("out-of-scope %s answers %d %s; unknown answers %d %s", id, st, b, stU, bU)
		}
	}
}

func hasID(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestFolderRestrictedTokenSeesItsFoldersOnly(t *testing.T) {
	s := newScopeFixture(t)
	tok := s.token(model.Permission{ChannelID: s.cid, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: ptr("work"), Level: "contribute"}}})
	s.checkSees(tok, []string{s.eWork, s.eProj})
	st, v := s.call("GET", "/"+s.cid+"/events?onlyFolders=home", nil, tok)
	s.wantErr("onlyFolders out of scope", st, v, 400, "unknown-folder")
	mustIDSet(t, "onlyFolders=proj", idsOf(s.list("/"+s.cid+"/events?onlyFolders=proj", tok)), []string{s.eProj})
	// Writes inside the folder work; elsewhere they do not.
	s.must(201, "POST", "/"+s.cid+"/events", map[string]any{"type": noteType, "folderId": "proj"}, tok)
	st, v = s.call("POST", "/"+s.cid+"/events", map[string]any{"type": noteType, "folderId": "home"}, tok)
	s.wantErr("create in another folder", st, v, 400, "unknown-folder")
	st, v = s.call("POST", "/"+s.cid+"/events", map[string]any{"type": noteType}, tok)
	s.wantErr("create without folder", st, v, 403, "forbidden")
	st, v = s.call("PUT", "/"+s.cid+"/events/"+s.eWork, map[string]any{"folderId": "home"}, tok)
	s.wantErr("move out of scope", st, v, 400, "unknown-folder")
	st, v = s.call("PUT", "/"+s.cid+"/events/"+s.eWork, map[string]any{"folderId": nil}, tok)
	s.wantErr("move to no folder", st, v, 403, "forbidden")
	s.must(200, "PUT", "/"+s.cid+"/events/"+s.eWork, map[string]any{"folderId": "proj"}, tok)
	// A folderId: null grant covers events without a folder.
	loose := s.token(model.Permission{ChannelID: s.cid, Level: "read",
		FolderPermissions: []model.FolderPermission{{FolderID: nil, Level: "read"}}})
	s.checkSees(loose, []string{s.eLoose})
}

func TestTagRestrictedTokenSeesEventsWithOneOfItsTags(t *testing.T) {
	s := newScopeFixture(t)
	tok := s.token(model.Permission{ChannelID: s.cid, Level: "contribute", Tags: []string{"a"}})
	s.checkSees(tok, []string{s.eWork, s.eLoose})
	s.must(201, "POST", "/"+s.cid+"/events", map[string]any{"type": noteType, "tags": []any{"a", "z"}}, tok)
	st, v := s.call("POST", "/"+s.cid+"/events", map[string]any{"type": noteType, "tags": []any{"z"}}, tok)
	s.wantErr("create without the tag", st, v, 403, "forbidden")
	st, v = s.call("PUT", "/"+s.cid+"/events/"+s.eWork, map[string]any{"tags": []any{"b"}}, tok)
	s.wantErr("retag out of scope", st, v, 403, "forbidden")
	s.must(200, "PUT", "/"+s.cid+"/events/"+s.eLoose, map[string]any{"tags": []any{"a"}}, tok)
	// Folders are not affected by a tags filter.
	if n := len(asList(t, s.must(200, "GET", "/"+s.cid+"/folders", nil, tok))); n != 2 {
		t.Fatalf("folders seen: %d, want 2 roots", n)
	}
}

func TestTimeFrameTokenSeesEventsMeetingItsFrame(t *testing.T) {
	s := newScopeFixture(t)
	period := s.event(s.cid, map[string]any{"time": 50, "duration": 60}) // 50–110
	s.all = append(s.all, period)
	tok := s.token(model.Permission{ChannelID: s.cid, Level: "contribute",
		TimeFrame: &model.TimeFrame{From: ptr(100.0), To: ptr(200.0)}})
	s.checkSees(tok, []string{s.eWork, s.eProj, period})
	s.must(201, "POST", "/"+s.cid+"/events", map[string]any{"type": noteType, "time": 150}, tok)
	st, v := s.call("POST", "/"+s.cid+"/events", map[string]any{"type": noteType, "time": 250}, tok)
	s.wantErr("create outside the frame", st, v, 403, "forbidden")
	st, v = s.call("PUT", "/"+s.cid+"/events/"+s.eWork, map[string]any{"time": 1000}, tok)
	s.wantErr("move out of the frame", st, v, 403, "forbidden")
}

func TestReadOnlyTokenReadsButCannotWrite(t *testing.T) {
	s := newScopeFixture(t)
	run := s.event(s.cid, map[string]any{"time": 500, "duration": nil})
	s.all = append(s.all, run)
	tok := s.token(model.Permission{ChannelID: s.cid, Level: "read"})
	s.checkSees(tok, s.all)
	writes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/" + s.cid + "/events", map[string]any{"type": noteType}},
		{"POST", "/" + s.cid + "/events/start", map[string]any{"type": noteType}},
		{"PUT", "/" + s.cid + "/events/" + s.eWork, map[string]any{"description": "x"}},
		{"DELETE", "/" + s.cid + "/events/" + s.eWork, nil},
		{"POST", "/" + s.cid + "/events/stop", map[string]any{"id": run}},
		{"POST", "/" + s.cid + "/folders", map[string]any{"name": "New"}},
		{"PUT", "/" + s.cid + "/folders/work", map[string]any{"name": "Renamed"}},
		{"DELETE", "/" + s.cid + "/folders/work", nil},
	}
	for _, w := range writes {
		st, v := s.call(w.method, w.path, w.body, tok)
		s.wantErr(w.method+" "+w.path, st, v, 403, "forbidden")
	}
	ev := s.must(200, "GET", "/"+s.cid+"/events/"+s.eWork, nil).(map[string]any)
	if ev["trashed"] == true || ev["description"] != nil {
		t.Fatalf("a refused write changed the event: %v", ev)
	}
	// Another channel is unknown to the token.
	other := s.channel("Private")
	st, v := s.call("GET", "/"+other+"/events", nil, tok)
	s.wantErr("other channel", st, v, 404, "unknown-channel")
}

func TestEventsWithinFramesUseInclusiveBounds(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	at := f.event(cid, map[string]any{"time": 200})
	tok := f.token(model.Permission{ChannelID: cid, Level: "read", TimeFrame: &model.TimeFrame{To: ptr(200.0)}})
	mustIDs(t, "frame to=200", idsOf(f.list("/"+cid+"/events?fromTime=200&toTime=200", tok)), []string{at})
}

func TestExtremeTimesAreRefusedNotCrashed(t *testing.T) {
	f := newActFixture(t)
	free := f.channel("Free")
	strict := f.channel("Strict", map[string]any{"enforceNoEventsOverlap": true})
	run := f.event(free, map[string]any{"time": -1.7e308, "duration": nil})
	st, v := f.call("POST", "/"+free+"/events/stop", map[string]any{"id": run, "time": 1.7e308})
	f.wantErr("stop with an unrepresentable duration", st, v, 400, "invalid-parameters-format")
	f.event(strict, map[string]any{"time": -1.7e308, "duration": nil})
	st, v = f.call("POST", "/"+strict+"/events/start", map[string]any{"type": noteType, "time": 1.7e308})
	f.wantErr("start stopping with an unrepresentable duration", st, v, 400, "invalid-parameters-format")
	// A span past the float range reads as open-ended.
	far := f.event(free, map[string]any{"time": 1.7e308, "duration": 1.7e308})
	mustIDSet(t, "far period", idsOf(f.list("/"+free+"/events?fromTime=1e308")), []string{far, run})
}

func TestEventSizeAndBodyLimits(t *testing.T) {
	f := newActFixture(t, func(c *server.Config) { c.MaxBodyBytes = 400 << 10 })
	cid := f.channel("Diary")
	big := strings.Repeat("x", 300<<10)
	st, v := f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType, "description": big})
	f.wantErr("event over 256 KiB", st, v, 413, "payload-too-large")
	huge := strings.Repeat("x", 500<<10)
	st, v = f.call("POST", "/"+cid+"/events", map[string]any{"type": noteType, "description": huge})
	f.wantErr("body over the limit", st, v, 413, "payload-too-large")
	st, v = f.call("POST", "/"+cid+"/events/batch", []map[string]any{{"tempRefId": "a", "type": noteType, "description": huge}})
	f.wantErr("batch over the limit", st, v, 413, "payload-too-large")
	out := f.must(200, "POST", "/"+cid+"/events/batch", []map[string]any{{"tempRefId": "a", "type": noteType, "description": big}}).(map[string]any)
	if e, _ := out["a"].(map[string]any)["error"].(map[string]any); e["id"] != "payload-too-large" {
		t.Fatalf("batch item over 256 KiB: %v", out)
	}
}

func TestBrowserFormUpdatesAndDeletesEvents(t *testing.T) {
	f := newActFixture(t)
	cid := f.channel("Diary")
	id := f.event(cid, map[string]any{"time": 1})
	form := func(vals url.Values) (int, any) {
		st, b, _ := f.do("POST", f.path("/"+cid+"/events/"+id), "", []byte(vals.Encode()),
			"Content-Type", "application/x-www-form-urlencoded")
		return st, decodeAnswer(t, b)
	}
	st, v := form(url.Values{"_method": {"PUT"}, "_auth": {f.tok}, "_json": {`{"description": "from a form"}`}})
	mustStatus(t, "form PUT", st, v, 200)
	if v.(map[string]any)["description"] != "from a form" {
		t.Fatalf("form PUT: %v", v)
	}
	st, v = form(url.Values{"_method": {"PUT"}, "_auth": {f.tok}, "_json": {`{"description": `}})
	f.wantErr("bad _json", st, v, 400, "invalid-request-structure")
	st, v = form(url.Values{"_method": {"DELETE"}, "_auth": {f.tok}})
	mustStatus(t, "form DELETE", st, v, 200)
	if v.(map[string]any)["trashed"] != true {
		t.Fatalf("form DELETE did not trash: %v", v)
	}
}
