package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/goleak"

	"github.com/pryvsync/pryvsync/crdt"
	"github.com/pryvsync/pryvsync/model"
	"github.com/pryvsync/pryvsync/server"
)

func TestMain(m *testing.M) {
	// goleak.VerifyTestMain, with the test cluster (PRYVSYNC_TEST_STORE)
	// stopped between the tests and the search for leaked goroutines.
	code := m.Run()
	server.StopTestCluster()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/golang/glog.(*fileSink).flushDaemon"),
			goleak.IgnoreAnyFunction("github.com/dgraph-io/ristretto/v2.(*defaultPolicy[...]).processItems")); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func body(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func open(t *testing.T, dir string) *Replica {
	t.Helper()
	r, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func errID(err error) string {
	var me *model.Error
	if errors.As(err, &me) {
		return me.ID
	}
	return ""
}

func TestLocalWritesVisibleAndDurable(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	sub := r.Subscribe()
	ch, err := r.CreateChannel(body(t, `{"name":"Diary"}`))
	if err != nil || ch != "diary" {
		t.Fatalf("channel %q %v", ch, err)
	}
	id, err := r.CreateEvent(body(t, `{"channelId":"diary","type":{"class":"note","format":"txt"},"value":"hi","tags":["a"," b ","a"],"time":100}`))
	if err != nil {
		t.Fatal(err)
	}
	if !model.IsCuid(id) {
		t.Fatalf("id %q not a cuid", id)
	}
	if c := <-sub; c.Kind != "channel" || c.Source != "local" {
		t.Fatalf("notification %+v", c)
	}
	ev, err := r.GetEvent(id)
	if err != nil || string(ev.Value) != `"hi"` || strings.Join(ev.Tags, ",") != "a,b" || ev.FolderID != nil {
		t.Fatalf("event %+v %v", ev, err)
	}
	if err := r.UpdateEvent(id, EventUpdate{AddTags: []string{"c"}, RemoveTags: []string{"a"}, Body: body(t, `{"description":"d"}`)}); err != nil {
		t.Fatal(err)
	}
	st, _ := r.Status()
	if st.Pending != 3 {
		t.Fatalf("pending %d", st.Pending)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub; ok {
		// drain: buffered notifications may remain before the close
		for range sub {
		}
	}

	r = open(t, dir)
	defer r.Close()
	ev, err = r.GetEvent(id)
	if err != nil || strings.Join(ev.Tags, ",") != "b,c" || ev.Description == nil || *ev.Description != "d" {
		t.Fatalf("after reopen %+v %v", ev, err)
	}
	// Trash, then delete for good.
	if err := r.DeleteEvent(id); err != nil {
		t.Fatal(err)
	}
	if l, _ := r.ListEvents(Filter{}); len(l) != 0 {
		t.Fatalf("trashed event listed by default: %d", len(l))
	}
	if l, _ := r.ListEvents(Filter{State: "trashed"}); len(l) != 1 {
		t.Fatalf("trashed list: %d", len(l))
	}
	if err := r.DeleteEvent(id); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetEvent(id); errID(err) != model.ErrUnknownEvent {
		t.Fatalf("deleted event: %v", err)
	}
	if _, err := r.CreateEvent(body(t, `{"id":"`+id+`","channelId":"diary","type":{"class":"note","format":"txt"}}`)); errID(err) != model.ErrItemIDAlreadyExists {
		t.Fatalf("reused id: %v", err)
	}
}

func TestListEventsFilters(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	for i, s := range []string{
		`{"channelId":"a","type":{"class":"n","format":"t"},"time":10,"tags":["x"]}`,
		`{"channelId":"a","type":{"class":"n","format":"t"},"time":30,"tags":["x","y"]}`,
		`{"channelId":"b","type":{"class":"n","format":"t"},"time":20}`,
	} {
		if _, err := r.CreateEvent(body(t, s)); err != nil {
			t.Fatal(i, err)
		}
	}
	all, _ := r.ListEvents(Filter{})
	if len(all) != 3 || all[0].Time != 30 || all[2].Time != 10 {
		t.Fatalf("order: %+v", all)
	}
	if l, _ := r.ListEvents(Filter{Channel: "a", Tags: []string{"x", "y"}}); len(l) != 1 {
		t.Fatalf("tags: %d", len(l))
	}
	from, to := 15.0, 25.0
	if l, _ := r.ListEvents(Filter{From: &from, To: &to}); len(l) != 1 || l[0].ChannelID != "b" {
		t.Fatalf("time window: %+v", l)
	}
	if l, _ := r.ListEvents(Filter{Limit: 2}); len(l) != 2 {
		t.Fatalf("limit: %d", len(l))
	}
}

func TestValidation(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	cases := []struct {
		body, want string
	}{
		{`{"channelId":"a"}`, model.ErrInvalidParametersFormat},                                     // no type
		{`{"channelId":"a","type":{"class":"A B","format":"t"}}`, model.ErrInvalidParametersFormat}, // bad type
		{`{"type":{"class":"n","format":"t"}}`, model.ErrInvalidParametersFormat},                   // no channel
		{`{"channelId":"a","type":{"class":"n","format":"t"},"bogus":1}`, model.ErrInvalidParametersFormat},
		{`{"channelId":"a","type":{"class":"n","format":"t"},"duration":-1}`, model.ErrInvalidParametersFormat},
		{`{"id":"nope","channelId":"a","type":{"class":"n","format":"t"}}`, model.ErrInvalidItemID},
	}
	for _, c := range cases {
		if _, err := r.CreateEvent(body(t, c.body)); errID(err) != c.want {
			t.Errorf("%s: got %v, want %s", c.body, err, c.want)
		}
	}
	if _, err := r.CreateChannel(body(t, `{"id":"sync","name":"x"}`)); errID(err) != model.ErrInvalidItemID {
		t.Errorf("reserved id: %v", err)
	}
	if _, err := r.CreateChannel(body(t, `{"name":"Work"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateChannel(body(t, `{"id":"other","name":"WORK"}`)); errID(err) != model.ErrItemNameAlreadyExists {
		t.Errorf("name clash: %v", err)
	}
	if err := r.UpdateChannel("work", body(t, `{"created":5}`)); errID(err) != model.ErrInvalidParametersFormat {
		t.Errorf("read-only: %v", err)
	}
	if err := r.UpdateEvent("c000000000000000000000000", EventUpdate{}); errID(err) != model.ErrUnknownEvent {
		t.Errorf("unknown: %v", err)
	}
	f, err := r.CreateFolder(body(t, `{"channelId":"work","name":"Top"}`))
	if err != nil {
		t.Fatal(err)
	}
	g, err := r.CreateFolder(body(t, `{"channelId":"work","name":"Sub","parentId":"`+f+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateFolder(f, body(t, `{"parentId":"`+g+`"}`)); errID(err) != model.ErrInvalidOperation {
		t.Errorf("cycle: %v", err)
	}
	if fs, _ := r.ListFolders("work"); len(fs) != 2 {
		t.Errorf("folders: %d", len(fs))
	}
}

func setPerms(t *testing.T, r *Replica, accessType string, perms []model.Permission) {
	t.Helper()
	if err := r.update(func(txn *badger.Txn) error {
		return setJSON(txn, keyPerms, permState{AccessID: "acc", AccessType: accessType, Permissions: perms, PermVersion: 1, Key: []byte("k")})
	}); err != nil {
		t.Fatal(err)
	}
}

func TestScopeDenial(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	fid := "shared"
	setPerms(t, r, model.AccessShared, []model.Permission{
		{ChannelID: "diary", Level: "contribute"},
		{ChannelID: "work", Level: "read"},
		{ChannelID: "proj", Level: "contribute", FolderPermissions: []model.FolderPermission{{FolderID: &fid, Level: "contribute"}}},
	})
	ev := `{"channelId":"%s","type":{"class":"n","format":"t"}%s}`
	mk := func(ch, extra string) error {
		_, err := r.CreateEvent(body(t, strings.Replace(strings.Replace(ev, "%s", ch, 1), "%s", extra, 1)))
		return err
	}
	if err := mk("diary", ""); err != nil {
		t.Errorf("unseen but allowed channel: %v", err)
	}
	if err := mk("work", ""); errID(err) != model.ErrForbidden {
		t.Errorf("read-only channel: %v", err)
	}
	if err := mk("other", ""); errID(err) != model.ErrForbidden {
		t.Errorf("channel outside scope: %v", err)
	}
	if err := mk("proj", `,"folderId":"shared"`); err != nil {
		t.Errorf("unseen but permitted folder: %v", err)
	}
	if err := mk("proj", ""); errID(err) != model.ErrForbidden {
		t.Errorf("event without folder in a folder-restricted channel: %v", err)
	}
	if _, err := r.CreateChannel(body(t, `{"name":"New"}`)); errID(err) != model.ErrForbidden {
		t.Errorf("shared access creating a channel: %v", err)
	}
	if _, err := r.CreateFolder(body(t, `{"channelId":"diary","name":"F"}`)); errID(err) != model.ErrForbidden {
		t.Errorf("contribute creating a folder: %v", err)
	}
}

func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	defer r.Close()
	_, err := Open(dir, Options{})
	if err == nil || !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "watch") {
		t.Fatalf("second open: %v", err)
	}
}

func TestOverlayMergesOverBase(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	id, err := r.CreateEvent(body(t, `{"channelId":"a","type":{"class":"n","format":"t"},"value":1,"time":5}`))
	if err != nil {
		t.Fatal(err)
	}
	// The server's newer state of the same event: another writer changed
	// the description, with an older version of value.
	var local crdt.Doc
	_ = r.db.View(func(txn *badger.Txn) error { local, _, err = loadItem(txn, model.KindEvent, id); return err })
	server := local.Clone()
	v := crdt.Version{Time: local.MaxVersion().Time + 10, Node: "server"}
	server.Fields["description"] = crdt.Field{V: v, Val: model.JSONString("from server")}
	old := crdt.Version{Time: 1, Node: "server"}
	server.Fields["value"] = crdt.Field{V: old, Val: []byte("99")}
	if err := r.update(func(txn *badger.Txn) error { return putBase(txn, nil, "event", id, server) }); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateEvent(id, EventUpdate{Body: body(t, `{"value":2}`)}); err != nil {
		t.Fatal(err)
	}
	ev, err := r.GetEvent(id)
	if err != nil || string(ev.Value) != "2" || ev.Description == nil || *ev.Description != "from server" {
		t.Fatalf("merged view: %+v %v", ev, err)
	}
}

func TestRejectionsDiscard(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	e := entry{RSeq: 1, Kind: "event", ID: "x", Delta: crdt.Doc{Fields: map[string]crdt.Field{"value": {Val: []byte("1")}}}}
	rj := Rejection{ID: "r1", ItemID: "x", Kind: "rejected", Error: RejectionError{ID: "forbidden", Message: "no"}, Change: changeJSON(e)}
	if err := r.update(func(txn *badger.Txn) error { return setJSON(txn, prefixRej+"r1", rj) }); err != nil {
		t.Fatal(err)
	}
	l, err := r.Rejections()
	if err != nil || len(l) != 1 || !strings.Contains(string(l[0].Change), `"value":1`) {
		t.Fatalf("rejections %+v %v", l, err)
	}
	if err := r.DiscardRejection("r1"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.Status(); st.Rejections != 0 {
		t.Fatalf("after discard: %d", st.Rejections)
	}
}

// A channel created without an id takes the id its name gives only while
// no item this replica holds has it (here a channel renamed since).
func TestCreateChannelWithoutIDAvoidsAnIDInUse(t *testing.T) {
	r := open(t, t.TempDir())
	defer r.Close()
	id, err := r.CreateChannel(body(t, `{"name":"Music"}`))
	if err != nil || id != "music" {
		t.Fatalf("first channel: %q, %v", id, err)
	}
	if err := r.UpdateChannel(id, body(t, `{"name":"Songs"}`)); err != nil {
		t.Fatal(err)
	}
	again, err := r.CreateChannel(body(t, `{"name":"Music"}`))
	if err != nil {
		t.Fatalf("a channel with the free name Music: %v", err)
	}
	if again == "music" {
		t.Fatalf("the new channel took the id of the renamed one")
	}
}
